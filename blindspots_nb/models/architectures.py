"""The networks of the registry's entries: the WideResNet of RobustBench's CIFAR-10
models, ViT-S with a convolutional stem, the FONTS CNN, the digits' LeNet, and builders of timm and
torchvision networks (imported when built: timm is slow to import)."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn
import torch.nn.functional as F


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


def timm_builder(arch: str, **kwargs) -> Callable[[], nn.Module]:
    """A function that builds timm's ``arch`` without weights."""
    def build():
        import timm
        return timm.create_model(arch, pretrained=False, **kwargs)
    return build


def deit_small_convstem() -> nn.Module:
    """timm's DeiT-S with the convolutional stem of Singh et al. 2023 (no weights)."""
    net = timm_builder("deit_small_patch16_224")()
    net.patch_embed.proj = _ConvStem(48, net.embed_dim)
    return net


def torchvision_resnet50() -> nn.Module:
    """torchvision's ResNet-50 (no weights)."""
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


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al. 1998) for 1x32x32 images, with ReLU and max pooling: two
    convolution stages (6 and 16 channels, 5x5 kernels) and three linear layers (120, 84, classes)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                  nn.Linear(84, num_classes))

    def forward(self, x):
        return self.head(self.features(x))
