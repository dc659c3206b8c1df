"""Command line.

``blindspots-nb demo``: one traversal between two bundled photos.
``blindspots-nb reproduce``: the paper's Tables 1 and 2 (papermill runs the notebook
``notebooks/10_reproduce_tables.ipynb`` once per model), offline by default.
``blindspots-nb merge``: assemble the tables of a run whose shards all finished.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from pathlib import Path

import torch
from torchvision.utils import save_image

from . import provenance
from .lst import LSTConfig, traverse
from .metrics import LPIPSDistance, target_distances
from .reproduce import DATASETS


def _add_lst_options(parser: argparse.ArgumentParser, config: LSTConfig | None):
    """LST's hyperparameters as options, defaulting to ``config``'s (None: the preset's)."""
    def default(name):
        return getattr(config, name) if config else None

    parser.add_argument("--step-size", type=float, default=default("step_size"), help="eta")
    parser.add_argument("--iterations", type=int, default=default("iterations"), help="T")
    parser.add_argument("--delta", type=float, default=default("delta"), help="largest allowed confidence drop")
    parser.add_argument("--eps", type=float, default=default("eps"), help="l_inf box of the parallel part")
    parser.add_argument("--init-noise", type=float, default=default("init_noise"), help="width of the initial noise")
    parser.add_argument("--seed", type=int, default=default("seed"))


def _lst_config(args, **overrides) -> LSTConfig:
    return LSTConfig(step_size=args.step_size, iterations=args.iterations, delta=args.delta, eps=args.eps,
                     init_noise=args.init_noise, seed=args.seed, **overrides)


def demo(args) -> dict:
    """LST from one bundled photo towards another; writes images and a JSON record."""
    from .data import sample_images
    from .models import load_model, module_device

    model = load_model(args.model, device=args.device)
    device = module_device(model)
    images, names = sample_images(model)
    for name in (args.source, args.target):
        if name not in names:
            raise ValueError(f"unknown photo {name!r}; bundled photos: {', '.join(names)}")
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


def _experiments(args) -> list:
    """The preset's experiments with the command line's overrides applied."""
    from .reproduce import Experiment, preset

    experiments = preset(args.preset, args.data_root)
    if args.dataset:  # a custom experiment: these models on this dataset
        base = next((e for e in experiments if e.dataset == args.dataset), experiments[0])
        if not args.models:
            raise ValueError("--dataset needs --models (which models to run on it)")
        experiments = [Experiment(args.dataset, args.models, data_root=args.data_root, lst=dict(base.lst),
                                  batch_size=base.batch_size, min_conf=base.min_conf, note="custom experiment")]
    elif args.models:
        unknown = [m for m in args.models if not any(m in e.models for e in experiments)]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not in preset {args.preset!r} "
                             f"({', '.join(m for e in experiments for m in e.models)}); "
                             "pass --dataset to say which data they run on")
        experiments = [dataclasses.replace(e, models=[m for m in e.models if m in args.models])
                       for e in experiments if any(m in e.models for m in args.models)]
    lst_overrides = {key: getattr(args, key) for key in ("step_size", "iterations", "delta", "eps", "init_noise")
                     if getattr(args, key) is not None}
    overrides = {key: getattr(args, key) for key in ("n_sources", "rounds", "batch_size", "min_conf", "per_class",
                                                     "seed") if getattr(args, key) is not None}
    return [dataclasses.replace(e, lst={**e.lst, **lst_overrides}, **overrides) for e in experiments]


def reproduce(args) -> dict | None:
    """Run the protocol for every model of the experiments; assemble the tables when done."""
    from . import distributed, reproduce as protocol

    experiments = _experiments(args)
    for experiment in experiments:  # fail early on a missing data root, a bad model name or weights file
        if experiment.data_root and not Path(experiment.data_root).exists():
            raise FileNotFoundError(f"data root {experiment.data_root} (for {experiment.dataset}) does not exist")
        for name in experiment.models:
            _check_model(name, args.weights.get(name))
    shard = protocol.parse_shard(args.shard) if args.shard else None
    with distributed.launch(args.device) as (rank, world, device):
        shard = shard or (rank, world)
        out = Path(args.out)
        if rank == 0:
            protocol.check_settings(out, experiments, force=args.force)
            for experiment in experiments:
                protocol.prepare(experiment, out, device, args.weights)
        distributed.barrier()
        for experiment in experiments:
            for name in experiment.models:
                if protocol.model_finished(experiment, name, out):
                    print(f"{name} on {experiment.dataset}: finished in {out}, skipped (--force recomputes)")
                    continue
                print(f"{name} on {experiment.dataset}: running the notebook (shard {shard[0]}/{shard[1]})",
                      flush=True)
                protocol.run_notebook(experiment, name, out, shard, device, args.weights.get(name))
        distributed.barrier()
        if rank != 0:
            return None
        unfinished = [f"{name} on {e.dataset}" for e in experiments for name in e.models
                      if not protocol.model_finished(e, name, out)]
        if unfinished:
            print(f"shard {shard[0]}/{shard[1]} done; still missing: {', '.join(unfinished)}. "
                  f"Run the other shards, then: blindspots-nb merge --out {out}")
            return None
        return _assemble(experiments, out, args)


def _check_model(name: str, weights):
    from .models import get_entry

    get_entry(name)  # raises a ValueError listing the known names
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"--weights {name}={weights}: no such file")


def _assemble(experiments, out: Path, args) -> dict:
    from . import reproduce as protocol

    written = protocol.assemble_tables(experiments, out)
    records = {path.parent.name + "/" + path.stem: json.loads(path.read_text())
               for e in experiments for path in sorted((out / e.key).glob("*/record_shard*.json"))}
    lpips = LPIPSDistance()
    run = provenance.record(
        command=" ".join(sys.argv), preset=getattr(args, "preset", None),
        experiments=[e.to_dict() for e in experiments],
        pools={e.key: json.loads((out / e.key / "pool.json").read_text()) for e in experiments},
        models_and_shards=records,
        lpips="genuine (AlexNet trunk, v0.1)" if lpips.available else f"missing: {lpips.missing_reason}",
        files=sorted(str(p.relative_to(out)) for p in written.values()))
    (out / "run.json").write_text(json.dumps(run, indent=2))
    print((out / "table1.md").read_text())
    print((out / "table2.md").read_text())
    print(f"wrote {', '.join(sorted(written))}, run.json and per-model CSVs in {out}")
    return run


def merge(args) -> dict:
    """Assemble the tables of a finished (sharded) run from its settings.json."""
    from .reproduce import Experiment

    out = Path(args.out)
    settings_path = out / "settings.json"
    if not settings_path.is_file():
        raise FileNotFoundError(f"{out} holds no run (no settings.json)")
    experiments = [Experiment(**e) for e in json.loads(settings_path.read_text())["experiments"]]
    return _assemble(experiments, out, args)


def _weights_option(values: list[str]) -> dict[str, str]:
    weights = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--weights takes MODEL=PATH, got {value!r}")
        weights[name] = path
    return weights


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blindspots-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("demo", help="one LST traversal between two bundled photos (offline)")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--source", default="coffee")
    p.add_argument("--target", default="chelsea")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when available)")
    p.add_argument("--out", default="results/demo")
    _add_lst_options(p, LSTConfig())
    p.set_defaults(run=demo)

    p = commands.add_parser("reproduce", help="the paper's Tables 1 and 2 (offline preset by default)")
    p.add_argument("--preset", default="offline", help="offline (default: FONTS CNNs and EfficientNet-Lite0 on "
                   "bundled photos, CPU) or paper (the four ImageNet models; needs --data-root; meant for a GPU)")
    p.add_argument("--models", type=lambda text: [m for m in text.split(",") if m],
                   help="comma-separated registry names: a subset of the preset, or any models with --dataset")
    p.add_argument("--dataset", choices=DATASETS)
    p.add_argument("--data-root", help="ImageNet validation folder, CIFAR-10 root or an image folder")
    p.add_argument("--weights", action="append", metavar="MODEL=PATH", help="a local checkpoint for a model")
    p.add_argument("--n-sources", type=int, help="cap on the pool size")
    p.add_argument("--rounds", type=int, help="derangement rounds (blind spots per source; default 5)")
    p.add_argument("--per-class", type=int)
    p.add_argument("--min-conf", type=float, help="pool rule: confidence above this under every model")
    p.add_argument("--batch-size", type=int, help="sources per LST batch")
    _add_lst_options(p, None)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    p.add_argument("--shard", help="i/n: do only shard i of n (sources split by batch); torchrun sets it")
    p.add_argument("--out", default="results/reproduce")
    p.add_argument("--force", action="store_true", help="recompute, replacing what the output folder holds")
    p.set_defaults(run=reproduce)

    p = commands.add_parser("merge", help="assemble the tables once every shard of a run has finished")
    p.add_argument("--out", default="results/reproduce")
    p.set_defaults(run=merge)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "weights") and args.command == "reproduce":
            args.weights = _weights_option(args.weights)
        args.run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"blindspots-nb {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
