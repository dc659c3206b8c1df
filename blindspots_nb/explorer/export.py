"""What the explorer's Export writes: the current points towards targets A and B (PNG), the
whole traversal (.pt), the live triangle's grid (CSV) and the record (JSON), each file
whole or not at all (:mod:`blindspots_nb.tools.atomic`)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from ..lst import Traversal
from ..plots import image_to_png
from ..tools import atomic, provenance
from .triangle import Triangle, triangle_csv, triangle_record


def export_folder(out_dir) -> Path:
    """``out_dir`` as a folder to write into, or ValueError naming what is wrong with it."""
    if isinstance(out_dir, str) and not out_dir.strip():
        raise ValueError("no export folder given (an empty name would mean the working folder): name a folder")
    return atomic.check_folder(out_dir, "the export folder")


def write_export(out_dir: Path, record: dict, identity: dict, traversal: Traversal,
                 triangle: Triangle | None) -> dict[str, Path]:
    """Write the files of one point of ``traversal`` (a batch of the pairs towards A and B) to
    ``out_dir``, the record last, with the names of the files and the triangle's numbers;
    returns the paths. A name holds the model, source, targets and iteration, then 10 hex
    digits of the sha256 of ``identity`` (what makes the point what it is)."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    stem = "_".join((_file_stem(provenance.display_name(record["model"]), 32), _file_stem(record["source"], 40), "to",
                     _file_stem(record["target"], 40), "and", _file_stem(record["target_b"], 40),
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
