"""What the models' datasets fix: ImageNet's normalisation, class names and WordNet ids,
the CIFAR-10, FONTS and digits class names, and the radii the FONTS and digits robust models
were trained at.

Light on purpose (no torch): :mod:`blindspots_nb.data` reads these too.
"""

from __future__ import annotations

from functools import lru_cache

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
FONTS_CLASSES = tuple("ABCDEFGHIJ")
FONTS_AT_RADIUS = 0.2  # l_inf radius of fonts_cnn_at's PGD adversarial training (pixels in [0, 1])
DIGITS_CLASSES = tuple("0123456789")
DIGITS_AT_RADIUS = 0.1  # l_inf radius of digits_lenet_at's PGD adversarial training (pixels in [0, 1])


@lru_cache(maxsize=None)
def imagenet_class_names(subset: str = "imagenet-1k") -> tuple[str, ...]:
    """Human-readable ImageNet class names in the standard (wnid-sorted) order, from timm."""
    from timm.data import ImageNetInfo
    return tuple(ImageNetInfo(subset).label_descriptions())


@lru_cache(maxsize=None)
def imagenet_wnids(subset: str = "imagenet-1k") -> tuple[str, ...]:
    """WordNet ids (``n01440764`` ...) of the ImageNet classes, index order."""
    from timm.data import ImageNetInfo
    return tuple(ImageNetInfo(subset).label_names())
