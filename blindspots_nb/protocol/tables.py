"""Tables 1 and 2: the paper's rows, each model's summary, and Markdown/LaTeX/CSV.

Rendering returns text; the run store writes it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import provenance
from ..geometry import DROPS
from .experiment import Experiment
from .store import RunStore, csv_text

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
TABLES = (("table1", "Table 1: LST blind spot vs target", TABLE1_COLUMNS, PAPER_TABLE1, 3),
          ("table2", "Table 2: source-class confidence over triangles and paths", TABLE2_COLUMNS, PAPER_TABLE2, 2))


def summarize_model(store: RunStore, experiment: Experiment, model: str) -> dict:
    """A finished model's per-batch rows -> per_blindspot.csv and per_source.csv, and
    its (mean, std) per table column."""
    if not store.model_finished(experiment, model):
        raise RuntimeError(f"{model} on {experiment.name} is not finished in {store.root}: "
                           "run the remaining shards first")
    blind_spots = sorted(store.blind_spot_rows(experiment, model),
                         key=lambda row: (int(row["source"]), int(row["round"])))
    sources = sorted(store.source_rows(experiment, model), key=lambda row: int(row["source"]))
    store.save_model_rows(experiment, model, blind_spots, sources)
    return {
        "dataset": experiment.source_kind, "n_sources": len(sources), "n_blind_spots": len(blind_spots),
        "table1": {key: mean_std([float(row[key]) for row in blind_spots]) for key in TABLE1_COLUMNS},
        "table2": {key: mean_std([float(row[key]) for row in sources]) for key in TABLE2_COLUMNS},
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation; NaN when any value is missing."""
    tensor = torch.tensor(values, dtype=torch.float64)
    if len(values) == 0 or torch.isnan(tensor).any():
        return (math.nan, math.nan)
    return (float(tensor.mean()), float(tensor.std(unbiased=False)))


def format_summary(name: str, summary: dict, digits: int = 2, with_lpips: bool = True) -> str:
    """A model's Table-1 and Table-2 numbers as two short lines (mean ± std).
    ``with_lpips=False`` leaves out LPIPS, which depends on its trunk being on disk."""
    return "\n".join(
        f"{name} {table}: " + ", ".join(f"{label} {_cell(summary[table][key], digits)}"
                                        for key, label in columns.items() if with_lpips or key != "lpips")
        for table, columns in (("table1", TABLE1_COLUMNS), ("table2", TABLE2_COLUMNS)))


def _cell(mean_std_pair, digits: int) -> str:
    mean, std = mean_std_pair
    if math.isnan(mean):
        return "n/a*"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table_rows(summaries: dict, paper: dict, table: str, columns: dict, digits: int):
    """Rows (label, cells) of one table: ours, then the paper's."""
    rows = [(f"{name} (ours, {summary['dataset']}, n={summary['n_sources']})",
             [_cell(summary[table][key], digits) for key in columns]) for name, summary in summaries.items()]
    rows += [(f"{name} (paper, ImageNet)", [_cell(numbers[key], digits) for key in columns])
             for name, numbers in paper.items()]
    return rows


def _markdown(title: str, header: list[str], rows, notes: list[str]) -> str:
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in rows]
    return "\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n"


def _latex(title: str, header: list[str], rows, notes: list[str]) -> str:
    def escape(text):
        return (text.replace("_", r"\_").replace("±", r"$\pm$").replace("*", r"$^*$")
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
    for origin, entries in (("ours", {n: s[table] for n, s in summaries.items()}), ("paper", paper)):
        for name, numbers in entries.items():
            row = {"model": name, "source": origin,
                   "dataset": summaries[name]["dataset"] if origin == "ours" else "imagenet"}
            for key in columns:
                row[f"{key}_mean"], row[f"{key}_std"] = numbers[key]
            rows.append(row)
    return rows


def caption_notes(experiments: list[Experiment], summaries: dict, weights: dict | None = None) -> list[str]:
    """What produced the tables, in a few sentences under them: settings, weights files
    (sha256, and whether a published hash confirmed them), version."""
    def setting(value):
        return f"{value:g}" if isinstance(value, float) else str(value)

    settings = "; ".join(
        f"{e.name} ({e.source}): {', '.join(e.models)}, LST "
        + ", ".join(f"{k}={setting(v)}" for k, v in e.lst.to_dict().items()
                    if k not in ("record_every", "record_images", "seed"))
        + f", rounds={e.rounds}, seed={e.seed}, pool: correct with confidence > {e.min_conf}, "
        + e.execution.describe()
        + (f" ({e.note})" if e.note else "") for e in experiments)
    notes = [f"Produced by blindspots_nb {provenance.versions()['blindspots_nb']} (details in run.json): {settings}.",
             "Mean ± std over blind spots (Table 1) and over sources (Table 2); the paper's rows are ImageNet."]
    if weights:
        notes.append("Weights: " + "; ".join(
            f"{name} {Path(w['file']).name} sha256 {w['sha256'][:16]}, "
            + ("verified" if w["verified"] else "unverified") for name, w in weights.items()) + ".")
    if any(math.isnan(s["table1"]["lpips"][0]) for s in summaries.values()):
        notes.append("n/a*: LPIPS's AlexNet trunk weights were not on disk (run.json says which file to put where).")
    return notes


def compare_runs(first, second, digits: int = 3) -> str:
    """Markdown: each model's Table-1 and Table-2 means in two finished runs side by side,
    and how far the second moved, in units of the first run's standard deviation (e.g.
    the same preset in two precisions: do the rows move within their spread?)."""
    runs = [RunStore(first).summaries(), RunStore(second).summaries()]
    common = [name for name in runs[0] if name in runs[1]]
    if not common:
        raise ValueError(f"{first} and {second} have no model in common")
    lines = [f"| model | column | {Path(first).name} | {Path(second).name} | moved (std of the first) |",
             "|---|---|---|---|---|"]
    for name in common:
        for table, columns in (("table1", TABLE1_COLUMNS), ("table2", TABLE2_COLUMNS)):
            for key, label in columns.items():
                (mean_a, std_a), (mean_b, _) = runs[0][name][table][key], runs[1][name][table][key]
                if math.isnan(mean_a) or math.isnan(mean_b):
                    continue
                moved = f"{(mean_b - mean_a) / std_a:+.2f}" if std_a > 0 else ("0" if mean_a == mean_b else "n/a")
                lines.append(f"| {name} | {label} | {mean_a:.{digits}f} ± {std_a:.{digits}f} | "
                             f"{mean_b:.{digits}f} | {moved} |")
    return "\n".join(lines) + "\n"


def render_tables(experiments: list[Experiment], summaries: dict, weights: dict | None = None) -> dict[str, str]:
    """table1/table2 as .md, .tex and .csv (file name -> text), ours beside the paper's."""
    notes = caption_notes(experiments, summaries, weights)
    texts = {}
    for table, title, columns, paper, digits in TABLES:
        header = ["Model", *columns.values()]
        rows = _table_rows(summaries, paper, table, columns, digits)
        texts[f"{table}.md"] = _markdown(title, header, rows, notes)
        texts[f"{table}.tex"] = _latex(title, header, rows, notes)
        texts[f"{table}.csv"] = csv_text(_csv_rows(summaries, paper, table, columns))
    return texts
