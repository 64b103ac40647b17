"""The backbones' networks: torchvision's architectures, ResNet's v1 variant, heads off."""

from __future__ import annotations

from typing import Literal

from torch import nn

from engine.backbones import spec
from ingest.torchcompat import import_torchvision

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
