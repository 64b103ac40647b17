"""Choosing a runtime by measurement: a micro-benchmark of every setting that runs here,
cached per machine and network, and a quality guard judged on photos of the catalog.

A setting other than fp32 is eligible only when, on the sample, its nearest neighbours'
same-category @1 is within 0.01 of fp32's and each item's top-10 neighbours overlap
fp32's by 0.9 or more (bench/runtimes.py judges the same on a whole real catalog).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ingest.runtimes import Features, Runner, Setting, describe_runtime_packages, threads

GUARD_K: Final = 10
AT1_TOLERANCE: Final = 0.01
OVERLAP_MIN: Final = 0.9
CALIBRATION_SIZE: Final = 256  # photos of the catalog: int8 ranges and the quality guard
GUARD_MIN: Final = 64  # fewer photos than this judge nothing: auto keeps to fp32
# a job of fewer photos runs torch fp32 rather than pay for timing the other runtimes (about
# a minute per network, once per machine): a demo's hundred photos embed in seconds
MEASURE_MIN: Final = 1000
INT8_COST_S: Final = 45.0  # int8's one-time cost (calibration and quantisation) until measured
SPEED_BATCH: Final = 16
SPEED_RUNS: Final = 5  # timings per setting, the settings taking turns; the median counts
METHOD: Final = "median of 5, in turns"  # part of the cache key: older speeds are measured again


@dataclass(frozen=True)
class Verdict:
    """A setting's nearest neighbours against fp32's on the same photos."""

    n: int
    at1_fp32: float  # same-category @1 of fp32's nearest neighbour
    at1: float
    overlap: float  # mean share of each item's top-10 neighbours that fp32 also has

    @property
    def passes(self) -> bool:
        """Whether the setting keeps the neighbours (see the module's rule)."""
        slack = 1e-9  # a drop of exactly the tolerance passes, whatever the rounding
        return self.at1 >= self.at1_fp32 - AT1_TOLERANCE - slack and self.overlap >= OVERLAP_MIN

    def __str__(self) -> str:
        verdict = "kept" if self.passes else "NOT kept"
        return (
            f"neighbours {verdict} on {self.n} photos: top-{GUARD_K} overlap "
            f"{self.overlap:.3f}, same-category @1 {self.at1:.3f} (fp32 {self.at1_fp32:.3f})"
        )


def nearest(vectors: Features, k: int) -> NDArray[np.int64]:
    """Each row's k nearest other rows by cosine (rows are unit vectors), nearest first."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(vectors) - 1)
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
    found: NDArray[np.int64] = np.take_along_axis(top, order, axis=1)
    return found


def unit(features: Features) -> Features:
    """Rows scaled to unit length."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    scaled: Features = (features / np.maximum(norms, 1e-12)).astype(np.float32)
    return scaled


def guard(reference: Features, candidate: Features, labels: Sequence[str]) -> Verdict:
    """How a setting's neighbours (unit rows of `candidate`) keep fp32's (`reference`)."""
    if len(reference) < 2:
        return Verdict(len(reference), 1.0, 1.0, 1.0)
    ref, got = nearest(unit(reference), GUARD_K), nearest(unit(candidate), GUARD_K)
    label = np.asarray(labels)
    overlap = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(ref, got, strict=True)])
    return Verdict(
        n=len(reference),
        at1_fp32=float(np.mean(label[ref[:, 0]] == label)),
        at1=float(np.mean(label[got[:, 0]] == label)),
        overlap=float(overlap),
    )


def speeds(
    runners: Mapping[Setting, Runner],
    batch: Features,
    runs: int = SPEED_RUNS,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[Setting, float]:
    """Images/s of each runner on one batch: the median of `runs` timings, after a warm-up
    run of each. The settings take turns, round by round, so a slow spell of the machine
    falls on all of them alike."""
    for runner in runners.values():
        runner(batch)
    timings: dict[Setting, list[float]] = {setting: [] for setting in runners}
    for _ in range(runs):
        for setting, runner in runners.items():
            start = clock()
            runner(batch)
            timings[setting].append(clock() - start)
    return {s: len(batch) / float(np.median(t)) for s, t in timings.items()}


def int8_pays(total: int, speeds: Mapping[Setting, float], cost_s: float) -> bool:
    """Whether int8's one-time cost pays back on a job of `total` photos: the time it saves
    against the fastest setting that needs no calibration is more than the cost."""
    int8 = [v for s, v in speeds.items() if s.precision == "int8"]
    other = [v for s, v in speeds.items() if s.precision != "int8"]
    if not int8 or not other:
        return True  # nothing to weigh it against: as asked
    saved = total * (1.0 / max(other) - 1.0 / max(int8))
    return saved > cost_s


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """What the speeds depend on: the CPU, its threads, the runtimes' versions, and how they
    are measured."""
    versions = " ".join(f"{k} {v}" for k, v in describe_runtime_packages().items())
    return f"{cpu_model()} [{_cpu_flags()}] · {threads()} threads · {versions} · {METHOD}"


def _cpu_flags() -> str:
    import torch

    found = []
    for flag, probe in (
        ("avx512", "_is_avx512_supported"),
        ("vnni", "_is_vnni_supported"),
        ("bf16", "_is_avx512_bf16_supported"),
        ("amx", "_is_amx_tile_supported"),
    ):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            found.append(flag)
    return " ".join(found) or "no avx512"


def fastest(speeds: Mapping[Setting, float]) -> list[Setting]:
    """Settings by measured speed, fastest first (ties: fp32 first)."""
    return sorted(speeds, key=lambda s: (-speeds[s], s.precision != "fp32"))


def shown(speeds: Mapping[Setting, float]) -> str:
    """Measured speeds as the ingest header shows them."""
    return ", ".join(f"{s} {speeds[s]:.0f}" for s in fastest(speeds)) + " img/s"


class Measurements:
    """The measurements of one network, in its cache folder: speeds per machine, and the
    quality guard of each setting per calibration sample."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "measured.json"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".measured.{os.getpid()}.partial")
        partial.write_text(json.dumps(data, indent=1, sort_keys=True))
        partial.replace(self.path)

    def speeds(self, key: str) -> dict[Setting, float]:
        """The speeds measured on this machine (empty when never measured)."""
        try:
            found = self._read().get("speeds", {}).get(key, {})
            return {Setting.parse(s): float(v) for s, v in found.items()}
        except (AttributeError, TypeError, ValueError):  # not what this version writes
            return {}

    def save_speeds(self, key: str, speeds: Mapping[Setting, float]) -> None:
        """Record speeds measured on this machine."""
        data = self._read()
        data.setdefault("speeds", {})[key] = {str(s): round(v, 2) for s, v in speeds.items()}
        self._write(data)

    def guard(self, setting: Setting, tag: str) -> Verdict | None:
        """The recorded guard of a setting on a calibration sample."""
        try:
            found = self._read().get("guards", {}).get(tag, {}).get(str(setting))
            return None if found is None else Verdict(**found)
        except (AttributeError, TypeError, ValueError):  # not what this version writes
            return None

    def int8_cost(self, key: str) -> float:
        """The seconds int8's calibration and quantisation took on this machine (an estimate
        until measured)."""
        try:
            return float(self._read().get("int8_cost", {}).get(key, INT8_COST_S))
        except (AttributeError, TypeError, ValueError):
            return INT8_COST_S

    def save_int8_cost(self, key: str, seconds: float) -> None:
        """Record what int8's one-time work took on this machine."""
        data = self._read()
        data.setdefault("int8_cost", {})[key] = round(seconds, 1)
        self._write(data)

    def save_guard(self, setting: Setting, tag: str, result: Verdict) -> None:
        """Record a setting's guard on a calibration sample."""
        data = self._read()
        data.setdefault("guards", {}).setdefault(tag, {})[str(setting)] = asdict(result)
        self._write(data)
