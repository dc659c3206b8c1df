"""Robust accuracy of the FONTS CNNs: clean, PGD-20 and the standard AutoAttack (l_inf).

On the first ``--n`` glyphs of an image source (default ``fonts:test``, fonts unseen in
training), for each model at its threat model (``fonts_cnn_at``: its adversarial
training's l_inf 0.2; ``fonts_cnn``: the FONTS standard, also 0.2) or at ``--radius``.
PGD is :func:`blindspots_nb.analysis.attacks.pgd` (Captum; step 2.5 radius / steps, random start),
AutoAttack :func:`blindspots_nb.analysis.attacks.autoattack` (pyautoattack, the standard version);
both are seeded by ``--seed``. Prints the command, a Markdown table and what produced it::

    OMP_NUM_THREADS=2 .venv/bin/python scripts/robustness.py --n 500
"""

from __future__ import annotations

import argparse
import shlex
import sys
from importlib import metadata

import torch

from blindspots_nb.tools import provenance
from blindspots_nb.analysis.attacks import robustness
from blindspots_nb.models import load_model
from blindspots_nb.data.sources import ImageSource, open_source


def labelled_images(model, image_source: ImageSource, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of ``image_source`` at the model's input size, with their labels."""
    dataset = open_source(image_source, model)
    if len(dataset) < n:
        raise SystemExit(f"{image_source} holds {len(dataset)} images, fewer than --n {n}")
    images = torch.stack([dataset[i][0] for i in range(n)])
    labels = torch.tensor([int(dataset[i][1]) for i in range(n)])
    if bool((labels < 0).any()):
        raise SystemExit(f"{image_source} is unlabelled: robust accuracy needs labels")
    return images, labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["fonts_cnn", "fonts_cnn_at"])
    parser.add_argument("--image-source", default="fonts:test", help="a labelled image source (default fonts:test)")
    parser.add_argument("--n", type=int, default=500, help="images, from the start of the image source")
    parser.add_argument("--radius", type=float, default=None, help="l_inf radius (default: each model's threat model)")
    parser.add_argument("--steps", type=int, default=20, help="PGD steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    args.image_source = ImageSource.of(args.image_source)  # parsed once, here
    print("command: " + shlex.join(["python", "scripts/robustness.py", *(sys.argv[1:] if argv is None else argv)]))
    print()
    print(f"| model | n | threat model | clean | PGD-{args.steps} | AutoAttack | PGD s | AutoAttack s |")
    print("|---|---|---|---|---|---|---|---|")
    captions = []
    for name in args.models:
        model = load_model(name, device=args.device)
        images, labels = labelled_images(model, args.image_source, args.n)
        r = robustness(model, images, labels, args.radius, args.steps, args.seed, args.batch_size)
        print(f"| {name} | {r.n} | {r.norm} {r.radius:.4g} | {r.clean:.1%} | {r.pgd:.1%} | {r.autoattack:.1%} | "
              f"{r.pgd_seconds:.0f} | {r.autoattack_seconds:.0f} |", flush=True)
        settings = {"image_source": f"{args.image_source} first {args.n}", "pgd_steps": args.steps,
                    "pgd_step_size": 2.5 * r.radius / args.steps, "autoattack": "standard", "seed": args.seed}
        captions.append(provenance.caption(model, settings, model.mean.device))
    versions = {package: metadata.version(package) for package in ("torch", "captum", "pyautoattack")}
    print()
    for caption in captions:
        print(caption)
    print(" | ".join(f"{package} {version}" for package, version in versions.items()))


if __name__ == "__main__":
    main()
