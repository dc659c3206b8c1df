"""How a model is run, apart from what is computed: :mod:`.options` (the
:class:`Execution` options, light to import) and :mod:`.running` (how they run a model,
and batch normalisation folded into the convolutions)."""

from typing import TYPE_CHECKING

from ..tools.lazy import lazy_exports

if TYPE_CHECKING:  # the package's names, each imported on first use (tools.lazy reads these lines)
    from .options import Execution, PRECISIONS
    from .running import fold_batchnorm

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
