"""The run store: every path and every write under a reproduction's output folder.

Nothing else in the package builds a path under the output folder or writes there
(a test scans the code for it), which is why this module is longer than the others: the
layout, the checks of everything read back from the folder and every write stay in one
place. The layout::

    settings.json                       the experiments of the run (checked on every rerun)
    <experiment>/pool.json              the pool and its derangements
    <experiment>/<model>/blind_spots/b0003_r1.{pt,csv}   a source batch's blind spots in one round
    <experiment>/<model>/triangles/b0003.{csv,pt}        its Table-2 rows and mean triangle grids
    <experiment>/<model>/record_shard0of1.json           what produced a shard's work
    <experiment>/<model>/per_blindspot.csv, per_source.csv
    notebooks/<experiment>_<model>_shard0of1.ipynb       the executed notebooks

``<model>`` is a registry name, or for a factory spec (``file.py:build``, which holds '/'
and ':') its function's name and a short hash of the spec (``build-1a2b3c4d``:
:func:`~blindspots_nb.models.spec.model_folder`).
    table1.{md,tex,csv}, table2.{md,tex,csv}, summaries.json, run.json
    .lock                                                who holds the folder now

A folder is a run folder when its ``settings.json`` says so; the store writes only
these names, and ``force`` removes only these names (a folder holding anything else is
refused, naming what is there). Every name read from the folder (an experiment's or a
model's folder, a manifest's files) is checked before it is used: nothing outside the
folder is ever written or removed.

Every file is written whole or not at all (a temporary file of its own, then a
rename, :mod:`blindspots_nb.tools.atomic`). A finished piece of work (a pool, a batch's
blind spots of one round, a batch's triangles) has a manifest, ``*.manifest.json``, with
the size, sha256 and modification time of each of its files, written last; the sha256 is
taken from the bytes on their way to the file, never by reading it back. A piece is
trusted only when its files match its manifest (a file of the recorded size and
modification time is not hashed again: writing a file changes its modification time),
and recomputed (with a word to the user) when they do not; the manifest also
names the settings the piece was made with, and a piece of other settings (a shard of
another run copied in) is refused. One run at a time holds the folder
(:meth:`RunStore.hold`); a lock left by a killed run is recognised and taken over.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import fcntl
import hashlib
import io
import json
import math
import os
import re
import socket
import stat
import sys
import warnings
from pathlib import Path

import torch

from ..tools import atomic
from ..tools.checksums import file_sha256
from ..tools.json_files import UnreadableJSON, read_json
from ..tools.deprecation import renamed_keys
from .experiment import Experiment
from ..models.spec import model_folder

SETTINGS = "settings.json"
LOCK = ".lock"
RUN_FORMAT = "blindspots_nb run"
REPORTS = "notebooks"

# The names a run writes, by kind of folder: a file pattern and the kinds of its subfolders
# ("*": any other folder name; experiments and models are named by the run's settings).
_LAYOUT = {
    "root": (r"(settings|run|summaries)\.json|table[12]\.(md|tex|csv)|\.lock", {REPORTS: "reports", "*": "experiment"}),
    "reports": (r".+_shard\d+of\d+\.ipynb", {}),
    "experiment": (r"pool\.json(\.manifest\.json)?", {"*": "model"}),
    "model": (r"record_shard\d+of\d+\.json|per_blindspot\.csv|per_source\.csv",
              {"blind_spots": "blind_spots", "triangles": "triangles"}),
    "blind_spots": (r"b\d{4,}_r\d+\.(pt|csv|manifest\.json)", {}),
    "triangles": (r"b\d{4,}\.(pt|csv|manifest\.json)", {}),
}


class RunSettingsMismatch(RuntimeError):
    """The output folder holds a run made with other settings, weights or images."""


class RunFolderBusy(RuntimeError):
    """Another run holds the output folder."""


class RunFolderError(ValueError):
    """The output folder cannot be used as it is (not a folder, not a run's, damaged, not writable)."""


def _identity(settings: dict) -> dict:
    """What makes two runs the same: the experiments, and each model by its weights' sha256
    (the same file at another path is the same weights) and by what its wrapper holds
    (``model``: input size, mean, std, crop, class names; absent from runs recorded before)."""
    return {"experiments": settings["experiments"],
            "weights": {name: w["sha256"] for name, w in settings["weights"].items()},
            "models": {name: w["model"] for name, w in settings["weights"].items() if "model" in w}}


def older_run_warning(models: list[str]) -> str:
    """What a run recorded before model identities means for ``models``."""
    return (f"this run was recorded before runs held a model's input size, mean, std, crop and class names: "
            f"{', '.join(models)} are checked by their weights' sha256 alone; if one of those changed since, "
            "start anew (--force, or another output folder)")


def _component(name: str, what: str) -> str:
    """``name`` as one folder name under the output folder: never a path, never hidden."""
    if not isinstance(name, str) or not name or name in (".", "..") or name.startswith(".") \
            or any(c in name for c in "/\\\0"):
        raise RunFolderError(f"{what} {name!r} cannot name a folder of a run (it must be one plain folder name, "
                             "without '/', not starting with '.')")
    return name


def _survey(folder: Path, kind: str = "root", relative: str = "") -> tuple[list[Path], list[Path], list[str]]:
    """The files and folders under ``folder`` that a run writes (its own temporary files
    included), and the others, as relative names. Links are never followed: a run makes none."""
    pattern, subfolders = _LAYOUT[kind]
    files, folders, foreign = [], [], []
    for entry in sorted(folder.iterdir()):
        name = relative + entry.name
        if entry.is_symlink():
            foreign.append(name)
        elif entry.is_dir():
            sub = subfolders.get(entry.name, subfolders.get("*"))
            if sub is None or entry.name.startswith("."):
                foreign.append(name + "/")
                continue
            more = _survey(entry, sub, name + "/")
            if entry.name not in subfolders and not more[0]:  # a folder of any name is a run's if it holds its files
                foreign.append(name + "/")
                continue
            files += more[0]
            folders += more[1] + [entry]
            foreign += more[2]
        elif re.fullmatch(pattern, entry.name) or re.fullmatch(pattern, atomic.temporary_of(entry) or ""):
            files.append(entry)
        else:
            foreign.append(name)
    return files, folders, foreign


def _listing(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def differences(old, new, prefix="") -> list[str]:
    """Where two JSON-like values differ, as 'key.path: old there, new now' (long values cut)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new))
                for d in differences(old.get(key), new.get(key), f"{prefix}{key}.")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{prefix}{i}.")]
    shown = lambda value: repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."  # noqa: E731
    return [] if old == new else [f"{prefix.rstrip('.')}: {shown(old)} there, {shown(new)} now"]


class _Hashing:
    """A binary file that hashes the bytes written through it, and counts them."""

    def __init__(self, handle):
        self.handle, self.sha256, self.size = handle, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()


def csv_text(rows: list[dict]) -> str:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


class RunStore:
    """One output folder of ``blindspots-nb reproduce``."""

    def __init__(self, out_dir):
        out_dir = Path(out_dir)
        try:
            str(out_dir).encode("utf-8")
        except UnicodeEncodeError:
            raise RunFolderError(f"the output folder {os.fsdecode(bytes(out_dir))!r} is not valid UTF-8: name it in "
                                 "UTF-8 (its path is passed to the notebooks as text)") from None
        self.out_dir = out_dir
        # manifest -> its files' (size, mtime, inode) when they last matched it: a piece
        # unchanged since then is not read again (a run checks each piece several times)
        self._matched: dict[Path, tuple] = {}
        self._written: dict[Path, dict] = {}  # file -> its size and sha256, as written, until sealed

    def __repr__(self) -> str:
        return f"RunStore({str(self.out_dir)!r})"

    # -- writing --------------------------------------------------------------------
    def _inside(self, path: Path) -> Path:
        """``path``, once its folder is known to lie inside the output folder (a link in the
        folder must not lead a write or a removal elsewhere)."""
        folder = path.parent.resolve()
        if not folder.is_relative_to(self.out_dir.resolve()):
            raise RunFolderError(f"{path.parent} leads outside the output folder {self.out_dir} (to {folder}); "
                                 "a run writes only inside its folder")
        return path

    def _write_atomically(self, path: Path, write) -> Path:
        """``write(temporary_path)``, then rename it to ``path``: readers see the old file or
        the new one, never a part; every writer has a temporary file of its own."""
        return atomic.write_atomically(self._inside(path), write)

    def _write_hashed(self, path: Path, dump) -> Path:
        """``dump(file)`` into ``path``, written whole, its size and sha256 taken from the
        bytes on their way to the file (kept for :meth:`_seal`)."""
        def write(temporary: Path):
            with open(temporary, "wb") as handle:
                hashed = _Hashing(handle)
                dump(hashed)
            self._written[path] = {"size": hashed.size, "sha256": hashed.sha256.hexdigest()}
        return self._write_atomically(path, write)

    def _write_text(self, path: Path, text: str) -> Path:
        return self._write_hashed(path, lambda handle: handle.write(text.encode("utf-8")))

    def _write_json(self, path: Path, value, indent: int = 2) -> Path:
        return self._write_text(path, json.dumps(value, indent=indent))

    def _write_rows(self, path: Path, rows: list[dict]) -> Path:
        return self._write_text(path, csv_text(rows))

    def _write_tensor(self, path: Path, tensor: torch.Tensor) -> Path:
        return self._write_hashed(path, lambda handle: torch.save(tensor.detach().cpu().contiguous(), handle))

    def _read_json(self, path: Path):
        """A JSON file of the run; a clear error naming it when it is not JSON."""
        try:
            return read_json(path)
        except UnreadableJSON as error:  # deep, huge, not UTF-8, not JSON, not a file: one line naming it
            raise RunFolderError(f"{error}: it was changed or cut outside this tool; "
                                 "restore it, or start the run anew in another folder (or with --force)") from None

    # -- finished pieces ------------------------------------------------------------
    @staticmethod
    def _manifest_path(stem: Path) -> Path:
        return stem.with_name(stem.name + ".manifest.json")

    @staticmethod
    def _signature(paths: list[Path]) -> tuple | None:
        """What changes whenever a file is written or replaced; None if one is missing."""
        try:
            return tuple((stat.st_size, stat.st_mtime_ns, stat.st_ino) for stat in (p.stat() for p in paths))
        except FileNotFoundError:
            return None

    def settings_digest(self, experiment: Experiment) -> str:
        """What a piece of ``experiment`` was made with: the experiment and its models'
        weights (sha256), as one hash written into each of its pieces' manifests."""
        weights = self.weights()
        identity = {"experiment": experiment.to_dict(),
                    "weights": {m: weights[m]["sha256"] if m in weights else None for m in experiment.models}}
        models = {m: weights[m]["model"] for m in experiment.models if "model" in weights.get(m, {})}
        if models:  # runs recorded before model identities keep the digests of their pieces
            identity["models"] = models
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def _seal(self, stem: Path, files: list[Path], experiment: Experiment):
        """Mark a piece finished: the size, sha256 (as written) and modification time of each
        of its files and the settings it was made with, written last."""
        manifest = self._write_json(self._manifest_path(stem), {
            "files": {path.name: {**self._written.pop(path), "mtime_ns": path.stat().st_mtime_ns} for path in files},
            "settings": self.settings_digest(experiment)})
        self._written.pop(manifest)  # a manifest is not a piece's file: its hash is not kept
        self._matched[manifest] = self._signature([manifest, *files])

    @staticmethod
    def _matches(path: Path, expected: dict) -> bool:
        """Whether a piece's file is the one its manifest describes: a regular file of its
        size and, unless its modification time is still the recorded one, of its sha256
        (manifests written before they recorded the time: always the sha256)."""
        try:
            status = path.stat()
        except FileNotFoundError:
            return False
        return stat.S_ISREG(status.st_mode) and status.st_size == expected["size"] and (
            status.st_mtime_ns == expected.get("mtime_ns") or file_sha256(path) == expected["sha256"])

    def _piece(self, stem: Path, names: list[str], experiment: Experiment) -> str:
        """'finished' when the piece's files are as its manifest says, 'to do' when there is
        no manifest or the piece fails its check (its manifest is then removed, so that the
        piece is recomputed, and the user is told), 'other settings' when it was made with
        other settings than ``experiment``'s. Only the piece's own names are ever read."""
        manifest = self._manifest_path(stem)
        if not manifest.exists():
            return "to do"
        files = [stem.parent / name for name in names]
        signature = self._signature([manifest, *files])
        if signature is not None and self._matched.get(manifest) == signature:
            return "finished"
        try:
            record = read_json(manifest)
            expected = record["files"]
            if sorted(expected) != sorted(names):  # a manifest names its piece's files, no others
                raise ValueError
            if record["settings"] != self.settings_digest(experiment):
                return "other settings"
            problems = [f.name for f in files if not self._matches(f, expected[f.name])]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            problems = [manifest.name]
        if not problems:
            self._matched[manifest] = signature
            return "finished"
        self._matched.pop(manifest, None)
        warnings.warn(f"{stem.relative_to(self.out_dir)}: {', '.join(problems)} no longer match the piece's manifest "
                      "(size or sha256 changed); recomputing that piece", stacklevel=3)
        manifest.unlink(missing_ok=True)
        return "to do"

    def _finished(self, stem: Path, names: list[str], experiment: Experiment) -> bool:
        state = self._piece(stem, names, experiment)
        if state == "other settings":
            raise self._other_settings([stem])
        return state == "finished"

    def _other_settings(self, stems: list[Path]) -> RunSettingsMismatch:
        return RunSettingsMismatch(
            f"{self.out_dir}: {_listing([str(s.relative_to(self.out_dir)) for s in stems])} were made with other "
            f"settings than the run's {SETTINGS} (a shard of another run copied in?); they are not mixed into this "
            "run. Remove them, or put each run in its own folder")

    # -- who holds the folder ---------------------------------------------------------
    def check_folder(self, force: bool = False) -> None:
        """Refuse a folder a run must not use: a file or a dangling link instead of a folder,
        or a folder that holds something other than a run's files and is not a run folder
        (or, with ``force``, whose other files would have to go)."""
        atomic.check_folder(self.out_dir, "the output folder")
        if not self.out_dir.is_dir():
            return
        _, _, foreign = _survey(self.out_dir)
        if foreign and (force or not (self.out_dir / SETTINGS).is_file()):
            raise RunFolderError(
                f"{self.out_dir} holds files that are not a run's ({_listing(foreign)}): "
                + ("--force removes only what a run wrote, so it leaves this folder alone; move those files, "
                   "or use another output folder" if force else
                   "a run starts only in a new or empty folder or in a run folder; use another output folder"))

    @contextlib.contextmanager
    def hold(self):
        """Hold the folder for one run: a second run is refused with a message naming the
        holder. The OS releases the lock when its process ends, so a lock left by a killed
        run is recognised (its file still names it) and taken over."""
        self.check_folder()
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.out_dir / LOCK, "a+")
        except OSError as error:
            raise RunFolderError(f"cannot use the output folder {self.out_dir}: {error.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process that has not said who it is"
            handle.close()
            raise RunFolderBusy(f"{self.out_dir} is in use by another run ({holder}); wait until it ends, or "
                                "use another output folder") from None
        try:
            handle.seek(0)
            stale = handle.read().strip()
            if stale:
                print(f"{self.out_dir}: taking over the lock of a run that ended without releasing it ({stale})")
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                         f"{datetime.datetime.now().isoformat(timespec='seconds')}: {' '.join(sys.argv)}")
            handle.flush()
            files, _, _ = _survey(self.out_dir)
            for temporary in files:  # left by a killed run: this store's own temporary files only
                if atomic.temporary_of(temporary) is not None:
                    temporary.unlink(missing_ok=True)
            yield self
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    @staticmethod
    def _read_rows(path: Path) -> list[dict]:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    # -- the settings -----------------------------------------------------------------
    def begin(self, experiments: list[Experiment], force: bool = False, weights: dict | None = None):
        """Start or resume a run of ``experiments`` with ``weights`` (model -> identity of
        its weights file): the folder's settings must be these, else
        :class:`RunSettingsMismatch` lists the differences. Settings that produced no
        result yet (a start that failed) are simply replaced. ``force`` first removes what
        a run wrote in the folder, and only that (see :meth:`check_folder`)."""
        names = [e.name for e in experiments]
        if len(set(names)) != len(names):
            raise ValueError(f"two experiments of a run share a name ({names}); give each its own name")
        for experiment in experiments:
            self.experiment_dir(experiment)  # every name a folder name
            for model in experiment.models:
                self.model_dir(experiment, model)
        settings = {"format": RUN_FORMAT, "experiments": [e.to_dict() for e in experiments],
                    "weights": weights or {}}
        path = self.out_dir / SETTINGS
        self.check_folder(force)
        if force:
            self._remove_run()
        stored = self._settings() if path.exists() else None
        if stored is not None and self._has_results():
            older = [m for m, w in stored["weights"].items()
                     if "model" not in w and "model" in settings["weights"].get(m, {})]
            if older:  # a run recorded before model identities stays as it was recorded, with a word
                warnings.warn(older_run_warning(older), stacklevel=2)
                settings["weights"] = {m: {k: v for k, v in w.items() if k != "model" or m not in older}
                                       for m, w in settings["weights"].items()}
            changed = differences(_identity(stored), _identity(settings))
            if changed:
                raise RunSettingsMismatch(
                    f"{self.out_dir} holds a run with other settings ({'; '.join(changed[:6])}"
                    f"{' ...' if len(changed) > 6 else ''}). Use another output folder, or --force to replace "
                    "that run.")
        self._write_json(path, settings)

    def _remove_run(self):
        """Remove every file and folder a run wrote here (the lock stays: it is held)."""
        files, folders, _ = _survey(self.out_dir)
        for path in files:
            if path.name != LOCK or path.parent != self.out_dir:
                path.unlink(missing_ok=True)
        for folder in folders:  # deepest first, as _survey lists them
            folder.rmdir()
        self._matched.clear()

    def _has_results(self) -> bool:
        """Whether any piece of work was finished in this folder."""
        return any(self.out_dir.glob("*/pool.json"))

    def _settings(self) -> dict:
        """The run's settings as this version writes them (fields added since take their
        defaults); a clear error naming the file and the problem when they are damaged."""
        path = self.out_dir / SETTINGS
        if not path.is_file():
            raise FileNotFoundError(f"{self.out_dir} holds no run (no {SETTINGS}): start one with "
                                    f"blindspots-nb reproduce --out-dir {self.out_dir}")
        value = self._read_json(path)
        problem = None
        if not isinstance(value, dict):
            problem = f"it holds a JSON {type(value).__name__}, not the run's settings"
        elif not {"experiments", "weights"} <= set(value) or set(value) - {"format", "experiments", "weights"}:
            problem = (f"its fields are {sorted(value)}; a run's settings have experiments, weights and "
                       "format")
        elif not isinstance(value["experiments"], list) or not isinstance(value["weights"], dict) or not all(
                isinstance(w, dict) and isinstance(w.get("sha256"), str) for w in value["weights"].values()):
            problem = "experiments must be a list and weights a mapping of model to file identity"
        else:
            try:
                experiments = [Experiment.from_dict(e) for e in value["experiments"]]
                for experiment in experiments:
                    self.experiment_dir(experiment)
                    for model in experiment.models:
                        self.model_dir(experiment, model)
            except (TypeError, KeyError, ValueError, AttributeError) as error:
                problem = f"an experiment cannot be read ({error})"
        if problem:
            raise RunFolderError(f"{path} is damaged: {problem}. Restore it, or start the run anew in another "
                                 "folder (or with --force)")
        return {**value, "experiments": [e.to_dict() for e in experiments]}

    def holds_run(self) -> bool:
        """Whether the folder holds a run (its settings), to be resumed."""
        return (self.out_dir / SETTINGS).is_file()

    def weights(self) -> dict:
        """The identity of each model's weights file, as the run's settings hold it."""
        return self._settings()["weights"]

    def experiments(self) -> list[Experiment]:
        """The experiments of the run this folder holds."""
        return [Experiment.from_dict(e) for e in self._settings()["experiments"]]

    def experiment(self, name: str) -> Experiment:
        """The stored experiment called ``name``."""
        experiments = self.experiments()
        for experiment in experiments:
            if experiment.name == name:
                return experiment
        raise ValueError(f"{self.out_dir} has no experiment {name!r}; it has {[e.name for e in experiments]}")

    # -- the pool ---------------------------------------------------------------------
    # Where each file of a run lives (naming only: nothing is read or written; a name from the
    # settings that is not one plain folder name is a RunFolderError). The run browser reads by them too.
    def experiment_dir(self, experiment: Experiment) -> Path:
        return self.out_dir / _component(experiment.name, "the experiment name")

    def pool_path(self, experiment: Experiment) -> Path:
        return self.experiment_dir(experiment) / "pool.json"

    def pool(self, experiment: Experiment) -> dict | None:
        """The experiment's pool record, None before it was selected (or if it failed its
        check). A ``source`` key, written before it was ``image_source``, is read too."""
        path = self.pool_path(experiment)
        if not self._finished(path, [path.name], experiment):
            return None
        return renamed_keys(self._read_json(path), str(path), source="image_source")

    def save_pool(self, experiment: Experiment, record: dict):
        path = self._write_json(self.pool_path(experiment), record, indent=1)
        self._seal(path, [path], experiment)

    # -- one model's pieces -------------------------------------------------------------
    def model_dir(self, experiment: Experiment, model: str) -> Path:
        return self.experiment_dir(experiment) / _component(model_folder(model), "the model name")

    def blind_spots_stem(self, experiment, model, batch: int, round_: int) -> Path:
        return self.model_dir(experiment, model) / "blind_spots" / f"b{batch:04d}_r{round_}"

    def triangles_stem(self, experiment, model, batch: int) -> Path:
        return self.model_dir(experiment, model) / "triangles" / f"b{batch:04d}"

    @staticmethod
    def _piece_files(stem: Path) -> list[Path]:
        """A batch's tensor and its rows: the files of a blind-spot or a triangle piece."""
        return [stem.with_suffix(".pt"), stem.with_suffix(".csv")]

    def _piece_finished(self, stem: Path, experiment) -> bool:
        return self._finished(stem, [f.name for f in self._piece_files(stem)], experiment)

    def has_blind_spots(self, experiment, model, batch: int, round_: int) -> bool:
        return self._piece_finished(self.blind_spots_stem(experiment, model, batch, round_), experiment)

    def save_blind_spots(self, experiment, model, batch: int, round_: int, images: torch.Tensor, rows: list[dict]):
        """A batch's blind spots of one round and their rows, then its manifest."""
        tensor, table = self._piece_files(self.blind_spots_stem(experiment, model, batch, round_))
        self._seal(tensor.with_suffix(""), [self._write_tensor(tensor, images), self._write_rows(table, rows)],
                   experiment)

    def blind_spots(self, experiment, model, batch: int, round_: int) -> torch.Tensor:
        path = self.blind_spots_stem(experiment, model, batch, round_).with_suffix(".pt")
        return torch.load(path, map_location="cpu", weights_only=True)

    def has_triangles(self, experiment, model, batch: int) -> bool:
        return self._piece_finished(self.triangles_stem(experiment, model, batch), experiment)

    def save_triangles(self, experiment, model, batch: int, rows: list[dict], mean_grid: torch.Tensor):
        """A batch's Table-2 rows and each source's confidence at the grid points averaged
        over its pairs, (sources, points), then its manifest."""
        tensor, table = self._piece_files(self.triangles_stem(experiment, model, batch))
        self._seal(tensor.with_suffix(""), [self._write_tensor(tensor, mean_grid), self._write_rows(table, rows)],
                   experiment)

    def _batches(self, experiment) -> range:
        return range(math.ceil(len(self.pool(experiment)["labels"]) / experiment.batch_size))

    def mean_triangle_grid(self, experiment, model) -> torch.Tensor:
        """Every source's pair-averaged grid confidences, (sources, points), in source order."""
        return torch.cat([torch.load(self.triangles_stem(experiment, model, b).with_suffix(".pt"), map_location="cpu",
                                     weights_only=True) for b in self._batches(experiment)])

    def save_record(self, experiment, model, shard: tuple[int, int], record: dict):
        self._write_json(self.model_dir(experiment, model) / f"record_shard{shard[0]}of{shard[1]}.json", record)

    def records(self, experiment, models=None) -> dict[str, dict]:
        """The shard records of every model of the experiment (or of ``models``), by
        '<model folder>/record_shardIofN'."""
        return {f"{model_folder(model)}/{path.stem}": self._read_json(path) for model in models or experiment.models
                for path in sorted(self.model_dir(experiment, model).glob("record_shard*.json"))}

    def model_finished(self, experiment, model) -> bool:
        """Whether every source batch of the pool has all its blind spots and its triangles;
        refuses pieces made with other settings than the run's, naming every one."""
        if self.pool(experiment) is None:
            return False
        stems = [self.blind_spots_stem(experiment, model, b, r) for b in self._batches(experiment)
                 for r in range(experiment.rounds)] + [self.triangles_stem(experiment, model, b)
                                                        for b in self._batches(experiment)]
        states = {stem: self._piece(stem, [f.name for f in self._piece_files(stem)], experiment) for stem in stems}
        other = [stem for stem, state in states.items() if state == "other settings"]
        if other:
            raise self._other_settings(other)
        return all(state == "finished" for state in states.values())

    def blind_spot_rows(self, experiment, model) -> list[dict]:
        """Every blind spot's row (``p0``, written before it was ``initial_confidence``, is read too)."""
        return [renamed_keys(row, f"blind-spot rows of {model} on {experiment.name}", p0="initial_confidence")
                for b in self._batches(experiment) for r in range(experiment.rounds)
                for row in self._read_rows(self.blind_spots_stem(experiment, model, b, r).with_suffix(".csv"))]

    def source_rows(self, experiment, model) -> list[dict]:
        return [row for b in self._batches(experiment)
                for row in self._read_rows(self.triangles_stem(experiment, model, b).with_suffix(".csv"))]

    def save_model_rows(self, experiment, model, blind_spots: list[dict], sources: list[dict]):
        folder = self.model_dir(experiment, model)
        self._write_rows(folder / "per_blindspot.csv", blind_spots)
        self._write_rows(folder / "per_source.csv", sources)

    # -- the tables and the run record ----------------------------------------------------
    def save_tables(self, texts: dict[str, str], summaries: dict) -> dict[str, Path]:
        """Write the tables (file name -> text) and the summaries behind them."""
        written = {name: self._write_text(self.out_dir / name, text) for name, text in texts.items()}
        self._write_json(self.out_dir / "summaries.json", summaries)
        return written

    def read_text(self, name: str) -> str:
        return (self.out_dir / name).read_text(encoding="utf-8")

    def summaries(self) -> dict:
        """Each model's table numbers, as the finished run's tables were made from them."""
        path = self.out_dir / "summaries.json"
        if not path.is_file():
            raise FileNotFoundError(f"{self.out_dir} holds no finished tables ({path.name}): finish the run first")
        return self._read_json(path)

    def save_run_record(self, run: dict) -> Path:
        return self._write_json(self.out_dir / "run.json", run)

    # -- the executed notebooks -------------------------------------------------------------
    def _report_path(self, experiment, model, shard: tuple[int, int]) -> Path:
        name = f"{experiment.name}_{_component(model_folder(model), 'the model name')}_shard{shard[0]}of{shard[1]}.ipynb"
        return self.out_dir / REPORTS / name

    def reports(self, experiment, model) -> dict[tuple[int, int], str | None]:
        """The model's executed notebooks by shard, each with what is wrong with it (None:
        nothing; a report is whole when it ran every cell without an error and drew its
        figures). A notebook cut by a full disk or stopped by Ctrl-C is not a report."""
        import nbformat

        found = {}
        prefix = f"{experiment.name}_{model_folder(model)}_shard"
        for path in sorted((self.out_dir / REPORTS).glob("*.ipynb")):
            match = re.fullmatch(re.escape(prefix) + r"(\d+)of(\d+)\.ipynb", path.name)
            if not match:
                continue
            try:
                cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
            except Exception as error:  # nbformat raises JSON, schema and encoding errors alike
                found[int(match[1]), int(match[2])] = f"not a notebook ({type(error).__name__})"
                continue
            errors = [o.get("ename", "an error") for c in cells for o in c.get("outputs", [])
                      if o.get("output_type") == "error"]
            figures = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
            found[int(match[1]), int(match[2])] = (
                f"stopped with {errors[0]}" if errors else
                "not run to its end" if any(c.get("execution_count") is None for c in cells) else
                None if figures else "without its figures")
        return found

    def execute_notebook(self, notebook: Path, experiment, model, shard: tuple[int, int], parameters: dict,
                         **papermill_options) -> Path:
        """Run ``notebook`` with papermill, keeping the executed copy in ``notebooks/``."""
        import papermill

        executed = self._inside(self._report_path(experiment, model, shard))
        executed.parent.mkdir(parents=True, exist_ok=True)
        try:
            papermill.execute_notebook(str(notebook), str(executed), parameters=parameters, **papermill_options)
        except papermill.PapermillExecutionError as error:
            raise RuntimeError(f"{model} on {experiment.name}: the notebook stopped with {error.ename}: "
                               f"{error.evalue} (the whole traceback is in {executed})") from None
        return executed
