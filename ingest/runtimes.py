"""Runtimes: where an embedding network runs — PyTorch, ONNX Runtime or OpenVINO — and in
what arithmetic (fp32; bf16 with torch; int8 by post-training static quantization).

Every runner takes the network's float32 input (N, 3, H, W) and gives its raw features
(N, D). The ONNX export and the quantized models are cached under
`$TORCH_HOME/fashionrec/runtimes/<backbone>-<pooling>-<digest>/`, keyed by the network's
weights, so each is paid once per machine; an int8 model is keyed by its calibration
sample too.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from engine.errors import ConfigError
from ingest.options import check_pair
from ingest.weights import cache_dir

Runtime = Literal["torch", "onnxruntime", "openvino"]
Precision = Literal["fp32", "bf16", "int8"]
COMPILED: Final[tuple[Runtime, ...]] = ("onnxruntime", "openvino")
INSTALL_HINT: Final = "pip install 'fashionrec[runtimes]'"
OPSET: Final = 17
CACHE_ENV: Final = "FASHIONREC_RUNTIMES"
# What int8 leaves in float32. GeM's power and mean: quantizing them moved features to
# cosine 0.92 with fp32 (ResNet-50, real weights). The first convolution (it sees the raw
# pixel range) and the last (it makes the map that is pooled): with them in int8, ResNet-50's
# top-10 neighbours on the real catalog kept 0.898 of fp32's; in float, 0.928 (bench/runtimes.py).
KEPT_FLOAT: Final = ("Power", "ReduceMean", "Maximum", "Minimum", "Clamp")
QUANTIZATION: Final = "int8-v2: first and last convolutions float"  # change it with the recipe

Features = NDArray[np.float32]
Runner = Callable[[Features], Features]  # network input (N, 3, H, W) → raw features (N, D)


@dataclass(frozen=True)
class Setting:
    """A runtime and the arithmetic it runs in."""

    runtime: Runtime
    precision: Precision

    def __str__(self) -> str:
        return f"{self.runtime} {self.precision}"

    @classmethod
    def parse(cls, text: str) -> Setting:
        """Inverse of str()."""
        runtime, precision = text.split()
        return cls(runtime, precision)  # type: ignore[arg-type]


def installed(runtime: str) -> bool:
    """Whether a runtime's package can be imported here (torch always)."""
    return runtime == "torch" or importlib.util.find_spec(runtime) is not None


def check_setting(runtime: str, precision: str, device: str = "cpu") -> None:
    """ConfigError naming the flag when a runtime/precision pair cannot run on the device."""
    check_pair(runtime, precision)
    if runtime in COMPILED and not installed(runtime):
        raise ConfigError(
            f"--runtime {runtime}: the {runtime} package is not installed; {INSTALL_HINT}, "
            "or use --runtime torch"
        )
    if device != "cpu" and runtime in COMPILED:
        raise ConfigError(
            f"--runtime {runtime} runs on the CPU; on --device {device} use --runtime torch "
            "(or auto)"
        )
    if precision == "int8" and device != "cpu":
        raise ConfigError(f"--precision int8 runs on the CPU; on --device {device} use auto")


def candidates(device: str, native_bf16: bool) -> list[Setting]:
    """Every setting that can run here: torch (bf16 where the CPU or GPU has it natively),
    and on the CPU each installed compiled runtime in fp32 and int8."""
    found = [Setting("torch", "fp32")]
    if device != "cpu" or native_bf16:
        found.append(Setting("torch", "bf16"))
    if device == "cpu":
        for runtime in COMPILED:
            if installed(runtime):
                found += [Setting(runtime, "fp32"), Setting(runtime, "int8")]
    return found


def threads() -> int:
    """Inference threads: torch's (one per core unless set)."""
    return torch.get_num_threads()


# --- runners ---------------------------------------------------------------------------------


def torch_runner(model: nn.Module, device: torch.device, bf16: bool) -> Runner:
    """The network in PyTorch: channels_last, bf16 autocast when asked."""
    model = model.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def run(x: Features) -> Features:
        with torch.inference_mode():
            batch = torch.from_numpy(x).to(device, non_blocking=True)
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                features = model(batch)
            out: Features = features.float().flatten(1).cpu().numpy()
            return out

    return run


def onnxruntime_runner(path: Path) -> Runner:
    """An ONNX file in ONNX Runtime's CPU provider, all graph optimisations on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: Features) -> Features:
        out = session.run(None, {name: x})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(x), -1)

    return run


def openvino_runner(path: Path) -> Runner:
    """An ONNX or OpenVINO IR file compiled for the CPU, for latency, in f32 where not int8
    (OpenVINO's default bf16 hint is emulated, and slow, on CPUs without AMX)."""
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(path),
        "CPU",
        {
            "INFERENCE_NUM_THREADS": threads(),
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
        },
    )

    def run(x: Features) -> Features:
        out = compiled(x)[0]
        return np.asarray(out, dtype=np.float32).reshape(len(x), -1)

    return run


# --- the cached files ------------------------------------------------------------------------


def digest(model: nn.Module, *labels: str) -> str:
    """A stable hash of a network's weights and buffers, with labels (backbone, pooling)."""
    sha = hashlib.sha256("\0".join(labels).encode())
    for key, tensor in model.state_dict().items():
        sha.update(key.encode())
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()[:16]


def folder_for(backbone: str, pooling: str, model_digest: str) -> Path:
    """Where a network's exported and quantized files and measurements live: under
    $FASHIONREC_RUNTIMES, default `$TORCH_HOME/fashionrec/runtimes`."""
    root = os.environ.get(CACHE_ENV) or cache_dir() / "runtimes"
    return Path(root) / f"{backbone}-{pooling}-{model_digest}"


def _atomic(target: Path, write: Callable[[Path], None]) -> Path:
    """Write through a temporary name in the same folder, then rename: never half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
    try:
        write(partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def exported(model: nn.Module, folder: Path, size: int = 224) -> Path:
    """The network as ONNX, exported once: batch dynamic, and height and width where the
    network is fully convolutional (not VGG16's fc7, whose input is 224×224)."""
    target = folder / "model.onnx"
    if target.is_file():
        return target
    example = torch.zeros((2, 3, size, size))
    model = model.float().to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]

    convolutional = not any(isinstance(m, nn.Linear) for m in model.modules())
    axes = {0: "batch", 2: "height", 3: "width"} if convolutional else {0: "batch"}

    def write(path: Path) -> None:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["pixels"],
                output_names=["features"],
                dynamic_axes={"pixels": axes, "features": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )

    return _atomic(target, write)


def sample_tag(sample: Features) -> str:
    """The hash of a calibration sample (the network input of its photos) and of how int8
    is made from it (QUANTIZATION): it names the int8 model and its quality guard."""
    sha = hashlib.sha256(QUANTIZATION.encode())
    sha.update(np.ascontiguousarray(sample).tobytes())
    return sha.hexdigest()[:12]


def quantized_path(runtime: str, folder: Path, tag: str) -> Path:
    """Where a runtime's int8 model calibrated on the sample `tag` lives in a network's folder."""
    suffix = "onnx" if runtime == "onnxruntime" else "xml"
    return folder / f"{runtime}-int8-{tag}.{suffix}"


def quantized(runtime: Runtime, onnx: Path, sample: Features, tag: str) -> Path:
    """The int8 model of a runtime, calibrated on `sample` (network inputs), made once per tag:
    ONNX Runtime's static QDQ quantization (per-channel int8 weights, uint8 activations,
    min-max ranges), or NNCF's post-training quantization of the OpenVINO model."""
    target = quantized_path(runtime, onnx.parent, tag)
    if target.is_file():
        return target
    if runtime == "onnxruntime":
        _atomic(target, lambda path: _quantize_onnxruntime(onnx, sample, path))
    else:
        _quantize_openvino(onnx, sample, target)
    return target


def _ends(convolutions: Sequence[str]) -> list[str]:
    """The first and the last of a network's convolutions, in graph order (kept float)."""
    return list(dict.fromkeys([convolutions[0], convolutions[-1]])) if convolutions else []


def _quantize_onnxruntime(onnx: Path, sample: Features, target: Path) -> None:
    from onnx import load as load_onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter([sample[i : i + 8] for i in range(0, len(sample), 8)])

        def get_next(self) -> dict[str, Features] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"pixels": batch}

    prepared = target.with_name(target.stem + ".prepared.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(onnx), str(prepared), skip_symbolic_shape=True)
            graph = load_onnx(str(prepared)).graph
            quantize_static(
                str(prepared),
                str(target),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                nodes_to_exclude=_ends([n.name for n in graph.node if n.op_type == "Conv"]),
            )
    finally:
        prepared.unlink(missing_ok=True)


def _quantize_openvino(onnx: Path, sample: Features, target: Path) -> None:
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = ov.Core().read_model(str(onnx))
    dataset = nncf.Dataset([sample[i : i + 1] for i in range(len(sample))])
    convolutions = [
        op.get_friendly_name()
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Convolution"
    ]
    ignored = nncf.IgnoredScope(names=_ends(convolutions), types=list(KEPT_FLOAT), validate=False)
    quantized_model = nncf.quantize(model, dataset, subset_size=len(sample), ignored_scope=ignored)
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial.xml")
    try:
        ov.save_model(quantized_model, str(partial), compress_to_fp16=False)
        partial.with_suffix(".bin").replace(target.with_suffix(".bin"))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
        partial.with_suffix(".bin").unlink(missing_ok=True)


def open_runner(
    setting: Setting,
    model: nn.Module,
    device: torch.device,
    folder: Path,
    calibration: tuple[Features, str] | None = None,
) -> Runner:
    """A runner for a setting: torch directly; the others from the cached export (int8: the
    model quantized on `calibration`, a sample of network inputs and its tag)."""
    if setting.runtime == "torch":
        return torch_runner(model, device, setting.precision == "bf16")
    path = exported(model, folder)
    if setting.precision == "int8":
        if calibration is None:
            raise ValueError("int8 needs a calibration sample")
        path = quantized(setting.runtime, path, *calibration)
    if setting.runtime == "onnxruntime":
        return onnxruntime_runner(path)
    return openvino_runner(path)


def run_batches(runner: Runner, x: Features, batch: int = 32) -> Features:
    """A runner over many inputs, `batch` at a time."""
    parts: Sequence[Features] = [runner(x[i : i + batch]) for i in range(0, len(x), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def describe_runtime_packages() -> dict[str, Any]:
    """The versions of the runtime packages installed here (for the machine's key), read
    from their metadata: asking loads no runtime into the process."""
    versions: dict[str, Any] = {"torch": torch.__version__}
    for runtime in COMPILED:
        if installed(runtime):
            versions[runtime] = metadata.version(runtime)
    return versions
