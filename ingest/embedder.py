"""Embedder: a backbone without its classifier, with its weights, batched inference."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from engine.backbones import IMAGENET, RANDOM, BackboneSpec, spec
from engine.errors import WeightsError
from ingest.torchcompat import import_torchvision

Precision = Literal["auto", "fp32", "bf16"]
IMAGENET_MEAN: Final = (0.485, 0.456, 0.406)
IMAGENET_STD: Final = (0.229, 0.224, 0.225)


def _remove_head(name: str, model: nn.Module) -> nn.Module:
    if name == "resnet50":
        model.fc = nn.Identity()
    elif name == "densenet121":
        model.classifier = nn.Identity()
    else:  # vgg16: keep fc6 and fc7 (with their ReLUs), drop the 1000-way layer
        classifier = model.classifier
        assert isinstance(classifier, nn.Sequential)
        model.classifier = nn.Sequential(*list(classifier.children())[:-1])
    return model


def _imagenet_model(backbone: BackboneSpec, builder: Any) -> nn.Module:
    models = import_torchvision().models
    weights = getattr(models, backbone.weights_enum).IMAGENET1K_V1
    try:
        model: nn.Module = builder(weights=weights)
    except OSError as exc:  # URLError is an OSError: no network, or a refused download
        checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
        filename = Path(weights.url).name
        raise WeightsError(
            f"cannot download ImageNet weights for {backbone.name} ({exc}); copy {filename} into "
            f"{checkpoints}/, or pass --weights PATH to a state-dict file, "
            f"or --weights random for a demo"
        ) from None
    return model


def _file_model(backbone: BackboneSpec, builder: Any, path: Path) -> nn.Module:
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a PyTorch state-dict file ({exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model: nn.Module = builder(weights=None)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise WeightsError(f"{path}: does not fit {backbone.name} ({first})") from None
    missing = [k for k in result.missing_keys if not k.startswith(backbone.head_prefix)]
    if missing or result.unexpected_keys:
        example = (missing or result.unexpected_keys)[0]
        raise WeightsError(
            f"{path}: not a {backbone.name} state dict ({len(missing)} missing, "
            f"{len(result.unexpected_keys)} unexpected keys, e.g. {example!r})"
        )
    return model


def build_model(name: str, weights: str | Path = IMAGENET, seed: int = 0) -> nn.Module:
    """A backbone without its classifier, in eval mode.

    weights: "imagenet" (torchvision's ImageNet-1K V1 weights, cached under TORCH_HOME),
    "random" (seeded random init: for tests and offline demos only), or a state-dict path.
    """
    backbone = spec(name)
    builder = getattr(import_torchvision().models, name)
    if str(weights) == RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model: nn.Module = builder(weights=None)
    elif str(weights) == IMAGENET:
        model = _imagenet_model(backbone, builder)
    else:
        model = _file_model(backbone, builder, Path(weights))
    return _remove_head(name, model).eval()


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
    """Batches of uint8 images (N, 3, H, W) in, L2-normalised float32 embeddings out."""

    def __init__(
        self,
        name: str,
        weights: str | Path = IMAGENET,
        device: str = "auto",
        precision: Precision = "auto",
        seed: int = 0,
    ) -> None:
        self.spec = spec(name)
        self.random_init = str(weights) == RANDOM
        self.weights_label = (
            str(weights) if str(weights) in (RANDOM, IMAGENET) else Path(weights).name
        )
        self.device = resolve_device(device)
        if precision == "auto":
            use_bf16 = self.device.type == "cuda" or cpu_supports_bf16()
        else:
            use_bf16 = precision == "bf16"
        self.precision: Precision = "bf16" if use_bf16 else "fp32"
        model = build_model(name, weights, seed)
        self.model = model.to(self.device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
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
            x = images.to(self.device, non_blocking=True).float().div_(255.0)
            x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
            ):
                features = self.model(x)
            features = nn.functional.normalize(features.float().flatten(1), dim=1)
            return features.cpu().numpy().astype(np.float32, copy=False)
