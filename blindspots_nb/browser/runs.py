"""A run of ``blindspots-nb reproduce``, finished or not, opened read-only for browsing.

:class:`StoredRun` reads an output folder (see :mod:`blindspots_nb.protocol.layout` for its
layout) and never writes to it: no lock is taken, no manifest removed, no file created;
the folder may come from an older run, another machine or a read-only disk. It gives
each model's sources with their Table-2 numbers and their blind spots' Table-1 numbers,
the stored blind spots, the stored triangle grids, the sources that contradict the
paper's findings, what is missing in an unfinished run and what produced each number.

Nothing is recomputed and no model is loaded. A piece of the run (a batch's blind spots
of one round, a batch's triangles) is used when its manifest is there and its files have
the sizes it names (their sha256 is not checked here: a browser reads a few rows of a
possibly large run). A damaged file (invalid JSON or CSV, a cut ``.pt``) becomes one line
in :attr:`StoredRun.problems`, naming it, and the rest still shows (:mod:`.files`
reads every file, tensors with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..analysis.geometry import triangle_shape
from ..data.images import preprocess_for
from ..data.sources import open_source
from ..models.spec import model_folder
from ..protocol.pool import locate_pool, pool_files, source_batches
from ..protocol import layout
from ..protocol.store import RunStore
from ..protocol.tables import TABLE1_COLUMNS, TABLE2_COLUMNS, TABLE_COLUMNS, row_names
from .files import PoolImages, RunFiles
from .findings import Contradiction

# A source's blind spots, summarised over its rounds (from the blind-spot rows)
BLIND_SPOT_COLUMNS = {"confidence_min": "least blind-spot conf", "drop_max": "largest conf drop",
                      "rmse_mean": "mean RMSE", "rmse_max": "largest RMSE", "linf_mean": "mean l_inf",
                      "ssim_mean": "mean SSIM", "lpips_mean": "mean LPIPS"}
SOURCE_COLUMNS = {**TABLE2_COLUMNS, "edge_min": "least edge conf - p_src", **BLIND_SPOT_COLUMNS}
BLIND_SPOT_NUMBERS = ("initial_confidence", "confidence", *TABLE1_COLUMNS)
TRIANGLE_NUMBERS = (*TABLE2_COLUMNS, "edge_min")
MAX_IMAGE_BYTES = 256 * 2**20  # a pool image file the browser reads whole to check its sha256
EQUILATERAL = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 3 ** 0.5 / 2]], dtype=torch.float64)


@dataclass(frozen=True)
class StoredTriangle:
    """One source's stored triangle for the pair of blind spots picked: that pair's own grid
    confidences (``own``), or, from a run before format version 2, the mean over the source's
    pairs; drawn in the true shape of the pair when the source image is at hand (else on an
    equilateral triangle)."""

    grid: torch.Tensor  # (points,)
    divisions: int
    shape: torch.Tensor  # (3, 2), as geometry.triangle_shape gives
    corners: list  # source, blind spot A, blind spot B images (None where not at hand)
    pair: tuple[int, int]  # the rounds of blind spots A and B
    pairs: int
    own: bool  # the pair's own grid (False: the mean over the source's pairs, all an older run stored)
    note: str  # what the grid is and what its shape is


class StoredRun:
    """An output folder of ``blindspots-nb reproduce``, read-only.

    A folder without a run's ``settings.json``, or with a damaged one, is refused at once
    with one line (FileNotFoundError or RunFolderError); everything else that is missing
    or damaged is said by :meth:`missing` and :attr:`problems`. A model is named by its key
    ``'experiment/model folder'`` (``fonts/fonts_cnn``).
    """

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        store = RunStore(self.run_dir)  # used only for what reads: the settings and weights
        self.experiments = {e.name: e for e in store.experiments()}
        self.weights = store.weights()
        self._models = {f"{e.name}/{model_folder(m)}": (e, m) for e in self.experiments.values() for m in e.models}
        self.files = RunFiles(self.run_dir)

    def __repr__(self) -> str:
        return f"StoredRun({str(self.run_dir)!r})"

    @property
    def problems(self) -> list[str]:
        """The damaged files met so far, a line each naming the file (they are left out)."""
        return self.files.problems

    # -- the pieces of the run -------------------------------------------------------------------
    def _model_dir(self, key) -> Path:
        experiment, model = self._model(key)
        return layout.model_dir(self.run_dir, experiment.name, model)

    def experiment(self, key):
        """The stored experiment of the model ``key`` (its rounds, divisions, images, ...)."""
        return self._model(key)[0]

    def _model(self, key) -> tuple:
        if key not in self._models:
            raise KeyError(f"{self.run_dir} has no model {key!r}; it has {', '.join(self._models)}")
        return self._models[key]

    def pool(self, experiment_name: str) -> dict | None:
        """The experiment's pool (its sources, their names, labels and classes, the files' sha256); None before
        it was selected, or when damaged (then a problem naming it)."""
        path = layout.pool_path(self.run_dir, experiment_name)
        pool = self.files.read_json(path) if self.files.is_finished(path, ("",)) else None
        problem = None if pool is None else layout.pool_problem(pool)
        if problem:
            self.files.problem(path, f"is not a pool record ({problem}); left out")
            return None
        return pool

    def _pool_damaged(self, experiment) -> bool:
        """Whether the experiment's pool was written (its manifest is there) but cannot be read."""
        path = layout.pool_path(self.run_dir, experiment.name)
        return self.pool(experiment.name) is None and layout.manifest_path(path).exists()

    def _batches(self, experiment) -> list[range]:
        pool = self.pool(experiment.name)
        return [] if pool is None else source_batches(len(pool["labels"]), experiment.batch_size)

    def _place(self, experiment, source_index: int) -> tuple[int, int, int] | None:
        """The source's batch, its row there and the batch's number of sources; None without a (readable)
        pool; a ValueError naming the pool when it has no such source."""
        pool = self.pool(experiment.name)
        if pool is None:
            return None
        if not (isinstance(source_index, int) and 0 <= source_index < len(pool["labels"])):
            raise ValueError(f"no source {source_index!r} in the pool of {experiment.name} "
                             f"({layout.pool_path(self.run_dir, experiment.name).relative_to(self.run_dir)} holds sources 0 to "
                             f"{len(pool['labels']) - 1})")
        batch, row = divmod(source_index, experiment.batch_size)
        return batch, row, len(self._batches(experiment)[batch])

    def _blind_spot_piece(self, key, batch: int, round_: int) -> Path:
        return layout.blind_spots_stem(self._model_dir(key), batch, round_)

    def _triangle_piece(self, key, batch: int) -> Path:
        return layout.triangles_stem(self._model_dir(key), batch)

    # -- what the run holds -----------------------------------------------------------------------
    def models(self) -> list[str]:
        """Every model of every experiment, by key, in the run's order."""
        return list(self._models)

    def missing(self) -> list[str]:
        """What an unfinished run lacks, a line each (empty for a finished run); read once."""
        return self.files.once("missing", self._missing)

    def _missing(self) -> list[str]:
        lines = []
        for experiment in self.experiments.values():
            if self._pool_damaged(experiment):
                lines.append(f"{experiment.name}: its pool is damaged (see the damaged files), so the results of "
                             f"{', '.join(experiment.models)} cannot be placed; restore "
                             f"{layout.pool_path(self.run_dir, experiment.name).relative_to(self.run_dir)}")
                continue
            if self.pool(experiment.name) is None:
                lines.append(f"{experiment.name}: no pool yet (the run stopped before any model started): "
                             f"{', '.join(experiment.models)} not started")
                continue
            for model in experiment.models:
                lines += self._model_missing(f"{experiment.name}/{model_folder(model)}")
        if not (self.run_dir / layout.SUMMARIES).is_file():
            lines.append(f"the tables were not assembled (no {layout.SUMMARIES}, table1, table2): finish the run with "
                         f"blindspots-nb reproduce or merge --out-dir {self.run_dir}")
        return lines

    def _model_missing(self, key) -> list[str]:
        experiment, model = self._model(key)
        batches = range(len(self._batches(experiment)))
        spots = [self._blind_spot_piece(key, b, r).name for b in batches for r in range(experiment.rounds)
                 if not self.files.is_finished(self._blind_spot_piece(key, b, r))]
        triangles = [b for b in batches if not self.files.is_finished(self._triangle_piece(key, b))]
        total = len(batches) * experiment.rounds
        if len(spots) == total and len(triangles) == len(batches):
            return [f"{key}: not started (no finished batch)"]
        lines = []
        if spots:
            lines.append(f"{key}: blind spots missing for {len(spots)} of {total} batch rounds ({layout.listing(spots, 6)})")
        if triangles:
            lines.append(f"{key}: triangles missing for {len(triangles)} of {len(batches)} batches "
                         f"({layout.listing([f'b{b:04d}' for b in triangles], 6)})")
        reports = layout.reports(self.run_dir, experiment.name, model)
        whole = [shard for shard, why in reports.items() if why is None]
        for shard, why in reports.items():
            if why is not None:
                lines.append(f"{key}: report {layout.REPORTS}/{layout.report_name(experiment.name, model, shard)} "
                             f"is damaged ({why})")
        if not whole:
            lines.append(f"{key}: no whole report (executed notebook) in {layout.REPORTS}/")
        return lines

    # -- sources and blind spots ------------------------------------------------------------------
    def blind_spot_rows(self, key, source_index: int) -> list[dict]:
        """The source's blind spots, one row per finished round: round, target (its pool index, name and
        class) and their numbers (``BLIND_SPOT_NUMBERS``)."""
        experiment, _ = self._model(key)
        pool, place = self.pool(experiment.name), self._place(experiment, source_index)
        if place is None:
            return []
        batch, found = place[0], []
        for round_ in range(experiment.rounds):
            stem = self._blind_spot_piece(key, batch, round_)
            table = stem.with_suffix(".csv")
            rows = self.files.read_rows(table, ("source", "target", *BLIND_SPOT_NUMBERS)) if self.files.is_finished(stem) else None
            for row in rows or []:
                if int(row["source"]) == source_index:
                    target = int(row["target"])
                    if not 0 <= target < len(pool["names"]):
                        self.files.problem(table, f"names target {target}, not a source of the pool; that row is left out")
                        continue
                    found.append({"round": round_, "target": target, "target_name": pool["names"][target],
                                  "target_class": pool["class_names"][target],
                                  **{c: row[c] for c in BLIND_SPOT_NUMBERS}})
        return found

    def source_rows(self, key) -> list[dict]:
        """Every source of the model's pool: index, name, class, its Table-2 numbers (None where its
        batch's triangles are missing) and its blind spots summarised (``BLIND_SPOT_COLUMNS``)."""
        return self.files.once(("sources", key), lambda: self._source_rows(key))

    def _source_rows(self, key) -> list[dict]:
        experiment, _ = self._model(key)
        pool = self.pool(experiment.name)
        if pool is None:
            return []
        triangles = {}
        for b, _ in enumerate(self._batches(experiment)):
            stem = self._triangle_piece(key, b)
            rows = self.files.read_rows(stem.with_suffix(".csv"), ("source", *TRIANGLE_NUMBERS)) if self.files.is_finished(stem) else None
            for row in rows or []:
                triangles[int(row["source"])] = row
        rows = []
        for source_index, (name, class_name) in enumerate(zip(pool["names"], pool["class_names"])):
            spots = self.blind_spot_rows(key, source_index)
            rows.append({"source": source_index, "name": name, "class": class_name, "blind_spots": len(spots),
                         **{c: triangles[source_index][c] if source_index in triangles else None
                            for c in TRIANGLE_NUMBERS},
                         **_summarised(spots)})
        return rows

    def sorted_sources(self, key, column: str, lowest_first: bool = True) -> list[dict]:
        """:meth:`source_rows` sorted by ``column`` (rows without it last)."""
        if column not in SOURCE_COLUMNS and column not in ("source", "name", "class"):
            raise ValueError(f"no column {column!r} to sort by; the columns are {', '.join(SOURCE_COLUMNS)}")
        def known(row):
            return row[column] is not None and not (isinstance(row[column], float) and math.isnan(row[column]))
        rows = self.source_rows(key)
        have = sorted((r for r in rows if known(r)), key=lambda r: r[column], reverse=not lowest_first)
        return have + [r for r in rows if not known(r)]

    def contradicting(self, key, contradiction: Contradiction, count: int = 5) -> list[dict]:
        """The ``count`` sources that go furthest against ``contradiction``'s finding."""
        rows = self.sorted_sources(key, contradiction.column, contradiction.lowest_first)
        return [r for r in rows if r[contradiction.column] is not None][:count]

    # -- images and triangles ------------------------------------------------------------------------
    def blind_spot_images(self, key, source_index: int) -> dict[int, torch.Tensor]:
        """The source's stored blind spots by round, (C, H, W) in [0, 1] (rounds missing or damaged left out)."""
        experiment, _ = self._model(key)
        place = self._place(experiment, source_index)
        if place is None:
            return {}
        (batch, row, rows), found = place, {}
        for round_ in range(experiment.rounds):
            stem = self._blind_spot_piece(key, batch, round_)
            tensor = self.files.read_tensor(stem.with_suffix(".pt"), rows) if self.files.is_finished(stem) else None
            if tensor is not None:
                found[round_] = tensor[row].float().clone()
        return found

    def pool_images(self, key) -> tuple[PoolImages | None, str]:
        """The experiment's pool images at the size of its blind spots, opened from its image source on this
        machine (each read when first asked for), and a line saying where they come from (or why they are not
        at hand: then None)."""
        experiment, _ = self._model(key)
        first = next(self._finished_tensors(key), None)
        size = None if first is None else tuple(first.shape[1:])
        crop_pct = self._model_record(key).get("crop_pct")
        if isinstance(crop_pct, bool) or not (isinstance(crop_pct, (int, float)) and 0 < crop_pct <= 1):
            crop_pct = None  # not recorded (or not a crop): the default of the input size, as the run had
        return self.files.once(("images", experiment.name, size, crop_pct),
                               lambda: self._open_images(experiment, size, crop_pct))

    def _finished_tensors(self, key):
        """The model's blind-spot tensors that load, one at a time (each is read as it is reached)."""
        experiment, _ = self._model(key)
        for batch, sources in enumerate(self._batches(experiment)):
            for round_ in range(experiment.rounds):
                stem = self._blind_spot_piece(key, batch, round_)
                tensor = self.files.read_tensor(stem.with_suffix(".pt"), len(sources)) if self.files.is_finished(stem) else None
                if tensor is not None:
                    yield tensor

    def _open_images(self, experiment, size, crop_pct) -> tuple[PoolImages | None, str]:
        """The pool's images: the files the pool names, each checked against its sha256 (a labelled or
        unlabelled folder, ImageNet: the folder is neither listed nor labelled again, no model's classes are
        needed); else the image source reopened read-only (``download=False``: nothing fetched or created)."""
        where, pool = experiment.image_source, self.pool(experiment.name)
        if size is None or pool is None:
            return None, f"the images of {where} are not shown: no blind spot of this model is stored to size them"
        names, digests = pool["names"], pool.get("sha256")

        def unreadable(index, error):
            self.files.problem(Path(names[index]), f"pool image {index} cannot be shown ({error})")
        files = pool.get("sha256_of", "files") == "files"  # runs before "sha256_of": hashes were of files only
        if files and isinstance(digests, list) and all(isinstance(d, str) for d in digests):
            transform = preprocess_for(size, crop_pct)

            def read(index):  # a regular file of a bounded size only: a device or FIFO named there is never read
                status = os.stat(names[index])
                if not stat.S_ISREG(status.st_mode) or not 0 < status.st_size <= MAX_IMAGE_BYTES:
                    raise ValueError(f"not an image file (a regular file of 1 to {MAX_IMAGE_BYTES} bytes)")
                return pool_files(experiment, {"names": [names[index]], "sha256": [digests[index]]}, transform)[0]
            images = PoolImages(read, len(names), unreadable)
            return images, f"sources and targets read from the files of {where} the pool names, checked by sha256"
        try:
            dataset = open_source(where, size, seed=experiment.seed, download=False)
            indices = locate_pool(experiment, pool, dataset)
        except Exception as error:  # a missing folder, other files, an unreadable image: said, not raised
            return None, (f"sources and targets not shown: the images of {where} are not at hand on this machine "
                          f"({type(error).__name__}: {str(error)[:160]}); the stored blind spots are shown")
        return (PoolImages(lambda index: dataset[indices[index]][0], len(indices), unreadable),
                f"sources and targets reopened from {where} on this machine")

    def triangle(self, key, source_index: int, pair: tuple[int, int] = (0, 1)) -> StoredTriangle | None:
        """The source's stored triangle grid, drawn in the shape of the blind spots of rounds ``pair``;
        None when its batch's triangles are missing or damaged."""
        experiment, _ = self._model(key)
        i, j = pair
        if not 0 <= i < j < experiment.rounds:
            raise ValueError(f"a pair is two rounds i < j below {experiment.rounds}, got {pair}")
        place = self._place(experiment, source_index)
        if place is None:
            return None
        batch, row, rows = place
        stem = self._triangle_piece(key, batch)
        grids = self.files.read_tensor(stem.with_suffix(".pt"), rows) if self.files.is_finished(stem) else None
        if grids is None:
            return None
        problem = layout.grids_problem(grids, experiment.rounds, experiment.divisions)
        if problem:
            self.files.problem(stem.with_suffix(".pt"), f"{problem}; left out")
            return None
        grid, own = layout.pair_grid(grids, row, pair, experiment.rounds)
        spots = self.blind_spot_images(key, source_index)
        images, _ = self.pool_images(key)
        corners = [None if images is None else images[source_index], spots.get(i), spots.get(j)]
        pairs = math.comb(experiment.rounds, 2)
        what = (f"source-class confidence over the triangle of the blind spots of rounds {i} and {j}" if own else
                f"source-class confidence averaged over the source's {pairs} pairs of blind spots (this run, "
                "from before format version 2, stores only their mean)")
        if all(c is not None and c.shape == corners[0].shape for c in corners):
            source_image, a, b = (c.double() for c in corners)
            shape = triangle_shape(source_image, a, b)
            angle = math.degrees(math.atan2(shape[2, 1], shape[2, 0]))
            drawn = (f"drawn in the true shape of the blind spots of rounds {i} and {j} (L2 distances to the source "
                     f"{(a - source_image).norm():.3g} and {(b - source_image).norm():.3g}, angle {angle:.1f} deg)")
        else:
            shape, drawn = EQUILATERAL, "drawn on an equilateral triangle (the source image is not at hand)"
        return StoredTriangle(grid.double().clone(), experiment.divisions, shape, corners, pair, pairs, own,
                              f"{what}, {drawn}")

    def _records(self, key) -> list[dict]:
        """The model's shard records (``record_shard*.json``) that read."""
        records = [self.files.read_json(path) for path in sorted(self._model_dir(key).glob("record_shard*.json"))]
        return [r for r in records if isinstance(r, dict)]

    def _model_record(self, key) -> dict:
        """What the run recorded of the model's wrapper (input size, crop, class names): its identity in the
        settings, else (older runs) its shards' records of it; {} when neither holds it."""
        identity = self.weights.get(self._model(key)[1], {}).get("model")
        if isinstance(identity, dict):
            return identity
        return next((r["model"] for r in self._records(key) if isinstance(r.get("model"), dict)), {})

    # -- the tables -------------------------------------------------------------------------------------
    def table_rows(self, key) -> dict[str, dict | None]:
        """The model's own row of the run's ``table1.csv`` and ``table2.csv`` (its ``<column>_mean`` and
        ``_std`` as numbers), by table; None for a table not assembled yet (or damaged: then a problem)."""
        experiment, model = self._model(key)
        name = row_names({e.name: e.models for e in self.experiments.values()}, self.weights)[experiment.name, model]
        found = {}
        for table, columns in TABLE_COLUMNS:
            path = self.run_dir / f"{table}.csv"  # a FIFO or a device there is no file: never opened
            numbers = [f"{key}_{part}" for key in columns for part in ("mean", "std")]
            rows = self.files.read_rows(path, numbers) if path.is_file() else None
            found[table] = next((r for r in rows or [] if (r.get("model"), r.get("source")) == (name, "ours")), None)
        return found

    # -- provenance -----------------------------------------------------------------------------------
    def provenance(self, key) -> dict:
        """What produced the model's numbers: model, weights, images, hyperparameters, the devices and the
        package versions of its shards (from their records), and this package's version reading them."""
        experiment, model = self._model(key)
        records = self._records(key)
        return {"model": model, "weights": self.weights.get(model, {}), "image_source": str(experiment.image_source),
                "lst": {k: v for k, v in experiment.to_dict()["lst"].items() if k not in ("record_every", "seed",
                                                                                          "record_images")},
                "rounds": experiment.rounds, "divisions": experiment.divisions, "seed": experiment.seed,
                "execution": experiment.to_dict()["execution"],
                "devices": sorted({str(r.get("device")) for r in records}) or ["not recorded"],
                "versions": sorted({str(r.get("versions", {}).get("blindspots_nb")) for r in records}) or ["not recorded"],
                "browsed_with": __version__}

    def caption(self, key) -> str:
        """:meth:`provenance` as one line, for every view and figure."""
        p = self.provenance(key)
        weights = p["weights"]
        sha = weights.get("sha256", "")[:12] or "unknown"
        lst = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in p["lst"].items())
        execution = ", ".join(f"{k}={v}" for k, v in p["execution"].items())
        return (f"{p['model']} [weights sha256 {sha}{', verified' if weights.get('verified') else ''}] | "
                f"{p['image_source']} | {lst}, rounds={p['rounds']}, divisions={p['divisions']}, seed={p['seed']} | "
                f"{execution} | {'; '.join(p['devices'])} | blindspots_nb {', '.join(p['versions'])} "
                f"(browsed with {p['browsed_with']}) | run {self.run_dir.name}")



def _summarised(spots: list[dict]) -> dict:
    """A source's blind-spot rows as ``BLIND_SPOT_COLUMNS`` (None when it has none)."""
    if not spots:
        return dict.fromkeys(BLIND_SPOT_COLUMNS)
    def mean(column):
        return sum(s[column] for s in spots) / len(spots)
    return {"confidence_min": min(s["confidence"] for s in spots),
            "drop_max": max(s["initial_confidence"] - s["confidence"] for s in spots),
            "rmse_mean": mean("rmse"), "rmse_max": max(s["rmse"] for s in spots), "linf_mean": mean("linf"),
            "ssim_mean": mean("ssim"), "lpips_mean": mean("lpips")}
