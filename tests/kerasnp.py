"""An independent numpy forward pass of a Keras model from its TF.js topology and weights:
the reference the ResNet conversion is checked against (NHWC, Keras semantics)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def _conv(x: Array, kernel: Array, bias: Array | None, strides: list[int], padding: str) -> Array:
    kh, kw = kernel.shape[:2]
    sh, sw = strides
    if padding == "same":  # TensorFlow's rule: the extra pixel goes after
        height, width = x.shape[:2]
        ph = max((math.ceil(height / sh) - 1) * sh + kh - height, 0)
        pw = max((math.ceil(width / sw) - 1) * sw + kw - width, 0)
        x = np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))[::sh, ::sw]
    out = np.einsum("hwcij,ijco->hwo", windows, kernel, optimize=True)
    return out if bias is None else out + bias


def _max_pool(x: Array, size: list[int], strides: list[int]) -> Array:
    windows = np.lib.stride_tricks.sliding_window_view(x, tuple(size), axis=(0, 1))
    pooled: Array = windows[:: strides[0], :: strides[1]].max(axis=(-2, -1))
    return pooled


def forward(topology: dict[str, Any], weights: dict[str, Any], image: Array) -> dict[str, Array]:
    """Every layer's output for one HWC image, by layer name (Keras semantics, float64)."""
    layers = topology["model_config"]["config"]["layers"]
    out: dict[str, Array] = {}
    for layer in layers:
        kind, name, config = layer["class_name"], layer["name"], layer["config"]
        inputs = (
            [out[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        )
        w = {k.split("/", 1)[1]: np.asarray(v, np.float64) for k, v in weights.items()
             if k.split("/", 1)[0] == name}  # fmt: skip
        if kind == "InputLayer":
            y = image
        elif kind == "ZeroPadding2D":
            (top, bottom), (left, right) = config["padding"]
            y = np.pad(inputs[0], ((top, bottom), (left, right), (0, 0)))
        elif kind == "Conv2D":
            y = _conv(inputs[0], w["kernel"], w.get("bias"), config["strides"], config["padding"])
        elif kind == "BatchNormalization":
            scale = w["gamma"] / np.sqrt(w["moving_variance"] + config["epsilon"])
            y = (inputs[0] - w["moving_mean"]) * scale + w["beta"]
        elif kind == "Activation":
            y = np.maximum(inputs[0], 0) if config["activation"] == "relu" else inputs[0]
        elif kind == "MaxPooling2D":
            y = _max_pool(inputs[0], config["pool_size"], config["strides"])
        elif kind == "Add":
            y = sum(inputs[1:], inputs[0])
        elif kind == "GlobalAveragePooling2D":
            y = inputs[0].mean(axis=(0, 1))
        elif kind == "Dense":
            y = inputs[0] @ w["kernel"] + w["bias"]
        else:
            raise ValueError(f"layer kind {kind} is not modelled")
        out[name] = y
    return out
