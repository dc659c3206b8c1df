"""On or off the FONTS manifold: regular, on-manifold and invalid adversarial examples, and blind spots.

The FONTS generator (font x letter x affine transform) makes every glyph, so each
letter's manifold is known (:mod:`blindspots_nb.analysis.manifold`). This script

1. validates the projection onto it on the first ``--validation`` test glyphs (known
   parameters): RMSE of each clean glyph to its own and to the other letters' manifolds,
   the oracle's accuracy, a glyph plus Gaussian noise (``--noise``) projected back onto
   its letter, and the own-letter distance as the atlas' ``starts`` per font grows;
2. runs the tables' protocol (pool rule, derangements, LST with the paper's
   hyperparameters) on ``fonts:test`` for ``fonts_cnn`` and ``fonts_cnn_at`` into
   ``OUT/protocol`` (``--per-class`` sources per letter, ``--rounds`` targets each);
3. on those sources, per model: PGD (l_inf 0.2, the FONTS threat model) and AutoAttack on
   the first ``--autoattack`` sources, each judged by the oracle (distance to the source
   letter's and the predicted letter's manifolds); on-manifold adversarial examples
   (renderings of the source letter searched over transforms in the dataset's ranges and
   over fonts); the blind spots, judged against their source and target letters.

Every piece is a file of ``OUT`` (CSV rows, JSON summaries, ``run.json`` with what
produced them); a rerun with the same settings skips finished pieces, other settings are
refused. Prints the taxonomy table (Markdown) and writes it to ``OUT/taxonomy.md``::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/manifold_taxonomy.py --out-dir results/manifold
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm.std import tqdm

from blindspots_nb.analysis.attacks import autoattack, pgd, threat_model
from blindspots_nb.analysis.manifold import ORACLE_SHORTLIST, ORACLE_SLACK, GlyphManifold, dataset_glyphs, validate
from blindspots_nb.analysis.taxonomy import (judge, judge_adversarial, judge_blind_spots, on_manifold_attack,
                                             on_manifold_rows, rendering_rows, summarize, summarize_kind)
from blindspots_nb.protocol.experiment import taxonomy_experiment
from blindspots_nb.protocol.pool import pool_images
from blindspots_nb.protocol.run import protocol_blind_spots, run_in_process
from blindspots_nb.data.fonts import GlyphRenderer
from blindspots_nb.data.sources import FONTS_GLYPHS
from blindspots_nb.lst import LSTConfig
from blindspots_nb.models import load_model
from blindspots_nb.analysis.words import taxonomy_markdown
from blindspots_nb.protocol.store import RunStore
from blindspots_nb.tools import atomic, folders, provenance

KINDS = ("pgd", "autoattack", "on_manifold", "renderings", "lst")


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, help="results folder (made if missing; a rerun resumes it)")
    parser.add_argument("--protocol-dir", default=None,
                        help="the tables' protocol run (default OUT/protocol; another run's may be shared: its "
                             "settings are checked)")
    parser.add_argument("--per-class", type=int, default=5, help="protocol sources per letter (default 5: 50)")
    parser.add_argument("--rounds", type=int, default=2, help="LST targets per source (default 2)")
    parser.add_argument("--iterations", type=int, default=LSTConfig().iterations, help="LST iterations (paper 400)")
    parser.add_argument("--pgd-steps", type=int, default=20)
    parser.add_argument("--autoattack", type=int, default=20, help="sources also attacked by AutoAttack (0: none)")
    parser.add_argument("--on-manifold-steps", type=int, default=20, help="Adam steps per font of the on-manifold search")
    parser.add_argument("--renderings", type=int, default=1000,
                        help="random renderings (letters, fonts, transforms in the dataset's ranges): each model's base error")
    parser.add_argument("--validation", type=int, default=50, help="test glyphs of the projection's validation")
    parser.add_argument("--noise", type=float, default=0.05, help="std of the validation's Gaussian noise")
    parser.add_argument("--starts", type=int, default=64, help="atlas transforms per letter and font")
    parser.add_argument("--per-font", type=int, default=2, help="atlas renderings descended per letter in every font")
    parser.add_argument("--survivors", type=int, default=2, help="of which descended to the end")
    parser.add_argument("--steps", type=int, default=80, help="Adam steps of the projection")
    parser.add_argument("--prune-every", type=int, default=8, help="steps between halvings of the descents (0: none)")
    parser.add_argument("--shortlist", type=int, default=ORACLE_SHORTLIST,
                        help=f"letters nearest at screening the oracle descends (default {ORACLE_SHORTLIST}: all)")
    parser.add_argument("--slack", type=float, default=ORACLE_SLACK,
                        help="a verdict whose margin (second-nearest minus nearest letter) is below this RMSE is "
                             f"uncertain (default {ORACLE_SLACK}: the largest gap of the default search to the "
                             "reference measured by scripts/oracle_validation.py); applied to the stored rows, "
                             "so it may change on a rerun")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="the pieces to make (default all); a later run in the same folder can add the others")
    args = parser.parse_args(argv)
    if args.per_class < 1 or args.rounds < 2 or args.validation < 1 or args.renderings < 1:
        parser.error("need --per-class >= 1, --rounds >= 2, --validation >= 1 and --renderings >= 1")
    return args


class Results:
    """The output folder: settings checked on resume, pieces written whole, each once."""

    def __init__(self, folder: Path, settings: dict):
        try:
            self.folder = folders.claim(folder, settings, "--out-dir")
        except folders.FolderTaken as error:
            raise SystemExit(str(error)) from None

    def piece(self, name: str, compute) -> dict:
        """The stored piece ``name`` (JSON), or ``compute()``'s, written whole, once."""
        path = self.folder / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
        value = compute()
        if value.get("rows"):
            atomic.write_csv(path.with_suffix(".csv"), value["rows"])
        atomic.write_json(path, value)
        return value


def projecting(what: str, count: int) -> tqdm:
    """A progress bar of the projection of ``count`` images."""
    return tqdm(total=count, desc=f"projecting {what}", unit="image", leave=False)


def main(argv=None):
    args = parse(argv)
    torch.manual_seed(args.seed)
    command = shlex.join(["python", "scripts/manifold_taxonomy.py", *(sys.argv[1:] if argv is None else argv)])
    settings = {key: value for key, value in vars(args).items()
                if key not in ("out_dir", "kinds", "protocol_dir", "slack")}
    results = Results(Path(args.out_dir), settings)
    renderer = GlyphRenderer()
    manifold = GlyphManifold(renderer, starts=args.starts, seed=args.seed)
    search = {"per_font": args.per_font, "survivors": args.survivors, "steps": args.steps,
              "prune_every": args.prune_every}
    started = time.time()

    check = results.piece("validation", lambda: validate(manifold, dataset_glyphs(
        "test", FONTS_GLYPHS, args.seed, renderer, range(args.validation)), args.noise, args.seed,
        shortlist=args.shortlist, **search))["summary"]

    experiment = taxonomy_experiment(args.per_class, args.rounds, args.iterations, args.seed)
    store = RunStore(Path(args.protocol_dir) if args.protocol_dir else results.folder / "protocol")
    pool = run_in_process(experiment, store)
    models = {name: load_model(name, device="cpu") for name in experiment.models}
    sources = pool_images(experiment, pool, models[experiment.models[0]])
    labels = torch.tensor(pool["labels"])
    generated = dataset_glyphs("test", FONTS_GLYPHS, experiment.seed, renderer, pool["indices"])
    if not torch.allclose(generated["images"], sources, atol=1e-6):
        raise SystemExit("the pool's glyphs are not the renderer's: fonts_dataset and GlyphRenderer disagree")

    def clean_rows():
        with projecting("clean sources", len(labels)) as bar:
            judgement = judge(manifold, sources, labels, labels, shortlist=args.shortlist, progress=bar.update,
                              **search)
        return {"rows": [{"source": i, **row} for i, row in enumerate(judgement.rows(renderer.font_names))]}

    clean = results.piece("clean", clean_rows)
    summaries = {"- clean": summarize(clean["rows"], args.slack)}
    for name, model in tqdm(models.items(), desc="models"):
        threat = threat_model(model)

        def regular(kind, attack, count):
            adversarial = attack(model, sources[:count], labels[:count])
            with projecting(f"{name}'s {kind} examples", count) as bar:
                return {"rows": judge_adversarial(model, manifold, sources[:count], labels[:count], adversarial,
                                                  shortlist=args.shortlist, progress=bar.update, **search)[1]}

        pieces = {
            "pgd": lambda: regular("PGD", lambda m, x, y: pgd(m, x, y, threat.radius, steps=args.pgd_steps,
                                                              seed=args.seed), len(labels)),
            "autoattack": lambda: regular("AutoAttack", lambda m, x, y: autoattack(m, x, y, threat.radius, seed=args.seed),
                                          min(args.autoattack, len(labels))) if args.autoattack else {"rows": []},
            "on_manifold": lambda: {"rows": on_manifold_rows(on_manifold_attack(
                model, renderer, labels, generated["fonts"], generated["transforms"], steps=args.on_manifold_steps),
                labels, generated["fonts"], renderer.font_names)},
            "renderings": lambda: {"rows": rendering_rows(model, renderer, args.renderings, args.seed)},
            "lst": lambda: blind_spot_rows(store, experiment, name, pool, sources, manifold, args, search),
        }
        for kind, compute in pieces.items():
            if kind not in args.kinds:
                continue
            rows = results.piece(f"{name}_{kind}", compute)["rows"]
            summaries[f"{name} {kind}"] = summarize_kind(kind, rows, args.slack)
    table = taxonomy_table(summaries, check, args.slack)
    record = provenance.record(config={**settings, "slack": args.slack}, device="cpu", command=command, models={
        name: provenance.model_info(model) for name, model in models.items()},
        manifold=manifold.settings(), threat_model=str(threat_model(models[experiment.models[0]])),
        lst=experiment.lst.to_dict(), image_source=f"fonts:test ({FONTS_GLYPHS} glyphs, seed {experiment.seed})",
        seconds=round(time.time() - started, 1))
    atomic.write_text(results.folder / "taxonomy.md", f"command: `{command}`\n\n{table}\n")
    atomic.write_json(results.folder / "summaries.json", summaries)
    atomic.write_json(results.folder / "run.json", record)
    print(f"command: {command}\n")
    print(table)
    print(f"\nvalidation: {json.dumps(check)}")
    print(f"\n{provenance.caption(config={'starts': args.starts, **search, 'shortlist': args.shortlist})}")


def blind_spot_rows(store, experiment, name, pool, sources, manifold, args, search) -> dict:
    """The protocol's blind spots of model ``name`` judged against their source and target letters."""
    images, about = protocol_blind_spots(store, experiment, name, pool)
    labels = torch.tensor([pool["labels"][row["source"]] for row in about])
    targets = torch.tensor([pool["labels"][row["target"]] for row in about])
    with projecting(f"{name}'s blind spots", len(images)) as bar:
        return {"rows": judge_blind_spots(manifold, images, labels, targets, sources[[row["target"] for row in about]],
                                          about, shortlist=args.shortlist, progress=bar.update, **search)[1]}


def taxonomy_table(summaries: dict, check: dict, slack: float) -> str:
    """The Markdown table of the taxonomy, with the projection's validation under it."""
    return (f"{taxonomy_markdown(summaries)}\n\nRMSE: medians. Uncertain: margin (second-nearest minus nearest "
            f"letter) below {slack}, a search that loose could flip the verdict; firm: the others. Projection: oracle "
            "accuracy "
            f"{100 * check['oracle_accuracy']:.0f}% on {check['n']} clean test glyphs; own-letter RMSE median "
            f"{check['own_distance_quantiles']['median']:.4f}, nearest other letter "
            f"{check['nearest_other_distance_quantiles']['median']:.4f}." + "".join(
                f" {key.split()[0]}'s blind spots: RMSE to their target images {s['median_rmse_to_target_image']:.3f}."
                for key, s in summaries.items() if "median_rmse_to_target_image" in s))


if __name__ == "__main__":
    main()
