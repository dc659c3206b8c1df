"""The protocol behind the paper's Tables 1 and 2, resumable and shardable.

A run is a list of *experiments*; each names a dataset, the models studied on it,
the pool rule and the LST hyperparameters. For each experiment:

1. ``prepare``: the pool — one image per class that every model of the experiment
   classifies correctly with confidence above ``min_conf`` — and ``rounds`` random
   derangements of it (every source gets one target per round), written once.
2. ``run_model``: per model, the pool is cut into source batches; for every batch and
   round LST makes the blind spots and Table-1 distances are measured; once a batch
   has all its rounds, Table-2 statistics over the triangles (source, o_i, o_j) of all
   pairs i < j are measured. Each (batch, round) and each batch's triangles is a file
   of its own: a rerun skips what exists, and shard i of n does the batches b with
   b % n == i.
3. ``merge``: the per-batch files become per-blind-spot and per-source CSVs, and
   ``assemble_tables`` writes Tables 1 and 2 (Markdown, LaTeX, CSV) with the paper's
   rows beside ours.

Every file says what produced it (``run.json``, the tables' captions).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import torch
from tqdm.std import tqdm  # text progress: it reaches the terminal through papermill's streams too

from . import provenance
from .geometry import DROPS, stats_from_confidence, triangle_confidence
from .lst import LSTConfig, traverse
from .metrics import LPIPSDistance, target_distances

# ----------------------------------------------------------------- the paper's numbers
# (mean, std) per model, ImageNet, from the paper's Tables 1 and 2.
PAPER_TABLE1 = {
    "resnet50": {"rmse": (0.008, 0.001), "linf": (0.046, 0.020), "ssim": (0.990, 0.021), "lpips": (0.002, 0.004)},
    "resnet50_at": {"rmse": (0.029, 0.008), "linf": (0.746, 0.124), "ssim": (0.915, 0.041), "lpips": (0.057, 0.037)},
    "deit_small_patch16_224": {"rmse": (0.011, 0.002), "linf": (0.116, 0.030), "ssim": (0.973, 0.024),
                               "lpips": (0.024, 0.017)},
    "deit_small_at": {"rmse": (0.046, 0.010), "linf": (0.821, 0.117), "ssim": (0.898, 0.041), "lpips": (0.219, 0.068)},
}
PAPER_TABLE2 = {
    "resnet50": {"p_src": (0.99, 0.02), "avg_conf": (0.56, 0.10), "frac_0": (0.13, 0.15), "frac_0.1": (0.51, 0.11),
                 "frac_0.2": (0.53, 0.10), "frac_0.3": (0.54, 0.10), "path_conf": (0.96, 0.05)},
    "resnet50_at": {"p_src": (0.88, 0.11), "avg_conf": (0.83, 0.09), "frac_0": (0.49, 0.29), "frac_0.1": (0.79, 0.13),
                    "frac_0.2": (0.85, 0.10), "frac_0.3": (0.88, 0.09), "path_conf": (0.93, 0.06)},
    "deit_small_patch16_224": {"p_src": (0.85, 0.06), "avg_conf": (0.68, 0.05), "frac_0": (0.54, 0.11),
                               "frac_0.1": (0.67, 0.06), "frac_0.2": (0.71, 0.06), "frac_0.3": (0.73, 0.06),
                               "path_conf": (0.94, 0.02)},
    "deit_small_at": {"p_src": (0.76, 0.08), "avg_conf": (0.59, 0.07), "frac_0": (0.20, 0.09), "frac_0.1": (0.43, 0.14),
                      "frac_0.2": (0.63, 0.15), "frac_0.3": (0.76, 0.12), "path_conf": (0.73, 0.06)},
}
TABLE1_COLUMNS = {"rmse": "RMSE", "linf": "l_inf", "ssim": "SSIM", "lpips": "LPIPS"}
TABLE2_COLUMNS = {"p_src": "p_src", "avg_conf": "Avg Delta Conf", **{f"frac_{d:g}": f"Frac d={d:g}" for d in DROPS},
                  "path_conf": "Avg Path Conf"}
DATASETS = ("fonts", "photos", "imagenet", "cifar10", "folder")


class RunSettingsMismatch(RuntimeError):
    """The output folder holds a run made with other settings."""


@dataclass
class Experiment:
    """One dataset, the models studied on it, the pool rule and LST's hyperparameters."""

    dataset: str
    models: list[str]
    data_root: str | None = None
    n_sources: int | None = None   # cap on the pool size (None: the whole pool)
    per_class: int = 1
    min_conf: float = 0.6
    rounds: int = 5
    lst: dict = field(default_factory=lambda: dataclasses.asdict(LSTConfig()))
    batch_size: int = 196
    divisions: int = 10
    seed: int = 0
    note: str = ""

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known: {', '.join(DATASETS)}")
        if self.dataset in ("imagenet", "cifar10", "folder") and not self.data_root:
            raise ValueError(f"dataset {self.dataset!r} needs a data root (--data-root)")
        if self.rounds < 2:
            raise ValueError(f"rounds must be >= 2 (Table 2 needs pairs of blind spots), got {self.rounds}")
        if not self.models:
            raise ValueError("an experiment needs at least one model")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.lst = dataclasses.asdict(LSTConfig(**self.lst))  # validates

    @property
    def key(self) -> str:
        """A short name of the experiment, for its folder."""
        return self.dataset

    def lst_config(self, seed: int) -> LSTConfig:
        return LSTConfig(**{**self.lst, "seed": seed})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------- presets
def preset(name: str, data_root: str | None = None) -> list[Experiment]:
    """The experiments of a named preset: ``offline`` (default) or ``paper``."""
    paper_lst = dict(step_size=1e-2, iterations=400, delta=0.2, eps=2e-3, init_noise=4 / 255)
    if name == "offline":
        return [
            Experiment("fonts", ["fonts_cnn", "fonts_cnn_at"], lst=paper_lst, batch_size=196,
                       note="FONTS-style glyphs (test fonts), paper hyperparameters"),
            Experiment("photos", ["efficientnet_lite0"], min_conf=0.3, batch_size=16,
                       lst=dict(paper_lst, step_size=4e-2, iterations=100),
                       note="scikit-image photos: no ImageNet labels, so the model's own prediction is the "
                            "label and the pool rule is relaxed to confidence > 0.3; 100 iterations of step "
                            "0.04 stand in for 400 of 0.01 (0.96^100 ~ 0.99^400 ~ 0.02)"),
        ]
    if name == "paper":
        if not data_root:
            raise ValueError("the paper preset needs ImageNet validation images: pass --data-root")
        return [Experiment("imagenet", ["resnet50", "resnet50_at", "deit_small_patch16_224", "deit_small_at"],
                           data_root=data_root, lst=paper_lst, batch_size=196,
                           note="the paper's protocol and hyperparameters (ImageNet)")]
    raise ValueError(f"unknown preset {name!r}; known: offline, paper")


# ----------------------------------------------------------------- pool and derangements
def derangements(n: int, rounds: int, seed: int) -> torch.Tensor:
    """(rounds, n) permutations with no fixed point, one per round, from ``seed``."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 sources, the pool has {n}")
    generator = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < rounds:
        permutation = torch.randperm(n, generator=generator)
        if not (permutation == torch.arange(n)).any():
            out.append(permutation)
    return torch.stack(out)


def load_dataset(experiment: Experiment, model):
    """The experiment's dataset, preprocessed for ``model``'s input size."""
    from . import data

    if experiment.dataset == "fonts":
        return data.fonts_dataset("test", n=1000, seed=experiment.seed, size=model.input_size[-1])
    if experiment.dataset == "photos":
        images, names = data.sample_images(model)
        return data.TensorImages(images, torch.full((len(names),), -1), list(model.class_names), names)
    if experiment.dataset == "imagenet":
        return data.imagenet_val(experiment.data_root, size=model)
    if experiment.dataset == "cifar10":
        return data.cifar10(experiment.data_root)
    return data.image_folder(experiment.data_root, size=model)


def _self_labelled(dataset, model):
    """Unlabelled images labelled by the model's own prediction (bundled photos)."""
    from .data import TensorImages

    from .models import module_device

    with torch.no_grad():
        labels = model(dataset.images.to(module_device(model))).argmax(1).cpu()
    return TensorImages(dataset.images, labels, dataset.class_names, dataset.names)


def _experiment_dir(out: Path, experiment: Experiment) -> Path:
    return out / experiment.key


def _atomic_write_text(path: Path, text: str):
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def check_settings(out: Path, experiments: list[Experiment], force: bool = False):
    """Refuse to mix runs: the folder's ``settings.json`` must match these settings.
    With ``force`` the folder's results (old and new experiments) are removed instead."""
    out = Path(out)
    settings = {"experiments": [e.to_dict() for e in experiments]}
    path = out / "settings.json"
    stored = json.loads(path.read_text()) if path.exists() else None
    if force:
        for dataset in {e["dataset"] for e in (stored or {"experiments": []})["experiments"]} | {
                e.dataset for e in experiments}:
            shutil.rmtree(out / dataset, ignore_errors=True)
    elif stored is not None:
        _refuse_other_settings(stored, settings, out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, json.dumps(settings, indent=2))


def _refuse_other_settings(stored: dict, settings: dict, where: Path):
    if stored != settings:
        differences = _differences(stored, settings)
        raise RunSettingsMismatch(
            f"{where} holds a run with other settings ({'; '.join(differences[:6])}). "
            "Use another output folder, or --force to replace that run.")


def _differences(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, f"{prefix}{i}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} there, {new!r} now"]


def prepare(experiment: Experiment, out: Path, device=None, weights: dict | None = None) -> dict:
    """Select the pool and draw the derangements (once; later calls read the file).
    Refuses a folder that holds this experiment's results under other settings."""
    from .data import select_pool
    from .models import load_model

    folder = _experiment_dir(Path(out), experiment)
    settings_path, path = folder / "experiment.json", folder / "pool.json"
    if settings_path.exists():
        _refuse_other_settings(json.loads(settings_path.read_text()), experiment.to_dict(), folder)
        if path.exists():
            return json.loads(path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(settings_path, json.dumps(experiment.to_dict(), indent=2))
    weights = weights or {}
    models = [load_model(name, device=device, weights=weights.get(name)) for name in experiment.models]
    dataset = load_dataset(experiment, models[0])
    if experiment.dataset == "photos":
        dataset = _self_labelled(dataset, models[0])
    pool = select_pool(models, dataset, per_class=experiment.per_class, min_conf=experiment.min_conf)
    keep = len(pool) if experiment.n_sources is None else min(len(pool), experiment.n_sources)
    if keep < 2:
        raise ValueError(f"only {len(pool)} image(s) of {experiment.dataset} pass the pool rule (correct, "
                         f"confidence > {experiment.min_conf} under {', '.join(experiment.models)}); "
                         "LST's derangements need at least 2")
    record = {
        "dataset": experiment.dataset, "indices": pool.indices[:keep], "names": pool.names[:keep],
        "labels": pool.labels[:keep].tolist(), "class_names": [pool.class_names[i] for i in pool.labels[:keep]],
        "confidence": {m: pool.confidences[:keep, j].tolist() for j, m in enumerate(experiment.models)},
        "passed_rule": len(pool), "min_conf": experiment.min_conf, "per_class": experiment.per_class,
        "targets": derangements(keep, experiment.rounds, experiment.seed).tolist(),
    }
    _atomic_write_text(path, json.dumps(record, indent=1))
    return record


def pool_images(experiment: Experiment, pool: dict, model) -> torch.Tensor:
    """The pool's images at ``model``'s input size, in [0, 1]."""
    dataset = load_dataset(experiment, model)
    return torch.stack([dataset[i][0] for i in pool["indices"]])


# ----------------------------------------------------------------- one model
def _seed(experiment: Experiment, batch: int, round_: int) -> int:
    """A seed per (batch, round): every piece of work is reproducible on its own."""
    digest = hashlib.sha256(f"{experiment.seed}/{batch}/{round_}".encode()).hexdigest()
    return int(digest[:8], 16)


def _write_rows(path: Path, rows: list[dict]):
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write_text(path, text.getvalue())


def _read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _blind_spots_stem(folder: Path, batch: int, round_: int) -> Path:
    """Where a (source batch, round) keeps its blind spots (.pt) and their rows (.csv)."""
    return folder / "blind_spots" / f"b{batch:04d}_r{round_}"


def _triangles_path(folder: Path, batch: int) -> Path:
    """Where a source batch keeps its Table-2 rows."""
    return folder / "triangles" / f"b{batch:04d}.csv"


def source_batches(n_sources: int, batch_size: int) -> list[range]:
    return [range(start, min(start + batch_size, n_sources)) for start in range(0, n_sources, batch_size)]


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"a shard is written i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"shard {text}: need 0 <= i < n")
    return index, count


def run_model(experiment: Experiment, model_name: str, out, shard: tuple[int, int] = (0, 1), device=None,
              weights: str | None = None, progress: bool = True, lpips: LPIPSDistance | None = None) -> dict:
    """Blind spots, Table-1 distances and Table-2 triangle statistics of one model, for
    this shard's source batches; skips batches whose files exist. Returns timings."""
    from .models import load_model, module_device

    out = Path(out)
    folder = _experiment_dir(out, experiment) / model_name
    (folder / "blind_spots").mkdir(parents=True, exist_ok=True)
    (folder / "triangles").mkdir(parents=True, exist_ok=True)
    pool = prepare(experiment, out, device, {model_name: weights} if weights else None)
    model = load_model(model_name, device=device, weights=weights)
    device = module_device(model)
    images = pool_images(experiment, pool, model).to(device)
    labels = torch.tensor(pool["labels"], device=device)
    targets = torch.tensor(pool["targets"])
    lpips = lpips or LPIPSDistance()
    batches = [(b, sources) for b, sources in enumerate(source_batches(len(labels), experiment.batch_size))
               if b % shard[1] == shard[0]]
    timings = {"blind_spots_s": 0.0, "triangles_s": 0.0, "batches_done_now": 0}
    work = [(b, sources, r) for b, sources in batches for r in range(experiment.rounds)]
    for b, sources, r in tqdm(work, desc=f"{model_name} blind spots", disable=not progress):
        stem = _blind_spots_stem(folder, b, r)
        if stem.with_suffix(".csv").exists():
            continue
        start = time.perf_counter()
        index = torch.tensor(list(sources))
        target_index = targets[r, index]
        result = traverse(model, images[index], labels[index], images[target_index],
                          experiment.lst_config(_seed(experiment, b, r)))
        distances = target_distances(result.images, images[target_index], lpips)
        torch.save(result.images.cpu().contiguous(), stem.with_suffix(".pt"))
        rows = [{"source": int(s), "round": r, "target": int(t), "label": int(labels[s]),
                 "target_label": int(labels[t]), "p0": float(result.initial_confidence[i]),
                 "confidence": float(result.confidence[i]),
                 **{key: float(value[i]) for key, value in distances.items()}}
                for i, (s, t) in enumerate(zip(index.tolist(), target_index.tolist()))]
        _write_rows(stem.with_suffix(".csv"), rows)
        timings["blind_spots_s"] += time.perf_counter() - start
        timings["batches_done_now"] += 1

    pairs = list(combinations(range(experiment.rounds), 2))
    for b, sources in tqdm(batches, desc=f"{model_name} triangles", disable=not progress):
        path = _triangles_path(folder, b)
        if path.exists():
            continue
        start = time.perf_counter()
        index = torch.tensor(list(sources))
        spots = [torch.load(_blind_spots_stem(folder, b, r).with_suffix(".pt"), weights_only=True).to(device)
                 for r in range(experiment.rounds)]
        confidence = torch.stack([  # (pairs, B, grid points), one pair at a time to bound memory
            triangle_confidence(model, images[index], spots[i], spots[j], labels[index], experiment.divisions,
                                batch_size=max(256, experiment.batch_size)) for i, j in pairs])
        stats = stats_from_confidence(confidence, experiment.divisions)
        rows = [{"source": int(s), "label": int(labels[s]), "pairs": len(pairs),
                 **{key: float(value[:, i].mean()) for key, value in stats.items()}}
                for i, s in enumerate(index.tolist())]
        _write_rows(path, rows)
        timings["triangles_s"] += time.perf_counter() - start
    shard_name = f"shard{shard[0]}of{shard[1]}"
    _atomic_write_text(folder / f"record_{shard_name}.json", json.dumps(
        provenance.record(model, experiment.lst_config(experiment.seed), device, experiment=experiment.to_dict(),
                          shard=shard_name, timings=timings), indent=2))
    return timings


NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "10_reproduce_tables.ipynb"


def notebook_parameters(experiment: Experiment, model_name: str, out, shard=(0, 1), device=None,
                        weights=None) -> dict:
    """The papermill parameters of the reproduction notebook for one model and shard."""
    return {**{key: value for key, value in experiment.to_dict().items() if key != "lst"}, **experiment.lst,
            "model": model_name, "out_dir": str(Path(out).resolve()), "shard_index": shard[0],
            "num_shards": shard[1], "device": None if device is None else str(device), "weights": weights}


def run_notebook(experiment: Experiment, model_name: str, out, shard=(0, 1), device=None, weights=None,
                 notebook: Path = NOTEBOOK) -> Path:
    """Execute the reproduction notebook with papermill for one model (and shard);
    the executed notebook is kept in ``out/notebooks``."""
    import sys

    import papermill

    if not notebook.is_file():
        raise FileNotFoundError(f"the reproduction notebook is not at {notebook}: run from a clone of the "
                                "repository (pip install -e .)")
    executed = Path(out) / "notebooks" / f"{experiment.key}_{model_name}_shard{shard[0]}of{shard[1]}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(notebook), str(executed), cwd=str(notebook.parent), progress_bar=False,
        stdout_file=sys.stdout, stderr_file=sys.stderr,
        parameters=notebook_parameters(experiment, model_name, out, shard, device, weights))
    return executed


def model_finished(experiment: Experiment, model_name: str, out) -> bool:
    """Whether every batch of the model has its blind spots and triangles on disk."""
    folder = _experiment_dir(Path(out), experiment) / model_name
    pool_path = _experiment_dir(Path(out), experiment) / "pool.json"
    if not pool_path.exists():
        return False
    n = len(json.loads(pool_path.read_text())["labels"])
    batches = range(len(source_batches(n, experiment.batch_size)))
    return all(_triangles_path(folder, b).exists() for b in batches) and all(
        _blind_spots_stem(folder, b, r).with_suffix(".csv").exists() for b in batches for r in range(experiment.rounds))


# ----------------------------------------------------------------- merging and tables
def summarize_model(experiment: Experiment, model_name: str, out) -> dict:
    """Per-batch files -> per_blindspot.csv and per_source.csv of a finished model, and
    its (mean, std) per table column."""
    out = Path(out)
    if not model_finished(experiment, model_name, out):
        raise RuntimeError(f"{model_name} on {experiment.dataset} is not finished in {out}: "
                           "run the remaining shards first")
    folder = _experiment_dir(out, experiment) / model_name
    blind_spots = [row for path in sorted((folder / "blind_spots").glob("b*_r*.csv")) for row in _read_rows(path)]
    blind_spots.sort(key=lambda row: (int(row["source"]), int(row["round"])))
    sources = sorted((row for path in sorted((folder / "triangles").glob("b*.csv")) for row in _read_rows(path)),
                     key=lambda row: int(row["source"]))
    _write_rows(folder / "per_blindspot.csv", blind_spots)
    _write_rows(folder / "per_source.csv", sources)
    return {
        "dataset": experiment.dataset, "n_sources": len(sources), "n_blind_spots": len(blind_spots),
        "table1": {key: _mean_std([float(row[key]) for row in blind_spots]) for key in TABLE1_COLUMNS},
        "table2": {key: _mean_std([float(row[key]) for row in sources]) for key in TABLE2_COLUMNS},
    }


def format_summary(name: str, summary: dict, digits: int = 2, with_lpips: bool = True) -> str:
    """A model's Table-1 and Table-2 numbers as two short lines (mean ± std).
    ``with_lpips=False`` leaves out LPIPS, which depends on its trunk being on disk."""
    return "\n".join(
        f"{name} {table}: " + ", ".join(f"{label} {_cell(summary[table][key], digits)}"
                                        for key, label in columns.items() if with_lpips or key != "lpips")
        for table, columns in (("table1", TABLE1_COLUMNS), ("table2", TABLE2_COLUMNS)))


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation; NaN when any value is missing."""
    tensor = torch.tensor(values, dtype=torch.float64)
    if len(values) == 0 or torch.isnan(tensor).any():
        return (math.nan, math.nan)
    return (float(tensor.mean()), float(tensor.std(unbiased=False)))


def _cell(mean_std, digits: int) -> str:
    mean, std = mean_std
    if math.isnan(mean):
        return "n/a*"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table_rows(summaries: dict, paper: dict, table: str, columns: dict, digits: int):
    """Rows (label, cells) of one table: ours, then the paper's."""
    rows = []
    for name, summary in summaries.items():
        rows.append((f"{name} (ours, {summary['dataset']}, n={summary['n_sources']})",
                     [_cell(summary[table][key], digits) for key in columns]))
    for name, numbers in paper.items():
        rows.append((f"{name} (paper, ImageNet)", [_cell(numbers[key], digits) for key in columns]))
    return rows


def _markdown(title: str, header: list[str], rows, notes: list[str]) -> str:
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in rows]
    return "\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n"


def _latex(title: str, header: list[str], rows, notes: list[str]) -> str:
    escape = lambda text: (text.replace("_", r"\_").replace("±", r"$\pm$").replace("*", r"$^*$")
                           .replace("l_inf", r"$\ell_\infty$"))
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{escape(title)}}}",
             r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join([escape(label), *(escape(c) for c in cells)]) + r" \\" for label, cells in rows]
    lines += [r"\bottomrule", r"\end{tabular}", *(r"\par\footnotesize " + escape(n) for n in notes),
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def _csv_rows(summaries: dict, paper: dict, table: str, columns: dict) -> list[dict]:
    rows = []
    for source, entries in (("ours", {n: s[table] for n, s in summaries.items()}), ("paper", paper)):
        for name, numbers in entries.items():
            row = {"model": name, "source": source,
                   "dataset": summaries[name]["dataset"] if source == "ours" else "imagenet"}
            for key in columns:
                row[f"{key}_mean"], row[f"{key}_std"] = numbers[key]
            rows.append(row)
    return rows


def assemble_tables(experiments: list[Experiment], out) -> dict[str, Path]:
    """Write table1/table2 as .md, .tex and .csv in ``out``, ours beside the paper's,
    and summaries.json; every model of every experiment must be finished."""
    out = Path(out)
    summaries = {name: summarize_model(e, name, out) for e in experiments for name in e.models}
    settings = "; ".join(
        f"{e.dataset}: {', '.join(e.models)}, LST "
        + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in e.lst.items()
                    if k not in ("record_every", "record_images", "seed"))
        + f", rounds={e.rounds}, seed={e.seed}, pool: correct with confidence > {e.min_conf}"
        + (f" ({e.note})" if e.note else "") for e in experiments)
    notes = [f"Produced by blindspots_nb {provenance.versions()['blindspots_nb']} (details in run.json): {settings}.",
             "Mean ± std over blind spots (Table 1) and over sources (Table 2); the paper's rows are ImageNet."]
    if any(math.isnan(s["table1"]["lpips"][0]) for s in summaries.values()):
        notes.append("n/a*: LPIPS's AlexNet trunk weights were not on disk (run.json says which file to put where).")
    written = {}
    specs = (("table1", "Table 1: LST blind spot vs target", TABLE1_COLUMNS, PAPER_TABLE1, 3),
             ("table2", "Table 2: source-class confidence over triangles and paths", TABLE2_COLUMNS, PAPER_TABLE2, 2))
    for table, title, columns, paper, digits in specs:
        header = ["Model", *columns.values()]
        rows = _table_rows(summaries, paper, table, columns, digits)
        for suffix, text in ((".md", _markdown(title, header, rows, notes)),
                             (".tex", _latex(title, header, rows, notes))):
            _atomic_write_text(out / f"{table}{suffix}", text)
            written[f"{table}{suffix}"] = out / f"{table}{suffix}"
        _write_rows(out / f"{table}.csv", _csv_rows(summaries, paper, table, columns))
        written[f"{table}.csv"] = out / f"{table}.csv"
    _atomic_write_text(out / "summaries.json", json.dumps(summaries, indent=2))
    return written
