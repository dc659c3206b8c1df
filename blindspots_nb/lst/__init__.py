"""Level Set Traversal (LST): walk along a model's level set from a source image
towards a target image, ending at a *blind spot* — an image that looks like the
target while the model keeps the source's class and confidence.

Images are tensors in [0, 1]; the model maps them to logits (normalisation lives in
the model). The algorithm (``docs/algorithm.md``): raw cross-entropy gradient, the
step towards the target projected orthogonally to it, an accumulated box-bounded
parallel part, and a per-sample acceptance test against the clean source confidence.

The files: :mod:`.config` (the hyperparameters, :class:`LSTConfig`, light to import),
:mod:`.step` (one iteration's pieces: forward-backward pass, orthogonal step,
per-sample inner product),
:mod:`.traversal` (:class:`Traversal`, :func:`traverse`), :mod:`.history` (what a
traversal records and returns), :mod:`.state` (the saved state and its checks).
"""

from typing import TYPE_CHECKING

from ..tools.lazy import lazy_exports

if TYPE_CHECKING:  # the package's names, each imported on first use (tools.lazy reads these lines)
    from .config import LSTConfig
    from .history import History, LSTResult
    from .state import weights_sha256
    from .step import forward_backward, orthogonal_step, per_sample_dot
    from .traversal import Traversal, traverse

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
