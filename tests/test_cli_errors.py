"""Command-line mistakes are told before torch is imported (issue 29, item 5): each
error of a case below comes from a process in which ``import torch`` raises, so it
cannot have waited for torch. How long they take is a benchmark figure, not a test."""

import json
import subprocess
import sys

import pytest

from blindspots_nb import models
from blindspots_nb.cli import build_parser, main

# `import torch` (or any torch.*) raises in the process; then the command line runs as typed.
NO_TORCH = """\
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch was imported")

sys.meta_path.insert(0, NoTorch())
from blindspots_nb.cli import main
status = main(sys.argv[1:])
print("torch in sys.modules:", "torch" in sys.modules)
sys.exit(status)
"""


def without_torch(args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["reproduce", "--image-source", "photos", "--models", "my_models.py:build-it"],
     "'my_models.py:build-it' is not a model factory spec: write 'path/to/file.py:function' or "
     "'package.module:function'"),
    (["reproduce", "--image-source", "photos", "--models", "my_models.py:build"],
     "model factory 'my_models.py:build': no such file {cwd}/my_models.py"),
    (["reproduce", "--image-source", "folder:my_digits", "--models", "fonts_cnn"],
     "data root my_digits (for --image-source) does not exist"),
    (["reproduce", "--models", "nosuchnet"], "unknown model 'nosuchnet'; known models: efficientnet_lite0, "
     "resnet50, deit_small_patch16_224, resnet50_at, deit_small_at, cifar10_wrn28_10, cifar10_wrn28_10_at, "
     "fonts_cnn, fonts_cnn_at, digits_lenet, digits_lenet_at; 'timm:<name>' for any timm model; or a factory spec"),
    (["reproduce", "--image-source", "photos", "--models", "fonts_cnn,nosuchnet"], "unknown model 'nosuchnet'"),
    (["reproduce", "--models", "digits_lenet"], "digits_lenet not in preset 'offline' (fonts_cnn, fonts_cnn_at, "
     "efficientnet_lite0); pass --image-source to say which images they run on"),
    (["demo", "--model", "nosuchnet"], "unknown model 'nosuchnet'; known models: efficientnet_lite0"),
    (["reproduce", "--preset", "paper", "--data-root", "no_imagenet"], "--data-root no_imagenet does not exist"),
    (["reproduce", "--preset", "paper"], "the paper preset needs ImageNet validation images: pass --data-root"),
    (["reproduce", "--preset", "mnist"], "unknown preset 'mnist'; known: offline, digits, paper, cifar10"),
    (["reproduce", "--shard", "1of4"], "a shard is written i/n (e.g. 0/4), got '1of4'"),
    (["reproduce", "--shard", "4/4"], "shard 4/4: need 0 <= i < n"),
    (["reproduce", "--weights", "fonts_cnn"], "--weights takes MODEL=PATH, got 'fonts_cnn'"),
    (["reproduce", "--weights", "fonts_cnn=gone.pt"], "--weights fonts_cnn=gone.pt: no such file"),
    (["reproduce", "--out-dir", "a_file"], "--out-dir a_file is a file, not a folder"),
    (["demo", "--model", "my_models.py:build"], "model factory 'my_models.py:build': no such file"),
    (["demo", "--image-source", "folder:my_digits"], "data root my_digits (for --image-source) does not exist"),
    (["demo", "--image-source", "mnist"], "unknown image source 'mnist'; write one of: photos"),
    (["demo", "--model", "timm:resnet18", "--weights", "timm:resnet18=resnet18.pth"],
     "--weights timm:resnet18=resnet18.pth: no such file"),
])
def test_command_line_errors_come_before_torch_is_imported(tmp_path, args, message):
    (tmp_path / "a_file").write_text("a user's file")
    run = without_torch(args, tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(f"blindspots-nb {args[0]}: error: {message.format(cwd=tmp_path)}"), run.stderr
    assert run.stderr.count("\n") == 1, run.stderr  # one line
    assert run.stdout == "torch in sys.modules: False\n"


@pytest.mark.slow
@pytest.mark.parametrize("args", [["reproduce", "--no-such-flag"], ["demo", "--shard", "0/2"]])
def test_an_unknown_flag_is_told_before_torch_is_imported(tmp_path, args):
    run = without_torch(args, tmp_path)
    assert run.returncode == 2 and f"unrecognized arguments: {args[1]}" in run.stderr
    assert "torch was imported" not in run.stderr


@pytest.mark.slow
def test_arguments_that_pass_the_checks_go_on_to_import_torch(tmp_path):
    """The checks refuse no good command: a well-formed one passes them and reaches torch
    (which this process refuses, so the test sees that it got that far)."""
    (tmp_path / "net.pt").write_bytes(b"weights")
    run = without_torch(["demo", "--model", "timm:resnet18", "--weights", "timm:resnet18=net.pt"], tmp_path)
    assert "torch was imported" in run.stderr


def test_demo_takes_its_models_weights_as_the_offline_message_writes_them(tmp_path, capsys):
    """``--weights MODEL=PATH`` (what the offline message of a missing file suggests) and
    ``--weights PATH`` load that file; weights of another model are refused."""
    checkpoint = str(models.get_entry("fonts_cnn").locate())
    for n, weights in enumerate((f"fonts_cnn={checkpoint}", checkpoint)):
        out = tmp_path / str(n)
        assert main(["demo", "--model", "fonts_cnn", "--weights", weights, "--iterations", "2", "--device", "cpu",
                     "--out-dir", str(out)]) == 0
        record = json.loads((out / "record.json").read_text())
        assert record["model"]["weights_file"] == checkpoint and record["model"]["weights_origin"] == "user file"
    assert main(["demo", "--model", "fonts_cnn", "--weights", f"fonts_cnn_at={checkpoint}",
                 "--out-dir", str(tmp_path / "other")]) == 2
    assert "demo runs --model fonts_cnn, whose weights are --weights fonts_cnn=PATH" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_demo_help_says_it_takes_a_factory_spec():
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["demo"].format_help().split())
    assert "or a factory spec path/to/file.py:function or package.module:function" in text
    assert "--weights [MODEL=]PATH" in text


@pytest.mark.slow
def test_demo_runs_a_timm_model_offline_from_the_file_its_offline_message_names(tmp_path, capsys, monkeypatch,
                                                                                no_network):
    """Offline, ``demo --model timm:resnet18`` asks for its file with ``--weights
    timm:resnet18=PATH``; given so (here timm's architecture with random weights, saved as
    the published safetensors), the demo runs on that file without a connection."""
    import timm
    from safetensors.torch import save_file

    monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")
    save_file(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "model.safetensors")
    weights = f"timm:resnet18={tmp_path / 'model.safetensors'}"
    assert main(["demo", "--model", "timm:resnet18", "--weights", weights, "--iterations", "2", "--device", "cpu",
                 "--out-dir", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "out" / "record.json").read_text())["model"]
    assert (record["name"], record["weights_file"], record["weights_origin"]) == (
        "timm:resnet18", str(tmp_path / "model.safetensors"), "user file")
    assert no_network == []
