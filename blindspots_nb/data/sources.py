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

:func:`open_source` gives a dataset (images in [0, 1] at a model's input size,
``labels`` with -1 for unknown, ``class_names``, ``names``); the reproduction, the
notebooks and the explorer all open their images through it, so a new kind of
source is one entry of :data:`SOURCES`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .. import data
from ..tools.checksums import file_sha256
from ..tools.deprecation import renamed_keywords

if TYPE_CHECKING:
    import torch

FONTS_GLYPHS = 1000  # glyphs in a FONTS image source (balanced over the 10 letters)
EXPLORER_LIMIT = 100  # images the explorer and notebooks take from the start of a large image source
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


def source_name(spelling: str) -> str:
    """The kind of an image source (``'imagenet'`` for ``'imagenet:/data/val'``): a short, path-free name."""
    return parse_source(spelling)[0]


def canonical(spelling: str) -> str:
    """The one way of writing an image source: ``'fonts'`` -> ``'fonts:test'``,
    ``'Imagenet: /x'`` -> ``'imagenet:/x'``."""
    name, argument = parse_source(spelling)
    return name if argument is None else f"{name}:{argument}"


def open_source(image_source, size=224, seed: int = 0, download: bool = True):
    """The dataset an image source's spelling names, preprocessed for ``size`` (an int,
    (C, H, W) or a model). ``download=False`` (a reader such as the run browser) never
    fetches or creates anything: a source not on disk is an error saying what to put where.

    An image source already open (a dataset: anything with ``names``) is returned as it
    is. ``seed`` draws the glyphs of a FONTS image source.
    """
    if not isinstance(image_source, (str, Path)):
        if hasattr(image_source, "names") and hasattr(image_source, "__getitem__"):
            return image_source
        raise TypeError(f"an image source is a spelling ({', '.join(spellings())}) or a dataset, "
                        f"got {type(image_source).__name__}")
    name, argument = parse_source(image_source)
    return SOURCES[name].open(argument, size, seed, download)


def labels_in_words(spelling: str) -> str | None:
    """Where a user's folder's labels come from, for a caption: "labelled by folder" (class
    subfolders named after the model's classes) or the model's own prediction (no class
    subfolders); None for the other kinds, whose labels (or their absence) are their own."""
    name, argument = parse_source(spelling)
    if name != "folder":
        return None
    return ("labelled by folder" if data.has_class_folders(argument)
            else "no class folders: the model's own prediction is the label")


def item_digest(dataset, index: int) -> str | None:
    """The sha256 of the file behind a dataset's image (None for images made in memory:
    bundled photos, glyphs, a CIFAR-10 batch), so that a changed file is noticed."""
    paths = getattr(dataset, "paths", None)
    return None if paths is None else file_sha256(paths[index])


def default_source(model) -> str:
    """Glyphs for models trained on FONTS, digits for those trained on digits, photos for the others."""
    return {"fonts": "fonts:test", "digits": "digits:test"}.get(getattr(model, "info", {}).get("dataset"), "photos")


def source_images(image_source, model, limit: int = EXPLORER_LIMIT) -> tuple[torch.Tensor, list[str]]:
    """The first ``limit`` readable images of an image source (a spelling or a dataset) at
    ``model``'s input size, (N, C, H, W) in [0, 1], with short names that are unique: a
    folder's files by their path within it (``red/img0.png``: files of the same name in two
    class folders are two images), other datasets' by their names, which must differ
    (ValueError naming those that repeat). A file found unreadable when decoded (an
    ImageNet folder is listed, not checked) is skipped with a warning naming it."""
    import warnings

    import torch  # here, not at the top: the command line's --help reads this module's spellings

    dataset = open_source(image_source, model)
    short_names = [str(name) for name in getattr(dataset, "short_names", dataset.names)]
    images, names = [], []
    for i in range(len(dataset)):
        if len(images) == limit:
            break
        try:
            images.append(dataset[i][0])
        except data.ImageReadError as error:
            warnings.warn(f"skipped an unreadable image: {error}", stacklevel=2)
            continue
        names.append(short_names[i])
    if not images:
        raise ValueError(f"{image_source!r} holds no readable images")
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise ValueError(f"{image_source!r} names several images alike ({', '.join(map(repr, repeated[:5]))}): "
                         "give each image its own name")
    images = torch.stack(images)
    if tuple(images.shape[1:]) != tuple(model.input_size):
        raise ValueError(f"{image_source!r} holds images of shape {tuple(images.shape[1:])}, but the model expects "
                         f"{tuple(model.input_size)}")
    return images, names


def default_names(image_source, all_names: list[str], k: int) -> list[str]:
    """The names of a source's ``k`` default images, given all its names (``all_names``):
    photos from ``PHOTO_PICKS``, glyphs (digits) of the first k letters (digits), else its first k images.
    What :func:`pick_images` takes when no names are given."""
    kind = source_name(image_source) if isinstance(image_source, (str, Path)) else None
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


@renamed_keywords(source="image_source")
def pick_images(model, names: Sequence[str | None] | None = None, k: int = 3,
                image_source=None) -> tuple[torch.Tensor, list[str]]:
    """``k`` images of ``image_source`` (a spelling or a dataset; default: the model's,
    :func:`default_source`) by name (a glyph's also without its font: ``A13``; a file's
    also without its class folder where no other folder has that name); without
    names, or for a None among them, its default images not named otherwise: photos from
    ``PHOTO_PICKS``, glyphs of the first letters, else the first images. (``source=``:
    the old, deprecated name of ``image_source=``.)"""
    image_source = image_source or default_source(model)
    images, all_names = source_images(image_source, model)
    names = default_names(image_source, all_names, k) if names is None else list(names)
    short = _aliases(all_names)
    names = [None if name is None else name if name in all_names else short.get(name, name) for name in names]
    unknown = [name for name in names if name is not None and name not in all_names]
    if unknown:
        raise ValueError(f"no images {unknown} in {image_source!r}; it has {all_names[:20]}"
                         + (" ..." if len(all_names) > 20 else ""))
    spare = [name for name in default_names(image_source, all_names, len(all_names)) if name not in names]
    if names.count(None) > len(spare):
        raise ValueError(f"{len(names)} images asked for, but {image_source!r} has only {all_names}")
    names = [spare.pop(0) if name is None else name for name in names]
    return images[[all_names.index(name) for name in names]], names
