"""The protocol behind the paper's Tables 1 and 2, as a library.

- :mod:`.experiment`: what an experiment is (:class:`Experiment`, holding an
  ``LSTConfig``) and the named presets;
- :mod:`.pool`: the pool rule and the run's record of its pool (selected once, its images
  read back and checked);
- :mod:`.store`: the run store, which owns every path and write under an output folder;
- :mod:`.layout`: the run folder's names, format versions and readers (the store and the
  run browser share them);
- :mod:`.run`: per model and shard (torchrun included), or one experiment in this process
  (``run_in_process``, no papermill), then assemble; :mod:`.notebooks`:
  the packaged notebook papermill runs for each;
- :mod:`.tables`: the paper's rows, the summaries, Markdown/LaTeX/CSV;
- :mod:`.compare`: two runs compared source by source (paired by each image's sha256);
- :mod:`.report`: what the executed notebook of a model shows.
"""

from typing import TYPE_CHECKING

from ..tools.lazy import lazy_exports

if TYPE_CHECKING:  # the package's names, each imported on first use (tools.lazy reads these lines)
    from .experiment import PRESETS, Experiment, parse_shard, preset
    from .pool import derangements, pool_images, prepare, select, source_batches
    from .notebooks import NOTEBOOK
    from .run import assemble, merge, plan, plan_text, reproduce, run_in_process, run_model
    from .layout import RunFolderBusy, RunFolderError, RunSettingsMismatch
    from .store import RunStore
    from .tables import PAPER_TABLE1, PAPER_TABLE2, TABLE1_COLUMNS, TABLE2_COLUMNS, format_summary, summarize_model
    from .compare import compare_runs, paired_comparison, source_numbers

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
