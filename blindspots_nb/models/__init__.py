"""Model zoo: one registry of classifiers that take images in [0, 1].

``load_model(name)`` builds the architecture, finds its weights, and returns a
:class:`Classifier` (normalisation inside, eval mode, frozen parameters) with
``class_names``, ``input_size`` and a JSON-serialisable ``info`` dict that records
the weights file, where it came from and whether it matched a published hash.

The files, in the order a model is made (as timm keeps registry, hub and factory apart):

- ``classes``: what the datasets fix (normalisation, class names, the FONTS and digits training radii);
- ``classifier``: the :class:`Classifier` wrapper and what is asked of a model
  (``module_device``, ``predict``, ``class_confidence``);
- ``architectures``: the networks that are not timm's or torchvision's as they are;
- ``entry``: :class:`ModelEntry`, what the registry holds for one model;
- ``registry``: one entry per name (``list_models``, ``get_entry``, ``timm:<name>``);
- ``hub``: where weights come from (argument, package, cache, download) and their hash check;
- ``checkpoint_formats``: reading the published file formats without running pickled code;
- ``spec_names``: how a model is named (the registry's names; a spec's syntax, its file, its folder in a
  run), checked without torch;
- ``spec``: a model given by where its code lives (``file.py:function``, ``package.module:function``);
- ``factory``: ``load_model`` (a registry name or a spec), ``random_model``, ``weights_record``.
"""

from typing import TYPE_CHECKING

from ..tools.lazy import lazy_exports

if TYPE_CHECKING:  # the package's names, each imported on first use (tools.lazy reads these lines)
    from .classes import (IMAGENET_MEAN, IMAGENET_STD, CIFAR10_CLASSES, FONTS_CLASSES, FONTS_AT_RADIUS, DIGITS_CLASSES,
                          DIGITS_AT_RADIUS, imagenet_class_names, imagenet_wnids)
    from .classifier import Classifier, wrap, module_device, predict, class_confidence
    from .architectures import WideResNet, FontsCNN, LeNet
    from .entry import ModelEntry
    from .registry import list_models, get_entry
    from .hub import CHECKPOINT_DIR, WeightsNotFoundError, cache_dir
    from .checkpoint_formats import CheckpointError
    from .spec_names import ModelSpecError, is_spec, canonical_spec, model_folder, checked_model_name
    from .factory import load_model, random_model, weights_record

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
