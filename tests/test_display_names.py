"""A user's model is shown by the name its factory gives it (issue 29, item 3):
``wrap(..., name="digits_resnet18")`` names the rows of a run's tables, the figure titles
and the explorer's exported files, while the factory spec (an absolute path) stays the
model's identity in the records; no absolute path reaches a table or caption meant for a paper."""

import csv
import json

import matplotlib
import pytest

from blindspots_nb.explorer import Explorer
from blindspots_nb.explorer.view import LSTExplorer
from blindspots_nb.lst import LSTConfig
from blindspots_nb.plots.report import report_examples_figure
from blindspots_nb.protocol.report import model_report
from helpers import run_factory_on_glyph_folder

matplotlib.use("Agg")

NAME = "digits_resnet18"


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    """A finished run of a factory ``my_models.py:build`` (fonts_cnn wrapped with
    ``name=NAME``) on a labelled folder of glyphs: 4 sources, 2 rounds, 3 LST iterations."""
    root = tmp_path_factory.mktemp("user")
    store, experiment, spec = run_factory_on_glyph_folder(
        root, "my_models",
        "    model = load_model('fonts_cnn', device='cpu')\n"
        f"    return wrap(model, mean=(0.0,), std=(1.0,), class_names=model.class_names, "
        f"input_size=tuple(model.input_size), name={NAME!r})\n",
        ("A", "B", "C"), "img", images="my_glyphs", iterations=3, rounds=2, divisions=2)
    return root, store, experiment, spec


def test_the_tables_name_the_model_by_its_display_name_and_hold_no_absolute_path(user_run):
    root, store, experiment, spec = user_run
    for table in ("table1", "table2"):
        with open(store.out_dir / f"{table}.csv", newline="") as handle:
            assert [row["model"] for row in csv.DictReader(handle)] == [NAME]
        for suffix in (".md", ".tex"):
            text = (store.out_dir / f"{table}{suffix}").read_text()
            assert NAME.replace("_", r"\_" if suffix == ".tex" else "_") + " (ours" in text
            assert str(root) not in text and "/tmp" not in text, text
            assert "folder:my" in text  # the folder by its name ('_' escaped in LaTeX)
    settings = json.loads((store.out_dir / "settings.json").read_text())  # the spec stays the identity
    assert settings["experiments"][0]["models"] == [spec] and settings["weights"][spec]["display_name"] == NAME


def test_the_reports_figure_title_and_caption_name_the_model_by_its_display_name(user_run):
    root, store, experiment, spec = user_run
    figure = report_examples_figure(model_report(store, experiment, spec))
    texts = [figure._suptitle.get_text(), *(text.get_text() for text in figure.texts)]
    assert texts[0] == f"{NAME}: blind spots of round 0"
    assert all(str(root) not in text for text in texts), texts
    assert any(f"{NAME} [made by my_models.py:build]" in text for text in texts), texts


def test_the_explorers_exports_are_named_after_the_display_name(user_run, tmp_path):
    root, store, experiment, spec = user_run
    explorer = Explorer(spec, image_source=f"folder:{root / 'my_glyphs'}", config=LSTConfig(iterations=2),
                        iterations_per_click=1, device="cpu", live=False)
    explorer.step()
    paths = explorer.export(tmp_path)
    assert all(path.name.startswith(f"{NAME}_") for path in paths.values()), paths
    assert NAME in explorer.caption() and str(root) not in explorer.caption()
    assert json.loads(paths["record"].read_text())["model"]["spec"] == spec  # the identity, in the record


def test_the_apps_model_menu_shows_the_display_name_and_keeps_the_spec(user_run, tmp_path):
    root, store, experiment, spec = user_run
    app = LSTExplorer(spec, image_source=f"folder:{root / 'my_glyphs'}", iterations=2, device="cpu",
                      model_names=["fonts_cnn"], out_dir=tmp_path, live=False)
    assert app.model_menu.options[0] == (NAME, spec) and app.model_menu.value == spec
    assert app.model_menu.label == NAME
