"""The run store: every path and every write under a reproduction's output folder.

Nothing else in the package writes under the output folder (a test scans the code for
it): the checks of everything read back from the folder and every write stay in one
place. The folder's layout (every name, the formats, the readers the browser shares) is
:mod:`.layout`.

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
import hashlib
import json
import math
import os
import stat
import warnings
from pathlib import Path

import torch

from ..tools import atomic, folders
from ..tools.checksums import HashingWriter, file_sha256
from ..tools.json_files import UnreadableJSON, read_json
from . import layout
from .experiment import Experiment
from .layout import (LOCK, REPORTS, RUN_FORMAT, SETTINGS, SUMMARIES, RunFolderBusy, RunFolderError,
                     RunSettingsMismatch)


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
                hashed = HashingWriter(handle)
                dump(hashed)
            self._written[path] = {"size": hashed.size, "sha256": hashed.sha256.hexdigest()}
        return self._write_atomically(path, write)

    def _write_text(self, path: Path, text: str) -> Path:
        return self._write_hashed(path, lambda handle: handle.write(text.encode("utf-8")))

    def _write_json(self, path: Path, value, indent: int = 2) -> Path:
        return self._write_text(path, json.dumps(value, indent=indent))

    def _write_rows(self, path: Path, rows: list[dict]) -> Path:
        return self._write_text(path, atomic.csv_text(rows))

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
        manifest = self._write_json(layout.manifest_path(stem), {
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
        manifest = layout.manifest_path(stem)
        if not manifest.exists():
            return "to do"
        files = [stem.parent / name for name in names]
        signature = self._signature([manifest, *files])
        if signature is not None and self._matched.get(manifest) == signature:
            return "finished"
        try:
            record = read_json(manifest)
            expected = layout.manifest_entries(record, names)  # a manifest names its piece's files, no others
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
            f"{self.out_dir}: {layout.listing([str(s.relative_to(self.out_dir)) for s in stems])} were made with other "
            f"settings than the run's {SETTINGS} (a shard of another run copied in?); they are not mixed into this "
            "run. Remove them, or put each run in its own folder")

    # -- who holds the folder ---------------------------------------------------------
    def check_folder(self, force: bool = False) -> None:
        """Refuse a folder a run must not use: a file or a dangling link instead of a folder,
        or a folder that holds something other than a run's files and is not a run folder
        (or, with ``force``, whose other files would have to go)."""
        layout.check_run_folder(self.out_dir, force)

    @contextlib.contextmanager
    def hold(self):
        """Hold the folder for one run (:func:`~blindspots_nb.tools.folders.held`): a second run
        is refused with a message naming the holder; a lock left by a killed run is taken over.
        A killed run's temporary files, this store's own only, are removed."""
        self.check_folder()
        with contextlib.ExitStack() as held:
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                held.enter_context(folders.held(self.out_dir / LOCK))
            except folders.HeldElsewhere as error:
                raise RunFolderBusy(f"{self.out_dir} is in use by another run ({error}); wait until it ends, or "
                                    "use another output folder") from None
            except OSError as error:
                raise RunFolderError(f"cannot use the output folder {self.out_dir}: {error.strerror}") from None
            files, _, _ = layout.survey(self.out_dir)
            for temporary in files:
                if atomic.temporary_of(temporary) is not None:
                    temporary.unlink(missing_ok=True)
            yield self

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
            for model_name in experiment.models:
                self.model_dir(experiment, model_name)
        settings = {"format": RUN_FORMAT, "version": layout.VERSION, "experiments": [e.to_dict() for e in experiments],
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
                warnings.warn(layout.older_run_warning(older), stacklevel=2)
                settings["weights"] = {m: {k: v for k, v in w.items() if k != "model" or m not in older}
                                       for m, w in settings["weights"].items()}
            changed = layout.differences(layout.identity(stored), layout.identity(settings))
            if changed:
                raise RunSettingsMismatch(
                    f"{self.out_dir} holds a run with other settings ({'; '.join(changed[:6])}"
                    f"{' ...' if len(changed) > 6 else ''}). Use another output folder, or --force to replace "
                    "that run.")
        self._write_json(path, settings)

    def _remove_run(self):
        """Remove every file and folder a run wrote here (the lock stays: it is held)."""
        files, folders, _ = layout.survey(self.out_dir)
        for path in files:
            if path.name != LOCK or path.parent != self.out_dir:
                path.unlink(missing_ok=True)
        for folder in folders:  # deepest first, as layout.survey lists them
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
        try:
            experiments = layout.settings_experiments(value)
        except ValueError as problem:
            raise RunFolderError(f"{path} is damaged: {problem}. Restore it, or start the run anew in another "
                                 "folder (or with --force)") from None
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
        return layout.experiment_dir(self.out_dir, experiment.name)

    def pool_path(self, experiment: Experiment) -> Path:
        return layout.pool_path(self.out_dir, experiment.name)

    def pool(self, experiment: Experiment) -> dict | None:
        """The experiment's pool record, None before it was selected (or if it failed its
        check). A ``source`` key, written before it was ``image_source``, is read too."""
        path = self.pool_path(experiment)
        if not self._finished(path, [path.name], experiment):
            return None
        return layout.pool_record(self._read_json(path), str(path))

    def save_pool(self, experiment: Experiment, record: dict):
        path = self._write_json(self.pool_path(experiment), record, indent=1)
        self._seal(path, [path], experiment)

    # -- one model's pieces -------------------------------------------------------------
    def model_dir(self, experiment: Experiment, model_name: str) -> Path:
        return layout.model_dir(self.out_dir, experiment.name, model_name)

    def blind_spots_stem(self, experiment, model_name, batch: int, round_: int) -> Path:
        return layout.blind_spots_stem(self.model_dir(experiment, model_name), batch, round_)

    def triangles_stem(self, experiment, model_name, batch: int) -> Path:
        return layout.triangles_stem(self.model_dir(experiment, model_name), batch)

    def _piece_finished(self, stem: Path, experiment) -> bool:
        return self._finished(stem, [f.name for f in layout.piece_files(stem)], experiment)

    def has_blind_spots(self, experiment, model_name, batch: int, round_: int) -> bool:
        return self._piece_finished(self.blind_spots_stem(experiment, model_name, batch, round_), experiment)

    def save_blind_spots(self, experiment, model_name, batch: int, round_: int, images: torch.Tensor, rows: list[dict]):
        """A batch's blind spots of one round and their rows, then its manifest."""
        tensor, table = layout.piece_files(self.blind_spots_stem(experiment, model_name, batch, round_))
        self._seal(tensor.with_suffix(""), [self._write_tensor(tensor, images), self._write_rows(table, rows)],
                   experiment)

    def blind_spots(self, experiment, model_name, batch: int, round_: int) -> torch.Tensor:
        path = self.blind_spots_stem(experiment, model_name, batch, round_).with_suffix(".pt")
        return torch.load(path, map_location="cpu", weights_only=True)

    def has_triangles(self, experiment, model_name, batch: int) -> bool:
        return self._piece_finished(self.triangles_stem(experiment, model_name, batch), experiment)

    def save_triangles(self, experiment, model_name, batch: int, rows: list[dict], grids: torch.Tensor):
        """A batch's Table-2 rows and each source's confidence at the grid points of each of its
        pairs, (sources, pairs, points) (:data:`~.layout.VERSION` 2), then its manifest."""
        tensor, table = layout.piece_files(self.triangles_stem(experiment, model_name, batch))
        self._seal(tensor.with_suffix(""), [self._write_tensor(tensor, grids), self._write_rows(table, rows)],
                   experiment)

    def _batches(self, experiment) -> range:
        return range(math.ceil(len(self.pool(experiment)["labels"]) / experiment.batch_size))

    def mean_triangle_grid(self, experiment, model_name) -> torch.Tensor:
        """Every source's grid confidences averaged over its pairs, (sources, points), in source
        order (a run before version 2 stored only these means)."""
        grids = [torch.load(self.triangles_stem(experiment, model_name, b).with_suffix(".pt"), map_location="cpu",
                            weights_only=True) for b in self._batches(experiment)]
        return torch.cat([grid.mean(1) if grid.ndim == 3 else grid for grid in grids])

    def save_record(self, experiment, model_name, shard: tuple[int, int], record: dict):
        self._write_json(self.model_dir(experiment, model_name) / layout.record_name(shard), record)

    def records(self, experiment, models=None) -> dict[str, dict]:
        """The shard records of every model of the experiment (or of ``models``), by
        '<model folder>/record_shardIofN'."""
        return {f"{layout.model_folder(model_name)}/{path.stem}": self._read_json(path) for model_name in models or experiment.models
                for path in sorted(self.model_dir(experiment, model_name).glob("record_shard*.json"))}

    def model_finished(self, experiment, model_name) -> bool:
        """Whether every source batch of the pool has all its blind spots and its triangles;
        refuses pieces made with other settings than the run's, naming every one."""
        if self.pool(experiment) is None:
            return False
        stems = [self.blind_spots_stem(experiment, model_name, b, r) for b in self._batches(experiment)
                 for r in range(experiment.rounds)] + [self.triangles_stem(experiment, model_name, b)
                                                        for b in self._batches(experiment)]
        states = {stem: self._piece(stem, [f.name for f in layout.piece_files(stem)], experiment) for stem in stems}
        other = [stem for stem, state in states.items() if state == "other settings"]
        if other:
            raise self._other_settings(other)
        return all(state == "finished" for state in states.values())

    def blind_spot_rows(self, experiment, model_name) -> list[dict]:
        """Every blind spot's row (``p0``, written before it was ``initial_confidence``, is read too)."""
        return [row for b in self._batches(experiment) for r in range(experiment.rounds)
                for row in layout.read_rows(self.blind_spots_stem(experiment, model_name, b, r).with_suffix(".csv"))]

    def source_rows(self, experiment, model_name) -> list[dict]:
        return [row for b in self._batches(experiment)
                for row in layout.read_rows(self.triangles_stem(experiment, model_name, b).with_suffix(".csv"))]

    def save_model_rows(self, experiment, model_name, blind_spots: list[dict], sources: list[dict]):
        folder = self.model_dir(experiment, model_name)
        self._write_rows(folder / layout.PER_BLINDSPOT, blind_spots)
        self._write_rows(folder / layout.PER_SOURCE, sources)

    # -- the tables and the run record ----------------------------------------------------
    def save_tables(self, texts: dict[str, str], summaries: dict) -> dict[str, Path]:
        """Write the tables (file name -> text) and the summaries behind them."""
        written = {name: self._write_text(self.out_dir / name, text) for name, text in texts.items()}
        self._write_json(self.out_dir / SUMMARIES, summaries)
        return written

    def read_text(self, name: str) -> str:
        return (self.out_dir / name).read_text(encoding="utf-8")

    def summaries(self) -> dict:
        """Each model's table numbers, as the finished run's tables were made from them."""
        path = self.out_dir / SUMMARIES
        if not path.is_file():
            raise FileNotFoundError(f"{self.out_dir} holds no finished tables ({path.name}): finish the run first")
        return self._read_json(path)

    def save_run_record(self, run: dict) -> Path:
        return self._write_json(self.out_dir / layout.RUN_RECORD, run)

    # -- the executed notebooks -------------------------------------------------------------
    def _report_path(self, experiment, model_name, shard: tuple[int, int]) -> Path:
        return self.out_dir / REPORTS / layout.report_name(experiment.name, model_name, shard)

    def execute_notebook(self, notebook: Path, experiment, model_name, shard: tuple[int, int], parameters: dict,
                         **papermill_options) -> Path:
        """Run ``notebook`` with papermill, keeping the executed copy in ``notebooks/``."""
        import papermill

        executed = self._inside(self._report_path(experiment, model_name, shard))
        executed.parent.mkdir(parents=True, exist_ok=True)
        try:
            papermill.execute_notebook(str(notebook), str(executed), parameters=parameters, **papermill_options)
        except papermill.PapermillExecutionError as error:
            raise RuntimeError(f"{model_name} on {experiment.name}: the notebook stopped with {error.ename}: "
                               f"{error.evalue} (the whole traceback is in {executed})") from None
        return executed
