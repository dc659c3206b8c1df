"""Runs as data: :mod:`.frames` reads a run of ``blindspots-nb reproduce`` (or every run below a
folder) into pandas DataFrames, read-only, through the run browser's readers; :mod:`.across_runs`
shows many runs in one view (notebook 09): filtered by any setting, any number of the tables
plotted against any setting, two runs compared source by source; :mod:`.examples` makes the small
runs it shows when there are none yet."""

from typing import TYPE_CHECKING

from ..tools.lazy import lazy_exports

if TYPE_CHECKING:  # the package's names, each imported on first use (tools.lazy reads these lines)
    from .across_runs import AcrossRuns
    from .examples import example_runs
    from .frames import Run, SkippedRun, collect, load_run

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
