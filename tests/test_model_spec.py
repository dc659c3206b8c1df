"""A model given by where its code lives (``file.py:function``, ``package.module:function``):
loading, the message for each bad spec, the checks ``Experiment`` makes when it is built,
and a whole run of the tables through papermill and torchrun on a factory model."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from blindspots_nb.cli import main
from blindspots_nb.models import ModelSpecError, load_model, model_folder, predict
from blindspots_nb.protocol import Experiment

FACTORY = '''
import torch
import torch.nn as nn
from blindspots_nb.models import wrap

SEED = {seed}


def build():
    """A 3-class CNN for 32x32 images, seeded random weights, its logits scaled to be confident."""
    torch.manual_seed(SEED)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, stride=2),
                        nn.Tanh(), nn.Flatten(), nn.Linear(8 * 16 * 16, 3))
    with torch.no_grad():
        net[-1].weight.mul_(30)
    return wrap(net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), ["circle", "square", "triangle"], (3, 32, 32), name="tiny")


def as_dict():
    model = build()
    return {{"module": model.net, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
            "class_names": model.class_names, "input_size": (3, 32, 32)}}


def bare():
    return build().net


def nothing():
    return None


NOT_A_FUNCTION = 3
'''


def write_factory(folder: Path, seed: int = 0) -> Path:
    path = folder / "tiny_factory.py"
    path.write_text(FACTORY.format(seed=seed))
    return path


@pytest.fixture
def factory_file(tmp_path):
    return write_factory(tmp_path)


# ----------------------------------------------------------------- loading
def test_a_spec_loads_as_a_classifier_with_its_fingerprint(factory_file, tmp_path):
    model = load_model(f"{factory_file}:build", device="cpu")
    assert model.class_names == ["circle", "square", "triangle"] and model.input_size == (3, 32, 32)
    assert model.info["spec"] == f"{factory_file}:build" and len(model.info["weights_sha256"]) == 64
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    # the dict convention gives the same model; another seed another fingerprint
    assert load_model(f"{factory_file}:as_dict", device="cpu").info["weights_sha256"] == model.info["weights_sha256"]
    (tmp_path / "other").mkdir()
    other = load_model(f"{write_factory(tmp_path / 'other', seed=1)}:build", device="cpu")
    assert other.info["weights_sha256"] != model.info["weights_sha256"]
    # --weights SPEC=PATH: a state dict of the wrapped net, loaded after the factory ran
    torch.save(other.net.state_dict(), tmp_path / "other.pt")
    loaded = load_model(f"{factory_file}:build", device="cpu", weights=tmp_path / "other.pt")
    assert loaded.info["weights_sha256"] == other.info["weights_sha256"]
    assert loaded.info["weights_file"] == str((tmp_path / "other.pt").resolve())


def test_a_module_spec_imports_by_name(factory_file, monkeypatch):
    monkeypatch.syspath_prepend(str(factory_file.parent))
    monkeypatch.delitem(sys.modules, "tiny_factory", raising=False)
    model = load_model("tiny_factory:build", device="cpu")
    assert model.info["weights_sha256"] == load_model(f"{factory_file}:build", device="cpu").info["weights_sha256"]


@pytest.mark.parametrize("spec, message", [
    ("{folder}/missing.py:build", "no such file"),
    ("no_such_package_xyz.models:build", "no module named 'no_such_package_xyz'"),
    ("{file}:buld", "has no 'buld'; it has as_dict, bare, build, nothing$"),
    ("{file}:NOT_A_FUNCTION", "NOT_A_FUNCTION is not a function \\(type int\\)"),
    ("{file}:nothing", "returned a NoneType, not a module"),
    ("{file}:bare", "returned a module without class_names, input_size, info"),
    ("{folder}/x.txt:build", "is not a model factory spec"),
    ("{file}:", "is not a model factory spec"),
])
def test_each_bad_spec_has_its_message(factory_file, spec, message):
    spec = spec.format(folder=factory_file.parent, file=factory_file)
    with pytest.raises(ModelSpecError, match=message):
        load_model(spec, device="cpu")


def test_the_cli_refuses_a_bad_spec_in_one_line(factory_file, tmp_path, capsys):
    assert main(["reproduce", "--models", f"{factory_file}:nothing", "--image-source", f"folder:{tmp_path}",
                 "--out-dir", str(tmp_path / "out"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "returned a NoneType, not a module" in error and "Traceback" not in error


MISDESCRIBED = """
import torch
import torch.nn as nn
from blindspots_nb.models import wrap

GREY = (0.5, 0.5, 0.5)


def _net(outputs=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, outputs))


def needs_size(size, name="tiny"):
    return wrap(_net(), GREY, GREY, ["a", "b", "c"], (3, size, size))


def two_names_three_outputs():
    return wrap(_net(3), GREY, GREY, ["a", "b"], (3, 8, 8))


def big_input():
    return wrap(_net(), GREY, GREY, ["a", "b", "c"], input_size="big")


def big_input_dict():
    return {"module": _net(), "mean": GREY, "std": GREY, "class_names": ["a", "b", "c"], "input_size": "big"}


def same_names():
    return wrap(_net(), GREY, GREY, ["cat", "cat", "dog"], (3, 8, 8))


def nfc_and_nfd():
    return wrap(_net(), GREY, GREY, ["caf\\u00e9", "cafe\\u0301", "tea"], (3, 8, 8))


def wrong_size():
    return wrap(_net(), GREY, GREY, ["a", "b", "c"], (3, 16, 16))


def imagenet_names():
    from blindspots_nb.models import imagenet_class_names

    return wrap(_net(1000), GREY, GREY, list(imagenet_class_names()), (3, 8, 8))


def changes_torch():
    net = _net()
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    torch.use_deterministic_algorithms(True)
    return wrap(net, GREY, GREY, ["a", "b", "c"], (3, 8, 8))
"""


@pytest.mark.parametrize("function, message", [
    ("needs_size", "needs_size requires the argument\\(s\\) size"),
    ("two_names_three_outputs", "outputs of shape \\(1, 3\\) .*2 class names"),
    ("big_input", "input_size must be \\(C, H, W\\).*got 'big'"),
    ("big_input_dict", "input_size must be \\(C, H, W\\).*got 'big'"),
    ("same_names", "not unique \\(0 'cat' and 1 'cat'\\)"),
    ("nfc_and_nfd", r"U\+00E9\) and 1 .*U\+0065 U\+0301\)"),
    ("wrong_size", "input_size \\(3, 16, 16\\): RuntimeError"),
])
def test_a_misdescribed_model_is_one_line_at_load_naming_the_spec(tmp_path, function, message):
    path = tmp_path / "misdescribed.py"
    path.write_text(MISDESCRIBED)
    with pytest.raises(ModelSpecError, match=f"^model factory '{path}:{function}': .*{message}"):
        load_model(f"{path}:{function}", device="cpu")


def test_imagenets_own_class_names_load_though_two_classes_are_crane(tmp_path):
    path = tmp_path / "misdescribed.py"
    path.write_text(MISDESCRIBED)
    names = load_model(f"{path}:imagenet_names", device="cpu").class_names
    assert len(names) == 1000 and names.count("crane") == 2  # the bird and the machine, told apart by wnid


def test_the_cli_says_in_one_line_that_a_factory_needs_arguments(tmp_path, capsys):
    path = tmp_path / "misdescribed.py"
    path.write_text(MISDESCRIBED)
    assert main(["reproduce", "--models", f"{path}:needs_size", "--image-source", f"folder:{tmp_path}",
                 "--out-dir", str(tmp_path / "out"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "requires the argument(s) size" in error and "Traceback" not in error and "TypeError" not in error


def test_loading_a_factory_leaves_torchs_settings_as_they_were(tmp_path):
    """A factory that sets float64, no gradients and deterministic algorithms for itself: after
    loading it, the caller's torch is as it was, and LST on fonts_cnn runs in float32."""
    from blindspots_nb.data import fonts_dataset
    from blindspots_nb.lst import LSTConfig, Traversal

    path = tmp_path / "misdescribed.py"
    path.write_text(MISDESCRIBED)
    with pytest.warns(UserWarning, match="default dtype .*gradient mode .*deterministic algorithms"):
        model = load_model(f"{path}:changes_torch", device="cpu")
    assert model.class_names == ["a", "b", "c"]
    assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    fonts = load_model("fonts_cnn", device="cpu")
    glyphs = fonts_dataset("test", n=2, size=32)
    traversal = Traversal(fonts, glyphs.images[:1], glyphs.labels[:1], glyphs.images[1:], LSTConfig(iterations=2))
    traversal.step(2)
    assert traversal.images.dtype == torch.float32 and traversal.confidence.dtype == torch.float32


# ----------------------------------------------------------------- validation at the door
def test_experiment_checks_its_models_when_built(factory_file):
    with pytest.raises(ModelSpecError, match="not a model object"):
        Experiment("photos", (load_model(f"{factory_file}:build", device="cpu"),))
    with pytest.raises(ModelSpecError, match="unknown model 'resnet5'.*factory spec"):
        Experiment("photos", ("resnet5",))
    with pytest.raises(ModelSpecError, match="not a model factory spec"):
        Experiment("photos", ("some/dir:build",))
    with pytest.raises(TypeError, match="image source's spelling"):
        Experiment(torch.zeros(3), ("fonts_cnn",))
    with pytest.raises(ValueError, match="unknown image source"):
        Experiment("pictures", ("fonts_cnn",))
    assert Experiment("fonts", "fonts_cnn").models == ("fonts_cnn",)  # one name, not its letters
    relative = os.path.relpath(factory_file)
    assert Experiment("photos", (f"{relative}:build",)).models == (f"{factory_file}:build",)


def test_weights_for_a_spec_by_any_spelling_are_its_identity(factory_file, tmp_path, monkeypatch):
    """--weights SPEC=PATH with the spec written relative to the working folder: the run's
    settings record the fingerprint of the model with that state dict loaded."""
    from blindspots_nb.protocol.run import reproduce

    model = load_model(f"{factory_file}:build", device="cpu")
    with torch.no_grad():
        model.net[-1].bias.add_(1)
    torch.save(model.net.state_dict(), tmp_path / "tuned.pt")
    monkeypatch.chdir(factory_file.parent)
    experiment = Experiment(f"folder:{tmp_path}", ("tiny_factory.py:build",))
    with pytest.raises(ValueError, match="no readable images"):  # no images: the run stops after its settings
        reproduce([experiment], tmp_path / "run", device="cpu", weights={"tiny_factory.py:build": "tuned.pt"})
    recorded = json.loads((tmp_path / "run" / "settings.json").read_text())["weights"]
    assert recorded[f"{factory_file}:build"]["sha256"] == load_model(
        f"{factory_file}:build", device="cpu", weights=tmp_path / "tuned.pt").info["weights_sha256"]


def test_a_spec_model_has_a_safe_folder_name(factory_file):
    folder = model_folder(f"{factory_file}:build")
    assert folder.startswith("build-") and "/" not in folder and ":" not in folder
    assert folder == model_folder(os.path.relpath(factory_file) + ":build")  # the same file, the same folder
    assert folder != model_folder(f"{factory_file}:as_dict")
    assert model_folder("fonts_cnn") == "fonts_cnn"


# ----------------------------------------------------------------- whole runs
def labelled_folder(root: Path, spec: str, labelled: bool = True) -> Path:
    """Random images the model classifies confidently, in subfolders named by the model's own
    class for them (``labelled``) or all in one folder."""
    model = load_model(spec, device="cpu")
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(200, 3, 32, 32, generator=generator)
    images = (images * 255).round() / 255  # what a PNG holds
    labels, confidence = predict(model, images)
    for c, name in enumerate(model.class_names):
        chosen = [i for i in confidence.argsort(descending=True).tolist() if labels[i] == c][:2]
        assert chosen, f"the test model never predicts {name}"
        for i in chosen:
            folder = root / name if labelled else root
            folder.mkdir(parents=True, exist_ok=True)
            array = (images[i].permute(1, 2, 0) * 255).round().byte().numpy()
            Image.fromarray(array).save(folder / f"{name}_{i}.png")
    return root


def reproduce_args(spec: str, data: Path, out: Path) -> list[str]:
    return ["reproduce", "--models", spec, "--image-source", f"folder:{data}", "--n-sources", "3", "--rounds", "2",
            "--iterations", "3", "--divisions", "2", "--batch-size", "2", "--min-conf", "0", "--device", "cpu",
            "--out-dir", str(out)]


@pytest.mark.slow
def test_reproduce_runs_a_factory_model_resumes_and_refuses_changed_parameters(tmp_path, capsys):
    factory_file = write_factory(tmp_path)
    spec = f"{factory_file}:build"
    data = labelled_folder(tmp_path / "shapes", spec)
    out = tmp_path / "run"
    assert main(reproduce_args(spec, data, out)) == 0
    folder = model_folder(spec)
    assert (out / "folder" / folder / "per_source.csv").is_file()
    assert (out / "notebooks" / f"folder_{folder}_shard0of1.ipynb").is_file()
    pool = json.loads((out / "folder" / "pool.json").read_text())
    assert sorted(pool["class_names"]) == ["circle", "square", "triangle"]
    table1 = (out / "table1.csv").read_text()
    assert "| tiny (ours, folder, n=" in (out / "table1.md").read_text()  # by wrap(name=), not its path or folder
    settings = json.loads((out / "settings.json").read_text())
    assert settings["weights"][spec]["sha256"] == load_model(spec, device="cpu").info["weights_sha256"]
    capsys.readouterr()

    assert main(reproduce_args(spec, data, out)) == 0  # resume: nothing left to do
    assert "finished in" in capsys.readouterr().out and (out / "table1.csv").read_text() == table1

    write_factory(tmp_path, seed=1)  # other parameters under the finished run
    assert main(reproduce_args(spec, data, out)) == 2
    error = capsys.readouterr().err
    assert "holds a run with other settings" in error and f"weights.{spec}" in error and "Traceback" not in error


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is not installed beside this Python")
def test_torchrun_two_processes_match_one_on_a_factory_model(tmp_path):
    spec = f"{write_factory(tmp_path)}:build"
    data = labelled_folder(tmp_path / "shapes", spec)
    env = dict(os.environ, OMP_NUM_THREADS="1")  # as torchrun gives each process: floats agree bit for bit
    single = subprocess.run([sys.executable, "-m", "blindspots_nb", *reproduce_args(spec, data, tmp_path / "single")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "blindspots_nb",
                          *reproduce_args(spec, data, tmp_path / "two")], env=env, capture_output=True, text=True,
                         timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    folder = model_folder(spec)
    assert sorted(p.name for p in (tmp_path / "two" / "notebooks").glob("*.ipynb")) == [
        f"folder_{folder}_shard0of2.ipynb", f"folder_{folder}_shard1of2.ipynb"]
    for table in ("table1.csv", "table2.csv"):
        assert (tmp_path / "two" / table).read_text() == (tmp_path / "single" / table).read_text()


def test_the_explorer_steps_a_factory_model_on_its_labelled_folder(factory_file, tmp_path):
    from blindspots_nb.explorer import Explorer
    from blindspots_nb.lst import LSTConfig

    spec = f"{factory_file}:build"
    data = labelled_folder(tmp_path / "shapes", spec)
    explorer = Explorer(spec, image_source=f"folder:{data}", config=LSTConfig(iterations=3, record_every=1))
    explorer.step(3)
    snapshot = explorer.snapshot()
    assert snapshot.iteration == 3 and snapshot.source_class != snapshot.a.target_class
    assert {snapshot.source_class, snapshot.a.target_class} <= {"circle", "square", "triangle"}


@pytest.mark.slow
def test_notebook_01_runs_a_factory_model_on_its_labelled_folder(factory_file, tmp_path):
    import nbformat
    import papermill

    spec = f"{factory_file}:build"
    data = labelled_folder(tmp_path / "shapes", spec)
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "01_explore_lst.ipynb"
    papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), cwd=str(tmp_path), progress_bar=False,
                               parameters={"model_name": spec, "image_source": f"folder:{data}",
                                           "out_dir": str(tmp_path / "figures")})
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "Traceback" not in printed and any(name in printed for name in ("circle", "square", "triangle"))
