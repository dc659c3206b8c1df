"""The live explorer: its headless state (:mod:`.state`, stepping LST from a source towards
two targets under one lock), the images it chooses them from (:mod:`.catalogue`), what it
shows at one moment (:mod:`.snapshot`), the live triangle between them (:mod:`.triangle`),
its widget view (:mod:`.view`, ipywidgets and plotly), which only draws the state, and its
Export (:mod:`.export`). The browser of a finished run is :mod:`blindspots_nb.browser`."""

from ..tools.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "catalogue": ("GIVEN_IMAGES", "Catalogue"),
    "snapshot": ("Snapshot", "TargetState"),
    "state": ("Explorer",),
    "triangle": ("RedrawThrottle", "Triangle", "TrianglePoint", "compute_point", "compute_triangle"),
})
