"""Two finished runs compared, source by source: the settings that differ, and each table
number's paired difference over the sources both runs measured.

A source is known by its image's sha256 as the run's ``pool.json`` records it (a file's,
or the 8-bit pixels' of an image made in memory), not by its place in the pool: two runs
whose pool rules chose other images (two checkpoints, two seeds, two pool sizes) share
only some sources, and only those are compared; the rest are counted and left out. A
source's numbers are its Table-2 row and, for Table 1, the mean over its blind spots, read
from the rows the tables were made from: over all of a run's sources they average to the
run's table means. Pairing takes the spread between sources out of the difference, which
a difference of two tables' means divided by their spread does not (near-zero spread made
that "moved" arbitrarily large).
"""

from __future__ import annotations

import math
from pathlib import Path

from .experiment import Experiment
from .layout import SETTINGS, SUMMARIES
from .store import RunStore
from .tables import TABLE1_COLUMNS, TABLE2_COLUMNS, TABLE_COLUMNS, _setting, flat_settings

# A model needs at least MIN_SHARED sources in both runs for a paired difference (the std of
# the differences needs two); with fewer than FEW_SHARED the comparison warns that its
# standard errors are rough (they are themselves estimated from so few differences).
MIN_SHARED = 2
FEW_SHARED = 10
SHARED_POOL_HINT = ("One run measures all its models on one pool: blindspots-nb reproduce --models a,b, then "
                    "blindspots-nb compare RUN RUN --models a,b pairs every source.")


def _checked(path: Path, read, remedy: str):
    """``read()``; a file that is there but not as a run writes it (not JSON, ``null``,
    another layout) is a ValueError naming it (a missing one raises FileNotFoundError)."""
    try:
        return read()
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not as blindspots-nb writes it ({type(error).__name__}: {error}); "
                         f"{remedy}") from None


def _pair(value) -> tuple[float, float]:
    mean, std = value
    return float(mean), float(std)


def _read_run(folder) -> tuple[dict, dict[str, Experiment], dict[str, str]]:
    """A finished run's table numbers ``{experiment: {model: {table: {column: (mean,
    std)}}}}``, its experiments by name and each model's weights sha256, every file checked."""
    store = RunStore(folder)
    summaries = _checked(store.out_dir / SUMMARIES, lambda: {
        experiment: {model: {table: {key: _pair(summary[table][key]) for key in columns}
                             for table, columns in TABLE_COLUMNS} for model, summary in models.items()}
        for experiment, models in store.summaries().items()},
        f"blindspots-nb merge --out-dir {store.out_dir} writes it anew from the run's pieces")
    remedy = "the run's settings are unknown: compare runs that blindspots-nb reproduce made"
    experiments = _checked(store.out_dir / SETTINGS, lambda: {e.name: e for e in store.experiments()}, remedy)
    weights = _checked(store.out_dir / SETTINGS, lambda: {m: w["sha256"] for m, w in store.weights().items()}, remedy)
    unknown = sorted(set(summaries) - set(experiments))
    if unknown:
        raise ValueError(f"{store.out_dir / SUMMARIES} holds experiments {unknown} that {SETTINGS} does not: "
                         f"blindspots-nb merge --out-dir {store.out_dir} writes it anew from the run's pieces")
    return summaries, experiments, weights


def source_numbers(folder, experiment: str, model_name: str):
    """A finished model's numbers per source (pandas DataFrame), indexed by ``sha256`` and
    ``occurrence`` (0, or 1, 2 ... for the same image again in one pool): the image's
    ``name``, its pool index ``source``, and every table column, Table 1's the mean over the
    source's blind spots, read from the same rows as the run's tables."""
    import pandas as pd

    store = RunStore(folder)
    remedy = f"blindspots-nb merge --out-dir {store.out_dir} says what is missing"
    found = _checked(store.out_dir / SETTINGS, lambda: store.experiment(experiment), remedy)
    pool = _checked(store.pool_path(found), lambda: store.pool(found), remedy)
    if pool is None or any(digest is None for digest in pool.get("sha256") or [None]):
        raise ValueError(f"{store.pool_path(found)} records no sha256 of every image (an unfinished pool, or one "
                         "recorded before pools hashed their images): its sources cannot be paired")

    def rows():
        spots = pd.DataFrame(store.blind_spot_rows(found, model_name)).astype({"source": int, **dict.fromkeys(
            TABLE1_COLUMNS, float)})
        sources = pd.DataFrame(store.source_rows(found, model_name)).astype({"source": int, **dict.fromkeys(
            TABLE2_COLUMNS, float)}).set_index("source")[list(TABLE2_COLUMNS)]
        return spots.groupby("source")[list(TABLE1_COLUMNS)].mean().join(sources, how="outer").reset_index()
    numbers = _checked(store.model_dir(found, model_name), rows, remedy)
    numbers.insert(0, "sha256", [pool["sha256"][s] for s in numbers["source"]])
    numbers.insert(1, "name", [pool["names"][s] for s in numbers["source"]])
    numbers["occurrence"] = numbers.groupby("sha256").cumcount()
    return numbers.set_index(["sha256", "occurrence"])


def _model_pairs(ours: dict, theirs: dict, models: tuple[str, str] | None) -> list[tuple[str, str, str]]:
    """(experiment, model of the first run, model of the second) to compare: each model of
    an experiment both runs hold, or, given ``models`` (a, b), a of the first with b of the second."""
    if models is None:
        return [(e, m, m) for e, names in ours.items() for m in names if m in theirs.get(e, {})]
    return [(e, models[0], models[1]) for e in ours if models[0] in ours[e] and models[1] in theirs.get(e, {})]


def paired_comparison(first, second, models: tuple[str, str] | None = None):
    """Each table column's paired difference (second − first) over the sources two finished
    runs share, as a pandas DataFrame: a row per experiment, model and column with
    ``n_shared``, ``n_first``, ``n_second`` (sources of each run), ``first_mean`` and
    ``second_mean`` over the shared sources, and the differences' ``difference_mean``,
    ``difference_std`` (n − 1) and ``standard_error`` (NaN with fewer than MIN_SHARED
    shared, or a number a run lacks such as LPIPS). Models are matched by experiment and
    name, or ``models=(a, b)`` pairs model a of the first run with b of the second (the same
    folder twice compares two models of one run on its one pool). Raises ValueError (one
    line) when no model shares MIN_SHARED sources."""
    return _paired(first, second, _read_run(first)[0], _read_run(second)[0], models)


def _paired(first, second, ours: dict, theirs: dict, models: tuple[str, str] | None):
    """:func:`paired_comparison` of two runs whose summaries are read (``ours``, ``theirs``)."""
    import pandas as pd

    pairs = _model_pairs(ours, theirs, models)
    if not pairs:
        wanted = f"models {models[0]} and {models[1]}" if models else "a model of an experiment of the same name"
        raise ValueError(f"{first} and {second} have no {wanted} in common "
                         f"(experiment/model: {sorted(f'{e}/{m}' for e, ms in ours.items() for m in ms)} there, "
                         f"{sorted(f'{e}/{m}' for e, ms in theirs.items() for m in ms)} here)")
    rows = []
    for experiment, model_a, model_b in pairs:
        numbers = [source_numbers(first, experiment, model_a), source_numbers(second, experiment, model_b)]
        shared = numbers[0].index.intersection(numbers[1].index)
        for table, columns in TABLE_COLUMNS:
            for key, label in columns.items():
                a, b = (n.loc[shared, key] for n in numbers)
                difference = b - a
                enough = len(shared) >= MIN_SHARED
                rows.append({"experiment": experiment, "model": model_a if model_a == model_b else
                             f"{model_a} vs {model_b}", "table": table, "column": key, "label": label,
                             "n_shared": len(shared), "n_first": len(numbers[0]), "n_second": len(numbers[1]),
                             "first_mean": a.mean(), "second_mean": b.mean(),
                             "difference_mean": difference.mean() if enough else math.nan,
                             "difference_std": difference.std() if enough else math.nan,
                             "standard_error": difference.std() / math.sqrt(len(shared)) if enough else math.nan})
    frame = pd.DataFrame(rows)
    if not (frame["n_shared"] >= MIN_SHARED).any():
        raise ValueError(f"{first} and {second} share fewer than {MIN_SHARED} sources (by each image's sha256 in "
                         f"their pool.json) for every model compared: no paired difference. {SHARED_POOL_HINT}")
    return frame


def _differences(runs, names: list[str], pairs) -> list[str]:
    """Lines naming every setting of the compared experiments that differs, and weights that
    differ (by sha256): how the models ran is what such a comparison is often for."""
    (ours, experiments, weights), (_, their_experiments, their_weights) = runs
    lines = []
    for experiment in dict.fromkeys(e for e, _, _ in pairs):
        settings = [flat_settings(experiments[experiment]), flat_settings(their_experiments[experiment])]
        for key in settings[0] | settings[1]:
            values = [setting.get(key) for setting in settings]
            if values[0] != values[1]:
                why = " (how the models ran)" if key.startswith("execution.") else ""
                lines.append(f"- {experiment}: {key} is {_setting(values[0])} in {names[0]}, "
                             f"{_setting(values[1])} in {names[1]}{why}")
    for model_a, model_b in dict.fromkeys((a, b) for _, a, b in pairs):
        digests = [weights.get(model_a), their_weights.get(model_b)]
        if digests[0] != digests[1]:
            shown = model_a if model_a == model_b else f"{model_a} and {model_b}"
            lines.append(f"- weights of {shown}: sha256 " + ", ".join(
                f"{(digest or 'unknown')[:12]} in {name}" for digest, name in zip(digests, names)))
    return lines


def compare_runs(first, second, digits: int = 3, models: tuple[str, str] | None = None) -> str:
    """Markdown: the settings and weights that differ between two finished runs, then for
    each model both hold (or ``models=(a, b)``) and each table column the means over the
    sources both measured and the paired difference (:func:`paired_comparison`), with how
    many sources were shared and left out; a warning where fewer than FEW_SHARED are shared."""
    folders = [Path(first), Path(second)]
    names = [folder.name for folder in folders]
    if names[0] == names[1] and folders[0] != folders[1]:
        names = [str(folder) for folder in folders]
    runs = [_read_run(f) for f in folders]
    frame = _paired(first, second, runs[0][0], runs[1][0], models)
    pairs = _model_pairs(runs[0][0], runs[1][0], models)
    lines = _differences(runs, names, pairs)
    lines = [f"Settings that differ between {names[0]} and {names[1]}:", *lines] if lines else [
        f"The same settings and weights in {names[0]} and {names[1]}."]
    if models is None:
        for name, summaries, other in ((names[0], runs[0][0], runs[1][0]), (names[1], runs[1][0], runs[0][0])):
            alone = [f"{e}/{m}" for e, ms in summaries.items() for m in ms if m not in other.get(e, {})]
            if alone:
                lines.append(f"Only in {name} (left out): {', '.join(alone)}.")
    lines.append("Paired by source (each image's sha256 in the runs' pool.json), over the sources both measured:")
    counts = frame.drop_duplicates(["experiment", "model"])
    for row in counts.itertuples():
        left_out = (f"left out: {row.n_first - row.n_shared} only in {names[0]}, "
                    f"{row.n_second - row.n_shared} only in {names[1]}")
        warning = (f"; fewer than {MIN_SHARED}: no paired difference" if row.n_shared < MIN_SHARED else
                   f"; fewer than {FEW_SHARED}: the standard errors are rough" if row.n_shared < FEW_SHARED else "")
        lines.append(f"- {row.experiment}/{row.model}: {row.n_shared} sources shared; {left_out}{warning}")
    if (counts["n_shared"] < counts[["n_first", "n_second"]].max(axis=1)).any():
        lines.append(SHARED_POOL_HINT)
    lines += ["", f"| experiment | model | column | {names[0]} (shared) | {names[1]} (shared) | "
                  "paired difference ± s.e. | std of differences | shared |", "|---|---|---|---|---|---|---|---|"]
    for row in frame.dropna(subset=["difference_mean"]).itertuples():
        lines.append(f"| {row.experiment} | {row.model} | {row.label} | {row.first_mean:.{digits}f} | "
                     f"{row.second_mean:.{digits}f} | {row.difference_mean:+.{digits}f} ± "
                     f"{row.standard_error:.{digits}f} | {row.difference_std:.{digits}f} | {row.n_shared} |")
    return "\n".join(lines) + "\n"
