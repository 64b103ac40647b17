"""Keras ResNet-50 (v1) in TF.js layers format → a torchvision ResNet state dict, exactly.

The facts the conversion honours: Keras kernels are H×W×in×out (torch: out×in×H×W); every
Keras conv has a bias, folded into the BatchNorm after it (running mean − bias); Keras
BatchNorm's epsilon is 1e-3, folded into the running variance (+ 1e-3 − 1e-5) so
torchvision's 1e-5 gives the same result; in v1 ResNet, stages 3–5 downsample in the
first 1×1 conv, not the 3×3 (the network built for it moves the stride: see
`ingest.networks`); the input is Keras "caffe" preprocessing (BGR, 0–255, minus the mean),
which the embedder applies for such a checkpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from numpy.typing import NDArray

from engine.errors import WeightsError

KERAS_EPS: Final = 1e-3
TORCH_EPS: Final = 1e-5
CAFFE_MEAN_BGR: Final = (103.939, 116.779, 123.68)
_BLOCK: Final = re.compile(r"^res(?P<stage>[2-5])(?P<block>[a-z])_branch(?P<branch>2a|2b|2c|1)$")
_TORCH_CONV: Final = {"2a": "conv1", "2b": "conv2", "2c": "conv3", "1": "downsample.0"}
_TORCH_BN: Final = {"2a": "bn1", "2b": "bn2", "2c": "bn3", "1": "downsample.1"}

Arrays = dict[str, NDArray[np.float32]]


def read_weights(folder: Path) -> tuple[dict[str, Any], Arrays]:
    """The model.json topology and every weight tensor (by name) of a TF.js layers model."""
    manifest_path = folder / "model.json"
    try:
        model = json.loads(manifest_path.read_text(encoding="utf-8"))
        groups = model["weightsManifest"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{manifest_path}: not a TF.js layers model ({exc})") from None
    arrays: Arrays = {}
    for group in groups:
        try:
            data = b"".join((folder / name).read_bytes() for name in group["paths"])
        except OSError as exc:
            raise WeightsError(f"{folder}: a weights shard is missing ({exc})") from None
        offset = 0
        for spec in group["weights"]:
            if spec.get("dtype", "float32") != "float32" or "quantization" in spec:
                raise WeightsError(f"{manifest_path}: {spec['name']} is not plain float32")
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            end = offset + 4 * count
            if end > len(data):
                raise WeightsError(f"{folder}: the shards end before {spec['name']}")
            values = np.frombuffer(data[offset:end], dtype="<f4").reshape(spec["shape"])
            arrays[spec["name"]] = values.astype(np.float32)
            offset = end
        if offset != len(data):
            raise WeightsError(f"{folder}: {len(data) - offset} bytes of the shards are not named")
    return model.get("modelTopology", {}), arrays


def stage_depths(arrays: Arrays) -> list[int]:
    """Blocks per stage (ResNet-50: 3, 4, 6, 3), read from the weight names."""
    blocks: dict[int, set[str]] = {}
    for name in arrays:
        match = _BLOCK.match(name.split("/")[0])
        if match:
            blocks.setdefault(int(match["stage"]), set()).add(match["block"])
    if sorted(blocks) != [2, 3, 4, 5]:
        raise WeightsError("not a Keras ResNet: no res2…res5 blocks among the weight names")
    return [len(blocks[s]) for s in (2, 3, 4, 5)]


def _bn(arrays: Arrays, name: str, conv_bias: NDArray[np.float32]) -> dict[str, torch.Tensor]:
    try:
        gamma, beta = arrays[f"{name}/gamma"], arrays[f"{name}/beta"]
        mean, var = arrays[f"{name}/moving_mean"], arrays[f"{name}/moving_variance"]
    except KeyError as exc:
        raise WeightsError(f"missing weight {exc.args[0]}") from None
    return {
        "weight": torch.from_numpy(gamma.copy()),
        "bias": torch.from_numpy(beta.copy()),
        "running_mean": torch.from_numpy(mean - conv_bias),
        "running_var": torch.from_numpy(var + (KERAS_EPS - TORCH_EPS)),
        "num_batches_tracked": torch.tensor(0),
    }


def _conv(arrays: Arrays, name: str) -> tuple[torch.Tensor, NDArray[np.float32]]:
    try:
        kernel, bias = arrays[f"{name}/kernel"], arrays[f"{name}/bias"]
    except KeyError as exc:
        raise WeightsError(f"missing weight {exc.args[0]}") from None
    return torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()), bias


def convert_resnet(arrays: Arrays) -> dict[str, torch.Tensor]:
    """The torchvision-layout state dict (with `fc.`) of a Keras v1 ResNet's weights."""
    state: dict[str, torch.Tensor] = {}

    def put(conv: str, bn: str, torch_conv: str, torch_bn: str) -> None:
        kernel, bias = _conv(arrays, conv)
        state[f"{torch_conv}.weight"] = kernel
        for key, value in _bn(arrays, bn, bias).items():
            state[f"{torch_bn}.{key}"] = value

    put("conv1", "bn_conv1", "conv1", "bn1")
    for name in sorted(n.split("/")[0] for n in arrays if n.endswith("/kernel")):
        match = _BLOCK.match(name)
        if match is None:
            continue
        layer = f"layer{int(match['stage']) - 1}.{ord(match['block']) - ord('a')}"
        branch = match["branch"]
        bn = f"bn{match['stage']}{match['block']}_branch{branch}"
        put(name, bn, f"{layer}.{_TORCH_CONV[branch]}", f"{layer}.{_TORCH_BN[branch]}")
    if "fc1000/kernel" in arrays:
        state["fc.weight"] = torch.from_numpy(arrays["fc1000/kernel"].T.copy())
        state["fc.bias"] = torch.from_numpy(arrays["fc1000/bias"].copy())
    converted = {n for n in arrays if n.split("/")[0] in _names(state)}
    unused = sorted(set(arrays) - converted)
    if unused:
        raise WeightsError(f"{len(unused)} weight(s) fit no ResNet layer, e.g. {unused[0]!r}")
    return state


def _names(state: dict[str, torch.Tensor]) -> set[str]:
    """The Keras layer names a converted state dict came from."""
    names = {"conv1", "bn_conv1", "fc1000"}
    for key in state:
        parts = key.split(".")
        if not parts[0].startswith("layer") or len(parts) < 3:
            continue
        stage, block = int(parts[0][5:]) + 1, chr(ord("a") + int(parts[1]))
        branch = {"conv1": "2a", "conv2": "2b", "conv3": "2c", "bn1": "2a", "bn2": "2b",
                  "bn3": "2c", "downsample": "1"}[parts[2]]  # fmt: skip
        names |= {f"res{stage}{block}_branch{branch}", f"bn{stage}{block}_branch{branch}"}
    return names


def caffe_input(images: torch.Tensor) -> torch.Tensor:
    """Keras "caffe" preprocessing of a uint8 RGB batch (N, 3, H, W): BGR, 0–255, minus
    the ImageNet mean."""
    mean = torch.tensor(CAFFE_MEAN_BGR, device=images.device).view(1, 3, 1, 1)
    return images.flip(1).float() - mean
