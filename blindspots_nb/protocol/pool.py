"""The protocol's pool rule: for each class, the first images of an image source that
every model classifies correctly with confidence above ``min_conf``.

It runs the models (batches of the images a class still needs), so it belongs to the
protocol rather than to the image sources it reads.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import torch

from ..data.images import ImageReadError, warn_skipped
from ..execution import Execution
from ..models import predict

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
