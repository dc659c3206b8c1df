"""The run browser: a finished (or unfinished) ``blindspots-nb reproduce`` folder, read-only
(notebook 07). :mod:`.files` reads the folder's files, each damaged one a line, and its pool's
images when first shown; :mod:`.findings`: the paper's findings a source can go against;
:mod:`.runs` gives each model's sources, blind spots, triangles and what is missing
(:class:`StoredRun`, headless); :mod:`.view` draws it with ipywidgets and plotly
(:class:`RunBrowser`). It imports no engine: the folder's pools are read through
:mod:`blindspots_nb.protocol.pool`, never through the protocol's run."""

from typing import TYPE_CHECKING

from ..tools.lazy import lazy_exports

if TYPE_CHECKING:  # the package's names, each imported on first use (tools.lazy reads these lines)
    from .findings import CONTRADICTIONS, Contradiction
    from .runs import StoredRun, StoredTriangle
    from .view import RunBrowser

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
