"""The backbones' networks: torchvision's architectures, ResNet's v1 variant, heads off,
and the embedding as a trunk (up to the last convolutional map) and a pooling."""

from __future__ import annotations

from typing import Final, Literal

import torch
from torch import nn

from engine.vocabulary.backbones import spec
from engine.vocabulary.schema import AVG, Pooling
from ingest.options import check_pooling
from ingest.torchcompat import import_torchvision

GEM_P: Final = 3.0  # Radenović, Tolias & Chum, TPAMI 2018: p = 3 for off-the-shelf features
GEM_EPS: Final = 1e-6

Variant = Literal["torchvision", "resnet-v1"]  # resnet-v1: stride in the first 1×1 conv


def move_strides(model: nn.Module) -> nn.Module:
    """A torchvision ResNet made v1: each stage's stride moves from the 3×3 conv to the
    first 1×1 conv of its first block (the shortcut keeps its stride)."""
    for name in ("layer2", "layer3", "layer4"):
        first = getattr(model, name)[0]
        if first.conv2.stride == (2, 2):
            first.conv1.stride, first.conv2.stride = (2, 2), (1, 1)
    return model


def remove_head(name: str, model: nn.Module) -> nn.Module:
    """The network without its ImageNet classifier (VGG16 keeps fc6 and fc7)."""
    if name == "resnet50":
        model.fc = nn.Identity()
    elif name in ("densenet121", "mobilenet_v2"):
        model.classifier = nn.Identity()
    else:  # vgg16: keep fc6 and fc7 (with their ReLUs), drop the 1000-way layer
        classifier = model.classifier
        assert isinstance(classifier, nn.Sequential)
        model.classifier = nn.Sequential(*list(classifier.children())[:-1])
    return model


def architecture(name: str, variant: Variant = "torchvision") -> nn.Module:
    """The network of a backbone (classifier included), randomly initialised; `resnet-v1`
    is ResNet with the stride in each stage's first 1×1 conv (Keras' ResNet50)."""
    spec(name)
    model: nn.Module = getattr(import_torchvision().models, name)(weights=None)
    return move_strides(model) if variant == "resnet-v1" else model


def gem(maps: torch.Tensor, p: float = GEM_P, eps: float = GEM_EPS) -> torch.Tensor:
    """Generalised-mean pooling of (N, C, H, W) maps → (N, C), in float32 whatever the
    autocast: (mean over H×W of max(x, eps)^p)^(1/p); p = 1 is average pooling, p → ∞
    max pooling."""
    with torch.autocast(maps.device.type, enabled=False):
        powered = maps.float().clamp(min=eps).pow(p)
        return powered.mean(dim=(-2, -1)).pow(1.0 / p)


def trunk(name: str, model: nn.Module) -> nn.Module:
    """The network up to its last convolutional map, as its forward computes it
    (ResNet-50: up to layer4; DenseNet-121: features and the final ReLU; MobileNetV2:
    features). VGG16 has none: its embedding is fc7."""
    if name == "resnet50":
        parts = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return nn.Sequential(*(getattr(model, part) for part in parts))
    if name in ("densenet121", "mobilenet_v2"):
        features = model.features
        assert isinstance(features, nn.Module)
        return nn.Sequential(features, nn.ReLU(inplace=True)) if name == "densenet121" else features
    raise ValueError(f"{name} has no pooled convolutional map (its embedding is fc7)")


class Pooled(nn.Module):
    """A trunk and a pooling of its last map: (N, 3, H, W) → (N, C)."""

    def __init__(self, trunk: nn.Module, pooling: Pooling) -> None:
        super().__init__()
        self.trunk = trunk
        self.pooling = pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.trunk(x)
        if self.pooling == AVG:  # what the torchvision models' own forward does
            return torch.flatten(nn.functional.adaptive_avg_pool2d(maps, (1, 1)), 1)
        return gem(maps)


def embedding(name: str, model: nn.Module, pooling: Pooling = AVG) -> nn.Module:
    """The embedding network of a backbone from its network (head on or off, weights
    loaded): a trunk and a pooling; VGG16's fc7 (average pooling only, ConfigError
    otherwise)."""
    check_pooling(name, pooling)
    if name == "vgg16":
        return remove_head(name, model)
    return Pooled(trunk(name, model), pooling)
