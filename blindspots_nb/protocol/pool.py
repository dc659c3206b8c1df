"""The protocol's pool: the rule that selects it, and the record a run keeps of it.

The rule (:func:`select_pool`): for each class, the first images of an image source that
every model classifies correctly with confidence above ``min_conf``. It runs the models
(batches of the images a class still needs), so it belongs to the protocol rather than to
the image sources it reads. The record (:func:`select`, stored once by :func:`prepare`):
the pool's names, labels, hashes and derangements; :func:`pool_images` reads its images
back, refusing any that changed. The run browser reads pools through this module, never
through :mod:`.run` (which imports the engine and LPIPS).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.images import ImageReadError, open_image, preprocess_for, warn_skipped
from ..data.sources import item_digest, open_source
from ..execution import Execution
from ..models import predict
from .experiment import Experiment
from .layout import RunSettingsMismatch
from .store import RunStore

@dataclass(eq=False)
class Pool:
    """The protocol's pool: images every model classifies correctly with confidence
    above ``min_conf``; at most ``per_class`` per class, first ones in dataset order.

    ``confidences[i, m]``: model m's softmax probability of ``labels[i]``; ``skipped``:
    ``(name, reason)`` of each image that could not be decoded when its turn came.
    """

    images: torch.Tensor
    labels: torch.Tensor
    indices: list[int]
    names: list[str]
    class_names: list[str]
    confidences: torch.Tensor
    models: list[str]
    per_class: int
    min_conf: float
    skipped: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.indices)

    def next_class_pairs(self, count: int) -> tuple[list[int], list[int]]:
        """Pool positions of ``count`` sources, one per class in turn (rank-major: the first
        of every class, then the second, ...), and of their targets: for the source of class
        c and rank r, the image of class c + 1 of the same rank. A fixed, class-balanced
        pairing for measurements of single traversals (not the tables' derangements)."""
        classes = len(self.class_names)
        per_class = -(-count // classes)
        labels = self.labels.tolist()
        by_class = {c: [i for i, label in enumerate(labels) if label == c] for c in range(classes)}
        if any(len(found) < per_class for found in by_class.values()):
            raise ValueError(f"the pool holds too few images per class ({[len(v) for v in by_class.values()]}) "
                             f"for {count} sources of every class in turn")
        order = [by_class[c][rank] for rank in range(per_class) for c in range(classes)][:count]
        targets = [by_class[(labels[i] + 1) % classes][k // classes] for k, i in enumerate(order)]
        return order, targets


def _next_batch(pending: deque, labels, count, per_class: int, batch_size: int) -> list[int]:
    """Pop up to ``batch_size`` indices, in order, of classes not yet full, taking no more
    images of a class than it still needs; the others stay pending, in order."""
    batch, taken, deferred = [], Counter(), []
    while pending and len(batch) < batch_size:
        i = pending.popleft()
        c = labels[i]
        if count[c] >= per_class:
            continue
        if count[c] + taken[c] >= per_class:
            deferred.append(i)
            continue
        taken[c] += 1
        batch.append(i)
    pending.extendleft(reversed(deferred))
    return batch


def select_pool(models, dataset, per_class: int = 1, min_conf: float = 0.6,
                batch_size: int = 64, execution: Execution | None = None) -> Pool:
    """For each class, the first ``per_class`` images of ``dataset`` (in its order) that
    every model in ``models`` (one model or a list) classifies correctly with softmax
    confidence above ``min_conf``, the models run as ``execution`` says (default:
    :class:`~blindspots_nb.execution.Execution`). Images of classes already full are
    never evaluated, so a class-sorted ImageNet folder costs about one forward pass per
    class. An image that cannot be decoded (an
    :class:`~blindspots_nb.data.images.ImageReadError`) is skipped, listed in ``skipped``
    and in one warning: a folder is checked where it is read, not all at once."""
    execution = execution or Execution()
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if not models:
        raise ValueError("select_pool needs at least one model")
    if per_class < 1 or not 0 <= min_conf < 1:
        raise ValueError(f"need per_class >= 1 and 0 <= min_conf < 1, got {per_class}, {min_conf}")
    class_names = list(getattr(dataset, "class_names", []) or models[0].class_names)
    num_classes = len(class_names)
    for m in models:
        if len(m.class_names) != num_classes:
            raise ValueError(f"model {m.info.get('name')} has {len(m.class_names)} classes, "
                             f"the dataset {num_classes}")
    labels = getattr(dataset, "labels", None)
    labels = ([int(v) for v in labels] if labels is not None
              else [dataset[i][1] for i in range(len(dataset))])
    bad = next((i for i, v in enumerate(labels) if not 0 <= v < num_classes), None)
    if bad is not None:
        raise ValueError(f"label {labels[bad]} of dataset item {bad} is unknown or outside the "
                         f"{num_classes} classes; select_pool needs labelled images")
    count = [0] * num_classes
    kept = {}  # dataset index -> (image, confidences)
    names = list(getattr(dataset, "names", []) or map(str, range(len(dataset))))
    skipped = []
    pending = deque(range(len(dataset)))
    while batch := _next_batch(pending, labels, count, per_class, batch_size):
        images = {}
        for i in batch:
            try:
                images[i] = dataset[i][0]
            except ImageReadError as error:
                skipped.append((names[i], error.reason))
        if not images:
            continue
        batch = list(images)
        x = torch.stack(list(images.values()))
        y = torch.tensor([labels[i] for i in batch])
        conf = []
        for m in models:
            if tuple(x.shape[1:]) != tuple(m.input_size):
                raise ValueError(f"dataset images are {tuple(x.shape[1:])} but model "
                                 f"{m.info.get('name')} expects {tuple(m.input_size)}; build the "
                                 "dataset with size=model")
            predicted, confidence = predict(m, x, len(x), execution)
            conf.append(torch.where(predicted == y, confidence, torch.zeros(())))  # correct: the label's
        conf = torch.stack(conf, 1)
        for j in (conf > min_conf).all(1).nonzero()[:, 0].tolist():
            count[int(y[j])] += 1
            kept[batch[j]] = (x[j], conf[j])
    warn_skipped("select_pool", skipped)
    indices = sorted(kept)
    c, h, w = models[0].input_size
    return Pool(images=torch.stack([kept[i][0] for i in indices]) if kept else torch.empty(0, c, h, w),
                labels=torch.tensor([labels[i] for i in indices], dtype=torch.long),
                indices=indices, names=[names[i] for i in indices], class_names=class_names,
                confidences=(torch.stack([kept[i][1] for i in indices]) if kept
                             else torch.empty(0, len(models))),
                models=[m.info.get("name", "model") for m in models],
                per_class=per_class, min_conf=float(min_conf), skipped=skipped)


def next_class_pairs(models, dataset, count: int, min_conf: float = 0.6) -> tuple[Pool, list[int], list[int]]:
    """The pool of just enough images per class for ``count`` sources, and :meth:`Pool.next_class_pairs`."""
    pool = select_pool(list(models), dataset, per_class=-(-count // len(dataset.class_names)), min_conf=min_conf)
    return (pool, *pool.next_class_pairs(count))


# ----------------------------------------------------------------- the run's record of its pool
def derangements(n: int, rounds: int, seed: int) -> torch.Tensor:
    """(rounds, n) permutations with no fixed point, one per round, from ``seed``."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 sources, the pool has {n}")
    generator = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < rounds:
        permutation = torch.randperm(n, generator=generator)
        if not (permutation == torch.arange(n)).any():
            out.append(permutation)
    return torch.stack(out)


def source_batches(n_sources: int, batch_size: int) -> list[range]:
    return [range(start, min(start + batch_size, n_sources)) for start in range(0, n_sources, batch_size)]


def _labelled(dataset, model):
    """The dataset itself, or, when it carries no labels, the same dataset (its files, its
    names) with the model's own predictions as labels."""
    labels = getattr(dataset, "labels", None)
    if labels is None or not bool((torch.as_tensor(labels) < 0).all()):
        return dataset
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return dataclasses.replace(dataset, labels=predict(model, images)[0], class_names=list(model.class_names))


def _pixels_sha256(image: torch.Tensor) -> str:
    """The sha256 of an image made in memory (bundled photos, glyphs, a CIFAR-10 batch) as
    8-bit pixels with its shape: what a file's sha256 is for the images of a folder, and as
    stable across CPUs as an image file (float rounding does not reach 8 bits)."""
    pixels = (image.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    return hashlib.sha256(repr(tuple(pixels.shape)).encode() + pixels.numpy().tobytes()).hexdigest()


def _pool_digests(dataset, indices: list[int]) -> dict:
    """The pool record's image identity: each file's sha256 (``sha256_of`` "files"), or for
    images made in memory the sha256 of their pixels at the size they were selected at
    (``sha256_of`` "pixels", ``pixel_size``)."""
    if getattr(dataset, "paths", None) is not None:
        return {"sha256": [item_digest(dataset, i) for i in indices], "sha256_of": "files"}
    images = [dataset[i][0] for i in indices]
    return {"sha256": [_pixels_sha256(image) for image in images], "sha256_of": "pixels",
            "pixel_size": list(images[0].shape) if images else None}


def _hashed(pool: dict) -> str | None:
    """What a pool's sha256 are of: "files", "pixels", or None (a pool recorded before images
    made in memory and unlabelled folders had hashes: those images are not checked)."""
    if "sha256_of" in pool:
        return pool["sha256_of"]
    return "files" if pool["sha256"] and all(digest is not None for digest in pool["sha256"]) else None


def prepare(experiment: Experiment, store: RunStore, device=None, weights: dict | None = None) -> dict:
    """Select the pool and draw the derangements, once: later calls read the stored pool."""
    stored = store.pool(experiment)
    if stored is not None:
        return stored
    record = select(experiment, device, weights)
    store.save_pool(experiment, record)
    return record


def select(experiment: Experiment, device=None, weights: dict | None = None) -> dict:
    """The pool record of ``experiment`` (its images, labels, hashes, confidences and
    derangements), selected now and written nowhere: :func:`prepare` stores it."""
    from ..models import load_model

    weights = weights or {}
    models = [load_model(name, device=device, weights=weights.get(name)) for name in experiment.models]
    dataset = _labelled(open_source(experiment.image_source, models[0], seed=experiment.seed), models[0])
    pool = select_pool(models, dataset, per_class=experiment.per_class, min_conf=experiment.min_conf,
                       execution=experiment.execution)
    keep = len(pool) if experiment.n_sources is None else min(len(pool), experiment.n_sources)
    if keep < 2:
        raise ValueError(f"only {len(pool)} image(s) of {experiment.image_source} pass the pool rule (correct, "
                         f"confidence > {experiment.min_conf} under {', '.join(experiment.models)}); "
                         "LST's derangements need at least 2")
    record = {
        "image_source": str(experiment.image_source), "indices": pool.indices[:keep], "names": pool.names[:keep],
        **_pool_digests(dataset, pool.indices[:keep]),
        "labels": pool.labels[:keep].tolist(), "class_names": [pool.class_names[i] for i in pool.labels[:keep]],
        "confidence": {m: pool.confidences[:keep, j].tolist() for j, m in enumerate(experiment.models)},
        "passed_rule": len(pool), "min_conf": experiment.min_conf, "per_class": experiment.per_class,
        "targets": derangements(keep, experiment.rounds, experiment.seed).tolist(),
        "skipped": [list(item) for item in [*getattr(dataset, "skipped", []), *pool.skipped]],  # unreadable files
    }
    return record


def stored_pool(store: RunStore, experiment: Experiment) -> dict:
    """The experiment's pool; an error that says what to run when it was never prepared."""
    pool = store.pool(experiment)
    if pool is None:
        raise RuntimeError(f"{store.out_dir} has no pool for {experiment.name} yet: start the run with "
                           f"blindspots-nb reproduce --out-dir {store.out_dir} (it prepares every pool once)")
    return pool


def pool_images(experiment: Experiment, pool: dict, model) -> torch.Tensor:
    """The pool's images at ``model``'s input size, in [0, 1], found by name; refuses
    images that are gone or changed since the pool was selected (a file's sha256, or an
    image made in memory by its pixels at the size it was selected at). Images from files
    are read by their paths, the pool's only: the folder is not listed again."""
    if _hashed(pool) == "files":
        return torch.stack(pool_files(experiment, pool, preprocess_for(model)))
    dataset = open_source(experiment.image_source, model, seed=experiment.seed)
    if _hashed(pool) == "pixels" and list(model.input_size) != pool["pixel_size"]:
        locate_pool(experiment, pool, open_source(experiment.image_source, tuple(pool["pixel_size"]),
                                                  seed=experiment.seed))
    return torch.stack([dataset[i][0] for i in locate_pool(experiment, pool, dataset)])


def check_pool_images(experiment: Experiment, pool: dict) -> list[str]:
    """Refuses (:class:`RunSettingsMismatch`, naming them) the pool's images that changed
    since the pool was selected; returns those that cannot be checked here (a file gone, an
    image source not at hand), for a word to the user. What ``merge`` checks."""
    hashed = _hashed(pool)
    if hashed == "files":
        present = [i for i, name in enumerate(pool["names"]) if Path(name).is_file()]
        pool_files(experiment, {key: [pool[key][i] for i in present] for key in ("names", "sha256")}, lambda image: None)
        return [f"{name} (not at hand here)" for i, name in enumerate(pool["names"]) if i not in set(present)]
    if hashed == "pixels":
        try:
            dataset = open_source(experiment.image_source, tuple(pool["pixel_size"]), seed=experiment.seed,
                                  download=False)
        except (FileNotFoundError, ValueError) as error:
            return [f"{experiment.image_source} (it cannot be opened here: {error})"]
        locate_pool(experiment, pool, dataset)
        return []
    return [f"{experiment.image_source} (its pool was recorded before pools held every image's hash)"]


def pool_files(experiment: Experiment, pool: dict, transform) -> list[torch.Tensor]:
    """The pool's image files (its names are their paths), each read once, checked against
    its sha256 and decoded with ``transform``."""
    images, problems = [], []
    for name, digest in zip(pool["names"], pool["sha256"]):
        try:
            content = Path(name).read_bytes()
        except FileNotFoundError:
            problems.append(f"{name} is gone")
            continue
        if hashlib.sha256(content).hexdigest() != digest:
            problems.append(f"{name} changed (sha256)")
            continue
        with open_image(io.BytesIO(content), name) as image:
            images.append(transform(image))
    _refuse_changed_pool(experiment, problems)
    return images


def locate_pool(experiment: Experiment, pool: dict, dataset) -> list[int]:
    """Where the pool's images are in ``dataset`` now, checked against the pool's names
    and file hashes (a data folder may have gained, lost or changed files)."""
    where = {name: i for i, name in enumerate(dataset.names)}
    indices, problems = [], []
    pixels = _hashed(pool) == "pixels"
    for name, digest in zip(pool["names"], pool["sha256"]):
        index = where.get(name)
        if index is None:
            problems.append(f"{name} is gone")
        elif digest is not None and pixels:
            image = dataset[index][0]
            if list(image.shape) == pool["pixel_size"] and _pixels_sha256(image) != digest:
                problems.append(f"{name} changed (the sha256 of its pixels)")
        elif digest is not None and item_digest(dataset, index) != digest:
            problems.append(f"{name} changed (sha256)")
        indices.append(index)
    _refuse_changed_pool(experiment, problems)
    return indices


def _refuse_changed_pool(experiment: Experiment, problems: list[str]):
    if problems:
        raise RunSettingsMismatch(
            f"the images of {experiment.name} ({experiment.image_source}) are not those its pool was selected from: "
            f"{'; '.join(problems[:6])}{' ...' if len(problems) > 6 else ''}. Restore them, use another output "
            "folder, or --force to start anew")
