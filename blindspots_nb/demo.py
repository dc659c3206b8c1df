"""One traversal between two images of a model's own image source, written as files a user opens.

``blindspots-nb demo`` calls :func:`demo`: LST from one image towards another (by
default the model's: scikit-image's "coffee" towards "chelsea" on the offline ImageNet
model, a glyph A towards a B on a FONTS model), then the source, target and blind spot
as PNG, the confidence history as CSV and a JSON record of what produced them.
"""

from __future__ import annotations


from torchvision.utils import save_image

from .tools import atomic, provenance
from .lst import LSTConfig, traverse
from .analysis.metrics import LPIPSDistance, target_distances

# history.csv: its columns and the history records they come from
HISTORY_COLUMNS = {"source_confidence": "source_confidence", "target_confidence": "target_confidence",
                   "distance_l2": "distance", "accepted_total": "accepted_total"}


def demo(model_name: str = "efficientnet_lite0", source_name: str | None = None, target_name: str | None = None,
         config: LSTConfig | None = None, out_dir="results/demo", device=None, execution=None,
         image_source: str | None = None, weights=None) -> dict:
    """LST from one image of ``image_source`` towards another; writes ``source.png``, ``target.png``,
    ``blind_spot.png``, ``history.csv`` and ``record.json`` to ``out_dir`` and returns the record.
    ``source_name``/``target_name``: images of it by name. None follows the model: its image source
    (:func:`~blindspots_nb.data.sources.default_source`) and, there, a source the model classifies
    as its label and a target of another class (:func:`~blindspots_nb.data.sources.pick_labelled`,
    which warns of a misclassified source or a target of its class); each image's label is printed
    beside the model's class.
    ``execution``: how the model runs (:class:`~blindspots_nb.execution.Execution`); ``weights``: a
    local weights file (``load_model``'s, ``--weights``) instead of the published ones. An ``out_dir``
    that cannot be a folder is refused first (:class:`~blindspots_nb.tools.atomic.NotAFolderError`);
    each file is written whole or not at all (:mod:`blindspots_nb.tools.atomic`)."""
    from .execution import Execution
    from .models import load_model, module_device, predict
    from .data.sources import ImageSource, default_source, pick_labelled

    out_dir = atomic.check_folder(out_dir, "--out-dir")
    config, execution = config or LSTConfig(), execution or Execution()
    model = load_model(model_name, device=device, weights=weights)
    device = module_device(model)
    picked_from = ImageSource.of(image_source) if image_source else default_source(model)
    picked = pick_labelled(model, [source_name, target_name], image_source=picked_from)
    (source_name, target_name), labels = picked.names, picked.labels.tolist()
    source_image, target_image = picked.images[:1].to(device), picked.images[1:].to(device)
    label = predict(model, source_image)[0].to(device)
    result = traverse(model, source_image, label, target_image, config, progress=True, execution=execution)

    for file, image in (("source.png", source_image), ("target.png", target_image),
                        ("blind_spot.png", result.images)):
        atomic.write_atomically(out_dir / file, lambda temporary, image=image: save_image(image.cpu(), temporary,
                                                                                       format="png"))
    history = result.history.as_tensors()
    atomic.write_csv(out_dir / "history.csv", [
        {"iteration": iteration, **{column: float(history[key][i, 0]) for column, key in HISTORY_COLUMNS.items()}}
        for i, iteration in enumerate(history["iteration"].tolist())], digits=6)
    distances = target_distances(result.images, target_image, LPIPSDistance())
    summary = {
        "source": source_name, "target": target_name,
        **{f"{role}_label": model.class_names[label] if label >= 0 else None
           for role, label in zip(("source", "target"), labels)},  # the image source's labels, None: unknown
        "source_class": model.class_names[int(label)], "target_class": model.class_names[int(result.target_labels)],
        "initial_confidence": float(result.initial_confidence),  # the clean source's, in its class
        "confidence": float(result.confidence),  # the blind spot's, in the source's class
        "target_confidence": float(result.target_confidence),  # the blind spot's, in the target's class
        **{f"{key}_to_target": float(value) for key, value in distances.items()},
    }
    record = provenance.record(model, config, device, execution=execution.to_dict(),
                               image_source=str(picked_from), **summary)
    atomic.write_json(out_dir / "record.json", record)
    print("images (name: the model's class and confidence, the label):\n  " + picked.text().replace("\n", "\n  "))
    print(f"{model_name}: {source_name} ({summary['source_class']}, initial confidence "
          f"{summary['initial_confidence']:.3f})"
          f" -> towards {target_name} ({summary['target_class']}) after {config.iterations} iterations:")
    print(f"  source-class confidence {summary['confidence']:.4f}, "
          f"RMSE to target {summary['rmse_to_target']:.4f}, l_inf {summary['linf_to_target']:.3f}, "
          f"SSIM {summary['ssim_to_target']:.3f}, LPIPS {summary['lpips_to_target']:.3f}")
    print(f"  wrote {out_dir}/source.png, target.png, blind_spot.png, history.csv, record.json")
    return record
