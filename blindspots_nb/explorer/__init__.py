"""The live explorer: its headless state (:mod:`.state`, stepping LST from a source towards
two targets), the live triangle between them (:mod:`.triangle`) and its widget view
(:mod:`.view`, ipywidgets and plotly), which only draws the state, and its Export
(:mod:`.export`). The browser of a finished run is :mod:`blindspots_nb.browser`."""

from ..tools.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "state": ("GIVEN_IMAGES", "Explorer", "Snapshot"),
    "triangle": ("RedrawThrottle", "Triangle", "TrianglePoint", "compute_point", "compute_triangle"),
})
