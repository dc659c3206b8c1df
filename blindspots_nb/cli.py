"""Command line: ``blindspots-nb demo`` (one traversal between two bundled photos)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch
from torchvision.utils import save_image

from . import provenance
from .lst import LSTConfig, traverse
from .metrics import LPIPSDistance, target_distances


def _add_lst_options(parser: argparse.ArgumentParser, **defaults):
    cfg = LSTConfig(**defaults)
    parser.add_argument("--step-size", type=float, default=cfg.step_size, help="eta")
    parser.add_argument("--iterations", type=int, default=cfg.iterations, help="T")
    parser.add_argument("--delta", type=float, default=cfg.delta, help="largest allowed confidence drop")
    parser.add_argument("--eps", type=float, default=cfg.eps, help="l_inf box of the parallel part")
    parser.add_argument("--init-noise", type=float, default=cfg.init_noise, help="width of the initial noise")
    parser.add_argument("--seed", type=int, default=cfg.seed)


def _lst_config(args, **overrides) -> LSTConfig:
    return LSTConfig(step_size=args.step_size, iterations=args.iterations, delta=args.delta, eps=args.eps,
                     init_noise=args.init_noise, seed=args.seed, **overrides)


def demo(args) -> dict:
    """LST from one bundled photo towards another; writes images and a JSON record."""
    from .data import sample_images
    from .models import load_model

    model = load_model(args.model, device=args.device)
    device = next(model.parameters()).device
    images, names = sample_images(model)
    for name in (args.source, args.target):
        if name not in names:
            raise SystemExit(f"unknown photo {name!r}; bundled photos: {', '.join(names)}")
    source = images[names.index(args.source)][None].to(device)
    target = images[names.index(args.target)][None].to(device)
    with torch.no_grad():
        label = model(source).argmax(1)
    config = _lst_config(args, record_every=max(1, args.iterations // 20))
    result = traverse(model, source, label, target, config, progress=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for file, image in (("source.png", source), ("target.png", target), ("blind_spot.png", result.images)):
        save_image(image.cpu(), out / file)
    history = result.history.as_tensors()
    with open(out / "history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iteration", "source_confidence", "target_confidence", "distance_l2", "accepted_total"])
        for i, iteration in enumerate(history["iteration"].tolist()):
            writer.writerow([iteration, *(f"{float(history[k][i, 0]):.6g}" for k in
                                          ("source_confidence", "target_confidence", "distance", "accepted_total"))])
    distances = target_distances(result.images, target, LPIPSDistance())
    class_names = model.class_names
    summary = {
        "source": args.source, "target": args.target,
        "source_class": class_names[int(label)], "target_class": class_names[int(result.target_labels)],
        "source_confidence_clean": float(result.initial_confidence),
        "source_confidence_blind_spot": float(result.confidence),
        "target_class_confidence_blind_spot": float(result.target_confidence),
        **{f"{key}_to_target": float(value) for key, value in distances.items()},
    }
    record = provenance.record(model, config, device, data="scikit-image bundled photos", **summary)
    (out / "record.json").write_text(json.dumps(record, indent=2, allow_nan=True))
    print(f"{args.model}: {args.source} ({summary['source_class']}, p0={summary['source_confidence_clean']:.3f})"
          f" -> towards {args.target} ({summary['target_class']}) after {config.iterations} iterations:")
    print(f"  source-class confidence {summary['source_confidence_blind_spot']:.4f}, "
          f"RMSE to target {summary['rmse_to_target']:.4f}, l_inf {summary['linf_to_target']:.3f}, "
          f"SSIM {summary['ssim_to_target']:.3f}, LPIPS {summary['lpips_to_target']:.3f}")
    print(f"  wrote {out}/source.png, target.png, blind_spot.png, history.csv, record.json")
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blindspots-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("demo", help="one LST traversal between two bundled photos (offline)")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--source", default="coffee")
    p.add_argument("--target", default="chelsea")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when available)")
    p.add_argument("--out", default="results/demo")
    _add_lst_options(p)
    p.set_defaults(run=demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"blindspots-nb {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
