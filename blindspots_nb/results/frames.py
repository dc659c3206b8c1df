"""Runs of ``blindspots-nb reproduce`` as pandas DataFrames, one run or every run below a folder.

:func:`load_run` gives a run's sources, blind spots, pairs of blind spots and its tables' rows
(:class:`Run`), each row with the image's name and sha256 (as the pool records them), class
names, the model's identity (its spec) and display name, and the run's settings as columns, so
that frames of several runs concatenate and group by any setting. :func:`collect` gives the
tables' rows of every finished run below a folder in one frame, a run that cannot be read
skipped with one line (a :class:`SkippedRun` warning).

Both read through the run browser (:class:`~blindspots_nb.browser.runs.StoredRun`), with its
guarantees: nothing written, nothing downloaded, no model loaded, nothing of the folder executed
(JSON through :func:`~blindspots_nb.tools.json_files.read_json`, tensors never unpickled); a
damaged file is a line in :attr:`Run.problems` and the rest is read.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..browser.runs import BLIND_SPOT_NUMBERS, StoredRun
from ..models.spec_names import model_folder
from ..protocol.layout import RUN_RECORD, SETTINGS, SUMMARIES
from ..protocol.tables import TABLE_COLUMNS, display_names, flat_settings

IDENTITY = ("run", "experiment", "model", "display_name")
# A model's numbers in the tables: <column>_mean and <column>_std, as table1.csv and table2.csv head them
NUMBERS = tuple(f"{key}_{part}" for _, columns in TABLE_COLUMNS for key in columns for part in ("mean", "std"))


class SkippedRun(UserWarning):
    """A run below the folder given to :func:`collect` that cannot be read; the message says why."""


@dataclass(frozen=True)
class Run:
    """One run's frames; every frame starts with ``run``, ``experiment``, ``model`` (its identity:
    the registry name or factory spec) and ``display_name``, and ends with the settings' columns."""

    path: Path
    settings: pd.DataFrame  # a row per experiment x model: weights, devices, versions, the experiment's settings
    rows: pd.DataFrame  # the settings with the model's Table-1 and Table-2 numbers (empty before the tables)
    sources: pd.DataFrame  # a row per pool source: name, sha256, label, class, its Table-2 numbers
    blind_spots: pd.DataFrame  # a row per source x round: its target (name, sha256, class) and numbers
    pairs: pd.DataFrame  # a row per source x pair of rounds (i < j): the triangle's two blind spots (grid: triangle)
    missing: list[str]  # what an unfinished run lacks, a line each
    problems: list[str]  # damaged files, a line each (left out of the frames)
    stored: StoredRun  # the run as the browser reads it, for what is no table (triangles, images)

    def triangle(self, experiment: str, model_name: str, source_index: int, pair: tuple[int, int] = (0, 1)):
        """The stored triangle grid of ``source_index`` (a pool index) for the blind spots of rounds ``pair``, as
        the run browser draws it (:meth:`~blindspots_nb.browser.runs.StoredRun.triangle`: the grid, its true
        shape, the corner images, a note saying whether the grid is the pair's own or, in an older run, the
        mean over the source's pairs); None when its batch's triangles are missing or damaged."""
        return self.stored.triangle(f"{experiment}/{model_folder(model_name)}", source_index, pair)

    def __repr__(self) -> str:
        return (f"Run({self.path.name!r}: {len(self.settings)} models, {len(self.sources)} source rows, "
                f"{len(self.blind_spots)} blind spots, {len(self.pairs)} pairs, {len(self.rows)} table rows, "
                f"{len(self.problems)} problems)")


def _settings_records(stored: StoredRun) -> list[dict]:
    """A record per experiment x model of the run: who (identity, display name, weights), where (devices,
    versions, the preset and time of the run record) and every setting of its experiment."""
    record = stored.files.read_json(stored.run_dir / RUN_RECORD)
    record = record if isinstance(record, dict) else {}
    names = display_names([m for e in stored.experiments.values() for m in e.models], stored.weights)
    rows = []
    for key in stored.models():
        experiment, provenance = stored.experiment(key), stored.provenance(key)
        model, weights = provenance["model"], provenance["weights"]
        rows.append({"run": stored.run_dir.name, "experiment": experiment.name, "model": model,
                     "display_name": names[model], "path": str(stored.run_dir),
                     "weights_sha256": weights.get("sha256"), "weights_file": weights.get("file"),
                     "weights_verified": weights.get("verified"), "device": "; ".join(provenance["devices"]),
                     "version": ", ".join(provenance["versions"]), "preset": record.get("preset"),
                     "created": record.get("created"), **flat_settings(experiment, leave_out=("name", "models", "note"))})
    return rows


def _numbers(summary) -> dict:
    """A model's summary (``summaries.json``) as columns: dataset, n (sources), n_blind_spots and
    :data:`NUMBERS`; a KeyError, TypeError or ValueError when it is not one."""
    numbers = {"dataset": str(summary["dataset"]), "n": int(summary["n_sources"]),
               "n_blind_spots": int(summary["n_blind_spots"])}
    for table, columns in TABLE_COLUMNS:
        for key in columns:
            mean, std = summary[table][key]
            numbers[f"{key}_mean"], numbers[f"{key}_std"] = float(mean), float(std)
    return numbers


def _table_records(stored: StoredRun, settings: list[dict]) -> list[dict]:
    """The run's Table-1 and Table-2 rows (``summaries.json``), a record per experiment x model beside its
    settings; a ValueError of one line when the tables are missing or not as the run writes them."""
    summaries = stored.files.read_json(stored.run_dir / SUMMARIES)
    if summaries is None:
        damaged = [p.removesuffix("; left out") for p in stored.problems if p.startswith(SUMMARIES)]
        raise ValueError(damaged[0] if damaged else f"the tables were not assembled (no {SUMMARIES}: the run "
                                                    "is not finished)")
    by_model = {(row["experiment"], row["model"]): row for row in settings}
    records = []
    try:
        for experiment, models in summaries.items():
            for model, summary in models.items():
                if (experiment, model) not in by_model:
                    raise ValueError(f"{SUMMARIES}: holds {experiment}/{model}, which {SETTINGS} does not")
                records.append({**by_model[experiment, model], **_numbers(summary)})
    except (AttributeError, KeyError, TypeError) as error:
        raise ValueError(f"{SUMMARIES}: not as blindspots-nb writes it ({type(error).__name__}: {error})") \
            from None
    return records


def _rows_frame(records: list[dict], columns=()) -> pd.DataFrame:
    """Table rows as one frame: the identity, the numbers, then the settings (``columns`` at least)."""
    names = dict.fromkeys([*IDENTITY, "dataset", "n", "n_blind_spots", *NUMBERS, *columns])
    for record in records:
        names.update(dict.fromkeys(record))
    return pd.DataFrame(records, columns=list(names))


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """The identity columns first, the rest in their order."""
    return frame[[*IDENTITY, *(c for c in frame.columns if c not in IDENTITY)]]


def _pool_columns(pool: dict) -> pd.DataFrame:
    """The pool's images by index: name, sha256 (of the file, or of the pixels for images made in
    memory), label and class name."""
    count = len(pool["names"])
    return pd.DataFrame({"name": pool["names"], "sha256": pool.get("sha256", [None] * count),
                         "label": pool["labels"], "class": pool["class_names"]})


def _model_frames(stored: StoredRun, key: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One model's sources, blind spots (as the browser reads them, with the pool's names and sha256)
    and pairs of blind spots; empty frames without a readable pool."""
    pool = stored.pool(stored.experiment(key).name)
    if pool is None:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    images = _pool_columns(pool).rename_axis("source")
    sources = images.join(pd.DataFrame(stored.source_rows(key)).drop(columns=["name", "class"]).set_index("source"))
    rows = [{"source": s, **row} for s in sources.index for row in stored.blind_spot_rows(key, s)]
    spots = pd.DataFrame(rows, columns=["source", "round", "target", "target_name", "target_class",
                                        *BLIND_SPOT_NUMBERS])
    spots = images.join(spots.set_index("source"), how="inner").reset_index()
    spots.insert(spots.columns.get_loc("target_name") + 1, "target_sha256",
                 images["sha256"].reindex(spots["target"]).to_numpy())
    return sources.reset_index(), spots, _pairs(spots)


def _pairs(blind_spots: pd.DataFrame) -> pd.DataFrame:
    """Each source's pairs of blind spots (rounds i < j), the corners of its triangles: a row per
    pair with the round, target and target's name, sha256 and class of blind spot A and of B."""
    source = ["source", "name", "sha256", "label", "class"]
    corners = blind_spots[[*source, "round", "target", "target_name", "target_sha256", "target_class"]]
    pairs = corners.merge(corners, on=source, suffixes=("_a", "_b"))
    return pairs[pairs["round_a"] < pairs["round_b"]].reset_index(drop=True)


def _with_settings(frames: list[pd.DataFrame], settings: pd.DataFrame) -> pd.DataFrame:
    """The models' frames in one, each row with its model's identity in front and settings behind."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=settings.columns)
    return _ordered(pd.concat(frames, ignore_index=True).merge(settings, on=["experiment", "model"]))


def load_run(path) -> Run:
    """The run in the output folder ``path`` as frames (:class:`Run`), read-only. A folder without a
    run's settings, or with damaged ones, is one line (FileNotFoundError or RunFolderError); a run
    whose tables are missing or damaged gives empty :attr:`Run.rows` and says why in
    :attr:`Run.missing` or :attr:`Run.problems`."""
    stored = StoredRun(path)
    settings = pd.DataFrame(_settings_records(stored))
    found = ([], [], [])
    for key in stored.models():
        model = {"experiment": stored.experiment(key).name, "model": stored.provenance(key)["model"]}
        for frame, frames in zip(_model_frames(stored, key), found):
            frames.append(frame.assign(**model))
    try:
        rows = _rows_frame(_table_records(stored, settings.to_dict("records")), settings.columns)
    except ValueError:  # said in missing or problems
        rows = _rows_frame([], settings.columns)
    sources, blind_spots, pairs = (_with_settings(frames, settings) for frames in found)
    return Run(Path(path), settings, rows, sources, blind_spots, pairs, stored.missing(), stored.problems, stored)


def _run_folders(root) -> list[Path]:
    """Every run folder below ``root`` (a folder holding ``settings.json``; nothing below a run is
    searched), in sorted order; links to folders are followed once each."""
    found, seen = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        if SETTINGS in files:
            found.append(Path(folder))
            subfolders.clear()
        subfolders.sort()
    return sorted(found)


def collect(root) -> pd.DataFrame:
    """The Table-1 and Table-2 rows of every finished run below ``root``, one frame: a row per run x
    experiment x model, settings as columns (as :attr:`Run.rows`; ``run`` is the folder's path below
    ``root``, ``path`` its whole path). A run that cannot be read
    (damaged settings or tables, or not finished) is skipped with one line, a :class:`SkippedRun`
    warning; the lines are also in ``frame.attrs['skipped']``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of runs")
    records, skipped = [], []
    for folder in _run_folders(root):
        try:
            stored = StoredRun(folder)
            run = str(folder.relative_to(root)) if folder != root else folder.name  # unique below root
            records += [{**record, "run": run} for record in _table_records(stored, _settings_records(stored))]
        except (OSError, ValueError) as error:  # RunFolderError is a ValueError
            line = f"{error if str(error).startswith(str(folder)) else f'{folder}: {error}'} (skipped)"
            skipped.append(line)
            warnings.warn(line, SkippedRun, stacklevel=2)
    rows = _rows_frame(records)
    rows.attrs["skipped"] = skipped
    return rows
