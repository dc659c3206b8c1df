"""Helpers the tests import (a module of its own: ``conftest`` is a name several folders use)."""

import hashlib
import importlib.util
from pathlib import Path

import torch
from torch import nn


def load_benchmark(name: str):
    """A script of benchmarks/ as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tiny_cnn(num_classes: int = 5, channels: int = 3, seed: int = 0, sharpness: float = 100.0) -> nn.Module:
    """A small random CNN for 16x16 images, its logits scaled so that it is confident."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.Tanh(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, num_classes),
    )
    with torch.no_grad():
        net[-1].weight.mul_(sharpness)
    return net.eval()


def make_cnn_with_batchnorm(seed: int = 0) -> nn.Module:
    """conv-BN-ReLU twice, with running statistics and affine parameters far from 0 and 1."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1, stride=2, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Flatten(), nn.Linear(8 * 8 * 8, 5))
    for norm in (net[1], net[4]):
        norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.2, 3)
        nn.init.uniform_(norm.weight, 0.5, 2), nn.init.uniform_(norm.bias, -1, 1)
    return net.eval()


def folder_listing(folder: Path) -> dict:
    """Every entry under ``folder`` with its size, mtime and content hash: equal before and after
    means nothing was written, removed or touched."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns,
                                          hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))} | {".": folder.stat().st_mtime_ns}


# Names a hostile colleague may give files and classes: each sets a flag in the page if it ever becomes a live tag.
HOSTILE_FILE = "<img src=x onerror=window.__pwned=1>"
HOSTILE_CLASS = "<img src=y onerror=window.__pwned=2>"
HOSTILE_MODEL = "<img src=z onerror=window.__pwned=3>"


def run_factory_on_glyph_folder(root: Path, factory_name: str, build_body: str, class_folders, file_stem: str,
                                images: str = "images", iterations: int = 5, rounds: int = 3, divisions: int = 4):
    """A finished run (``root/run``) of the factory spec ``root/<factory_name>.py:build`` (``build_body``: the
    lines of ``build()``, which may use ``load_model`` and ``wrap``) on a labelled folder
    ``root/<images>/<class>/<file_stem><k>.png``: two FONTS test glyphs of each of the first classes, one folder
    each. 4 sources, LST of ``iterations`` steps of 0.05. Returns the store, the experiment and the spec."""
    from PIL import Image

    from blindspots_nb import protocol
    from blindspots_nb.data.sources import open_source
    from blindspots_nb.lst import LSTConfig
    from blindspots_nb.protocol import Experiment, RunStore
    from blindspots_nb.protocol import run as run_module

    root.mkdir(parents=True, exist_ok=True)
    factory = root / f"{factory_name}.py"
    factory.write_text("from blindspots_nb.models import load_model, wrap\n\n\ndef build():\n" + build_body)
    glyphs = open_source("fonts:test", (1, 32, 32))
    for label, folder in enumerate(class_folders):
        (root / images / folder).mkdir(parents=True)
        for k, index in enumerate([i for i, y in enumerate(glyphs.labels.tolist()) if y == label][:2]):
            pixels = (glyphs[index][0][0] * 255).round().byte().numpy()
            Image.fromarray(pixels).save(root / images / folder / f"{file_stem}{k}.png")
    spec = f"{factory}:build"
    experiment = Experiment(f"folder:{root / images}", (spec,), LSTConfig(iterations=iterations, step_size=0.05),
                            n_sources=4, rounds=rounds, batch_size=2, divisions=divisions, per_class=2, min_conf=0.3)
    store = RunStore(root / "run")
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    protocol.prepare(experiment, store, device="cpu")
    protocol.run_model(experiment, spec, store, device="cpu", progress=False)
    protocol.assemble(store, [experiment])
    return store, experiment, spec


def make_hostile_run(root: Path) -> Path:
    """A finished run (``root/run``) of a user's model on a labelled folder, both named to inject HTML: a
    factory spec in ``root/HOSTILE_MODEL.py`` (fonts_cnn wrapped, its class 'A' renamed ``HOSTILE_CLASS``)
    on ``root/images/<class>/HOSTILE_FILE<k>.png``, two FONTS glyphs of each of its first three classes.
    4 sources, 3 rounds, LST of 5 iterations (about 15 s on a CPU)."""
    store, _, _ = run_factory_on_glyph_folder(
        root, HOSTILE_MODEL,
        "    model = load_model('fonts_cnn', device='cpu')\n"
        f"    names = [{HOSTILE_CLASS!r}, *model.class_names[1:]]\n"
        "    return wrap(model, mean=(0.0,), std=(1.0,), class_names=names, input_size=tuple(model.input_size))\n",
        (HOSTILE_CLASS, "B", "C"), HOSTILE_FILE)
    return store.out_dir
