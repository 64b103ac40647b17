"""How to ingest, validated before anything is read: batching, masking, framing, pooling,
runtime and precision, and what a store already holds of them (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from engine.catalog.framing import Framing
from engine.catalog.masks import DEFAULT_REMOVED, MissingMask, removed_labels
from engine.errors import ConfigError
from engine.helpers import choice
from engine.vectorstore.base import Filter, VectorStore
from engine.vocabulary.schema import (
    AVG,
    GEM,
    Pooling,
    calibration_field,
    pooling_field,
    precision_field,
    runtime_field,
)

# spawn: workers started from a process with threads of its own (the service)
StartMethod = Literal["fork", "spawn", "forkserver"]
UNPOOLED: Final = frozenset({"vgg16"})  # embeddings that are no pooled convolutional map
AUTO: Final = "auto"  # the store's pooling of the backbone, else gem where it pools a map
PoolingChoice = Literal["auto", "avg", "gem"]
RuntimeChoice = Literal["auto", "torch", "onnxruntime", "openvino"]  # ingest.runtimes
PrecisionChoice = Literal["auto", "fp32", "bf16", "int8"]

MAX_BATCH: Final = 512  # images per batch at most (a batch's inputs are 0.6 MB each)
MAX_WORKERS: Final = 16  # decoding processes at most


def check_pooling(backbone: str, pooling: str) -> Pooling:
    """The pooling, when it is one and the backbone's embedding is a pooled convolutional
    map (auto: gem, or avg for an embedding that pools no map); ConfigError saying why
    otherwise. GeM retrieves better than average pooling on a real catalog (ResNet-50,
    article type precision@5 +0.012 ± 0.004; MobileNetV2 the same: docs/performance.md)."""
    choice(PoolingChoice, pooling, "--pooling")
    if pooling == AUTO:
        return AVG if backbone in UNPOOLED else GEM
    if pooling != AVG and backbone in UNPOOLED:
        raise ConfigError(
            f"--pooling {pooling} does not apply to {backbone}: its embedding is the "
            "fully-connected fc7 layer, not a pooled convolutional map; use --pooling avg "
            f"for {backbone}, or another backbone"
        )
    return pooling  # type: ignore[return-value]  # checked above


def stored_poolings(store: VectorStore, backbone: str) -> dict[str, int]:
    """How the store's vectors of a backbone were pooled: pooling → points. Points
    ingested before the pooling was recorded have no field: they count as avg."""
    if backbone not in store.vector_dims():
        return {}
    total = store.count(Filter(has_vector=backbone))
    found = {
        pooling: store.count(Filter(equals={pooling_field(backbone): pooling}, has_vector=backbone))
        for pooling in (AVG, GEM)
    }
    found[AVG] += total - sum(found.values())
    return {pooling: n for pooling, n in found.items() if n}


def pooling_for(store: VectorStore, backbone: str, asked: str) -> Pooling:
    """The pooling a run uses for a backbone: the one asked for; for auto, the one the
    store's vectors of that backbone were made with (the most common, if they mix), else
    gem where the backbone pools a convolutional map, else avg."""
    if asked != AUTO:
        return check_pooling(backbone, asked)
    held = stored_poolings(store, backbone)
    if held:
        return check_pooling(backbone, max(sorted(held), key=lambda p: held[p]))
    return check_pooling(backbone, AUTO)


def refuse_mixed_pooling(store: VectorStore, backbone: str, pooling: str) -> None:
    """ConfigError when the store holds vectors of the backbone pooled otherwise: one
    space must not mix poolings (their cosines are not comparable)."""
    other = {p: n for p, n in stored_poolings(store, backbone).items() if p != pooling}
    if other:
        held = ", ".join(f"{n} {p}-pooled" for p, n in sorted(other.items()))
        raise ConfigError(
            f"{store.location} holds {held} {backbone} vectors; this run asks for --pooling "
            f"{pooling}, and one backbone's space must not mix poolings: ingest with "
            f"--pooling {next(iter(other))}, or into another store (--home or --qdrant-url)"
        )


def check_pair(runtime: str, precision: str) -> None:
    """ConfigError naming the flag for an unknown runtime or precision, or a pair that
    cannot run anywhere (bf16 is torch's; int8 the compiled runtimes')."""
    choice(RuntimeChoice, runtime, "--runtime")
    choice(PrecisionChoice, precision, "--precision")
    if precision == "bf16" and runtime not in ("torch", AUTO):
        raise ConfigError(
            f"--precision bf16 runs with --runtime torch only; with --runtime {runtime} use "
            "--precision fp32 or int8"
        )
    if precision == "int8" and runtime == "torch":
        raise ConfigError(
            "--precision int8 runs with --runtime onnxruntime or openvino (post-training "
            "quantization); with --runtime torch use fp32 or bf16"
        )


def stored_precisions(store: VectorStore, backbone: str) -> dict[str, int]:
    """The recorded precisions of the store's vectors of a backbone: precision → points
    (points ingested before precisions were recorded are not counted)."""
    if backbone not in store.vector_dims():
        return {}
    return store.facet(precision_field(backbone))


@dataclass(frozen=True)
class Numerics:
    """The runtime and precision a run asks for, and the int8 calibration to reuse."""

    runtime: str = AUTO
    precision: str = AUTO
    calibration: str | None = None


def numerics_for(store: VectorStore, backbone: str, runtime: str, precision: str) -> Numerics:
    """What a run asks for a backbone: the flags; for --precision auto, the precision the
    store's vectors of that backbone were computed in (the most common), and for int8 (auto
    or asked) the runtime and calibration sample of its int8 vectors, so one space keeps one
    arithmetic.
    An asked precision the store's vectors do not have: ConfigError (refuse_mixed_precision)."""
    held = stored_precisions(store, backbone)
    if precision != AUTO:
        refuse_mixed_precision(store, backbone, precision)
    if not held or precision not in (AUTO, "int8"):
        return Numerics(runtime, precision)
    top = max(sorted(held), key=lambda p: held[p])
    if top != "int8":
        return Numerics(runtime, top)
    int8 = Filter(equals={precision_field(backbone): "int8"})
    runtimes = store.facet(runtime_field(backbone), int8)
    tags = store.facet(calibration_field(backbone), int8)
    if runtime == AUTO and runtimes:
        runtime = max(sorted(runtimes), key=lambda r: runtimes[r])
    tag = max(sorted(tags), key=lambda t: tags[t]) if tags else None
    return Numerics(runtime, "int8", tag)


def refuse_mixed_precision(store: VectorStore, backbone: str, precision: str) -> None:
    """ConfigError when the store holds vectors of the backbone recorded in another
    precision: a space must not mix them unannounced (int8 and bf16 move cosines by a
    few thousandths; neighbours near a tie swap)."""
    other = {p: n for p, n in stored_precisions(store, backbone).items() if p != precision}
    if other:
        held = ", ".join(f"{n} {p}" for p, n in sorted(other.items()))
        raise ConfigError(
            f"{store.location} holds {held} {backbone} vectors; this run computes "
            f"{precision}, and one backbone's space must not mix precisions: ingest with "
            f"--precision {next(iter(other))} (or auto), or into another store (--home or "
            "--qdrant-url)"
        )


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest: batching, workers, masking and framing."""

    batch_size: int = 32
    workers: int = 2
    framing: Framing = "letterbox"
    missing_mask: MissingMask = "unmasked"
    removed: tuple[str, ...] = DEFAULT_REMOVED
    limit: int | None = None
    start_method: StartMethod | None = None  # of the decoding workers (None: the platform's)

    def validate(self) -> IngestOptions:
        """Raise ConfigError (or MaskError for unknown labels) naming the first bad value."""
        if not 0 < self.batch_size <= MAX_BATCH:
            raise ConfigError(f"--batch-size must be 1 to {MAX_BATCH}, got {self.batch_size}")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"--workers must be 0 to {MAX_WORKERS}, got {self.workers}")
        if self.limit is not None and self.limit <= 0:
            raise ConfigError(f"--limit must be positive, got {self.limit}")
        choice(Framing, self.framing, "--framing")
        choice(MissingMask, self.missing_mask, "--missing-mask")
        if self.start_method is not None:
            choice(StartMethod, self.start_method, "start method")
        removed_labels(self.removed)
        return self


def pooling_of(embedder: object) -> str:
    """How an embedder pools its network's last map (avg where it does not say)."""
    return str(getattr(embedder, "pooling", AVG))
