"""The live explorer: its headless state (:mod:`.state`, stepping LST from a source towards
two targets under one lock, in the foreground or in a :mod:`.background` thread), the
models and images it chooses them from (:mod:`.catalogue`), what it shows at one moment
(:mod:`.snapshot`), the live triangle between them (:mod:`.triangle`),
its widget view (:mod:`.view`, ipywidgets and plotly), which only draws the state, and its
Export (:mod:`.export`). The browser of a finished run is :mod:`blindspots_nb.browser`."""

from typing import TYPE_CHECKING

from ..tools.lazy import lazy_exports

if TYPE_CHECKING:  # the package's names, each imported on first use (tools.lazy reads these lines)
    from .catalogue import GIVEN_IMAGES, Catalogue
    from .snapshot import Snapshot, TargetState
    from .state import Explorer
    from .triangle import RedrawThrottle, Triangle, TrianglePoint, compute_point, compute_triangle

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
