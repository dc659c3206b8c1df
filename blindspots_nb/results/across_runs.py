"""Many runs in one view, ``notebooks/09_across_runs.ipynb``: the table of runs (:func:`~.frames.collect`),
filtered by any setting, any Table-1 or Table-2 number plotted with its std against any setting or
model, and two runs compared source by source
(:func:`~blindspots_nb.protocol.compare.paired_comparison`: paired by each image's sha256, never by
pool index, since two runs may each choose their own pool)."""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as W
import pandas as pd
import plotly.express as px

from .. import __version__
from ..plots.widgets import figure_widget
from ..protocol.compare import FEW_SHARED, MIN_SHARED, SHARED_POOL_HINT, paired_comparison
from ..protocol.tables import TABLE1_COLUMNS, TABLE2_COLUMNS
from .frames import IDENTITY, NUMBERS, collect

METRICS = {**TABLE1_COLUMNS, **TABLE2_COLUMNS}  # column -> its name in the tables
# Columns of a run's rows that are what was measured or where it lies, not a setting to filter or plot by
NOT_FILTERS = {*NUMBERS, "n", "n_blind_spots", "path", "created", "weights_file"}


def settings_that_vary(rows: pd.DataFrame) -> list[str]:
    """The columns of ``rows`` (besides the numbers) that take more than one value: what tells the runs apart."""
    return [c for c in rows.columns if c not in NOT_FILTERS and rows[c].astype(str).nunique() > 1]


def filtered(rows: pd.DataFrame, chosen: dict[str, list]) -> pd.DataFrame:
    """The rows whose value of each column of ``chosen`` is one of those chosen (compared as text, as shown)."""
    keep = pd.Series(True, index=rows.index)
    for column, values in chosen.items():
        keep &= rows[column].astype(str).isin([str(v) for v in values])
    return rows[keep]


def metric_figure(rows: pd.DataFrame, metric: str, against: str):
    """``metric``'s mean with its std (error bars) in each row, against the column ``against``, a colour
    per model; the hover names the run, the experiment and the weights."""
    if metric not in METRICS:
        raise ValueError(f"no number {metric!r} in the tables; they have {', '.join(METRICS)}")
    figure = px.scatter(rows.sort_values(against), x=against, y=f"{metric}_mean", error_y=f"{metric}_std",
                        color="display_name", symbol="experiment",
                        hover_data=["run", "experiment", "model", "weights_sha256", "n"],
                        labels={f"{metric}_mean": f"{METRICS[metric]} (mean ± std)", "display_name": "model"},
                        title=f"{METRICS[metric]} against {against}: {len(rows)} rows of "
                              f"{rows['run'].nunique()} runs")
    return figure.update_traces(mode="markers+lines").update_layout(height=420, margin=dict(t=50, b=40))


def paired_notes(difference: pd.DataFrame, names: tuple[str, str]) -> list[str]:
    """What :func:`~blindspots_nb.protocol.compare.paired_comparison` paired and left out, a line per model."""
    lines = []
    for (experiment, model), rows in difference.groupby(["experiment", "model"], sort=False):
        row = rows.iloc[0]
        shared, alone = row["n_shared"], (row["n_first"] - row["n_shared"], row["n_second"] - row["n_shared"])
        line = f"{experiment}/{model}: {shared} sources shared (paired by image sha256)"
        if any(alone):
            line += f"; left out: {alone[0]} only in {names[0]}, {alone[1]} only in {names[1]}"
        if shared < MIN_SHARED:
            line += f"; too few to compare (fewer than {MIN_SHARED})"
        elif shared < FEW_SHARED:
            line += f"; with fewer than {FEW_SHARED}, its standard errors are rough"
        lines.append(line)
    if (difference["n_shared"] < difference[["n_first", "n_second"]].max(axis=1)).any():
        lines.append(SHARED_POOL_HINT)
    return lines


def _table(frame: pd.DataFrame) -> str:
    """A frame as an HTML table, every cell escaped (names in a run may hold markup)."""
    table = frame.to_html(index=False, escape=True, float_format=lambda v: f"{v:.4g}", na_rep="n/a")
    return f"<div style='overflow:auto; max-height:24em'>{table}</div>"


class AcrossRuns:
    """The runs below ``runs_root`` in one view. Display it as the last expression of a cell."""

    def __init__(self, runs_root):
        self.root = Path(runs_root)
        self.rows = collect(self.root)
        self.skipped = self.rows.attrs["skipped"]
        made = "" if self.rows.empty else (f"made by blindspots_nb {', '.join(sorted(set(self.rows['version'])))} on "
                                           f"{'; '.join(sorted(set(self.rows['device'])))}, read by {__version__}")
        self.header = W.HTML(f"<b>{self.rows['run'].nunique()} runs below {html.escape(str(self.root))}</b> "
                             f"<span style='color:#555'>{html.escape(made)}</span>" + "".join(
                                 f"<div style='color:#c62828'>{html.escape(line)}</div>" for line in self.skipped))
        self.varying = settings_that_vary(self.rows) if len(self.rows) else []
        style = {"description_width": "initial"}
        self.filters = {c: W.SelectMultiple(options=sorted(self.rows[c].astype(str).unique()), description=c,
                                            style=style, rows=min(4, self.rows[c].nunique()))
                        for c in self.varying}
        for menu in self.filters.values():
            menu.value = menu.options
        self.table = W.HTML()
        self.metric_menu = W.Dropdown(options=[(label, key) for key, label in METRICS.items()], description="number",
                                      style=style)
        self.against_menu = W.Dropdown(options=self.varying or ["display_name"], description="against", style=style)
        self.plot = W.VBox()
        self.plot.add_class("across-runs-plot")
        runs = sorted(self.rows["run"].unique()) if len(self.rows) else []
        paths = dict(zip(self.rows.get("run", []), self.rows.get("path", [])))
        self.first_menu = W.Dropdown(options=[(r, paths[r]) for r in runs], description="first run", style=style)
        self.second_menu = W.Dropdown(options=[(r, paths[r]) for r in runs], description="second run", style=style,
                                      value=paths[runs[-1]] if runs else None)
        self.paired = W.HTML()
        for widget in (*self.filters.values(), self.metric_menu, self.against_menu):
            widget.observe(lambda _: self.redraw(), "value")
        for widget in (self.first_menu, self.second_menu):
            widget.observe(lambda _: self.compare(), "value")
        self.widget = W.VBox([self.header, W.HBox(list(self.filters.values()), layout=W.Layout(flex_flow="row wrap")),
                              self.table, W.HBox([self.metric_menu, self.against_menu]), self.plot,
                              W.HTML("<b>Two runs, source by source</b>"), W.HBox([self.first_menu, self.second_menu]),
                              self.paired])
        self.redraw()
        self.compare()

    def shown(self) -> pd.DataFrame:
        """The rows that the filters let through."""
        return filtered(self.rows, {c: list(menu.value) for c, menu in self.filters.items()}) if len(self.rows) \
            else self.rows

    def redraw(self):
        """The table and the plot of the rows shown."""
        rows = self.shown()
        columns = [*IDENTITY, *(c for c in self.varying if c not in IDENTITY), "n",
                   *(f"{k}_{p}" for k in METRICS for p in ("mean", "std"))]
        self.table.value = _table(rows[[c for c in columns if c in rows.columns]])
        self.plot.children = [figure_widget(metric_figure(rows, self.metric_menu.value, self.against_menu.value))] \
            if len(rows) else [W.HTML("No run is shown: choose values in the filters.")]

    def compare(self):
        """The paired difference of the two runs picked."""
        if self.first_menu.value is None:
            self.paired_lines = ["No finished run to compare."]
            self.paired.value = html.escape(self.paired_lines[0])
            return
        names = (self.first_menu.label, self.second_menu.label)
        try:
            difference = paired_comparison(self.first_menu.value, self.second_menu.value)
        except (OSError, ValueError) as error:  # nothing in common, too few shared, a damaged file: one line
            self.paired_lines = [str(error)]
            self.paired.value = f"<div style='color:#c62828'>{html.escape(str(error))}</div>"
            return
        self.paired_lines = paired_notes(difference, names)
        notes = "".join(f"<li>{html.escape(line)}</li>" for line in self.paired_lines)
        shown = difference.drop(columns=["table", "column"]).rename(columns={"first_mean": names[0],
                                                                             "second_mean": names[1]})
        self.paired.value = f"<ul>{notes}</ul>" + _table(shown)

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
