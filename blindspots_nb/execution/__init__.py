"""How a model is run, apart from what is computed: :mod:`.options` (the
:class:`Execution` options, light to import) and :mod:`.running` (how they run a model,
and batch normalisation folded into the convolutions)."""

from ..tools.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {"options": ("Execution", "PRECISIONS"),
                                                        "running": ("fold_batchnorm",)})
