"""The protocol behind the paper's Tables 1 and 2, as a library.

- :mod:`.experiment`: what an experiment is (:class:`Experiment`, holding an
  ``LSTConfig``) and the named presets;
- :mod:`.store`: the run store, which owns every path and write under an output folder;
- :mod:`.run`: prepare each pool once, then per model and shard (torchrun included),
  then assemble;
- :mod:`.tables`: the paper's rows, the summaries, Markdown/LaTeX/CSV;
- :mod:`.compare`: two runs compared source by source (paired by each image's sha256);
- :mod:`.report`: what the executed notebook of a model shows.
"""

from ..tools.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "experiment": ("PRESETS", "Experiment", "preset"),
    "run": ("NOTEBOOK", "assemble", "derangements", "merge", "parse_shard", "plan", "plan_text", "pool_images",
            "prepare", "reproduce", "run_model", "select", "source_batches"),
    "store": ("RunFolderBusy", "RunFolderError", "RunSettingsMismatch", "RunStore"),
    "tables": ("PAPER_TABLE1", "PAPER_TABLE2", "TABLE1_COLUMNS", "TABLE2_COLUMNS", "format_summary",
               "summarize_model"),
    "compare": ("compare_runs", "paired_comparison", "source_numbers"),
})
