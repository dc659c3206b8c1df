"""Tables 1 and 2: a row for each model of each experiment, and LaTeX that prints the names
it is given (and runs none of them). Two runs compared: tests/test_run_comparison.py."""

import csv
import json
import math
import re

import pytest

from blindspots_nb import protocol
from blindspots_nb.lst import LSTConfig
from blindspots_nb.protocol import Experiment, RunStore
from blindspots_nb.protocol import run as run_module
from blindspots_nb.protocol.tables import render_tables

TINY_LST = LSTConfig(iterations=5, step_size=0.05)


def _summary(rmse, spread, dataset="fonts"):
    """A model's table numbers: RMSE as given, l_inf without spread, LPIPS missing."""
    return {"dataset": dataset, "n_sources": 4, "n_blind_spots": 8,
            "table1": {"rmse": (rmse, spread), "linf": (0.5, 0.0), "ssim": (0.9, 0.1), "lpips": (math.nan, math.nan)},
            "table2": {key: (0.5, 0.1) for key in protocol.TABLE2_COLUMNS}}


# --------------------------------------------------------------------------- one model, two experiments
def test_a_model_in_two_experiments_has_a_row_of_each(tmp_path):
    experiments = [Experiment(f"fonts:{split}", ("fonts_cnn",), TINY_LST, name=f"fonts_{split}", n_sources=3,
                              rounds=2, batch_size=3) for split in ("test", "train")]
    store = RunStore(tmp_path)
    store.begin(experiments, weights=run_module.weights_identity(experiments, {}))
    for experiment in experiments:
        protocol.prepare(experiment, store, device="cpu")
        protocol.run_model(experiment, "fonts_cnn", store, device="cpu", progress=False)
    protocol.assemble(store, experiments)

    ours = {row["model"]: row for row in csv.DictReader(open(tmp_path / "table1.csv")) if row["source"] == "ours"}
    assert list(ours) == ["fonts_test/fonts_cnn", "fonts_train/fonts_cnn"]
    summaries = json.loads((tmp_path / "summaries.json").read_text())
    assert {e: list(models) for e, models in summaries.items()} == {"fonts_test": ["fonts_cnn"],
                                                                     "fonts_train": ["fonts_cnn"]}
    for experiment in experiments:  # each row has its own experiment's numbers
        rows = list(csv.DictReader(open(tmp_path / experiment.name / "fonts_cnn" / "per_blindspot.csv")))
        mean = sum(float(row["rmse"]) for row in rows) / len(rows)
        row = ours[f"{experiment.name}/fonts_cnn"]
        assert float(row["rmse_mean"]) == pytest.approx(mean, abs=1e-12)
        assert summaries[experiment.name]["fonts_cnn"]["table1"]["rmse"][0] == float(row["rmse_mean"])
    assert ours["fonts_test/fonts_cnn"]["rmse_mean"] != ours["fonts_train/fonts_cnn"]["rmse_mean"]
    markdown = (tmp_path / "table2.md").read_text()
    assert "| fonts_test/fonts_cnn (ours, fonts, n=3) |" in markdown
    assert "| fonts_train/fonts_cnn (ours, fonts, n=3) |" in markdown


# --------------------------------------------------------------------------- LaTeX
# what the tables' LaTeX may hold in text, and what each prints
PRINTS = {r"\textbackslash{}": "\\", r"\textasciicircum{}": "^", r"\textasciitilde{}": "~", r"\{": "{", r"\}": "}",
          r"\$": "$", r"\&": "&", r"\#": "#", r"\_": "_", r"\%": "%", r"$\pm$": "±", r"$\ell_\infty$": "l_inf",
          r"$^*$": "*"}
_TOKEN = re.compile("|".join(re.escape(token) for token in sorted(PRINTS, key=len, reverse=True)))


def _printed(latex_text: str) -> str:
    """What LaTeX prints for a piece of the tables' text; fails on any special character
    that is not part of an escape or of the tables' markup."""
    bare = _TOKEN.sub("", latex_text)
    assert not set(bare) & set("\\{}$&#^_%~"), f"unescaped special in {latex_text!r}"
    return _TOKEN.sub(lambda match: PRINTS[match.group()], latex_text)


def _tex_parts(tex: str):
    """(rows as lists of cells, notes) of a table's LaTeX."""
    lines = tex.splitlines()
    body = lines[lines.index(r"\midrule") + 1:lines.index(r"\bottomrule")]
    rows = [line.removesuffix(r" \\").split(" & ") for line in body]
    notes = [line.removeprefix("\\par\\footnotesize ") for line in lines if line.startswith("\\par\\footnotesize ")]
    return rows, notes


def test_latex_prints_every_special_character_of_a_name_and_runs_none(tmp_path):
    specials = "100% a&b $5 #1 x^2 a_b ~me {c} back\\slash"
    experiment = Experiment(f"imagenet:/data/{specials}", ("resnet50",), note=f"note: {specials} \\input{{x}}")
    weights = {"resnet50": {"file": "/w/my\\immediate\\write18{touch pwned}.pt", "sha256": "ab" * 32,
                            "verified": False}}
    texts = render_tables([experiment], {experiment.name: {"resnet50": _summary(0.1, 0.02, "imagenet")}}, weights)
    for table in ("table1", "table2"):
        tex, markdown = texts[f"{table}.tex"], texts[f"{table}.md"]
        assert "\\write18" not in tex and "\\input" not in tex and "\\immediate" not in tex
        rows, notes = _tex_parts(tex)
        # the LaTeX prints exactly what the Markdown says: rows and notes (specials and all)
        assert [" | ".join(_printed(cell) for cell in row) for row in rows] == [
            line.strip("| ") for line in markdown.splitlines() if line.startswith("| ") and "(" in line]
        assert [_printed(note) for note in notes] == [line[2:] for line in markdown.splitlines()
                                                      if line.startswith("- ")]
        printed = " ".join(map(_printed, notes))
        assert f"imagenet:{specials}" in printed and "my\\immediate\\write18{touch pwned}.pt" in printed
        assert "/data/" not in printed  # a folder by its name: no absolute path in a paper's table


def test_latex_of_plain_names_keeps_the_tables_markup():
    experiment = Experiment("fonts:test", ("fonts_cnn",), TINY_LST)
    tex = render_tables([experiment], {"fonts": {"fonts_cnn": _summary(0.1, 0.02)}})["table1.tex"]
    lines = tex.splitlines()
    assert r"\caption{Table 1: LST blind spot vs target}" in lines
    assert r"Model & RMSE & $\ell_\infty$ & SSIM & LPIPS \\" in lines
    assert (r"fonts\_cnn (ours, fonts, n=4) & 0.100 $\pm$ 0.020 & 0.500 $\pm$ 0.000 & 0.900 $\pm$ 0.100 & "
            r"n/a$^*$ \\") in lines
    assert r"resnet50\_at (paper, ImageNet) & 0.029 $\pm$ 0.008 & 0.746 $\pm$ 0.124 & 0.915 $\pm$ 0.041 & " \
           r"0.057 $\pm$ 0.037 \\" in lines
    assert (r"\par\footnotesize Mean $\pm$ std over blind spots (Table 1) and over sources (Table 2); the paper's "
            "rows are ImageNet.") in lines
    assert any(line.startswith(r"\par\footnotesize n/a$^*$: LPIPS's AlexNet trunk") for line in lines)


# --------------------------------------------------------------------------- a user's folder
def _folder_tables(folder, **options):
    experiment = Experiment(f"folder:{folder}", ("fonts_cnn",), TINY_LST, **options.pop("experiment", {}))
    return render_tables([experiment], {experiment.name: {"fonts_cnn": _summary(0.1, 0.02, "folder")}}, **options)


def test_a_folder_of_ones_own_leaves_the_paper_rows_out_and_says_where_its_labels_came_from(tmp_path):
    from PIL import Image

    (tmp_path / "labelled" / "A").mkdir(parents=True)
    Image.new("L", (32, 32)).save(tmp_path / "labelled" / "A" / "a.png")  # a class folder: one that holds an image
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    texts = _folder_tables(tmp_path / "labelled")
    assert "(paper, ImageNet)" not in texts["table1.md"] and "resnet50" not in texts["table2.csv"]
    assert "fonts_cnn (ours, folder, n=4)" in texts["table1.md"]
    assert "(folder:labelled): fonts_cnn, LST" in texts["table1.md"] and str(tmp_path) not in texts["table1.md"]
    assert "precision fp32 (labelled by folder)." in texts["table1.md"] and "the paper's ImageNet rows are left out." in texts[
        "table2.md"]
    assert "(mine; no class folders: the model's own prediction is the label)." in _folder_tables(
        tmp_path / "flat", experiment={"note": "mine"})["table1.md"]
    asked = _folder_tables(tmp_path / "labelled", paper_rows=True)
    assert "| resnet50 (paper, ImageNet) |" in asked["table1.md"] and "the paper's rows are ImageNet." in asked[
        "table1.md"]
    assert [row["model"] for row in csv.DictReader(asked["table2.csv"].splitlines())][1:] == list(
        protocol.PAPER_TABLE2)


def test_paper_rows_are_shown_or_left_out_as_asked(tmp_path):
    experiment = Experiment("fonts:test", ("fonts_cnn",), LSTConfig(iterations=2, step_size=0.05), n_sources=2,
                            rounds=2, batch_size=2, divisions=2)
    store = RunStore(tmp_path)
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    protocol.prepare(experiment, store, device="cpu")
    protocol.run_model(experiment, "fonts_cnn", store, device="cpu", progress=False)

    def sources_of_rows():
        return {row["source"] for row in csv.DictReader(open(tmp_path / "table1.csv"))}

    protocol.merge(tmp_path)  # the default for the FONTS glyphs: beside the paper's rows
    assert sources_of_rows() == {"ours", "paper"}
    protocol.merge(tmp_path, paper_rows=False)
    assert sources_of_rows() == {"ours"}
    assert "the paper's ImageNet rows are left out" in (tmp_path / "table1.md").read_text()
