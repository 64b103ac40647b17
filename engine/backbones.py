"""The CNN backbones: the paper's three and a fast MobileNetV2; names, embedding sizes and
classifier prefixes (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from engine.errors import WeightsError

RANDOM: Final = "random"
IMAGENET: Final = "imagenet"


@dataclass(frozen=True)
class BackboneSpec:
    """A torchvision architecture, its embedding size and the prefix of its classifier."""

    name: str
    dim: int
    weights_enum: str
    head_prefix: str


BACKBONES: Final[dict[str, BackboneSpec]] = {
    "resnet50": BackboneSpec("resnet50", 2048, "ResNet50_Weights", "fc."),
    "densenet121": BackboneSpec("densenet121", 1024, "DenseNet121_Weights", "classifier."),
    "vgg16": BackboneSpec("vgg16", 4096, "VGG16_Weights", "classifier.6."),
    "mobilenet_v2": BackboneSpec("mobilenet_v2", 1280, "MobileNet_V2_Weights", "classifier."),
}


def spec(name: str) -> BackboneSpec:
    """The spec of a backbone by name; WeightsError naming the known ones otherwise."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise WeightsError(
            f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}"
        ) from None
