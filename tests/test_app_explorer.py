"""The Voila app notebook (``notebooks/app_explorer.ipynb``) without a browser:
papermill sets its parameters, and it shows the explorer (with its live triangle) and nothing else.
``tests/test_explorer_in_browser.py`` opens it under Voila."""

from pathlib import Path

import nbformat
import papermill
import pytest
from nbclient import NotebookClient

APP = Path(__file__).resolve().parents[1] / "notebooks" / "app_explorer.ipynb"


@pytest.mark.slow
def test_papermill_sets_the_apps_parameters_and_it_shows_only_the_explorer(tmp_path):
    code = [cell for cell in nbformat.read(APP, as_version=4).cells if cell.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    prepared = tmp_path / "app.ipynb"
    papermill.execute_notebook(APP, prepared, prepare_only=True, parameters={
        "model_name": "fonts_cnn", "image_source": "fonts:test", "source_name": None, "target": None, "target_b": None,
        "out_dir": str(tmp_path / "export"), "device": "cpu"})
    book = nbformat.read(prepared, as_version=4)
    book.cells.append(nbformat.v4.new_code_cell(
        "print(app.model.info['name'], app.state.image_source, app.traversal.iteration, app.saliency_toggle.value, "
        "repr(app.message.value), app.triangle.shown.points, len(app.triangle.surface.data[0].z), "
        "len({app.state.source_name, app.state.target, app.state.target_b}))"))
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    *app_cells, check = [cell for cell in book.cells if cell.cell_type == "code"]
    outputs = [output for cell in app_cells for output in cell.outputs]
    assert [output.output_type for output in outputs] == ["execute_result"]  # no printed text, no warning
    assert "application/vnd.jupyter.widget-view+json" in outputs[0].data
    # the live triangle of 66 points between the source and two other images, from the start
    assert check.outputs[0].text.split() == ["fonts_cnn", "fonts:test", "0", "False", "''", "66", "66", "3"]
