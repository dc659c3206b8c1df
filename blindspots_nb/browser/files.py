"""The files of a run folder, read and never written, each damaged one a line.

:class:`RunFiles` reads JSON, CSV and tensor files under a run folder once each (a later
ask gets what was read), and turns a damaged file (not JSON, too deep, too large or not
UTF-8 (:func:`~blindspots_nb.tools.json_files.read_json`), a missing column, a value
that is not a number, a cut or foreign ``.pt``, a FIFO where a file should be) into one
line in :attr:`RunFiles.problems` naming it, instead of an error: the browser of
:mod:`.runs` shows the rest. Tensors are loaded with ``torch.load(weights_only=True)``,
memory-mapped: a hostile ``.pt`` cannot run code, a large one is not read whole.
:class:`PoolImages` reads a pool's images one at a time, when first shown.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from ..protocol import layout
from ..tools.json_files import UnreadableJSON, read_json


class RunFiles:
    """The files under ``run_dir``, read once each; :attr:`problems` names the damaged ones."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.problems: list[str] = []
        self._read: dict = {}  # what was read, by what it is

    def problem(self, path: Path, what: str):
        """Say once that ``path`` (named relative to the run when it lies in it) is ``what``."""
        line = f"{path.relative_to(self.run_dir) if path.is_relative_to(self.run_dir) else path}: {what}"
        if line not in self.problems:
            self.problems.append(line)

    def once(self, key, read):
        """``read()``, the first time ``key`` is asked for; what it gave, after."""
        if key not in self._read:
            self._read[key] = read()
        return self._read[key]

    def read_json(self, path: Path):
        """A JSON file's value; None when it is missing (or damaged: then a problem)."""
        def read():
            try:
                return read_json(path)
            except FileNotFoundError:
                return None
            except UnreadableJSON as error:  # deep, huge, not UTF-8, not JSON, a FIFO
                self.problem(path, f"{error.reason}; left out")
                return None
        return self.once(("json", path), read)

    def read_rows(self, path: Path, columns) -> list[dict] | None:
        """A piece's CSV rows with ``columns`` as numbers; None (and a problem) when damaged. A
        column's old name is read too (:func:`~blindspots_nb.protocol.layout.read_rows`)."""
        def read():
            try:
                rows = layout.read_rows(path)
                return [{**row, **{c: float(row[c]) for c in columns}} for row in rows]
            except (OSError, UnicodeDecodeError, csv.Error) as error:
                self.problem(path, f"cannot be read as a table ({error}); left out")
            except KeyError as error:
                self.problem(path, f"has no column {error}; left out")
            except (TypeError, ValueError) as error:
                self.problem(path, f"holds a value that is not a number ({error}); left out")
            return None
        return self.once(("rows", path), read)

    def read_tensor(self, path: Path, rows: int) -> torch.Tensor | None:
        """A piece's tensor (one row per source of its batch); None (and a problem) when damaged."""
        def read():
            try:
                tensor = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as error:  # torch raises many kinds on a cut or foreign file
                self.problem(path, f"cannot be loaded ({type(error).__name__}: {str(error)[:120]}); left out")
                return None
            if not isinstance(tensor, torch.Tensor) or tensor.ndim < 2 or len(tensor) != rows:
                self.problem(path, f"holds {type(tensor).__name__} {tuple(getattr(tensor, 'shape', ()))}, not "
                                   f"{rows} rows of the batch; left out")
                return None
            return tensor
        return self.once(("tensor", path), read)

    def is_finished(self, stem: Path, names: tuple[str, ...] = layout.PIECE_SUFFIXES) -> bool:
        """Whether a piece is finished: its manifest is there, names its files (``stem`` + each
        of ``names``) and they have the sizes it names."""
        def check():
            manifest_path = layout.manifest_path(stem)
            manifest = self.read_json(manifest_path)
            if manifest is None:
                return False
            try:
                sizes = {name: entry["size"] for name, entry in
                         layout.manifest_entries(manifest, [stem.name + suffix for suffix in names]).items()}
            except ValueError:
                self.problem(manifest_path, "is not its piece's manifest; the piece is left out")
                return False
            changed = [n for n, size in sizes.items() if not (stem.parent / n).is_file()
                       or (stem.parent / n).stat().st_size != size]
            for name in changed:
                self.problem(stem.parent / name, "is missing or not the size its manifest names; its piece is "
                                                 "left out")
            return not changed
        return self.once(("piece", stem), check)


class PoolImages:
    """A pool's images by pool index, each read by ``read(index)`` when first asked for (a run's
    pool may hold a thousand ImageNet photos; a browser shows a few); None for an image that
    cannot be read (gone, changed since the run, not decodable), which ``unreadable(index, error)``
    is told of."""

    def __init__(self, read, count: int, unreadable):
        self._read_one, self._count, self._unreadable, self._read = read, count, unreadable, {}

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> torch.Tensor | None:
        if index not in self._read:
            try:
                self._read[index] = self._read_one(index)
            except (OSError, ValueError, RuntimeError) as error:  # gone, changed (sha256), not an image
                self._unreadable(index, error)
                self._read[index] = None
        return self._read[index]
