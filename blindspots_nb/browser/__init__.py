"""The run browser: a finished (or unfinished) ``blindspots-nb reproduce`` folder, read-only
(notebook 07). :mod:`.files` reads the folder's files, each damaged one a line;
:mod:`.runs` gives each model's sources, blind spots, triangles and what is missing
(:class:`StoredRun`, headless); :mod:`.view` draws it with ipywidgets and plotly
(:class:`RunBrowser`). It imports no engine: the folder's pools are read through
:mod:`blindspots_nb.protocol.pool`, never through the protocol's run."""

from ..tools.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "runs": ("CONTRADICTIONS", "Contradiction", "StoredRun", "StoredTriangle"),
    "view": ("RunBrowser",),
})
