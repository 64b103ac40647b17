"""Embedder: a backbone's trunk and pooling (VGG16: up to fc7), with its weights, batched
inference."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
import torch
from numpy.typing import NDArray

from engine.errors import ConfigError, WeightsError
from engine.vocabulary.backbones import IMAGENET, RANDOM, spec
from engine.vocabulary.schema import AVG, Pooling
from ingest.autotune import (
    CALIBRATION_SIZE,
    GUARD_MIN,
    MEASURE_MIN,
    SPEED_BATCH,
    Measurements,
    Verdict,
    fastest,
    guard,
    int8_pays,
    machine,
    shown,
    speeds,
    unit,
)
from ingest.loading import load_network
from ingest.networks import embedding
from ingest.options import check_pooling
from ingest.reader import Sampler
from ingest.runtimes import (
    Features,
    Runner,
    Setting,
    candidates,
    check_setting,
    digest,
    folder_for,
    open_runner,
    quantized_path,
    run_batches,
    sample_tag,
)
from ingest.tfjs import caffe_input
from ingest.weights import InputKind

IMAGENET_MEAN: Final = (0.485, 0.456, 0.406)
IMAGENET_STD: Final = (0.229, 0.224, 0.225)


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

    runtime / precision (ingest.runtimes): "auto" picks, on the CPU, the fastest setting
    measured on this machine (ingest.autotune, cached) among those that keep the
    neighbours; int8 is calibrated on photos of the catalog, so a setting that may be int8
    is final only after `prepare` (the pipeline calls it once it knows the work). On CUDA,
    auto is torch with bf16 autocast. `calibration`: the tag of a calibration sample to
    reuse when its int8 model is cached (the store's, so its vectors stay comparable).
    """

    def __init__(
        self,
        name: str,
        weights: str | Path = IMAGENET,
        device: str = "auto",
        precision: str = "auto",
        seed: int = 0,
        pooling: Pooling = AVG,
        runtime: str = "auto",
        calibration: str | None = None,
        on_note: Callable[[str], None] = lambda note: None,
    ) -> None:
        self.spec = spec(name)
        self.pooling = check_pooling(name, pooling)  # recorded in the payload, as the weights
        self.device = resolve_device(device)
        check_setting(runtime, precision, self.device.type)
        network = load_network(name, weights, seed)
        self.random_init = network.provenance == RANDOM
        self.weights_label = network.provenance  # recorded in the payload: the provenance
        self.input: InputKind = network.input
        self.model = embedding(name, network.model, pooling).eval()
        self.folder = folder_for(
            name, self.pooling, digest(self.model, name, self.pooling, self.input)
        )
        self.measurements = Measurements(self.folder)
        self.on_note = on_note
        self.reuse = calibration
        self.calibration: str | None = None  # the tag of the int8 model's sample
        self.guard: Verdict | None = None
        self._runner: Runner | None = None
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(IMAGENET_MEAN).view(shape)
        self._std = torch.tensor(IMAGENET_STD).view(shape)
        options = [
            s
            for s in candidates(self.device.type, cpu_supports_bf16() or precision == "bf16")
            if runtime in ("auto", s.runtime) and precision in ("auto", s.precision)
        ]
        if self.device.type == "cuda" and precision == "auto":
            options = [s for s in options if s.precision == "bf16"]
        self.options = options
        self.speeds: dict[Setting, float] = {}
        if len(options) > 1:  # speeds measured here before: the fastest first, at no cost
            known = self.measurements.speeds(machine())
            if all(s in known for s in options):
                self.speeds = {s: known[s] for s in options}
                self.options = fastest(self.speeds)
        # what runs unless prepare() finds something faster that keeps the neighbours
        self.setting = next((s for s in self.options if s.precision != "int8"), options[0])
        self.reason = "as asked" if len(options) == 1 else "auto"  # why it runs (prepare)

    @property
    def dim(self) -> int:
        """Length of the embeddings."""
        return self.spec.dim

    @property
    def precision(self) -> str:
        """The arithmetic it runs in (fp32, bf16, int8), recorded in the payload."""
        return self.setting.precision

    @property
    def runtime(self) -> str:
        """Where it runs (torch, onnxruntime, openvino), recorded in the payload."""
        return self.setting.runtime

    @property
    def plan(self) -> str:
        """What it runs and why, as a run says it once its runtime is settled (prepare)."""
        return f"{self.setting} ({self.reason})"

    def inputs(self, images: torch.Tensor) -> Features:
        """The network's float32 input of a uint8 batch."""
        with torch.inference_mode():
            if self.input == "caffe":
                x = caffe_input(images)
            else:
                x = (images.float().div_(255.0) - self._mean) / self._std
            return np.ascontiguousarray(x.numpy(), dtype=np.float32)

    def _measured(self, options: list[Setting]) -> dict[Setting, float]:
        """Speeds of the options on this machine: cached, else measured once (a few seconds
        per setting; int8 timed on a synthetic calibration, its speed does not depend on it)."""
        key = machine()
        known = self.measurements.speeds(key)
        if all(s in known for s in options):
            return {s: known[s] for s in options}
        self.on_note(
            f"measuring {len(options)} runtime settings of {self.spec.name} on this "
            "machine (once; cached)"
        )
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (SPEED_BATCH, 3, 224, 224), generator=generator)
        batch = self.inputs(images.to(torch.uint8))
        synthetic = (batch, sample_tag(batch))
        # every setting in the same run, taking turns: no setting is timed in a quieter
        # spell than another (and none measured before is mixed in)
        runners = {setting: self._open(setting, synthetic) for setting in options}
        known = speeds(runners, batch)
        self.measurements.save_speeds(key, known)
        return {s: known[s] for s in options}

    def _open(self, setting: Setting, calibration: tuple[Features, str] | None = None) -> Runner:
        return open_runner(setting, self.model, self.device, self.folder, calibration)

    def prepare(self, total: int, sample: Sampler) -> None:
        """Settle the setting for a job of `total` photos and say it once (on_note:
        `runtime: NAME SETTING (why)`).

        With one setting it runs as asked (int8 judged all the same, with a warning when
        it does not keep the neighbours). Auto times the settings on this machine (once,
        cached) when the job is big enough to pay for that (MEASURE_MIN photos) or
        speeds are cached; else it runs torch fp32. Then it walks the settings fastest
        first: fp32 is taken as it is, another only if it keeps the neighbours on a sample
        of the job's photos (int8: calibrated on that sample) and the job has GUARD_MIN
        photos to judge on. int8 is considered when its one-time cost pays back on the job
        (int8_pays: the time saved against the fastest setting that needs no calibration,
        at the speeds measured here), or when its model for the store's or this job's
        sample is cached: two homes of one catalog get the same arithmetic."""
        asked_int8 = all(s.precision == "int8" for s in self.options)
        if len(self.options) == 1 and not asked_int8:
            return self._settled(self.setting, self.reason)
        if not self.speeds and total < MEASURE_MIN and not asked_int8:
            plain = Setting("torch", "fp32")
            chosen = plain if plain in self.options else self.setting
            return self._settled(
                chosen,
                f"auto: a job of {total} photo(s) does not pay for timing the other "
                "runtimes, about a minute per network once per machine; "
                f"{MEASURE_MIN:,} photos or more do",
            )
        if not self.speeds and len(self.options) > 1:
            self.speeds = self._measured(self.options)
            self.options = fastest(self.speeds)
        passed: list[str] = []  # why faster settings were left out

        def why(kept: Verdict | None = None) -> str:
            first = f"{'; '.join(passed)}; so the next fastest" if passed else "the fastest"
            judged = f"; {kept}" if kept else ""
            how = "as asked" if asked_int8 else "auto"
            if not self.speeds:  # one setting, asked for
                return f"{how}{judged}"
            return f"{how}: {first} of {shown(self.speeds)} measured here{judged}"

        for setting in self.options:
            if setting.precision == "fp32":
                return self._settled(setting, why())
            if (
                setting.precision == "int8"
                and not asked_int8
                and not self._int8_ready(setting, total, sample)
            ):
                cost = self.measurements.int8_cost(machine())
                passed.append(
                    f"{setting} left out: its one-time calibration (~{cost:.0f} s here) would "
                    f"not pay back on {total} photo(s)"
                )
                continue
            if total < GUARD_MIN and not asked_int8:
                passed.append(
                    f"{setting} left out: {total} photo(s) are too few to judge its "
                    f"neighbours ({GUARD_MIN} needed)"
                )
                continue
            result, runner, tag = self._judged(setting, sample)
            if result.passes or asked_int8:
                self._use(setting, runner, result, tag)
                if not result.passes:
                    self.on_note(f"WARNING: int8 was asked for, but {setting}: {result}")
                return self._settled(setting, why(result))
            passed.append(f"{setting} left out: {result}")
        self._settled(self.options[-1], why())

    def _settled(self, setting: Setting, reason: str) -> None:
        """Run `setting` from now on, and say so once."""
        if setting != self.setting:
            self._use(setting)
        self.reason = reason
        self.on_note(f"runtime: {self.spec.name} {self.plan}")

    def _int8_ready(self, setting: Setting, total: int, sample: Sampler) -> bool:
        """Whether int8 may be considered for this job: its cost pays back, or its model is
        cached, calibrated on the store's sample or on this job's own (drawn only where a
        model of this runtime is cached at all)."""
        if int8_pays(total, self.speeds, self.measurements.int8_cost(machine())):
            return True
        if self._cached_int8(setting, self.reuse):
            return True
        if not any(self.folder.glob(quantized_path(setting.runtime, self.folder, "*").name)):
            return False
        images, _ = sample(CALIBRATION_SIZE)
        own = sample_tag(self.inputs(images))
        return self._cached_int8(setting, own)

    def _use(
        self,
        setting: Setting,
        runner: Runner | None = None,
        result: Verdict | None = None,
        tag: str | None = None,
    ) -> None:
        if setting != self.setting or runner is not None:
            self._runner = runner
        self.setting, self.guard, self.calibration = setting, result, tag

    def _cached_int8(self, setting: Setting, tag: str | None) -> bool:
        return tag is not None and quantized_path(setting.runtime, self.folder, tag).is_file()

    def _judged(self, setting: Setting, sample: Sampler) -> tuple[Verdict, Runner, str | None]:
        """A setting against fp32 on a sample of the job (int8: calibrated on it, or the
        store's cached model), its runner and its calibration tag."""
        started = time.perf_counter()
        images, labels = sample(CALIBRATION_SIZE)
        x = self.inputs(images)
        own = sample_tag(x)  # hashing the sample: once
        tag: str | None = None
        calibrating = False
        if setting.precision == "int8":
            tag = self.reuse if self._cached_int8(setting, self.reuse) else own
            calibrating = not self._cached_int8(setting, tag)
            done = (
                f"reusing the store's calibration {tag}"
                if tag == self.reuse
                else f"calibrating {tag}"
                if calibrating
                else f"reusing calibration {tag}, made here before for this catalog"
            )
            self.on_note(f"{setting}: {done}; judged on {len(x)} photos of the catalog")
        runner = self._open(setting, None if tag is None else (x, tag))
        judged_on = own if tag in (None, own) else f"{tag}/{own}"
        result = self.measurements.guard(setting, judged_on)
        if result is None:  # fp32 of any runtime gives the same features: the fastest
            exact = [s for s in fastest(self.speeds) if s.precision == "fp32"]
            reference = run_batches(self._open(exact[0] if exact else Setting("torch", "fp32")), x)
            result = guard(reference, run_batches(runner, x), labels)
            self.measurements.save_guard(setting, judged_on, result)
        if calibrating:  # what int8's one-time work costs here: its payback is weighed on it
            self.measurements.save_int8_cost(machine(), time.perf_counter() - started)
        return result, runner, tag

    def ready_for_queries(self) -> None:
        """Ready to embed a photo at a time as the store's vectors were made: an int8
        setting opens the store's calibrated model from this machine's cache (a query never
        calibrates); ConfigError when it is not there."""
        if self.setting.precision != "int8" or self._runner is not None:
            return
        if not self._cached_int8(self.setting, self.reuse):
            raise ConfigError(
                f"the store's {self.spec.name} vectors are {self.setting}, calibrated on "
                f"sample {self.reuse}, and that model is not on this machine; ingest the "
                "catalog here once (it is made again), or search from the machine that did"
            )
        empty = np.zeros((0, 3, 1, 1), dtype=np.float32)
        self._use(
            self.setting, self._open(self.setting, (empty, str(self.reuse))), None, self.reuse
        )

    def __call__(self, images: torch.Tensor) -> NDArray[np.float32]:
        """Embed a uint8 batch; rows are unit vectors."""
        if self._runner is None:
            if self.setting.precision == "int8":
                raise ConfigError(
                    "int8 needs calibration photos first: ingest through the pipeline, or "
                    "call Embedder.prepare"
                )
            self._runner = self._open(self.setting)
        return unit(self._runner(self.inputs(images)))
