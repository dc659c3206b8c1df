"""The layer where the target disappears, measured on the FONTS pair and EfficientNet-Lite0.

For each model, LST runs from a few sources towards targets of another class, recording
its iterates; then, at every recorded iterate and every default layer
(:func:`blindspots_nb.analysis.layers.default_layers`), the cosine of the layer's
activations to the source's and to the target's, per path, and the linear CKA over the
batch of paths (:func:`blindspots_nb.analysis.layers.traversal_layer_similarity`).

- ``fonts_cnn``, ``fonts_cnn_at``: ``--sources`` FONTS test glyphs that both models
  classify correctly with confidence > 0.6, one per class in turn; glyph of class c
  towards the glyph of class c + 1 (mod 10); the paper's hyperparameters (400 iterations
  of step 0.01), recorded every ``--fonts-record-every`` iterations.
- ``efficientnet_lite0``: the scikit-image photos coffee -> chelsea (the demo's pair),
  astronaut -> rocket, immunohistochemistry -> hubble_deep_field and coins -> moon, labelled
  by the model's own prediction; the offline preset's 100 iterations of step 0.04 (which stand in for 400 of
  0.01 on this CPU), recorded every ``--photos-record-every``.

Writes, per model, to ``--out-dir/MODEL/``: ``similarity.csv`` (every path, layer and
iteration, cosine and CKA), ``summary.json`` (provenance, the command, the pairs, where the
target disappears, the last iterate's similarities per layer), and the heatmaps
``cosine_mean.html``/``.png`` (mean over paths), ``cosine_path0.html``, ``cka.html``/``.png``
and ``debiased-cka.html``/``.png`` (over the batch of paths), and ``traversal.pt``, the
traversal, which a second run with the same settings reuses instead of running LST again; with ``--docs-images FOLDER``, the mean-cosine heatmap as
``FOLDER/layers_MODEL.png``. A model's folder is new, empty or this script's with the same settings (its
settings.json; :func:`blindspots_nb.tools.folders.claim`): nothing else is overwritten. Deterministic
given ``--seed``. Example (about 5 minutes on 2 CPU threads)::

    OMP_NUM_THREADS=2 .venv/bin/python scripts/layer_similarity.py --docs-images docs/images
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from blindspots_nb.analysis.layers import disappearance, traversal_layer_similarity
from blindspots_nb.analysis.metrics import rmse
from blindspots_nb.data.sources import open_source, pick_images
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.models import load_model, module_device, predict
from blindspots_nb.plots.figures import save_figure
from blindspots_nb.plots.layers import layer_similarity_figure
from blindspots_nb.protocol.pool import next_class_pairs
from blindspots_nb.tools import atomic, folders, provenance

FONTS_MODELS = ("fonts_cnn", "fonts_cnn_at")
PHOTO_MODELS = ("efficientnet_lite0",)
# four sources and four other targets: were the targets the sources permuted (coffee <-> chelsea), CKA over the
# batch could not tell the sources' representations from the targets'
PHOTO_PAIRS = (("coffee", "chelsea"), ("astronaut", "rocket"), ("immunohistochemistry", "hubble_deep_field"),
               ("coins", "moon"))
TOOL = "scripts/layer_similarity.py"
BATCH_MEASURES = ("cka", "debiased-cka")


def fonts_paths(models, count: int, seed: int):
    """``count`` FONTS test glyphs both models classify correctly (confidence > 0.6), one
    per class in turn, each towards the glyph of the next class with the same rank."""
    dataset = open_source("fonts:test", models[0], seed=seed)
    try:
        pool, order, targets = next_class_pairs(models, dataset, count)
    except ValueError as error:
        raise SystemExit(str(error))
    return pool.images[order], pool.images[targets], [(pool.names[i], pool.names[j]) for i, j in zip(order, targets)]


def photo_paths(model):
    names = sorted({name for pair in PHOTO_PAIRS for name in pair})
    images, names = pick_images(model, names, image_source="photos")
    index = {name: n for n, name in enumerate(names)}
    sources = images[[index[source] for source, _ in PHOTO_PAIRS]]
    targets = images[[index[target] for _, target in PHOTO_PAIRS]]
    return sources, targets, list(PHOTO_PAIRS)


def traversal_of(path: Path, model, sources, targets, config: LSTConfig) -> Traversal:
    """The traversal saved at ``path`` by an earlier run with the same model, sources, targets
    and configuration (resumed where it stopped), else a new one; saved when done."""
    if path.exists():
        saved = Traversal.load(path, model)
        if saved.config == config and torch.equal(saved.sources.cpu(), sources) and torch.equal(saved.targets.cpu(),
                                                                                               targets):
            return saved.run(progress=True)
    traversal = Traversal(model, sources, predict(model, sources)[0], targets, config).run(progress=True)
    traversal.save(path)
    return traversal


def measure(name: str, model, sources, targets, pairs, config: LSTConfig, image_source: str, command: str, out: Path,
            docs_images: Path | None) -> dict:
    """Traverse (or reuse the saved traversal), measure the layers along the paths, write
    the files; return the summary."""
    try:  # resumed only with the same settings; a folder of anything else is refused
        folder = folders.claim(out / name, {"tool": TOOL, "model": name, "image_source": image_source,
                                            "lst": config.to_dict()}, renamed={"data": "image_source"})
    except folders.FolderTaken as error:
        raise SystemExit(str(error)) from None
    traversal = traversal_of(folder / "traversal.pt", model, sources, targets, config)
    similarity = traversal_layer_similarity(model, traversal, progress=True, image_source=image_source,
                                            command=command, tool=TOOL)
    cosine = disappearance(similarity)
    batch = [measure for measure in BATCH_MEASURES if getattr(similarity, f"{measure.replace('-', '_')}_to_source")
             is not None]
    to_source, to_target = similarity.similarities("cosine", None)
    last = {"layer": list(similarity.layers), "mean_cosine_to_source": to_source[:, -1].tolist(),
            "mean_cosine_to_target": to_target[:, -1].tolist()}
    for measure in batch:
        to_source, to_target = similarity.similarities(measure)
        last.update({f"{measure}_to_source": to_source[:, -1].tolist(), f"{measure}_to_target": to_target[:, -1].tolist()})
    result = traversal.result()
    paths = [{"source": source, "target": target, "source_class": model.class_names[int(result.labels[b])],
              "target_class": model.class_names[int(result.target_labels[b])],
              "initial_confidence": float(result.initial_confidence[b]), "confidence": float(result.confidence[b]),
              "target_confidence": float(result.target_confidence[b]),
              "rmse_to_target": float(rmse(result.images[b:b + 1], targets[b:b + 1])[0]),
              "disappears_at": cosine.layer[b], "depth": cosine.depth[b],
              "nearer_source_from": cosine.settled_layer[b], "settled_depth": cosine.settled_depth[b]}
             for b, (source, target) in enumerate(pairs)]
    summary = {**similarity.provenance, "paths": paths, "last_iterate": last, "iterations": list(similarity.iterations),
               **{f"{measure}_disappears_at": disappearance(similarity, measure).layer[0] for measure in batch},
               **{f"{measure}_nearer_source_from": disappearance(similarity, measure).settled_layer[0]
                  for measure in batch}}
    atomic.write_json(folder / "summary.json", summary)
    atomic.write_csv(folder / "similarity.csv", similarity.rows(), digits=6)
    caption = provenance.caption(model, config, module_device(model))
    figures = {"cosine_mean": layer_similarity_figure(similarity, None, caption=caption, title=name),
               "cosine_path0": layer_similarity_figure(similarity, 0, caption=caption,
                                                       title=f"{name}: {pairs[0][0]} \u2192 {pairs[0][1]}")}
    for measure in batch:
        figures[measure] = layer_similarity_figure(similarity, measure=measure, caption=caption, title=name)
    for stem, figure in figures.items():
        save_figure(figure, folder / f"{stem}.html")
        if stem != "cosine_path0":
            save_figure(figure, folder / f"{stem}.png")
    if docs_images is not None:
        figure = figures["cosine_mean"].update_layout(width=900)
        save_figure(figure, atomic.check_folder(docs_images, "--docs-images") / f"layers_{name}.png")
    return summary


def report(name: str, summary: dict) -> None:
    """Print the last iterate's similarities per layer and where the target disappears."""
    last = summary["last_iterate"]
    batch = [measure for measure in BATCH_MEASURES if f"{measure}_to_source" in last]
    columns = ["mean_cosine"] + batch
    print(f"\n{name}: {len(summary['paths'])} paths, last iterate {summary['iterations'][-1]}; "
          f"similarity of the blind spots' representation to the sources' (src) and the targets' (tgt)")
    print(f"  {'layer':<18}" + "".join(f"{column + ' ' + side:>19}" for column in columns for side in ("src", "tgt")))
    for n, layer in enumerate(last["layer"]):
        print(f"  {layer:<18}" + "".join(f"{last[f'{column}_to_{side}'][n]:19.3f}" for column in columns
                                         for side in ("source", "target")))
    for path in summary["paths"]:
        print(f"  {path['source']} -> {path['target']} ({path['source_class']} -> {path['target_class']}): "
              f"confidence {path['initial_confidence']:.3f} -> {path['confidence']:.3f}, RMSE to target "
              f"{path['rmse_to_target']:.3f}; target disappears at {path['disappears_at']}"
              + ("" if path["depth"] == path["settled_depth"] else
                 f", regained deeper; nearer the source from {path['nearer_source_from']} on"))
    for measure in batch:
        print(f"  {measure} over the batch: target disappears at {summary[f'{measure}_disappears_at']}, "
              f"nearer the source from {summary[f'{measure}_nearer_source_from']} on")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=[*FONTS_MODELS, *PHOTO_MODELS],
                        choices=[*FONTS_MODELS, *PHOTO_MODELS])
    parser.add_argument("--sources", type=int, default=10, help="FONTS sources (paths), one per class in turn")
    parser.add_argument("--fonts-record-every", type=int, default=20)
    parser.add_argument("--photos-record-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("results/layer_similarity"))
    parser.add_argument("--docs-images", type=Path, default=None, help="also write layers_MODEL.png here")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    command = shlex.join(["python", TOOL, *(sys.argv[1:] if argv is None else argv)])
    fonts = [name for name in args.models if name in FONTS_MODELS]
    fonts_models = {name: load_model(name) for name in fonts}
    if fonts_models:
        pool_models = [fonts_models.get(name) or load_model(name) for name in FONTS_MODELS]
        fonts_sources, fonts_targets, fonts_pairs = fonts_paths(pool_models, args.sources, args.seed)
    for name in tqdm(args.models, desc="models"):
        if name in FONTS_MODELS:
            config = LSTConfig(record_every=args.fonts_record_every, record_images=True, seed=args.seed)
            summary = measure(name, fonts_models[name], fonts_sources, fonts_targets, fonts_pairs, config,
                              "fonts:test", command, args.out_dir, args.docs_images)
        else:
            model = load_model(name)
            sources, targets, pairs = photo_paths(model)
            config = LSTConfig(step_size=4e-2, iterations=100, record_every=args.photos_record_every,
                               record_images=True, seed=args.seed)
            summary = measure(name, model, sources, targets, pairs, config, "photos", command, args.out_dir,
                              args.docs_images)
        report(name, summary)
    print(f"\nwrote {args.out_dir}/MODEL/ (similarity.csv, summary.json, heatmaps)")


if __name__ == "__main__":
    main()
