"""What the analysis notebooks call instead of restating it in cells: the set-up
(``blindspots_nb.notebook``), one traversal's recorded path, path widths by kind of path,
the saliency method's options and record, and a record written as JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from blindspots_nb.analysis.paths import (AUTHORS_RADII, AUTHORS_SAMPLES, PATH_KINDS, blindspot_grid, path_widths,
                                          recorded_path, segment_points, traversal_path_widths, width_settings,
                                          widths_along)
from blindspots_nb.analysis.saliency import method_options, path_saliency, saliency_record
from blindspots_nb.analysis.words import saliency_sentences
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.models import predict
from blindspots_nb.notebook import NotebookSetup, set_up
from blindspots_nb.tools import provenance

RECORDING = LSTConfig(step_size=0.1, iterations=4, record_every=2, record_images=True)


def test_importing_the_notebook_module_imports_no_torch():
    code = "import sys, blindspots_nb.notebook; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_set_up_gives_the_model_its_images_on_its_device_and_a_caption(tmp_path):
    setup = set_up("fonts_cnn", ["B4 (cmss10)", "A13 (STIXGeneralItalic)"], image_source="fonts:test",
                   config=RECORDING, out_dir=tmp_path, settings={"path": "segment"})
    assert setup.model.info["name"] == "fonts_cnn" and setup.names == ["B4 (cmss10)", "A13 (STIXGeneralItalic)"]
    assert setup.images.shape == (2, 1, 32, 32) and setup.images.device == setup.device
    assert setup.config is RECORDING and setup.out_dir == tmp_path
    assert setup.caption == provenance.caption(setup.model, {**RECORDING.to_dict(), "path": "segment"}, setup.device)
    default = set_up("fonts_cnn", k=3)
    assert default.config == LSTConfig() and [name[0] for name in default.names] == ["A", "B", "C"]
    assert default.caption == provenance.caption(default.model, LSTConfig(), default.device)



@pytest.mark.slow
def test_a_notebook_follows_the_model_to_its_own_images(tmp_path):
    """Notebook 02 with a FONTS model and nothing else said takes glyphs (the model's
    image source and default images), not the photos an ImageNet model gets."""
    import papermill

    root = Path(__file__).resolve().parents[1]
    executed = tmp_path / "02.ipynb"
    papermill.execute_notebook(str(root / "notebooks" / "02_triangles_and_star.ipynb"), str(executed),
                               parameters={"model_name": "fonts_cnn", "iterations": 5,
                                           "out_dir": str(tmp_path / "out")},
                               cwd=str(root / "notebooks"), progress_bar=False)
    text = "".join("".join(output.get("text", "")) for cell in json.loads(executed.read_text())["cells"]
                   for output in cell.get("outputs", []))
    assert text.startswith("fonts_cnn [")  # the caption
    sources = [line for line in text.splitlines() if line.startswith("source ")]
    assert len(sources) == 1 and sources[0].startswith("source A") and ": A, confidence" in sources[0]
    assert [line.split()[3][0] for line in text.splitlines() if line.startswith("blind spot towards")] == list("BCDE")
    assert (tmp_path / "out" / "star.html").is_file()

def test_traverse_from_first_runs_the_first_image_towards_each_other_one(tiny_cnn):
    images = torch.rand(3, 3, 16, 16)
    setup = NotebookSetup(tiny_cnn, images, ["a", "b", "c"], torch.device("cpu"), RECORDING, "", Path("."))
    traversal = setup.traverse_from_first()
    label = predict(tiny_cnn, images[:1])[0]
    assert traversal.iteration == RECORDING.iterations
    assert traversal.labels.tolist() == label.expand(2).tolist()
    torch.testing.assert_close(traversal.sources, images[:1].expand(2, -1, -1, -1))
    torch.testing.assert_close(traversal.targets, images[1:])
    direct = Traversal(tiny_cnn, images[:1].expand(2, -1, -1, -1), label.expand(2), images[1:], RECORDING).run()
    torch.testing.assert_close(traversal.result().images, direct.result().images)


def test_recorded_path_and_the_grids_path_from_a_source_towards_a_target(tiny_cnn):
    images = torch.rand(3, 3, 16, 16)
    grid = blindspot_grid(tiny_cnn, images, RECORDING)
    path = grid.path(2, 0)  # from image 2 towards image 0
    index = grid.pairs.index((0, 2))
    history = grid.result.history.as_tensors()
    assert path.index == index and path.iterations.tolist() == [0, 2, 4]
    torch.testing.assert_close(path.images, history["images"][:, index])
    torch.testing.assert_close(path.confidence, history["source_confidence"][:, index])
    torch.testing.assert_close(path.images[0], images[2], atol=RECORDING.init_noise, rtol=0)
    with pytest.raises(ValueError, match="diagonal"):
        grid.path(1, 1)
    with pytest.raises(IndexError, match="index 6 is outside"):
        recorded_path(grid.result, len(grid.pairs))
    unrecorded = Traversal(tiny_cnn, images[:1], [0], images[1:2], LSTConfig(iterations=2)).run()
    with pytest.raises(ValueError, match="record_images=True"):
        recorded_path(unrecorded)


def test_width_settings_by_kind_of_path():
    assert width_settings("segment") == ([1.0, 2.0, 5.0, 10.0], 16)
    assert width_settings("traversal", [3], 4) == ([3], 4)
    assert width_settings("traversal-authors") == (list(AUTHORS_RADII), AUTHORS_SAMPLES)
    assert set(PATH_KINDS) == {"segment", "traversal", "traversal-authors"}
    with pytest.raises(ValueError, match="'traversal-authors', not 'spiral'"):
        width_settings("spiral")


def test_widths_along_each_kind_of_path_measure_what_its_own_call_does(tiny_cnn):
    images = torch.rand(2, 3, 16, 16)
    traversal = Traversal(tiny_cnn, images[:1], predict(tiny_cnn, images[:1])[0], images[1:], RECORDING).run()
    label, settings = int(traversal.labels[0]), {"radii": [0.5, 1.0], "samples": 3, "quantiles": (0.1, 0.9)}

    segment = widths_along(tiny_cnn, traversal, "segment", points=4, **settings)
    expected = path_widths(tiny_cnn, segment_points(images[0], traversal.images[0], 4), label, [0.5, 1.0], 3, (0.1, 0.9))
    torch.testing.assert_close(segment.values, expected.values)
    torch.testing.assert_close(segment.positions, torch.linspace(0, 1, 4, dtype=torch.float64))

    along = widths_along(tiny_cnn, traversal, "traversal", **settings)
    path = recorded_path(traversal)
    expected = path_widths(tiny_cnn, path.images, label, [0.5, 1.0], 3, (0.1, 0.9), positions=path.iterations)
    torch.testing.assert_close(along.values, expected.values)
    assert along.positions.tolist() == [0, 2, 4]

    authors = widths_along(tiny_cnn, traversal, "traversal-authors", **settings)
    expected = traversal_path_widths(tiny_cnn, traversal, radii=[0.5, 1.0], samples=3, quantiles=(0.1, 0.9))
    torch.testing.assert_close(authors.values, expected.values)
    assert authors.samples == 3
    with pytest.raises(ValueError, match="must be one of"):
        widths_along(tiny_cnn, traversal, "straight")


def test_method_options_keep_only_the_methods_own():
    assert method_options("gradcam", layer="features.3", n_steps=8) == {"layer": "features.3"}
    assert method_options("gradcam", n_steps=8) == {}
    assert method_options("integrated_gradients", layer="features.3", n_steps=8) == {"n_steps": 8}
    assert method_options("saliency", layer="features.3", n_steps=8) == {}
    with pytest.raises(ValueError):
        method_options("lime")


def test_saliency_record_is_written_as_json_with_its_provenance(tiny_cnn, tmp_path):
    images = torch.rand(2, 3, 16, 16)
    traversal = Traversal(tiny_cnn, images[:1], [0], images[1:], RECORDING).run()
    path = path_saliency(tiny_cnn, traversal, "saliency", target_class=False)
    class_names = [f"class {c}" for c in range(5)]
    values = saliency_record(path, class_names)
    assert values["source_class"] == "class 0" and values["steps"] == path.steps
    assert values["with_source"] == path.with_source.tolist()

    written = provenance.write_record(tmp_path / "record" / "correlations.json", tiny_cnn, RECORDING, "cpu",
                                      folder=tmp_path, sentence=saliency_sentences(path, class_names), **values)
    record = json.loads(written.read_text())
    assert record["sentence"].startswith("At the blind spot")
    assert record["config"] == RECORDING.to_dict() and record["model"]["weights"] == "user-supplied module"
    assert record["folder"] == str(tmp_path) and record["with_target"] == path.with_target.tolist()
    assert record["device"].startswith("cpu") and "versions" in record


def test_every_notebook_that_runs_a_model_and_the_app_take_a_device_parameter():
    """Notebooks 01-06 and 08 and the app: ``device = None`` (CUDA when available) in the
    parameters cell, and the cells pass it on to what loads the model."""
    import nbformat

    folder = Path(__file__).resolve().parents[1] / "notebooks"
    names = sorted(path.name for path in folder.glob("0[1-68]_*.ipynb")) + ["app_explorer.ipynb"]
    assert len(names) == 8
    for name in names:
        code = [cell.source for cell in nbformat.read(folder / name, as_version=4).cells if cell.cell_type == "code"]
        parameters = {}
        exec(code[0], {}, parameters)
        assert parameters["device"] is None, name
        assert "device=device" in "\n".join(code[1:]), name
