"""The CNN backbones (the paper's three and a fast MobileNetV2: names, embedding sizes and
classifier prefixes; no torch here) and the names of the vector spaces made from them: a
backbone's own, or a compact space `<backbone>-pca<dim>` (engine/spaces)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import get_close_matches
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
        raise WeightsError(unknown_backbone(name)) from None


def did_you_mean(name: str, known: tuple[str, ...] | list[str]) -> str:
    """`" (did you mean X?)"` when a known name is close to `name`, else an empty string."""
    close = get_close_matches(name.lower(), list(known), n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_backbone(name: str, stored: tuple[str, ...] = ()) -> str:
    """The message for a backbone name that is none of BACKBONES: a close one, the valid
    ones, and (when given) the ones a store holds."""
    have = f"; the store has {', '.join(stored)}" if stored else ""
    return (
        f"unknown backbone {name!r}{did_you_mean(name, tuple(BACKBONES))}; "
        f"choose one of {', '.join(BACKBONES)}{have}"
    )


COMPACT_NAME: Final = re.compile(r"^(?P<source>[a-z0-9_]+)-pca(?P<dim>[1-9][0-9]*)$")


def space_name(backbone: str, dim: int) -> str:
    """The name of the compact space of `dim` dims learned on a backbone's vectors."""
    return f"{backbone}-pca{dim}"


def is_compact(name: str) -> bool:
    """Whether a vector name is a compact space's (`<backbone>-pca<dim>`)."""
    found = COMPACT_NAME.match(name)
    return found is not None and found["source"] in BACKBONES


def source_of(name: str) -> str:
    """The backbone a compact space's name derives from (the name itself for a backbone)."""
    found = COMPACT_NAME.match(name)
    return found["source"] if found is not None and found["source"] in BACKBONES else name
