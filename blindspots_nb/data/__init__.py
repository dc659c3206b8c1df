"""Image sources: skimage photos, FONTS-style glyphs, handwritten digits, ImageNet/CIFAR-10, a user's folder.

Every loader returns images as float tensors in [0, 1] at a model's input size, made
by one preprocessing; datasets yield ``(image, label)`` and carry ``class_names`` and
per-image ``names``. One file per concern:

- :mod:`.images`: the preprocessing (:func:`preprocess_for`), reading image files
  (:func:`open_image`) and the two datasets (:class:`TensorImages`, :class:`ImageFiles`);
- one file per kind of source: :mod:`.photos` (scikit-image's photos), :mod:`.fonts`
  (glyphs A-J and their differentiable renderer), :mod:`.digits` (scikit-learn's handwritten
  digits), :mod:`.imagenet`, :mod:`.cifar` (CIFAR-10), :mod:`.folder` (a user's
  images and their labels);
- :mod:`.sources`: the registry that opens each of them from one spelling, parsed once
  into an :class:`~.sources.ImageSource` where it comes in and passed inward.

The protocol's pool rule, which runs models on a source, is
:func:`blindspots_nb.protocol.pool.select_pool`.
"""

from typing import TYPE_CHECKING

from ..tools.lazy import lazy_exports

if TYPE_CHECKING:  # the package's names, each imported on first use (tools.lazy reads these lines)
    from .images import ImageFiles, ImageReadError, Preprocess, TensorImages, input_size_of, open_image, preprocess_for
    from .photos import SAMPLE_IMAGES, sample_images
    from .fonts import (GlyphRenderer, TRANSFORM_PARAMETERS, TRANSFORM_RANGES, affine_theta, draw_parameters,
                        font_split, fonts_dataset, matplotlib_fonts)
    from .digits import DIGITS_SPLIT_SEED, DIGITS_TEST_SHARE, digits_dataset
    from .imagenet import imagenet_val
    from .cifar import cifar10
    from .folder import has_class_folders, image_folder

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
