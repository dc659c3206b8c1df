"""What the explorer's Export writes: the current points towards targets A and B (PNG), the
whole traversal (.pt), the live triangle's grid (CSV) and the record (JSON), each file
whole or not at all (:mod:`blindspots_nb.tools.atomic`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

from ..execution import Execution
from ..lst import Traversal
from ..plots import image_to_png
from ..tools import atomic, provenance
from ..tools.tensors import module_device, tensors_sha256, weights_sha256
from .triangle import Triangle, triangle_csv, triangle_record


def export_folder(out_dir) -> Path:
    """``out_dir`` as a folder to write into, or ValueError naming what is wrong with it."""
    if isinstance(out_dir, str) and not out_dir.strip():
        raise ValueError("no export folder given (an empty name would mean the working folder): name a folder")
    return atomic.check_folder(out_dir, "the export folder")


def export_identity(model, traversal: Traversal, image_source: str, names: tuple[str, str, str], divisions: int,
                    execution: Execution) -> dict:
    """What makes the current points of ``traversal`` what they are: the model's name and
    weights (the sha256 of its parameters and buffers as loaded), the image source, the
    names of the source and targets A and B and their pixels, the hyperparameters, the
    execution options, the device, the iteration and the triangle's ``divisions``."""
    return {"model": provenance.model_info(model).get("name"), "weights": weights_sha256(model),
            "image_source": image_source, **dict(zip(("source", "target", "target_b"), names)),
            "divisions": divisions, "pixels": tensors_sha256({"sources": traversal.sources,
                                                              "targets": traversal.targets}),
            "config": dataclasses.asdict(traversal.config), "execution": execution.to_dict(),
            "device": str(module_device(model)), "iteration": traversal.iteration}


def write_export(out_dir: Path, record: dict, identity: dict, traversal: Traversal,
                 triangle: Triangle | None) -> dict[str, Path]:
    """Write the files of one point of ``traversal`` (a batch of the pairs towards A and B) to
    ``out_dir``: the current points (PNG), the traversal (.pt), the triangle's grid (CSV:
    weights, 2-D coordinates and confidence of each point) and, last, the record (JSON)
    with the names of the files and the triangle's statistics and shape; returns the paths.

    A name holds the model, source, targets (each shortened to a bounded length) and the
    iteration, then 10 hex digits of the sha256 of ``identity`` (:func:`export_identity`),
    so exports of other models, weights, images, hyperparameters, execution options or
    iterations never share a name. Each file is written whole or not at all; exporting the
    same point again writes the same content over its files (only the record's ``created``
    changes)."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    targets = record["targets"]
    stem = "_".join((_file_stem(provenance.display_name(record["model"]), 32), _file_stem(record["source_name"], 40),
                     "to",
                     _file_stem(targets["A"]["target"], 40), "and", _file_stem(targets["B"]["target"], 40),
                     f"it{record['iteration']}", digest[:10]))
    paths = {"image": out_dir / f"{stem}.png", "image_b": out_dir / f"{stem}_b.png",
             "traversal": out_dir / f"{stem}.pt"}
    atomic.write_bytes(paths["image"], image_to_png(traversal.images[0]))
    atomic.write_bytes(paths["image_b"], image_to_png(traversal.images[1]))
    atomic.write_atomically(paths["traversal"], traversal.save)
    record = {**record, "triangle": None if triangle is None else triangle_record(triangle)}
    if triangle is not None:
        paths["triangle"] = atomic.write_text(out_dir / f"{stem}_triangle.csv", triangle_csv(triangle))
    paths["record"] = out_dir / f"{stem}.json"
    atomic.write_json(paths["record"], {**record, "files": {key: path.name for key, path in paths.items()}})
    return paths


def _file_stem(text: str, limit: int) -> str:
    """A file name part from free text: letters, digits, '-', '_' and '.' only, at most ``limit`` of them."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-")[:limit]
