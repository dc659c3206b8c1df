"""The FONTS oracle checked on what it judges: blind spots and adversarial examples.

The oracle (:meth:`GlyphManifold.oracle`) is validated on dataset glyphs elsewhere; blind
spots are not such images. This script takes the examples the taxonomy judges, from a
run of the tables' protocol on ``fonts:test`` (``--protocol-dir``, as
``scripts/manifold_taxonomy.py`` makes it): every LST blind spot of ``fonts_cnn`` and
``fonts_cnn_at``, and the PGD (every source) and AutoAttack (the first ``--autoattack``
sources) examples that fool each model. Each is judged by

* the search settings compared (``VARIANTS``: the default, which descends every letter,
  the former default, which descended the 3 nearest at screening, and cheaper or longer
  ones of those 3), as the taxonomy calls it (with the source's and the other letter);
* a reference search that leaves nothing to screening: an atlas of 4x the starts, the
  nearest of them in *every* font descended for *every* letter, 4x the steps
  (``REFERENCE``);
* on the first ``--convergence`` examples (the ``--closest`` calls of a taxonomy run
  first, where given), a still longer search (``CONVERGENCE``: 8x the
  atlas, twice the reference's starts per font and steps) that shows whether the
  reference has converged.

Examples are taken round-robin over (model, kind), so that a run stopped early covers
every kind; each judged example is a line of ``OUT/rows.jsonl`` (a rerun resumes; rows
stored before each search recorded every letter it searched get the default's letters by
running it again), and the table (verdict agreement with the reference; distance gap: the
search's nearest-letter RMSE minus the reference's, median / q90 / max, and the largest gap
of any letter the default searched; the disagreements' margins against ``ORACLE_SLACK``;
CPU seconds per image) is printed and written to ``OUT/validation.md``, one row per
example to ``OUT/validation.csv``::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/oracle_validation.py --protocol-dir results/manifold_protocol \\
        --out-dir results/oracle_validation --limit 60 --convergence 6

``--rejudge-default`` judges the stored rows again by today's default only (rows judged
when the default descended 3 letters keep that answer as the former default's), then
writes the table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from blindspots_nb.analysis.attacks import autoattack, pgd, threat_model
from blindspots_nb.analysis.manifold import ORACLE_SLACK, GlyphManifold
from blindspots_nb.protocol.experiment import taxonomy_experiment
from blindspots_nb.protocol.run import protocol_blind_spots
from blindspots_nb.data.fonts import GlyphRenderer
from blindspots_nb.models import FONTS_CLASSES, load_model, predict
from blindspots_nb.protocol import run as protocol
from blindspots_nb.protocol.store import RunStore
from blindspots_nb.tools import atomic, provenance

MODELS = ("fonts_cnn", "fonts_cnn_at")
STARTS = 64  # the default atlas (GlyphManifold's starts)
FORMER = "three letters descended"  # the default before every letter was (shortlist 3)
VARIANTS = {  # name -> (atlas starts, oracle options)
    "default": (STARTS, {}),
    FORMER: (STARTS, {"shortlist": 3}),
    "one start per font": (STARTS, {"per_font": 1, "shortlist": 3}),
    "twice the steps": (STARTS, {"steps": 160, "prune_every": 16, "shortlist": 3}),  # the halvings twice as far apart
}
REFERENCE = (4 * STARTS, {"per_font": 2, "survivors": 8, "prune_every": 40, "steps": 320})
CONVERGENCE = (8 * STARTS, {"per_font": 4, "survivors": 16, "prune_every": 80, "steps": 640})


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol-dir", required=True, help="the tables' protocol run (as manifold_taxonomy.py makes it)")
    parser.add_argument("--out-dir", required=True, help="results folder (made if missing; a rerun resumes it)")
    parser.add_argument("--per-class", type=int, default=5, help="the protocol's sources per letter")
    parser.add_argument("--rounds", type=int, default=2, help="the protocol's rounds")
    parser.add_argument("--iterations", type=int, default=400, help="the protocol's LST iterations")
    parser.add_argument("--pgd-steps", type=int, default=20)
    parser.add_argument("--autoattack", type=int, default=20, help="sources attacked by AutoAttack (0: none)")
    parser.add_argument("--limit", type=int, default=None, help="judge at most this many examples (round-robin)")
    parser.add_argument("--convergence", type=int, default=6, help="examples also judged by the longer search")
    parser.add_argument("--closest", type=int, default=0,
                        help="judge first the blind spots of smallest margin in --taxonomy-dir's rows (close calls)")
    parser.add_argument("--taxonomy-dir", default=None, help="an output folder of manifold_taxonomy.py (for --closest)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rejudge-default", action="store_true",
                        help="judge the stored rows again by today's default search only (their former default's "
                             f"answer kept as '{FORMER}'); judges no new example")
    args = parser.parse_args(argv)
    if args.closest and not args.taxonomy_dir:
        parser.error("--closest needs --taxonomy-dir (the taxonomy run whose blind-spot margins it reads)")
    return args


def examples(args, store) -> dict:
    """The examples judged: images, source and other letters, model, kind, index of each."""
    experiment = taxonomy_experiment(args.per_class, args.rounds, args.iterations, args.seed)
    found = {"images": [], "source": [], "other": [], "model": [], "kind": [], "index": []}

    def add(model, kind, images, sources, others):
        found["images"].append(images.float())
        found["source"] += sources.tolist()
        found["other"] += others.tolist()
        found["model"] += [model] * len(images)
        found["kind"] += [kind] * len(images)
        found["index"] += list(range(len(images)))  # within its (model, kind)

    pool = store.pool(experiment)
    if pool is None:
        raise SystemExit(f"{args.protocol_dir} holds no finished protocol run of these settings: run "
                         "scripts/manifold_taxonomy.py (or give its --protocol-dir) first")
    pool_labels = torch.tensor(pool["labels"])
    for name in MODELS:
        model = load_model(name, device="cpu")
        spots, rows = protocol_blind_spots(store, experiment, name, pool)
        add(name, "lst", spots, pool_labels[[row["source"] for row in rows]], pool_labels[[row["target"] for row in rows]])
        images = protocol.pool_images(experiment, pool, model)
        radius = threat_model(model).radius
        for kind, attack, count in (
                ("pgd", lambda x, y: pgd(model, x, y, radius, steps=args.pgd_steps, seed=args.seed), len(pool_labels)),
                ("autoattack", lambda x, y: autoattack(model, x, y, radius, seed=args.seed), args.autoattack)):
            if count:
                adversarial = attack(images[:count], pool_labels[:count])
                predicted = predict(model, adversarial)[0]
                fooled = predicted != pool_labels[:count]
                add(name, kind, adversarial[fooled], pool_labels[:count][fooled], predicted[fooled])
    found["images"] = torch.cat(found["images"])
    found["source"], found["other"] = torch.tensor(found["source"]), torch.tensor(found["other"])
    return found


def round_robin(found: dict) -> list[int]:
    """The examples' order: one of each (model, kind) in turn, each group in its own order."""
    groups: dict = {}
    for i, key in enumerate(zip(found["model"], found["kind"])):
        groups.setdefault(key, []).append(i)
    order, queues = [], list(groups.values())
    while any(queues):
        order += [queue.pop(0) for queue in queues if queue]
    return order


def closest_calls(found: dict, taxonomy_dir: Path, count: int) -> list[int]:
    """The ``count`` blind spots whose verdict in the taxonomy's rows (``MODEL_lst.json``,
    in the order of :func:`protocol_blind_spots`) had the smallest margin."""
    margins = []
    for name in MODELS:
        path = taxonomy_dir / f"{name}_lst.json"
        if not path.exists():
            raise SystemExit(f"{path} is missing: --closest needs a taxonomy run's blind-spot rows")
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        ids = [i for i, (model, kind) in enumerate(zip(found["model"], found["kind"])) if (model, kind) == (name, "lst")]
        margins += [(float(row["margin"]), i) for row, i in zip(rows, ids)]
    return [i for _, i in sorted(margins)[:count]]


def judged(manifold: GlyphManifold, image, source, other, options: dict, everything: bool = False) -> dict:
    """One search's answer for one image: the oracle's letter, the nearest distance, the
    distances to the source and the other letter, to every letter it searched (``letters``:
    ten, None where not searched; all ten with ``everything``), the margin to the
    second-nearest letter searched, and its CPU seconds."""
    started = time.process_time()
    include = torch.stack([source, other])[None]
    projection = manifold.project(image, None, **options) if everything else \
        manifold.oracle(image, include=include, **options)
    seconds = time.process_time() - started
    distance = projection.distance[0]
    ordered = distance.sort().values
    letters = [None] * len(FONTS_CLASSES)
    for letter, value in zip(projection.letters[0].tolist(), distance.tolist()):
        letters[letter] = round(value, 6)
    return {"label": int(projection.label[0]), "nearest": float(ordered[0]),
            "margin": float(ordered[1] - ordered[0]) if len(ordered) > 1 else None,
            "source": float(projection.to(source)[0][0]), "other": float(projection.to(other)[0][0]),
            "cpu_seconds": round(seconds, 3), "letters": letters}


def backfill_letters(rows: list[dict], found: dict, manifold: GlyphManifold, save) -> int:
    """Rows stored before the searches recorded every letter they searched (all judged by
    the former default): that search run again (deterministic given the seed) records its letters; its verdict and
    nearest distance must be the stored ones. ``save(rows)`` every 20 rows and at the end.
    Returns how many rows were filled."""
    missing = [row for row in rows if "letters" not in row["default"]]
    for count, row in enumerate(missing, 1):
        i = row["example"]
        again = judged(manifold, found["images"][i:i + 1], found["source"][i], found["other"][i],
                       VARIANTS[FORMER][1])
        stored = row["default"]
        if again["label"] != stored["label"] or abs(again["nearest"] - stored["nearest"]) > 1e-5:
            raise SystemExit(f"example {i}: the default search now gives {FONTS_CLASSES[again['label']]} at "
                             f"{again['nearest']:.6f}, the stored row {FONTS_CLASSES[stored['label']]} at "
                             f"{stored['nearest']:.6f}: the search changed since; judge into a new --out-dir")
        stored["letters"] = again["letters"]
        if count % 20 == 0 or count == len(missing):
            save(rows)
            print(f"default's letters recorded for {count}/{len(missing)} stored rows", flush=True)
    return len(missing)


def rejudge_default(rows: list[dict], found: dict, manifold: GlyphManifold, save) -> int:
    """Rows judged when the default descended three letters: that answer becomes the
    ``FORMER`` variant's and today's default search judges them again (the reference and
    the other variants stay as stored). ``save(rows)`` every 20 rows and at the end.
    Returns how many rows were judged."""
    pending = [row for row in rows if FORMER not in row]
    for count, row in enumerate(pending, 1):
        i = row["example"]
        row[FORMER] = row["default"]
        row["default"] = judged(manifold, found["images"][i:i + 1], found["source"][i], found["other"][i],
                                VARIANTS["default"][1])
        if count % 20 == 0 or count == len(pending):
            save(rows)
            seconds = sorted(row["default"]["cpu_seconds"] for row in pending[:count])
            print(f"default judged again: {count}/{len(pending)} rows, median {seconds[len(seconds) // 2]:.2f} "
                  "CPU s per image", flush=True)
    return len(pending)


def letter_gap(row: dict, name: str = "default") -> float | None:
    """The largest amount by which a search's distance to a letter it searched exceeded the
    reference's (None for rows stored without the letters)."""
    letters = row[name].get("letters")
    if letters is None:
        return None
    return max(value - row["reference"]["letters"][k] for k, value in enumerate(letters) if value is not None)


def example_rows(rows: list[dict]) -> list[dict]:
    """One row per example: the default's verdict and margin, the reference's, the nearest-
    letter gap, the largest gap of any letter the default searched, whether the default
    searched the reference's letter, and whether ``ORACLE_SLACK`` calls the verdict uncertain."""
    out = []
    for row in rows:
        default, reference = row["default"], row["reference"]
        letters = default.get("letters")
        searched = None if letters is None else int(letters[reference["label"]] is not None)
        out.append({"example": row["example"], "model": row["model"], "kind": row["kind"], "index": row["index"],
                    "source_letter": row["source_letter"], "other_letter": row["other_letter"],
                    "default_label": default["label"], "default_margin": round(default["margin"], 6),
                    "reference_label": reference["label"], "reference_margin": round(reference["margin"], 6),
                    "nearest_gap": round(default["nearest"] - reference["nearest"], 6),
                    "letter_gap": None if letters is None else round(letter_gap(row), 6),
                    "reference_letter_searched": searched,
                    "uncertain": int(default["margin"] < ORACLE_SLACK)})
    return out


def quantile_text(values: list[float]) -> str:
    q = torch.quantile(torch.tensor(values, dtype=torch.float64), torch.tensor([0.5, 0.9, 1.0], dtype=torch.float64))
    return " / ".join(f"{float(v):.5f}" for v in q)


def table(rows: list[dict]) -> str:
    """Markdown: per search compared (the default and the convergence check per (model,
    kind) too), over all: verdicts that agree with the reference, the nearest-distance gap
    to the reference (median / q90 / max; negative: the search found a nearer rendering),
    the largest of the source- and other-letter gaps, the largest gap of any letter searched
    (rows that recorded them), and the median CPU seconds per image; under it, the default's
    disagreements with the reference and their margins against ``ORACLE_SLACK``."""
    groups = sorted({(row["model"], row["kind"]) for row in rows})
    lines = ["| search | model | kind | n | verdict = reference | gap median / q90 / max | source, other gap max "
             "| any letter searched: gap max | CPU s per image (median) |", "|---|---|---|---|---|---|---|---|---|"]
    for name in [*VARIANTS, "convergence"]:
        for model, kind in (groups if name in ("default", "convergence") else []) + [("all", "all")]:
            chosen = [row for row in rows if name in row and (model == "all" or (row["model"], row["kind"]) == (model, kind))]
            if not chosen:
                continue
            gaps = [row[name]["nearest"] - row["reference"]["nearest"] for row in chosen]
            letter_gaps = [max(row[name][key] - row["reference"][key] for key in ("source", "other")) for row in chosen]
            searched = [gap for gap in (letter_gap(row, name) for row in chosen) if gap is not None]
            agree = sum(row[name]["label"] == row["reference"]["label"] for row in chosen)
            seconds = float(torch.tensor([row[name]["cpu_seconds"] for row in chosen]).median())
            lines.append(f"| {name} | {model} | {kind} | {len(chosen)} | {agree} ({100 * agree / len(chosen):.1f}%) | "
                         f"{quantile_text(gaps)} | {max(letter_gaps):.5f} | "
                         f"{f'{max(searched):.5f} ({len(searched)})' if searched else '-'} | {seconds:.1f} |")
    reference = float(torch.tensor([row["reference"]["cpu_seconds"] for row in rows]).median())
    margins = [row["reference"]["margin"] for row in rows]
    differ = [row for row in example_rows(rows) if row["default_label"] != row["reference_label"]]
    differ_margins = ", ".join(f"{margin:.5f}" for margin in sorted(row["default_margin"] for row in differ))
    return "\n".join(lines) + (f"\n\nreference: median {reference:.1f} CPU s per image; its margin (second-nearest "
                               f"minus nearest letter) min / median: {min(margins):.4f} / "
                               f"{float(torch.tensor(margins).median()):.4f} over {len(rows)} examples.") + (
        f"\n\ndefault: {len(differ)} verdicts differ from the reference; their margins {differ_margins}: "
        f"{sum(row['uncertain'] for row in differ)} of {len(differ)} below ORACLE_SLACK ({ORACLE_SLACK}), "
        "so called uncertain." if differ else "")


def main(argv=None):
    args = parse(argv)
    command = shlex.join(["python", "scripts/oracle_validation.py", *(sys.argv[1:] if argv is None else argv)])
    out = atomic.check_folder(Path(args.out_dir), "--out-dir")
    out.mkdir(parents=True, exist_ok=True)
    store = RunStore(Path(args.protocol_dir))
    saved = out / "examples.pt"
    if saved.exists():
        found = torch.load(saved, weights_only=True)
    else:
        found = examples(args, store)
        torch.save(found, saved)
    renderer = GlyphRenderer()
    manifolds = {starts: GlyphManifold(renderer, starts=starts, seed=args.seed)
                 for starts in {STARTS, REFERENCE[0], CONVERGENCE[0]}}
    path = out / "rows.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    def save(rows):
        atomic.write_text(path, "".join(json.dumps(row) + "\n" for row in rows))

    backfill_letters(rows, found, manifolds[STARTS], save)
    if args.rejudge_default:
        rejudge_default(rows, found, manifolds[STARTS], save)
    done = {row["example"] for row in rows}
    order = [] if args.rejudge_default else round_robin(found)
    if args.closest:
        first = closest_calls(found, Path(args.taxonomy_dir), args.closest)
        order = first + [i for i in order if i not in first]
    order = order[:args.limit]
    for position, i in enumerate(order):
        if i in done:
            continue
        image, source, other = found["images"][i:i + 1], found["source"][i], found["other"][i]
        row = {"example": i, "model": found["model"][i], "kind": found["kind"][i], "index": found["index"][i],
               "source_letter": int(source), "other_letter": int(other)}
        for name, (starts, options) in VARIANTS.items():
            row[name] = judged(manifolds[starts], image, source, other, options)
        row["reference"] = judged(manifolds[REFERENCE[0]], image, source, other, REFERENCE[1], everything=True)
        if position < args.convergence:
            row["convergence"] = judged(manifolds[CONVERGENCE[0]], image, source, other, CONVERGENCE[1],
                                        everything=True)
        rows.append(row)
        with path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"{len(rows)}/{len(order)} {row['model']} {row['kind']} #{row['index']}: default "
              f"{row['default']['label']} {row['default']['nearest']:.4f}, reference {row['reference']['label']} "
              f"{row['reference']['nearest']:.4f} ({row['reference']['cpu_seconds']:.0f} CPU s)", flush=True)
    text = table(rows)
    record = provenance.record(config={**vars(args), "variants": VARIANTS, "reference": REFERENCE,
                                       "convergence": CONVERGENCE}, device="cpu", command=command,
                               manifold=manifolds[STARTS].settings() | {"starts": "per search"})
    atomic.write_text(out / "validation.md", f"command: `{command}`\n\n{text}\n")
    atomic.write_csv(out / "validation.csv", example_rows(rows))
    atomic.write_json(out / "run.json", record)
    print(text)


if __name__ == "__main__":
    main()
