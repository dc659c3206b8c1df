"""Train and evaluate the shipped models: the FONTS CNNs and the digits LeNets, each with
normal training and l_inf PGD adversarial training.

Retrain the shipped checkpoints (deterministic; a few CPU minutes each for FONTS, under a
minute each for digits)::

    python -m blindspots_nb.train --model fonts_cnn --out blindspots_nb/models/checkpoints/fonts_cnn.pt
    python -m blindspots_nb.train --model fonts_cnn_at --out blindspots_nb/models/checkpoints/fonts_cnn_at.pt
    python -m blindspots_nb.train --model digits_lenet --out blindspots_nb/models/checkpoints/digits_lenet.pt
    python -m blindspots_nb.train --model digits_lenet_at --out blindspots_nb/models/checkpoints/digits_lenet_at.pt

Evaluate clean and PGD accuracy on each model's test images (the test fonts, the digits'
test split), at each model's radius unless ``--eval-radius`` says otherwise::

    python -m blindspots_nb.train --eval fonts_cnn fonts_cnn_at digits_lenet digits_lenet_at
"""

from __future__ import annotations

import argparse
import json
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .analysis.attacks import default_radius, pgd
from .data import TensorImages, digits_dataset, fonts_dataset
from .models.classes import DIGITS_AT_RADIUS, FONTS_AT_RADIUS
from .models.classifier import Classifier, module_device
from .models.factory import load_model
from .models.registry import get_entry


@dataclass
class TrainConfig:
    """Hyperparameters of one training run; ``radius > 0`` means PGD adversarial training
    (l_inf, pixels in [0, 1])."""

    model: str = "fonts_cnn"
    epochs: int = 6
    n_train: int = 12000
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0
    radius: float = 0.0
    steps: int = 7
    threads: int = 1

    @classmethod
    def for_model(cls, model: str, **overrides) -> "TrainConfig":
        """The configuration the shipped checkpoint of ``model`` was trained with."""
        if model not in SHIPPED:
            raise ValueError(f"train.py trains {', '.join(SHIPPED)}, not {model!r}")
        return cls(model=model, **{**SHIPPED[model], **{k: v for k, v in overrides.items() if v is not None}})


# The models train.py trains, with what their shipped checkpoints changed of TrainConfig's defaults. The digits'
# train split has 1,437 images (n_train takes the first n of them); PGD training sees fewer epochs of larger
# batches, to train in under 2 minutes on a 2-core CPU.
SHIPPED = {"fonts_cnn": {}, "fonts_cnn_at": {"radius": FONTS_AT_RADIUS},
           "digits_lenet": {"epochs": 30, "n_train": 1437, "batch_size": 64},
           "digits_lenet_at": {"epochs": 15, "n_train": 1437, "batch_size": 128, "radius": DIGITS_AT_RADIUS,
                               "steps": 5}}


def dataset_of(model: str, split: str, n: int, seed: int = 0):
    """The images ``model`` (a name of :data:`SHIPPED`) trains or is tested on: ``n`` glyphs of
    the FONTS ``split`` drawn from ``seed``, or the first ``n`` digits of the digits' ``split``."""
    entry = get_entry(model)
    if entry.dataset == "fonts":
        return fonts_dataset(split, n, seed)
    if entry.dataset != "digits":
        raise ValueError(f"train.py trains and tests models of FONTS or digits; {model} is a model of {entry.dataset}")
    digits = digits_dataset(split, entry.input_size)
    return TensorImages(digits.images[:n], digits.labels[:n], digits.class_names, digits.names[:n])


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset, radius: float = FONTS_AT_RADIUS, steps: int = 20,
             batch_size: int = 128, seed: int = 0) -> dict:
    """Clean accuracy and PGD accuracy (l_inf ``radius``, ``steps`` steps, random start; the
    random starts of all batches drawn from ``seed``) on ``dataset``."""
    generator = torch.Generator().manual_seed(seed)
    device = module_device(model)
    clean = robust = 0
    for start in range(0, len(dataset), batch_size):
        idx = range(start, min(start + batch_size, len(dataset)))
        x = torch.stack([dataset[i][0] for i in idx]).to(device)
        y = torch.tensor([dataset[i][1] for i in idx], device=device)
        clean += (model(x).argmax(-1) == y).sum().item()
        x_adv = pgd(model, x, y, radius, steps=steps, seed=generator)
        robust += (model(x_adv).argmax(-1) == y).sum().item()
    n = len(dataset)
    return {"n": n, "clean_acc": clean / n, "pgd_acc": robust / n, "radius": radius, "steps": steps}


@contextmanager
def _deterministic(threads: int):
    """Seeded, deterministic kernels on ``threads`` CPU threads; restores the settings."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def train(config: TrainConfig, progress: bool = True) -> tuple[Classifier, dict]:
    """Train the network of ``config.model`` on its training images (the train fonts, the digits'
    train split); return the frozen model and its meta data.

    Adam with a cosine learning-rate decay; for adversarial training every batch is
    replaced by its PGD example (:func:`blindspots_nb.analysis.attacks.pgd`, ``config.steps``
    steps of 2.5 radius / steps from a random start), with the radius ramped up linearly over the
    first epoch.
    """
    entry = get_entry(config.model)
    data = dataset_of(config.model, "train", config.n_train, config.seed)
    with _deterministic(config.threads):
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        model = Classifier(entry.build(), entry.mean, entry.std, entry.class_names(),
                           entry.input_size, entry.info("training"))
        model.requires_grad_(True).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        batches = math.ceil(len(data) / config.batch_size)
        total = config.epochs * batches
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
        bar = tqdm(total=total, desc=config.model, disable=not progress)
        start_time, start_cpu, step = time.time(), time.process_time(), 0
        for epoch in range(config.epochs):
            order = torch.randperm(len(data), generator=generator)
            for b in range(batches):
                idx = order[b * config.batch_size:(b + 1) * config.batch_size]
                x, y = data.images[idx], data.labels[idx]
                radius = config.radius * min(1.0, (step + 1) / batches)
                if radius > 0:
                    x = pgd(model, x, y, radius, steps=config.steps, seed=generator)
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                step += 1
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        bar.close()
    model.eval().requires_grad_(False)
    # the process's CPU time beside the wall time: on a shared CPU, what training costs whatever else runs
    meta = {**asdict(config), "train_seconds": round(time.time() - start_time, 1),
            "train_cpu_seconds": round(time.process_time() - start_cpu, 1), "torch": str(torch.__version__)}
    model.info["checkpoint_meta"] = meta
    return model, meta


def save(model: Classifier, meta: dict, path: str | Path) -> Path:
    """Save the network's state dict and ``meta`` (plain values: loads with weights_only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.net.state_dict(), "meta": meta}, path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m blindspots_nb.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(SHIPPED),
                        help="the model to train; with --eval, the architecture of .pt files (default: fonts_cnn)")
    parser.add_argument("--out", help="where to write the checkpoint (.pt)")
    parser.add_argument("--eval", nargs="+", metavar="MODEL",
                        help="evaluate these models (or .pt files of --model's architecture) instead of training")
    for name, kind in [("epochs", int), ("n-train", int), ("batch-size", int), ("lr", float),
                       ("seed", int), ("radius", float), ("steps", int), ("threads", int)]:
        parser.add_argument(f"--{name}", type=kind, default=None)
    parser.add_argument("--eval-radius", type=float, default=None,
                        help="the PGD radius (default: each model's own, or its dataset's standard)")
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--n-test", type=int, default=2000,
                        help="test images: FONTS glyphs drawn, or the first of the digits' 360 (default: 2000)")
    args = parser.parse_args(argv)

    def report(name: str, model: torch.nn.Module) -> dict:
        test = dataset_of(model.info["name"], "test", args.n_test)
        radius = default_radius(model) if args.eval_radius is None else args.eval_radius
        result = {"model": name, **evaluate(model, test, radius, args.eval_steps)}
        print(json.dumps(result))
        return result

    if args.eval:
        for name in args.eval:
            is_file = name.endswith(".pt")
            report(name, load_model((args.model or "fonts_cnn") if is_file else name, device="cpu",
                                    weights=name if is_file else None))
        return
    if not (args.model and args.out):
        parser.error("give --model and --out to train, or --eval MODEL ...")
    config = TrainConfig.for_model(
        args.model, epochs=args.epochs, n_train=args.n_train, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, radius=args.radius, steps=args.steps, threads=args.threads)
    model, meta = train(config)
    meta["test"] = report(args.model, model)
    print(f"saved {save(model, meta, args.out)} after {meta['train_seconds']} s ({meta['train_cpu_seconds']} s of CPU)")


if __name__ == "__main__":
    main()
