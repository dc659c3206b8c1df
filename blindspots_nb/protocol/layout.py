"""The layout of a run folder, spelled once: every name a run writes, the formats of its
files, and the readers that both the run store (:mod:`.store`, which writes them) and the
run browser (:mod:`blindspots_nb.browser`, which only reads) use. Nothing here writes.

::

    settings.json                       the experiments of the run (checked on every rerun)
    <experiment>/pool.json              the pool and its derangements
    <experiment>/<model>/blind_spots/b0003_r1.{pt,csv}   a source batch's blind spots in one round
    <experiment>/<model>/triangles/b0003.{csv,pt}        its Table-2 rows and triangle grids
    <experiment>/<model>/record_shard0of1.json           what produced a shard's work
    <experiment>/<model>/per_blindspot.csv, per_source.csv
    notebooks/<experiment>_<model>_shard0of1.ipynb       the executed notebooks
    table1.{md,tex,csv}, table2.{md,tex,csv}, summaries.json, run.json
    .lock                                                who holds the folder now

``<model>`` is a registry name, or for a factory spec (``file.py:build``, which holds '/'
and ':') its function's name and a short hash of the spec (``build-1a2b3c4d``:
:func:`~blindspots_nb.models.spec.model_folder`). A finished piece (a pool, a batch's blind
spots of one round, a batch's triangles) has a manifest, ``<piece>.manifest.json``.

Formats: settings.json says ``"format": "blindspots_nb run"`` and, from version 2 on,
``"version"``. Version 1 stored each source's triangle grid averaged over its pairs,
(sources, points); version 2 stores every pair's grid, (sources, pairs, points), pairs in
``itertools.combinations`` order (:func:`pair_grid` reads both; a version-1 run resumed by a
later version holds pieces of both, each tensor's shape says which). Older names still read:
a pool's ``source`` (now ``image_source``), a blind-spot row's ``p0`` (now
``initial_confidence``).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from pathlib import Path

import torch

from ..models.spec import model_folder
from ..tools import atomic
from ..tools.deprecation import renamed_keys
from .experiment import Experiment

RUN_FORMAT = "blindspots_nb run"
VERSION = 2  # 2: each pair's triangle grid; 1 (no "version"): grids averaged over a source's pairs
SETTINGS, LOCK, POOL = "settings.json", ".lock", "pool.json"
SUMMARIES, RUN_RECORD = "summaries.json", "run.json"
PER_BLINDSPOT, PER_SOURCE = "per_blindspot.csv", "per_source.csv"
BLIND_SPOTS, TRIANGLES, REPORTS = "blind_spots", "triangles", "notebooks"
PIECE_SUFFIXES = (".pt", ".csv")  # a blind-spot or a triangle piece: a batch's tensor and its rows
OLD_POOL_KEYS = {"source": "image_source"}
OLD_ROW_KEYS = {"p0": "initial_confidence"}

# The names a run writes, by kind of folder: a file pattern and the kinds of its subfolders
# ("*": any other folder name; experiments and models are named by the run's settings).
FOLDERS = {
    "root": (r"(settings|run|summaries)\.json|table[12]\.(md|tex|csv)|\.lock", {REPORTS: "reports", "*": "experiment"}),
    "reports": (r".+_shard\d+of\d+\.ipynb", {}),
    "experiment": (r"pool\.json(\.manifest\.json)?", {"*": "model"}),
    "model": (r"record_shard\d+of\d+\.json|per_blindspot\.csv|per_source\.csv",
              {BLIND_SPOTS: "blind_spots", TRIANGLES: "triangles"}),
    "blind_spots": (r"b\d{4,}_r\d+\.(pt|csv|manifest\.json)", {}),
    "triangles": (r"b\d{4,}\.(pt|csv|manifest\.json)", {}),
}


class RunSettingsMismatch(RuntimeError):
    """The output folder holds a run made with other settings, weights or images."""


class RunFolderBusy(RuntimeError):
    """Another run holds the output folder."""


class RunFolderError(ValueError):
    """The output folder cannot be used as it is (not a folder, not a run's, damaged, not writable)."""


def listing(names: list[str], limit: int = 8) -> str:
    """Names in a message: the first ``limit``, and how many more."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


# -- names ------------------------------------------------------------------------------------
def component(name: str, what: str) -> str:
    """``name`` as one folder name under the output folder: never a path, never hidden."""
    if not isinstance(name, str) or not name or name in (".", "..") or name.startswith(".") \
            or any(c in name for c in "/\\\0"):
        raise RunFolderError(f"{what} {name!r} cannot name a folder of a run (it must be one plain folder name, "
                             "without '/', not starting with '.')")
    return name


def experiment_dir(root: Path, experiment: str) -> Path:
    return root / component(experiment, "the experiment name")


def pool_path(root: Path, experiment: str) -> Path:
    return experiment_dir(root, experiment) / POOL


def model_dir(root: Path, experiment: str, model_name: str) -> Path:
    return experiment_dir(root, experiment) / component(model_folder(model_name), "the model name")


def blind_spots_stem(model_folder_path: Path, batch: int, round_: int) -> Path:
    return model_folder_path / BLIND_SPOTS / f"b{batch:04d}_r{round_}"


def triangles_stem(model_folder_path: Path, batch: int) -> Path:
    return model_folder_path / TRIANGLES / f"b{batch:04d}"


def piece_files(stem: Path) -> list[Path]:
    """A batch's tensor and its rows: the files of a blind-spot or a triangle piece."""
    return [stem.with_suffix(suffix) for suffix in PIECE_SUFFIXES]


def manifest_path(stem: Path) -> Path:
    return stem.with_name(stem.name + ".manifest.json")


def record_name(shard: tuple[int, int]) -> str:
    return f"record_shard{shard[0]}of{shard[1]}.json"


def report_name(experiment: str, model_name: str, shard: tuple[int, int]) -> str:
    """The executed notebook of one model's shard, in ``notebooks/``."""
    return f"{experiment}_{component(model_folder(model_name), 'the model name')}_shard{shard[0]}of{shard[1]}.ipynb"


def _report_shard(name: str, experiment: str, model_name: str) -> tuple[int, int] | None:
    """The shard whose executed notebook ``name`` is, for ``model_name`` of ``experiment``; None when it is not."""
    match = re.search(r"_shard(\d+)of(\d+)\.ipynb$", name)
    shard = None if match is None else (int(match[1]), int(match[2]))
    return shard if shard is not None and report_name(experiment, model_name, shard) == name else None


def survey(folder: Path, kind: str = "root", relative: str = "") -> tuple[list[Path], list[Path], list[str]]:
    """The files and folders under ``folder`` that a run writes (its own temporary files
    included), and the others, as relative names. Links are never followed: a run makes none."""
    pattern, subfolders = FOLDERS[kind]
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
            more = survey(entry, sub, name + "/")
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


# -- the run's settings ----------------------------------------------------------------------
def settings_experiments(value) -> list[Experiment]:
    """The experiments of a run's ``settings.json`` (fields added since take their defaults),
    every name a plain folder name; ValueError saying what is wrong when it is not a run's."""
    if not isinstance(value, dict):
        raise ValueError(f"it holds a JSON {type(value).__name__}, not the run's settings")
    if not {"experiments", "weights"} <= set(value) or set(value) - {"format", "version", "experiments", "weights"}:
        raise ValueError(f"its fields are {sorted(value)}; a run's settings have experiments, weights, format "
                         "and version")
    if not isinstance(value["experiments"], list) or not isinstance(value["weights"], dict) or not all(
            isinstance(w, dict) and isinstance(w.get("sha256"), str) for w in value["weights"].values()):
        raise ValueError("experiments must be a list and weights a mapping of model to file identity")
    try:
        experiments = [Experiment.from_dict(e) for e in value["experiments"]]
        for experiment in experiments:
            for model_name in experiment.models:
                model_dir(Path(), experiment.name, model_name)
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise ValueError(f"an experiment cannot be read ({error})") from None
    return experiments


def identity(settings: dict) -> dict:
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


def differences(old, new, prefix="") -> list[str]:
    """Where two JSON-like values differ, as 'key.path: old there, new now' (long values cut)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new))
                for d in differences(old.get(key), new.get(key), f"{prefix}{key}.")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{prefix}{i}.")]
    shown = lambda value: repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."  # noqa: E731
    return [] if old == new else [f"{prefix.rstrip('.')}: {shown(old)} there, {shown(new)} now"]


def check_run_folder(out_dir: Path, force: bool = False) -> None:
    """Refuse a folder a run must not use (:class:`RunFolderError`): a file or a dangling link
    instead of a folder, or a folder that holds something other than a run's files and is not
    a run folder (or, with ``force``, whose other files would have to go)."""
    atomic.check_folder(out_dir, "the output folder")
    if not out_dir.is_dir():
        return
    _, _, foreign = survey(out_dir)
    if foreign and (force or not (out_dir / SETTINGS).is_file()):
        raise RunFolderError(
            f"{out_dir} holds files that are not a run's ({listing(foreign)}): "
            + ("--force removes only what a run wrote, so it leaves this folder alone; move those files, "
               "or use another output folder" if force else
               "a run starts only in a new or empty folder or in a run folder; use another output folder"))


# -- readers ----------------------------------------------------------------------------------
def manifest_entries(manifest, names: list[str]) -> dict[str, dict]:
    """A piece manifest's record of each of ``names`` (size, sha256, mtime_ns); ValueError when it
    is not the manifest of exactly these files."""
    try:
        entries = manifest["files"]
        if sorted(entries) != sorted(names) or not all(isinstance(e["size"], int) for e in entries.values()):
            raise ValueError
    except (KeyError, TypeError, AttributeError):
        raise ValueError("not a piece's manifest") from None
    return entries


def pool_record(value: dict, where: str) -> dict:
    """A pool record as this version names its fields (``source`` read as ``image_source``)."""
    return renamed_keys(value, where, **OLD_POOL_KEYS)


def read_rows(path: Path) -> list[dict]:
    """A piece's or a model's CSV rows as text, old column names read as today's."""
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
    return [renamed_keys(row, str(path), **OLD_ROW_KEYS) for row in rows]


def pool_problem(pool) -> str | None:
    """What is wrong with a pool record as a reader (the run browser) needs it (None: nothing): names, labels and class
    names of the same two or more sources, and each file's sha256 (or null) where it records them."""
    if not isinstance(pool, dict):
        return f"a JSON {type(pool).__name__}"
    fields = {"names": str, "labels": int, "class_names": str}
    missing = [field for field in fields if not isinstance(pool.get(field), list)]
    if missing:
        return f"no list of {', '.join(missing)}"
    wrong = [field for field, kind in fields.items() if not all(type(v) is kind for v in pool[field])]
    if wrong:
        return f"{', '.join(wrong)} not all {'/'.join(fields[f].__name__ for f in wrong)}"
    digests = pool.get("sha256", [None] * len(pool["names"]))  # runs record them; a record without is read too
    if not (isinstance(digests, list) and all(d is None or isinstance(d, str) for d in digests)):
        return "sha256 not a list of text or null"
    lengths = {**{field: len(pool[field]) for field in fields}, "sha256": len(digests)}
    if len(set(lengths.values())) != 1 or lengths["names"] < 2:
        return "lengths " + ", ".join(f"{field} {n}" for field, n in lengths.items()) + " (two or more, all equal)"
    return None


def grid_points(divisions: int) -> int:
    """How many points a triangle grid of ``divisions`` has."""
    return (divisions + 1) * (divisions + 2) // 2


def _pairs_of(rounds: int) -> list[tuple[int, int]]:
    """The pairs of blind spots (rounds i < j) in the order a version-2 grid stores them."""
    return list(itertools.combinations(range(rounds), 2))


def grids_problem(grids: torch.Tensor, rounds: int, divisions: int) -> str | None:
    """What is wrong with a triangles piece's tensor (one row per source), None when it is one:
    (sources, pairs, points), or (sources, points) for runs before version 2."""
    pairs, points = len(_pairs_of(rounds)), grid_points(divisions)
    if tuple(grids.shape[1:]) in ((pairs, points), (points,)):
        return None
    return (f"holds grids of shape {tuple(grids.shape[1:])}, neither ({pairs}, {points}) (each of {pairs} pairs) "
            f"nor ({points},) (their mean) for {divisions} divisions")


def pair_grid(grids: torch.Tensor, row: int, pair: tuple[int, int], rounds: int) -> tuple[torch.Tensor, bool]:
    """The triangle grid of the source at ``row`` of a triangles piece for the blind spots of
    rounds ``pair``, (points,), and whether it is that pair's own: a run of version 2 stores
    each pair's grid; an older one only the mean over the source's pairs (then False)."""
    if tuple(pair) not in _pairs_of(rounds):
        raise ValueError(f"a pair is two rounds i < j below {rounds}, got {pair}")
    if grids.ndim == 2:
        return grids[row], False
    return grids[row, _pairs_of(rounds).index(tuple(pair))], True


def reports(run_dir: Path, experiment: str, model_name: str) -> dict[tuple[int, int], str | None]:
    """The executed notebooks of ``model_name`` on ``experiment`` by shard, each with what is wrong with it (None:
    nothing; a report is whole when it ran every cell without an error and drew its
    figures). A notebook cut by a full disk or stopped by Ctrl-C is not a report."""
    import nbformat

    found = {}
    for path in sorted((run_dir / REPORTS).glob("*.ipynb")):
        shard = _report_shard(path.name, experiment, model_name)
        if shard is None:
            continue
        try:
            cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        except Exception as error:  # nbformat raises JSON, schema and encoding errors alike
            found[shard] = f"not a notebook ({type(error).__name__})"
            continue
        errors = [o.get("ename", "an error") for c in cells for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        figures = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        found[shard] = (
            f"stopped with {errors[0]}" if errors else
            "not run to its end" if any(c.get("execution_count") is None for c in cells) else
            None if figures else "without its figures")
    return found
