"""The browser of a finished (or unfinished) run, ``notebooks/07_browse_run.ipynb``: ipywidgets
and plotly around a :class:`~blindspots_nb.browser.runs.StoredRun`, which reads the folder
read-only. Pick a model and a source (sorted by any column, or by one of the paper's findings
it contradicts), see the source, its blind spots and their targets with their numbers, and
the stored triangle of a pair. This module only draws."""

from __future__ import annotations

import html
import itertools
import math
import os

import ipywidgets as W

from .findings import CONTRADICTIONS
from .runs import SOURCE_COLUMNS, StoredRun
from ..plots import image_to_png, triangle_contour, triangle_surface
from ..plots.figures import caption_above_plot
from ..plots.widgets import figure_widget
from ..protocol.tables import TABLE1_COLUMNS, TABLE_COLUMNS

PANEL = 112  # pixels of each image
PLOT_HEIGHT = 530  # pixels of a triangle figure below its title and caption
NO_CONTRADICTION = "(sort by a column)"
COLOURS = {"missing": "#b26a00", "problem": "#c62828", "caption": "#555"}
# Beside the sort column, each source's row in the list shows these (the sort column is not shown twice)
LISTED = {"p_src": "p_src", "path_conf": "path conf", "rmse_max": "largest RMSE"}
WRAPPED = "overflow-wrap:anywhere"  # a long file name wraps inside its panel, shown whole


def number(value) -> str:
    """A number of the run as the browser prints it: 4 decimals (3 significant digits when tiny or
    huge), '–' where missing, 'n/a' for NaN (LPIPS without its trunk)."""
    if value is None:
        return "–"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.3g}"


def _lines(lines: list[str], colour: str, title: str) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f"<div style='color:{colour}'><b>{html.escape(title)}</b><ul style='margin:2px'>{items}</ul></div>"


def common_folder(names: list[str]) -> str:
    """The folder that all of ``names`` (image paths) lie in, '' when there is none (names that are no
    paths, such as glyphs'): the source list names each image below it, the folder once above the list."""
    try:
        folder = os.path.commonpath([os.path.dirname(name) for name in names]) if names else ""
    except ValueError:  # absolute and relative paths mixed
        return ""
    return "" if folder in ("", "/") else folder


def _mean_std(mean: float, std: float) -> str:
    return number(mean) if math.isnan(mean) else f"{number(mean)} ± {number(std)}"


def _tables_html(rows: dict, caption: str) -> str:
    """A model's rows of the run's tables (:meth:`StoredRun.table_rows`) as two HTML tables, mean ± std."""
    parts = []
    for (table, columns), title in zip(TABLE_COLUMNS, ("Table 1 (blind spot vs target)",
                                                      "Table 2 (confidence over triangles and paths)")):
        row = rows.get(table)
        if row is None:
            parts.append(f"<i>{title}: not in this run's {table}.csv (the run's tables are not assembled)</i>")
            continue
        header = "".join(f"<th style='padding:0 8px'>{html.escape(label)}</th>" for label in columns.values())
        cells = "".join(f"<td style='padding:0 8px'>{_mean_std(row[f'{key}_mean'], row[f'{key}_std'])}</td>"
                        for key in columns)
        parts.append(f"<b>{title}</b>, {html.escape(row['model'])} (ours, {html.escape(row['dataset'])}, {table}.csv)"
                     f"<table><tr>{header}</tr><tr>{cells}</tr></table>")
    return "".join(parts) + f"<small style='color:{COLOURS['caption']}'>{html.escape(caption)}</small>"


class RunBrowser:
    """Browse the run in ``run_dir`` (an output folder of ``blindspots-nb reproduce``) without
    writing to it. Display it as the last expression of a cell. ``model_name`` (as the run names it:
    ``experiment/model``), ``source_index`` (in the model's pool) and
    ``sort_by`` choose what it opens on (defaults: the first model, sources by path confidence)."""

    def __init__(self, run_dir, model_name: str | None = None, source_index: int | None = None,
                 sort_by: str = "path_conf"):
        self.header = W.HTML()
        try:
            self.run = StoredRun(run_dir)
        except (OSError, ValueError) as error:  # no run there, or damaged settings: one line
            self.run = None
            self.header.value = _lines([str(error)], COLOURS["problem"], f"Cannot browse {run_dir}")
            self.widget = W.VBox([self.header])
            return
        if sort_by not in SOURCE_COLUMNS:
            raise ValueError(f"sort_by={sort_by!r}: the sources sort by one of {', '.join(SOURCE_COLUMNS)}")
        style = {"description_width": "initial"}
        self.model_menu = W.Dropdown(options=self.run.models(), description="model", style=style)
        self.tables = W.HTML()  # the run's own Table 1 and Table 2 rows of the model picked
        self.sort_menu = W.Dropdown(options=[(label, key) for key, label in SOURCE_COLUMNS.items()], value=sort_by,
                                    description="sort sources by", style=style)
        self.order = W.ToggleButtons(options=[("lowest first", True), ("highest first", False)], value=True)
        self.contradiction_menu = W.Dropdown(options=[NO_CONTRADICTION, *(c.name for c in CONTRADICTIONS)],
                                             description="sources against the paper", style=style,
                                             layout=W.Layout(width="28em"))
        self.contradiction_text = W.HTML()
        self.folder_note = W.HTML()  # the folder the images lie in, said once above the list
        self.source_list = W.Select(rows=10, layout=W.Layout(width="100%"))
        self.source_list.add_class("run-sources")  # monospaced, so that the columns of its rows line up
        self.source_view = W.VBox()
        self.pair_menu = W.Dropdown(description="pair of blind spots (rounds)", style=style)
        self.triangle_view = W.VBox()
        self.caption = W.HTML()
        monospace = W.HTML("<style>.run-sources select {font-family: monospace}</style>")
        self.widget = W.VBox([monospace, self.header, self.model_menu, self.tables,
                              W.HBox([self.sort_menu, self.order]),
                              W.HBox([self.contradiction_menu, self.contradiction_text]), self.folder_note,
                              self.source_list,
                              self.source_view, self.pair_menu, self.triangle_view, self.caption],
                             layout=W.Layout(width="100%"))
        if model_name is not None:
            self.run.experiment(model_name)  # a KeyError naming the run's models
            self.model_menu.value = model_name
        self._quiet = False
        self.model_menu.observe(lambda _: self._show_model(), "value")
        for control in (self.sort_menu, self.order):
            control.observe(lambda _: self._quiet or self._fill_sources(), "value")
        self.contradiction_menu.observe(lambda _: self._jump_to_contradiction(), "value")
        self.source_list.observe(lambda _: self._show_source(), "value")
        self.pair_menu.observe(lambda _: self._show_triangle(), "value")
        self._show_model(source_index)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    @property
    def key(self) -> str:
        return self.model_menu.value

    # -- what is shown ---------------------------------------------------------------------------
    def _show_model(self, source_index: int | None = None):
        experiment = self.run.experiment(self.key)
        self._quiet = True
        pairs = list(itertools.combinations(range(experiment.rounds), 2))
        self.pair_menu.options = [(f"{i} and {j}", (i, j)) for i, j in pairs]
        self.pair_menu.value = pairs[0]
        self.caption.value = (f"<small style='color:{COLOURS['caption']}'>{html.escape(self.run.caption(self.key))}"
                              "</small>")
        self.tables.value = _tables_html(self.run.table_rows(self.key), self.run.caption(self.key))
        self._quiet = False
        self._fill_sources(source_index)

    def _fill_sources(self, source_index: int | None = None):
        column = self.sort_menu.value
        rows = self.run.sorted_sources(self.key, column, self.order.value)
        keep = self.source_list.value if source_index is None else source_index
        values = [row["source"] for row in rows]
        self._quiet = True
        folder = common_folder([row["name"] for row in rows])
        self.folder_note.value = f"<small>images in {html.escape(folder)}/</small>" if folder else ""
        self.source_list.options = [(self._label(row, column, folder), row["source"]) for row in rows]
        self.source_list.value = keep if keep in values else (values[0] if values else None)
        self._quiet = False
        self._show_header()
        self._show_source()

    @staticmethod
    def _label(row: dict, column: str, folder: str = "") -> str:
        """A source's line in the list: the sort column, the others of ``LISTED``, then its class and its
        image's whole name below ``folder`` (last, so that the numbers line up and no name is cut)."""
        others = "".join(f"   {label} {number(row[key]):>7}" for key, label in LISTED.items() if key != column)
        return (f"#{row['source']:<4} {SOURCE_COLUMNS[column]} {number(row[column]):>9}{others}   "
                f"{row['class'][:14]:<14} {row['name'][len(folder) + 1:] if folder else row['name']}")

    def _jump_to_contradiction(self):
        chosen = [c for c in CONTRADICTIONS if c.name == self.contradiction_menu.value]
        if not chosen:
            self.contradiction_text.value = ""
            return
        contradiction = chosen[0]
        self.contradiction_text.value = f"<i>{html.escape(contradiction.sentence)}</i>"
        self._quiet = True
        self.sort_menu.value, self.order.value = contradiction.column, contradiction.lowest_first
        self._quiet = False
        worst = self.run.contradicting(self.key, contradiction, 1)
        self._fill_sources(worst[0]["source"] if worst else None)

    def _show_header(self):
        self.header.value = (f"<b>Run {html.escape(str(self.run.run_dir))}</b>"
                             + _lines(self.run.missing(), COLOURS["missing"], "Missing from this run")
                             + _lines(self.run.problems, COLOURS["problem"], "Damaged files (left out)"))

    def _show_source(self):
        if self._quiet:
            return
        source_index = self.source_list.value
        if source_index is None:
            self.source_view.children = [W.HTML("<i>No source of this model is stored yet.</i>")]
            self.triangle_view.children = []
            return
        row = next(r for r in self.run.source_rows(self.key) if r["source"] == source_index)
        numbers = " · ".join(f"{label} {number(row[key])}" for key, label in SOURCE_COLUMNS.items())
        images, where = self.run.pool_images(self.key)
        spots = self.run.blind_spot_images(self.key, source_index)
        panels = [self._panel(images[source_index] if images else None,
                              f"source #{source_index} {row['name']} ({row['class']})")]
        for spot in self.run.blind_spot_rows(self.key, source_index):
            panels.append(W.VBox([
                self._panel(spots.get(spot["round"]), f"round {spot['round']}: conf {number(spot['confidence'])} "
                            f"(from {number(spot['initial_confidence'])})",
                            ", ".join(f"{label} {number(spot[key])}" for key, label in TABLE1_COLUMNS.items())),
                self._panel(images[spot["target"]] if images else None,
                            f"target #{spot['target']} {spot['target_name']} ({spot['target_class']})")]))
        self.source_view.children = [W.HTML(f"<b>Source #{source_index}</b>: {html.escape(numbers)}<br><small>"
                                            f"{html.escape(where)}</small>"), W.HBox(panels)]
        self._show_triangle()
        self._show_header()  # reading may have found damaged files

    @staticmethod
    def _panel(image, *lines: str) -> W.VBox:
        """An image (or a dashed box saying it is not at hand) over ``lines`` of plain text (names from the
        run's files among them: escaped, never markup)."""
        picture = (W.Image(value=image_to_png(image, PANEL), format="png", width=PANEL, height=PANEL)
                   if image is not None else W.HTML(f"<div style='width:{PANEL}px;height:{PANEL}px;border:1px dashed "
                                                    "#999'>not at hand</div>"))
        text = "<br>".join(html.escape(line) for line in lines)
        return W.VBox([picture, W.HTML(f"<small style='{WRAPPED}'>{text}</small>",
                                       layout=W.Layout(width=f"{PANEL + 60}px"))])

    def _show_triangle(self):
        if self._quiet:
            return
        source_index, pair = self.source_list.value, self.pair_menu.value
        triangle = None if source_index is None or pair is None else self.run.triangle(self.key, source_index, pair)
        if triangle is None:
            self.triangle_view.children = [W.HTML("<i>No stored triangle for this source (its batch's triangles are "
                                                  "missing or damaged).</i>")]
            return
        caption = f"{triangle.note} | {self.run.caption(self.key)}"
        names = (f"source #{source_index}", f"blind spot r{pair[0]}", f"blind spot r{pair[1]}")
        title = (f"Source #{source_index}: the triangle of blind spots r{pair[0]} and r{pair[1]}" if triangle.own else
                 f"Source #{source_index}: the mean of its {triangle.pairs} pairs' triangles (all this older run stored), "
                 f"drawn for r{pair[0]} and r{pair[1]}")
        thumbnails = triangle.corners if all(c is not None for c in triangle.corners) else None
        figures = [draw(triangle.shape, triangle.grid, triangle.divisions, thumbnails=thumbnails, title=title,
                        corner_names=names) for draw in (triangle_surface, triangle_contour)]
        for figure in figures:
            caption_above_plot(figure, caption)  # its lines above the plot, never over a corner's name
            figure.update_layout(width=1000, height=PLOT_HEIGHT + figure.layout.margin.t)
        self.triangle_view.children = [figure_widget(figure) for figure in figures]  # the contour's gaps: null
