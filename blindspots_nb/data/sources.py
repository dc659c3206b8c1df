"""One registry of image sources, opened from one spelling.

========================  =================================================
spelling                  what it opens
========================  =================================================
``photos``                scikit-image's bundled photos (unlabelled)
``fonts`` / ``fonts:test`` FONTS-style glyphs A-J from the test fonts
``fonts:train``           the same from the training fonts
``digits`` / ``digits:test`` scikit-learn's handwritten digits 0-9, the test split
``digits:train``          the same from the training split
``imagenet:ROOT``         ImageNet validation images, ``ROOT/<wnid>/*``
``cifar10:ROOT``          the CIFAR-10 test batch under ``ROOT``
``folder:PATH``           a user's images (labels from subfolder names)
========================  =================================================

A spelling is parsed once, where it comes in (the command line, a notebook's
parameters, the explorer, an experiment), into an :class:`ImageSource` that is passed
inward. :func:`open_source` gives a dataset (images in [0, 1] at a model's input size,
``labels`` with -1 for unknown, ``class_names``, ``names``); the reproduction, the
notebooks and the explorer all open their images through it, so a new kind of
source is one entry of :data:`SOURCES`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .. import data
from ..tools.checksums import file_sha256

if TYPE_CHECKING:
    import torch

FONTS_GLYPHS = 1000  # glyphs in a FONTS image source (balanced over the 10 letters)
_EXPLORER_LIMIT = 100  # images the explorer and notebooks take from the start of a large image source
# Photos the ImageNet models name confidently (espresso, tabby/Egyptian cat, tripod, ...).
PHOTO_PICKS = ("coffee", "chelsea", "camera", "astronaut", "rocket", "moon")


def _photos(argument, size, seed, download):
    import torch  # here, not at the top: the command line's --help reads this module's spellings

    images, names = data.sample_images(size)
    return data.TensorImages(images, torch.full((len(names),), -1), [], names)


def _fonts(argument, size, seed, download):
    channels, height, _ = data.input_size_of(size)
    glyphs = data.fonts_dataset(argument, n=FONTS_GLYPHS, seed=seed, size=height)
    names = [f"{glyphs.class_names[int(y)]}{i} ({font})"
             for i, (y, font) in enumerate(zip(glyphs.labels, glyphs.names))]
    images = glyphs.images if channels == 1 else glyphs.images.expand(-1, channels, -1, -1)
    return data.TensorImages(images, glyphs.labels, glyphs.class_names, names)


@dataclass(frozen=True)
class SourceKind:
    """One kind of image source: how to open it and what its argument is."""

    open: Callable  # (argument, size, seed, download) -> dataset
    argument: str | None  # what follows the colon (None: nothing may)
    default: str | None  # the argument when none is given
    help: str


SOURCES: dict[str, SourceKind] = {
    "photos": SourceKind(_photos, None, None, "scikit-image's bundled photos (unlabelled)"),
    "fonts": SourceKind(_fonts, "test|train", "test", f"{FONTS_GLYPHS} FONTS-style glyphs A-J"),
    "digits": SourceKind(lambda split, size, *_: data.digits_dataset(split, size), "test|train", "test",
                         "scikit-learn's handwritten digits 0-9 (8x8, upsampled), a fixed test or train split"),
    "imagenet": SourceKind(lambda root, size, seed, download: data.imagenet_val(root, size=size), "ROOT", None,
                           "ImageNet validation images in class folders ROOT/<wnid>/*"),
    "cifar10": SourceKind(lambda root, size, seed, download: data.cifar10(root, download=download), "ROOT", None,
                          "the CIFAR-10 test batch under ROOT (cifar-10-batches-py/test_batch)"),
    "folder": SourceKind(lambda path, size, seed, download: data.image_folder(path, size=size), "PATH", None,
                         "a user's images; labels from subfolder names, else unknown"),
}


def spellings() -> list[str]:
    """How each kind of image source is written, e.g. ``['photos', 'fonts:test|train', ...]``."""
    return [name + (f":{kind.argument}" if kind.argument else "") for name, kind in SOURCES.items()]


def parse_source(spelling: str) -> tuple[str, str | None]:
    """``'imagenet:/data/val'`` -> ``('imagenet', '/data/val')``; checks the spelling."""
    name, _, argument = str(spelling).partition(":")
    name, argument = name.strip().lower(), argument.strip() or None
    kind = SOURCES.get(name)
    if kind is None:
        raise ValueError(f"unknown image source {spelling!r}; write one of: {', '.join(spellings())}")
    argument = argument or kind.default
    if kind.argument is None and argument is not None:
        raise ValueError(f"image source {name!r} takes no argument, got {spelling!r}")
    if kind.argument is not None and argument is None:
        raise ValueError(f"image source {name!r} needs its {kind.argument}: write {name}:{kind.argument}")
    if kind.argument == "test|train" and argument not in ("test", "train"):
        raise ValueError(f"image source {name!r} is {name}:test or {name}:train, got {spelling!r}")
    return name, argument


@dataclass(frozen=True)
class ImageSource:
    """An image source parsed once, from its spelling at the edge (the command line, a
    notebook's parameters, the explorer, an experiment): its kind (a key of
    :data:`SOURCES`) and argument (what follows the colon, None for none). Its ``str`` is
    the one way of writing it: ``'fonts'`` -> ``fonts:test``, ``'Imagenet: /x'`` -> ``imagenet:/x``."""

    kind: str
    argument: str | None = None

    def __post_init__(self):
        if self.kind not in SOURCES:
            raise ValueError(f"unknown image source kind {self.kind!r}; write one of: {', '.join(spellings())}")

    @classmethod
    def of(cls, spelling: "str | Path | ImageSource") -> "ImageSource":
        """The image source ``spelling`` names (an image source is itself); ValueError saying
        how to write one for a spelling that is none."""
        return spelling if isinstance(spelling, ImageSource) else cls(*parse_source(spelling))

    def __str__(self) -> str:
        return self.kind if self.argument is None else f"{self.kind}:{self.argument}"

    @property
    def shown(self) -> str:
        """As a caption for others shows it: a folder or root by its last name
        (``folder:/home/me/my_digits`` -> ``folder:my_digits``), no absolute path."""
        return f"{self.kind}:{Path(self.argument).name}" if self._on_disk else str(self)

    @property
    def _on_disk(self) -> bool:
        return SOURCES[self.kind].argument in ("ROOT", "PATH")

    def absolute(self) -> "ImageSource":
        """The same source with its folder or root made absolute (``folder:my_images`` ->
        ``folder:/home/me/my_images``), as every process of a run opens it wherever it runs."""
        if not self._on_disk:
            return self
        return ImageSource(self.kind, os.path.abspath(os.path.expanduser(self.argument)))

    def check_exists(self, what: str) -> None:
        """Refuse a source whose ROOT or PATH does not exist (FileNotFoundError naming
        ``what`` asked for it); reads no image, imports no torch."""
        if self._on_disk and not Path(self.argument).expanduser().exists():
            raise FileNotFoundError(f"data root {self.argument} (for {what}) does not exist")

    def open(self, size=224, seed: int = 0, download: bool = True):
        """Its dataset, preprocessed for ``size`` (:func:`open_source`)."""
        return SOURCES[self.kind].open(self.argument, size, seed, download)

    def labels_in_words(self) -> str | None:
        """Where a user's folder's labels come from, for a caption: "labelled by folder"
        (class subfolders named after the model's classes) or the model's own prediction (no
        class subfolders); None for the other kinds, whose labels (or their absence) are their own."""
        if self.kind != "folder":
            return None
        return ("labelled by folder" if data.has_class_folders(self.argument)
                else "no class folders: the model's own prediction is the label")


def _quoted(image_source) -> str:
    """An image source (or a dataset) as an error message names it: ``'fonts:test'``."""
    return repr(str(image_source)) if isinstance(image_source, ImageSource) else repr(image_source)


def open_source(image_source, size=224, seed: int = 0, download: bool = True):
    """The dataset an image source (an :class:`ImageSource` or its spelling) names, preprocessed
    for ``size`` (an int, (C, H, W) or a model). ``download=False`` (a reader such as the run
    browser) never fetches or creates anything: a source not on disk is an error saying what
    to put where.

    An image source already open (a dataset: anything with ``names``) is returned as it
    is. ``seed`` draws the glyphs of a FONTS image source.
    """
    if isinstance(image_source, (str, Path)):
        image_source = ImageSource.of(image_source)
    if isinstance(image_source, ImageSource):
        return image_source.open(size, seed, download)
    if hasattr(image_source, "names") and hasattr(image_source, "__getitem__"):
        return image_source
    raise TypeError(f"an image source is an ImageSource, its spelling ({', '.join(spellings())}) or a dataset, "
                    f"got {type(image_source).__name__}")


def item_digest(dataset, index: int) -> str | None:
    """The sha256 of the file behind a dataset's image (None for images made in memory:
    bundled photos, glyphs, a CIFAR-10 batch), so that a changed file is noticed."""
    paths = getattr(dataset, "paths", None)
    return None if paths is None else file_sha256(paths[index])


def default_source(model) -> ImageSource:
    """Glyphs for models trained on FONTS, digits for those trained on digits, photos for the others."""
    kind = getattr(model, "info", {}).get("dataset")
    return ImageSource(kind, "test") if kind in ("fonts", "digits") else ImageSource("photos")


def source_images(image_source, model, limit: int = _EXPLORER_LIMIT) -> tuple[torch.Tensor, list[str]]:
    """The first ``limit`` readable images of an image source (a spelling or a dataset) at
    ``model``'s input size, (N, C, H, W) in [0, 1], with short names that are unique: a
    folder's files by their path within it (``red/img0.png``: files of the same name in two
    class folders are two images), other datasets' by their names, which must differ
    (ValueError naming those that repeat). A file found unreadable when decoded (an
    ImageNet folder is listed, not checked) is skipped with a warning naming it.
    :func:`labelled_images` gives their labels too."""
    images, names, _ = labelled_images(image_source, model, limit)
    return images, names


def labelled_images(image_source, model, limit: int = _EXPLORER_LIMIT) -> tuple[torch.Tensor, list[str],
                                                                               torch.Tensor]:
    """:func:`source_images` with each image's label as an index of ``model``'s classes
    (-1: unknown: an unlabelled source, or a class the model does not have)."""
    import warnings

    import torch  # here, not at the top: the command line's --help reads this module's spellings

    dataset = open_source(image_source, model)
    short_names = [str(name) for name in getattr(dataset, "short_names", dataset.names)]
    to_model = _label_map(getattr(dataset, "class_names", []), getattr(model, "class_names", []))
    images, names, labels = [], [], []
    for i in range(len(dataset)):
        if len(images) == limit:
            break
        try:
            image, label = dataset[i]
        except data.ImageReadError as error:
            warnings.warn(f"skipped an unreadable image: {error}", stacklevel=2)
            continue
        images.append(image)
        names.append(short_names[i])
        labels.append(to_model.get(int(label), -1))
    if not images:
        raise ValueError(f"{_quoted(image_source)} holds no readable images")
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise ValueError(f"{_quoted(image_source)} names several images alike ({', '.join(map(repr, repeated[:5]))}): "
                         "give each image its own name")
    images = torch.stack(images)
    if tuple(images.shape[1:]) != tuple(model.input_size):
        raise ValueError(f"{_quoted(image_source)} holds images of shape {tuple(images.shape[1:])}, but the model expects "
                         f"{tuple(model.input_size)}")
    return images, names, torch.tensor(labels, dtype=torch.long)


def _label_map(dataset_classes: Sequence[str], model_classes: Sequence[str]) -> dict[int, int]:
    """A dataset's label -> the model's class of the same name (a user's folder is labelled
    with the model's own classes already; digits and glyphs by theirs)."""
    if list(map(str, dataset_classes)) == list(map(str, model_classes)):  # ImageNet's names repeat ("crane")
        return dict(enumerate(range(len(model_classes))))
    model_index = {str(name): i for i, name in enumerate(model_classes)}
    return {i: model_index[str(name)] for i, name in enumerate(dataset_classes) if str(name) in model_index}


def choose_by_class(classes: Sequence[int], correct: Sequence[bool], order: Sequence[int],
                    chosen: Sequence[int | None]) -> list[int]:
    """Indices for the None places of ``chosen`` (the source first, then targets), taken
    in ``order``: images the model classifies as their label (``correct``) of a class
    (``classes``: the label where known, else the model's prediction) no image chosen yet
    has, then misclassified ones of such a class, then any of another class than the
    source's, then any image not chosen. So the default source is one the model gets
    right and the targets are of other classes, distinct where the source has enough."""
    chosen = list(chosen)
    tiers = (lambda i, taken: correct[i] and classes[i] not in taken,
             lambda i, taken: classes[i] not in taken,
             lambda i, taken: chosen[0] is None or classes[i] != classes[chosen[0]],
             lambda i, taken: True)
    for place in range(len(chosen)):
        if chosen[place] is not None:
            continue
        taken = {classes[i] for i in chosen if i is not None}
        free = [i for i in order if i not in chosen] or list(order)  # one image alone: it is its own target
        chosen[place] = next((i for tier in tiers for i in free if tier(i, taken)), None)
    return chosen


def label_warnings(names: Sequence[str], labels, predictions, class_names: Sequence[str]) -> list[str]:
    """What makes a (source, targets...) choice no test of blind spots: a source the model
    misclassifies, a target of the source's class (by labels where known, else by the
    model's prediction)."""
    labels, predictions = [int(x) for x in labels], [int(x) for x in predictions]
    classes = [label if label >= 0 else prediction for label, prediction in zip(labels, predictions)]
    found = []
    if labels[0] >= 0 and predictions[0] != labels[0]:
        found.append(f"the source {names[0]} is labelled {class_names[labels[0]]!r}, but the model classifies it "
                     f"as {class_names[predictions[0]]!r}")
    for name, label, cls in zip(names[1:], labels[1:], classes[1:]):
        if cls == classes[0]:
            how = "is labelled" if label >= 0 else "is classified as"
            found.append(f"the target {name} {how} {class_names[cls]!r}, the source's class: "
                         "LST towards it finds no blind spot")
    return found


def _label_text(name: str, label: int, prediction: int, confidence: float, class_names: Sequence[str]) -> str:
    """An image's name, the model's class and confidence, and its label beside them:
    ``'0/img3.png: 7 (0.370), labelled 0'``."""
    said = "unlabelled" if label < 0 else f"labelled {class_names[label]}"
    return f"{name}: {class_names[prediction]} ({confidence:.3f}), {said}"


def default_names(image_source, all_names: list[str], k: int) -> list[str]:
    """The names of ``k`` default images of ``image_source`` (an :class:`ImageSource` or a
    dataset), given all its names (``all_names``): photos from ``PHOTO_PICKS``, glyphs
    (digits) of the first k letters (digits), else its first k images. What
    :func:`pick_images` takes when no names are given."""
    kind = image_source.kind if isinstance(image_source, ImageSource) else None
    if kind == "photos":
        return list(PHOTO_PICKS[:k])
    if kind in ("fonts", "digits"):  # names begin with their class: 'A13 (cmss10)', '3-1071'
        first = {}
        for name in all_names:
            first.setdefault(name[0], name)
        return [first[letter] for letter in sorted(first)][:k]
    return all_names[:k]


def _short(name: str) -> str:
    """A glyph's name without its font: ``'A13 (cmss10)'`` -> ``'A13'``."""
    return name.split(" (")[0]


def _aliases(all_names: list[str]) -> dict[str, str]:
    """Shorter names that name one image alone: a glyph's without its font (``A13``), a
    file's without its class folder (``img0.png`` for ``red/img0.png``, unless another
    folder has an ``img0.png`` too)."""
    found: dict[str, list[str]] = {}
    for name in all_names:
        for alias in {_short(name), name.rsplit("/", 1)[-1]}:
            found.setdefault(alias, []).append(name)
    return {alias: names[0] for alias, names in found.items() if len(names) == 1}


@dataclass(frozen=True)
class PickedImages:
    """Images picked from an image source with what is known of each: its label among the
    model's classes (-1: unknown), the model's class and confidence."""

    images: torch.Tensor
    names: list[str]
    labels: torch.Tensor
    predictions: torch.Tensor
    confidence: torch.Tensor
    class_names: list[str]

    def text(self) -> str:
        """One line per image: name, the model's class and confidence, its label."""
        return "\n".join(_label_text(*row, self.class_names) for row in zip(
            self.names, self.labels.tolist(), self.predictions.tolist(), self.confidence.tolist()))

    def warnings(self) -> list[str]:
        """A misclassified source, targets of the source's class (:func:`label_warnings`)."""
        return label_warnings(self.names, self.labels, self.predictions, self.class_names)


def pick_labelled(model, names: Sequence[str | None] | None = None, k: int = 3,
                  image_source=None) -> PickedImages:
    """``k`` images of ``image_source`` (an :class:`ImageSource`, its spelling or a dataset; default: the model's,
    :func:`default_source`), the first the source and the others its targets, by name (a
    glyph's also without its font: ``A13``; a file's also without its class folder where
    no other folder has that name). Without names, or for a None among them, the image
    source's images in its default order (photos from ``PHOTO_PICKS``, glyphs of the
    first letters, else the first images) chosen by class (:func:`choose_by_class`): a
    source the model classifies as its label, targets of other classes. Each warning of
    :func:`label_warnings` is issued as a UserWarning."""
    import warnings

    from ..models import predict

    image_source = ImageSource.of(image_source) if isinstance(image_source, (str, Path)) else image_source
    image_source = image_source or default_source(model)
    images, all_names, labels = labelled_images(image_source, model)
    names = [None] * min(k, len(all_names)) if names is None else list(names)
    short = _aliases(all_names)
    names = [None if name is None else name if name in all_names else short.get(name, name) for name in names]
    unknown = [name for name in names if name is not None and name not in all_names]
    if unknown:
        raise ValueError(f"no images {unknown} in {_quoted(image_source)}; it has {all_names[:20]}"
                         + (" ..." if len(all_names) > 20 else ""))
    if len(names) > len(all_names):
        raise ValueError(f"{len(names)} images asked for, but {_quoted(image_source)} has only {all_names}")
    predictions, confidence = predict(model, images)
    classes = [label if label >= 0 else prediction for label, prediction in zip(labels.tolist(), predictions.tolist())]
    correct = [label < 0 or label == prediction for label, prediction in zip(labels.tolist(), predictions.tolist())]
    preferred = default_names(image_source, all_names, len(all_names))
    order = [all_names.index(name) for name in preferred + [name for name in all_names if name not in preferred]]
    chosen = choose_by_class(classes, correct, order, [None if name is None else all_names.index(name)
                                                       for name in names])
    picked = PickedImages(images[chosen], [all_names[i] for i in chosen], labels[chosen], predictions[chosen],
                          confidence[chosen], list(model.class_names))
    for warning in picked.warnings():
        warnings.warn(warning, stacklevel=2)
    return picked


def pick_images(model, names: Sequence[str | None] | None = None, k: int = 3,
                image_source=None) -> tuple[torch.Tensor, list[str]]:
    """The images and names of :func:`pick_labelled`."""
    picked = pick_labelled(model, names, k, image_source)
    return picked.images, picked.names
