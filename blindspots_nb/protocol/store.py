"""The run store: every path and every write under a reproduction's output folder.

Nothing else in the package builds a path under the output folder or writes there
(a test scans the code for it). The layout::

    settings.json                       the experiments of the run (checked on every rerun)
    <experiment>/pool.json              the pool and its derangements
    <experiment>/<model>/blind_spots/b0003_r1.{pt,csv}   a source batch's blind spots in one round
    <experiment>/<model>/triangles/b0003.{csv,pt}        its Table-2 rows and mean triangle grids
    <experiment>/<model>/record_shard0of1.json           what produced a shard's work
    <experiment>/<model>/per_blindspot.csv, per_source.csv
    notebooks/<experiment>_<model>_shard0of1.ipynb       the executed notebooks
    table1.{md,tex,csv}, table2.{md,tex,csv}, summaries.json, run.json
    .lock                                                who holds the folder now

Every file is written whole or not at all (a temporary file of its own, then a
rename). A finished piece of work (a pool, a batch's blind spots of one round, a
batch's triangles) has a manifest, ``*.manifest.json``, with the size and sha256 of
each of its files, written last: a piece is trusted only when its files match its
manifest, and recomputed (with a word to the user) when they do not. One run at a
time holds the folder (:meth:`RunStore.hold`); a lock left by a killed run is
recognised and taken over.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import fcntl
import io
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from ..checksums import file_sha256
from .experiment import Experiment

SETTINGS = "settings.json"
LOCK = ".lock"
TEMPORARY_SUFFIX = ".tmp"


class RunSettingsMismatch(RuntimeError):
    """The output folder holds a run made with other settings, weights or images."""


class RunFolderBusy(RuntimeError):
    """Another run holds the output folder."""


def _identity(settings: dict) -> dict:
    """What makes two runs the same: the experiments, and each weights file by its sha256
    (the same file at another path is the same weights)."""
    return {**settings, "weights": {name: w["sha256"] for name, w in settings.get("weights", {}).items()}}


def _differences(old, new, prefix="") -> list[str]:
    """Where two JSON-like values differ, as 'key.path: old there, new now'."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new))
                for d in _differences(old.get(key), new.get(key), f"{prefix}{key}.")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, f"{prefix}{i}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} there, {new!r} now"]


def csv_text(rows: list[dict]) -> str:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


class RunStore:
    """One output folder of ``blindspots-nb reproduce``."""

    def __init__(self, root):
        self.root = Path(root)
        # manifest -> its files' (size, mtime, inode) when they last matched it: a piece
        # unchanged since then is not hashed again (a run checks each piece several times)
        self._matched: dict[Path, tuple] = {}

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -- writing --------------------------------------------------------------------
    def _write_atomically(self, path: Path, write) -> Path:
        """``write(temporary_path)``, then rename it to ``path``: readers see the old file or
        the new one, never a part; every writer has a temporary file of its own."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
        os.close(handle)
        try:
            write(Path(temporary))
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    def _write_text(self, path: Path, text: str) -> Path:
        return self._write_atomically(path, lambda temporary: temporary.write_text(text))

    def _write_json(self, path: Path, value, indent: int = 2) -> Path:
        return self._write_text(path, json.dumps(value, indent=indent))

    def _write_rows(self, path: Path, rows: list[dict]) -> Path:
        return self._write_text(path, csv_text(rows))

    def _write_tensor(self, path: Path, tensor: torch.Tensor) -> Path:
        return self._write_atomically(path, lambda temporary: torch.save(tensor.detach().cpu().contiguous(),
                                                                         temporary))

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

    def _seal(self, stem: Path, files: list[Path]):
        """Mark a piece finished: the size and sha256 of each of its files, written last."""
        manifest = self._write_json(self._manifest_path(stem), {
            path.name: {"size": path.stat().st_size, "sha256": file_sha256(path)} for path in files})
        self._matched[manifest] = self._signature([manifest, *files])

    def _finished(self, stem: Path) -> bool:
        """Whether a piece is finished and its files are as its manifest says. A piece that
        fails the check is removed (so that it is recomputed) and the user is told."""
        manifest = self._manifest_path(stem)
        if not manifest.exists():
            return False
        try:
            expected = json.loads(manifest.read_text())
            signature = self._signature([manifest, *(stem.parent / name for name in expected)])
            if signature is not None and self._matched.get(manifest) == signature:
                return True
            problems = [name for name, entry in expected.items() if not (stem.parent / name).is_file()
                        or (stem.parent / name).stat().st_size != entry["size"]
                        or file_sha256(stem.parent / name) != entry["sha256"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            expected, problems = {}, [manifest.name]
        if not problems:
            self._matched[manifest] = signature
            return True
        self._matched.pop(manifest, None)
        warnings.warn(f"{stem.relative_to(self.root)}: {', '.join(problems)} no longer match the piece's manifest "
                      "(size or sha256 changed); recomputing that piece", stacklevel=2)
        for name in [*expected, manifest.name]:
            (stem.parent / name).unlink(missing_ok=True)
        return False

    # -- who holds the folder ---------------------------------------------------------
    @contextlib.contextmanager
    def hold(self):
        """Hold the folder for one run: a second run is refused with a message naming the
        holder. The OS releases the lock when its process ends, so a lock left by a killed
        run is recognised (its file still names it) and taken over."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / LOCK, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process that has not said who it is"
            handle.close()
            raise RunFolderBusy(f"{self.root} is in use by another run ({holder}); wait until it ends, or "
                                "use another output folder") from None
        try:
            handle.seek(0)
            stale = handle.read().strip()
            if stale:
                print(f"{self.root}: taking over the lock of a run that ended without releasing it ({stale})")
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                         f"{datetime.datetime.now().isoformat(timespec='seconds')}: {' '.join(sys.argv)}")
            handle.flush()
            for temporary in self.root.rglob(f".*{TEMPORARY_SUFFIX}"):  # left by a killed run
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
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))

    # -- the settings -----------------------------------------------------------------
    def begin(self, experiments: list[Experiment], force: bool = False, weights: dict | None = None):
        """Start or resume a run of ``experiments`` with ``weights`` (model -> identity of
        its weights file): the folder's settings must be these, else
        :class:`RunSettingsMismatch` lists the differences. Settings that produced no
        result yet (a start that failed) are simply replaced. ``force`` removes everything
        the folder holds first."""
        names = [e.name for e in experiments]
        if len(set(names)) != len(names):
            raise ValueError(f"two experiments of a run share a name ({names}); give each its own name")
        settings = {"experiments": [e.to_dict() for e in experiments], "weights": weights or {}}
        path = self.root / SETTINGS
        if force:
            for entry in self.root.iterdir() if self.root.is_dir() else ():
                if entry.name != LOCK:
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        stored = json.loads(path.read_text()) if path.exists() else None
        if stored is not None:  # as this version writes them: fields added since take their defaults
            stored["experiments"] = [Experiment.from_dict(e).to_dict() for e in stored.get("experiments", [])]
        if stored is not None and _identity(stored) != _identity(settings) and self._has_results():
            differences = _differences(_identity(stored), _identity(settings))
            raise RunSettingsMismatch(
                f"{self.root} holds a run with other settings ({'; '.join(differences[:6])}"
                f"{' ...' if len(differences) > 6 else ''}). Use another output folder, or --force to replace "
                "that run.")
        self._write_json(path, settings)

    def _has_results(self) -> bool:
        """Whether any piece of work was finished in this folder."""
        return any(self.root.glob("*/pool.json"))

    def weights(self) -> dict:
        """The identity of each model's weights file, as the run's settings hold it."""
        return json.loads((self.root / SETTINGS).read_text()).get("weights", {})

    def experiments(self) -> list[Experiment]:
        """The experiments of the run this folder holds."""
        path = self.root / SETTINGS
        if not path.is_file():
            raise FileNotFoundError(f"{self.root} holds no run (no {SETTINGS}): start one with "
                                    f"blindspots-nb reproduce --out {self.root}")
        return [Experiment.from_dict(e) for e in json.loads(path.read_text())["experiments"]]

    def experiment(self, name: str) -> Experiment:
        """The stored experiment called ``name``."""
        experiments = self.experiments()
        for experiment in experiments:
            if experiment.name == name:
                return experiment
        raise ValueError(f"{self.root} has no experiment {name!r}; it has {[e.name for e in experiments]}")

    # -- the pool ---------------------------------------------------------------------
    def _pool_path(self, experiment: Experiment) -> Path:
        return self.root / experiment.name / "pool.json"

    def pool(self, experiment: Experiment) -> dict | None:
        """The experiment's pool record, None before it was selected (or if it failed its check)."""
        path = self._pool_path(experiment)
        return json.loads(path.read_text()) if self._finished(path) else None

    def save_pool(self, experiment: Experiment, record: dict):
        path = self._write_json(self._pool_path(experiment), record, indent=1)
        self._seal(path, [path])

    # -- one model's pieces -------------------------------------------------------------
    def _model_dir(self, experiment: Experiment, model: str) -> Path:
        return self.root / experiment.name / model

    def _blind_spots_stem(self, experiment, model, batch: int, round_: int) -> Path:
        return self._model_dir(experiment, model) / "blind_spots" / f"b{batch:04d}_r{round_}"

    def _triangles_stem(self, experiment, model, batch: int) -> Path:
        return self._model_dir(experiment, model) / "triangles" / f"b{batch:04d}"

    def has_blind_spots(self, experiment, model, batch: int, round_: int) -> bool:
        return self._finished(self._blind_spots_stem(experiment, model, batch, round_))

    def save_blind_spots(self, experiment, model, batch: int, round_: int, images: torch.Tensor, rows: list[dict]):
        """A batch's blind spots of one round and their rows, then its manifest."""
        stem = self._blind_spots_stem(experiment, model, batch, round_)
        self._seal(stem, [self._write_tensor(stem.with_suffix(".pt"), images),
                          self._write_rows(stem.with_suffix(".csv"), rows)])

    def blind_spots(self, experiment, model, batch: int, round_: int) -> torch.Tensor:
        path = self._blind_spots_stem(experiment, model, batch, round_).with_suffix(".pt")
        return torch.load(path, map_location="cpu", weights_only=True)

    def has_triangles(self, experiment, model, batch: int) -> bool:
        return self._finished(self._triangles_stem(experiment, model, batch))

    def save_triangles(self, experiment, model, batch: int, rows: list[dict], mean_grid: torch.Tensor):
        """A batch's Table-2 rows and each source's confidence at the grid points averaged
        over its pairs, (sources, points), then its manifest."""
        stem = self._triangles_stem(experiment, model, batch)
        self._seal(stem, [self._write_tensor(stem.with_suffix(".pt"), mean_grid),
                          self._write_rows(stem.with_suffix(".csv"), rows)])

    def mean_triangle_grid(self, experiment, model) -> torch.Tensor:
        """Every source's pair-averaged grid confidences, (sources, points), in source order."""
        files = sorted((self._model_dir(experiment, model) / "triangles").glob("b*.pt"))
        return torch.cat([torch.load(f, map_location="cpu", weights_only=True) for f in files])

    def save_record(self, experiment, model, shard: tuple[int, int], record: dict):
        self._write_json(self._model_dir(experiment, model) / f"record_shard{shard[0]}of{shard[1]}.json", record)

    def records(self, experiment) -> dict[str, dict]:
        """The shard records of every model of the experiment, by 'model/record_shardIofN'."""
        return {f"{path.parent.name}/{path.stem}": json.loads(path.read_text())
                for path in sorted((self.root / experiment.name).glob("*/record_shard*.json"))}

    def model_finished(self, experiment, model) -> bool:
        """Whether every source batch of the pool has all its blind spots and its triangles."""
        pool = self.pool(experiment)
        if pool is None:
            return False
        batches = range(math.ceil(len(pool["labels"]) / experiment.batch_size))
        return all(self.has_triangles(experiment, model, b) for b in batches) and all(
            self.has_blind_spots(experiment, model, b, r) for b in batches for r in range(experiment.rounds))

    def blind_spot_rows(self, experiment, model) -> list[dict]:
        folder = self._model_dir(experiment, model) / "blind_spots"
        return [row for path in sorted(folder.glob("b*_r*.csv")) for row in self._read_rows(path)]

    def source_rows(self, experiment, model) -> list[dict]:
        folder = self._model_dir(experiment, model) / "triangles"
        return [row for path in sorted(folder.glob("b*.csv")) for row in self._read_rows(path)]

    def save_model_rows(self, experiment, model, blind_spots: list[dict], sources: list[dict]):
        folder = self._model_dir(experiment, model)
        self._write_rows(folder / "per_blindspot.csv", blind_spots)
        self._write_rows(folder / "per_source.csv", sources)

    # -- the tables and the run record ----------------------------------------------------
    def save_tables(self, texts: dict[str, str], summaries: dict) -> dict[str, Path]:
        """Write the tables (file name -> text) and the summaries behind them."""
        written = {name: self._write_text(self.root / name, text) for name, text in texts.items()}
        self._write_json(self.root / "summaries.json", summaries)
        return written

    def read_text(self, name: str) -> str:
        return (self.root / name).read_text()

    def summaries(self) -> dict:
        """Each model's table numbers, as the finished run's tables were made from them."""
        path = self.root / "summaries.json"
        if not path.is_file():
            raise FileNotFoundError(f"{self.root} holds no finished tables ({path.name}): finish the run first")
        return json.loads(path.read_text())

    def save_run_record(self, run: dict) -> Path:
        return self._write_json(self.root / "run.json", run)

    # -- the executed notebooks -------------------------------------------------------------
    def execute_notebook(self, notebook: Path, experiment, model, shard: tuple[int, int], parameters: dict,
                         **papermill_options) -> Path:
        """Run ``notebook`` with papermill, keeping the executed copy in ``notebooks/``."""
        import papermill

        executed = self.root / "notebooks" / f"{experiment.name}_{model}_shard{shard[0]}of{shard[1]}.ipynb"
        executed.parent.mkdir(parents=True, exist_ok=True)
        try:
            papermill.execute_notebook(str(notebook), str(executed), parameters=parameters, **papermill_options)
        except papermill.PapermillExecutionError as error:
            raise RuntimeError(f"{model} on {experiment.name}: the notebook stopped with {error.ename}: "
                               f"{error.evalue} (the whole traceback is in {executed})") from None
        return executed
