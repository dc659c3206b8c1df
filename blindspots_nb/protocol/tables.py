"""Tables 1 and 2: the paper's rows, each model's summary, and Markdown/LaTeX/CSV.

Rendering returns text; the run store writes it. The summaries of a run (its
``summaries.json``) are keyed by experiment, then model: ``{experiment: {model:
summary}}``, since a run may study one model in two experiments.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

from ..tools import provenance
from ..analysis.geometry import DROPS
from ..analysis.metrics import mean_std
from .experiment import Experiment
from ..tools.atomic import csv_text
from .store import RunStore

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
TABLE_COLUMNS = (("table1", TABLE1_COLUMNS), ("table2", TABLE2_COLUMNS))
TABLES = (("table1", "Table 1: LST blind spot vs target", TABLE1_COLUMNS, PAPER_TABLE1, 3),
          ("table2", "Table 2: source-class confidence over triangles and paths", TABLE2_COLUMNS, PAPER_TABLE2, 2))
# LSTConfig fields that are no setting of an experiment: its seed is replaced per batch and
# round, and what a traversal records does not change the tables
NOT_SETTINGS = ("record_every", "record_images", "seed")


def flat_settings(experiment: Experiment, leave_out=("name",)) -> dict:
    """An experiment's settings as 'key' or 'group.key' -> value (``lst.step_size``,
    ``execution.precision``, ``n_sources``, ...), without the keys ``leave_out`` and LST's
    non-settings (NOT_SETTINGS: the per-batch seed and what is recorded)."""
    flat = {}
    for key, value in experiment.to_dict().items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if not (key == "lst" and k in NOT_SETTINGS)})
        elif key not in leave_out:
            flat[key] = value
    return flat


def summarize_model(store: RunStore, experiment: Experiment, model_name: str) -> dict:
    """A finished model's per-batch rows -> per_blindspot.csv and per_source.csv, and
    its (mean, std) per table column."""
    if not store.model_finished(experiment, model_name):
        raise RuntimeError(f"{model_name} on {experiment.name} is not finished in {store.out_dir}: "
                           "run the remaining shards first")
    blind_spots = sorted(store.blind_spot_rows(experiment, model_name),
                         key=lambda row: (int(row["source"]), int(row["round"])))
    sources = sorted(store.source_rows(experiment, model_name), key=lambda row: int(row["source"]))
    store.save_model_rows(experiment, model_name, blind_spots, sources)
    return {
        "dataset": experiment.image_source.kind, "n_sources": len(sources), "n_blind_spots": len(blind_spots),
        "table1": {key: mean_std([float(row[key]) for row in blind_spots]) for key in TABLE1_COLUMNS},
        "table2": {key: mean_std([float(row[key]) for row in sources]) for key in TABLE2_COLUMNS},
    }


def format_summary(name: str, summary: dict, digits: int = 2, with_lpips: bool = True) -> str:
    """A model's Table-1 and Table-2 numbers as two short lines (mean ± std).
    ``with_lpips=False`` leaves out LPIPS, which depends on its trunk being on disk."""
    return "\n".join(
        f"{name} {table}: " + ", ".join(f"{label} {_cell(summary[table][key], digits)}"
                                        for key, label in columns.items() if with_lpips or key != "lpips")
        for table, columns in TABLE_COLUMNS)


def _cell(mean_std_pair, digits: int) -> str:
    mean, std = mean_std_pair
    if math.isnan(mean):
        return "n/a*"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def display_names(models, weights: dict | None = None) -> dict[str, str]:
    """Each model's name in the tables: its display name as the run's settings record it
    (a factory's ``wrap(name=)``), else its registry name or its folder (``build-1a2b3c4d``
    for a factory spec, whose text holds an absolute path); two models shown alike are
    shown by their folders."""
    from ..models.spec_names import model_folder

    names = {m: (weights or {}).get(m, {}).get("display_name") or model_folder(m) for m in dict.fromkeys(models)}
    shared = {name for name, count in Counter(names.values()).items() if count > 1}
    return {m: model_folder(m) if name in shared else name for m, name in names.items()}


def row_names(models: dict, weights: dict | None = None) -> dict[tuple[str, str], str]:
    """The tables' row name of each model of each experiment (``models``: experiment -> its
    models), by (experiment, model): the model's display name (:func:`display_names`), or
    'experiment/name' for a model that more than one experiment of the run studies."""
    studies = Counter(model for names in models.values() for model in names)
    names = display_names(studies, weights)
    return {(experiment, model): f"{experiment}/{names[model]}" if studies[model] > 1 else names[model]
            for experiment, studied in models.items() for model in studied}


def _ours(summaries: dict, weights: dict | None = None) -> list[tuple[str, dict]]:
    """(row name, summary) of each model of each experiment, in the run's order (:func:`row_names`)."""
    names = row_names(summaries, weights)
    return [(names[experiment, model], summary)
            for experiment, models in summaries.items() for model, summary in models.items()]


def _table_rows(summaries: dict, paper: dict, table: str, columns: dict, digits: int, weights: dict | None = None):
    """Rows (label, cells) of one table: ours, then the paper's."""
    rows = [(f"{name} (ours, {summary['dataset']}, n={summary['n_sources']})",
             [_cell(summary[table][key], digits) for key in columns]) for name, summary in _ours(summaries, weights)]
    rows += [(f"{name} (paper, ImageNet)", [_cell(numbers[key], digits) for key in columns])
             for name, numbers in paper.items()]
    return rows


def _markdown(title: str, header: list[str], rows, notes: list[str]) -> str:
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in rows]
    return "\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n"


# LaTeX's special characters in text, and what prints each
LATEX_SPECIALS = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
                  "^": r"\textasciicircum{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}"}
# the tables' own markup, as it reads once escaped -> LaTeX: the l_inf column, mean ± std, n/a*'s footnote mark
LATEX_MARKUP = ((re.compile(r"\bl\\_inf\b"), r"$\\ell_\\infty$"), (re.compile("±"), r"$\\pm$"),
                (re.compile(re.escape("n/a*")), r"n/a$^*$"))


def latex_text(text: str) -> str:
    """``text`` as LaTeX that prints it: every special character escaped first (a folder
    or file name may hold any: ``%`` would end the line, ``\\write18`` run a command),
    then the tables' own markup put in, so that markup is never escaped."""
    escaped = "".join(LATEX_SPECIALS.get(character, character) for character in text)
    for pattern, markup in LATEX_MARKUP:
        escaped = pattern.sub(markup, escaped)
    return escaped


def _latex(title: str, header: list[str], rows, notes: list[str]) -> str:
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_text(title)}}}",
             r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(latex_text(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join([latex_text(label), *(latex_text(c) for c in cells)]) + r" \\" for label, cells in rows]
    lines += [r"\bottomrule", r"\end{tabular}", *(r"\par\footnotesize " + latex_text(n) for n in notes),
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def _csv_rows(summaries: dict, paper: dict, table: str, columns: dict, weights: dict | None = None) -> list[dict]:
    """One row per model: ours (named as in :func:`_ours`), then the paper's."""
    entries = [(name, "ours", summary["dataset"], summary[table]) for name, summary in _ours(summaries, weights)]
    entries += [(name, "paper", "imagenet", numbers) for name, numbers in paper.items()]
    rows = []
    for name, origin, dataset, numbers in entries:
        row = {"model": name, "source": origin, "dataset": dataset}
        for key in columns:
            row[f"{key}_mean"], row[f"{key}_std"] = numbers[key]
        rows.append(row)
    return rows


def _setting(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _remarks(experiment: Experiment) -> str:
    """An experiment's note and where a user's folder's labels came from, in parentheses."""
    remarks = [text for text in (experiment.note, experiment.image_source.labels_in_words()) if text]
    return f" ({'; '.join(remarks)})" if remarks else ""


def caption_notes(experiments: list[Experiment], summaries: dict, weights: dict | None = None,
                  paper_rows: bool = True) -> list[str]:
    """What produced the tables, in a few sentences under them: settings (with where a
    user's folder's labels came from), weights files (sha256, and whether a published
    hash confirmed them), version, and whether the paper's ImageNet rows are shown. Models
    by their display names, folders and files by their names: no absolute path, for a paper."""
    names = display_names([m for e in experiments for m in e.models], weights)
    settings = "; ".join(
        f"{e.name} ({e.image_source.shown}): {', '.join(names[m] for m in e.models)}, LST "
        + ", ".join(f"{k}={_setting(v)}" for k, v in e.lst.to_dict().items() if k not in NOT_SETTINGS)
        + f", rounds={e.rounds}, seed={e.seed}, pool: correct with confidence > {e.min_conf}, "
        + e.execution.in_words()
        + _remarks(e) for e in experiments)
    notes = [f"Produced by blindspots_nb {provenance.versions()['blindspots_nb']} (details in run.json): {settings}.",
             "Mean ± std over blind spots (Table 1) and over sources (Table 2); "
             + ("the paper's rows are ImageNet." if paper_rows else "the paper's ImageNet rows are left out.")]
    if weights:
        notes.append("Weights: " + "; ".join(
            f"{names.get(name, name)} {Path(w['file']).name} sha256 {w['sha256'][:16]}, "
            + ("verified" if w["verified"] else "unverified") for name, w in weights.items()) + ".")
    if any(math.isnan(s["table1"]["lpips"][0]) for models in summaries.values() for s in models.values()):
        notes.append("n/a*: LPIPS's AlexNet trunk weights were not on disk (run.json says which file to put where).")
    return notes


def _shows_paper_rows(experiments: list[Experiment]) -> bool:
    """The default of :func:`render_tables`' ``paper_rows``: the paper's ImageNet rows
    stand beside ours unless an experiment studies a user's own images (``folder:PATH``),
    which the paper's numbers say nothing about."""
    return not any(e.image_source.kind == "folder" for e in experiments)


def render_tables(experiments: list[Experiment], summaries: dict, weights: dict | None = None,
                  paper_rows: bool | None = None) -> dict[str, str]:
    """table1/table2 as .md, .tex and .csv (file name -> text), ours beside the paper's;
    ``summaries``: ``{experiment: {model: summarize_model(...)}}``, one row each.
    ``paper_rows``: whether the paper's ImageNet rows are shown (None:
    :func:`_shows_paper_rows`, i.e. not for a user's own folder)."""
    paper_rows = _shows_paper_rows(experiments) if paper_rows is None else paper_rows
    notes = caption_notes(experiments, summaries, weights, paper_rows)
    texts = {}
    for table, title, columns, paper, digits in TABLES:
        paper = paper if paper_rows else {}
        header = ["Model", *columns.values()]
        rows = _table_rows(summaries, paper, table, columns, digits, weights)
        texts[f"{table}.md"] = _markdown(title, header, rows, notes)
        texts[f"{table}.tex"] = _latex(title, header, rows, notes)
        texts[f"{table}.csv"] = csv_text(_csv_rows(summaries, paper, table, columns, weights))
    return texts
