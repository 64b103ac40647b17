"""The quality guard on a whole real catalog: does each runtime and precision keep fp32 torch's
nearest neighbours?

For ResNet-50 and MobileNetV2 with their real ImageNet weights (`make weights`), every photo
of ../shared/data/fashion-products (4,196, letterboxed as ingest does) is embedded by fp32
torch (the reference) and by each setting that runs here (ingest.runtimes); int8 models are
calibrated on 256 photos drawn with seed 0, as ingest draws them; GeM pooling, ingest's
default for new stores. Per setting: the mean
cosine of its features with fp32's, exact nearest-neighbour same-article-type @1 (self
excluded) against fp32's, the mean overlap of each item's top-10 neighbours with fp32's,
whether that passes the rule `auto` applies (@1 within 0.01, overlap ≥ 0.9), and the
model's own images/s in this run.

    python bench/runtimes.py [--data ../shared/data/fashion-products] [--limit N]
        [--networks resnet50,mobilenet_v2]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.quality import DEFAULT_DATA, catalog_items  # noqa: E402
from engine.catalog.inputs import load_input  # noqa: E402
from engine.vocabulary.schema import GEM  # noqa: E402
from ingest.autotune import CALIBRATION_SIZE, GUARD_K, machine, nearest, unit  # noqa: E402
from ingest.embedder import Embedder, cpu_supports_bf16  # noqa: E402
from ingest.runtimes import Setting, candidates, open_runner, run_batches, sample_tag  # noqa: E402

OUT = Path(__file__).resolve().parent / ".data"


def compare(reference: np.ndarray, got: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Cosine with fp32, @1 of fp32 and of the setting, top-10 overlap with fp32."""
    ref, other = unit(reference), unit(got)
    a, b = nearest(ref, GUARD_K), nearest(other, GUARD_K)
    overlap = np.mean([len(set(x) & set(y)) / GUARD_K for x, y in zip(a, b, strict=True)])
    return {
        "cosine": float(np.mean(np.sum(ref * other, axis=1))),
        "at1_fp32": float(np.mean(labels[a[:, 0]] == labels)),
        "at1": float(np.mean(labels[b[:, 0]] == labels)),
        "overlap": float(overlap),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--networks", default="resnet50,mobilenet_v2")
    args = parser.parse_args()

    items = catalog_items(args.data, args.limit)
    labels = np.asarray([item.category for item in items])
    start = time.perf_counter()
    pixels = torch.from_numpy(np.stack([load_input(item)[0] for item in items]))
    print(f"{len(items)} photos decoded in {time.perf_counter() - start:.0f} s; {machine()}")
    order = np.random.default_rng(0).permutation(len(items))[:CALIBRATION_SIZE]
    lines = [
        f"# Runtimes on the real catalog ({len(items)} photos), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}",
        "",
        "| network | setting | img/s (model) | cosine with fp32 | type @1 (fp32) | "
        "top-10 overlap | eligible |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.networks.split(","):
        embedder = Embedder(
            name, "imagenet", device="cpu", precision="fp32", runtime="torch", pooling=GEM
        )
        x = embedder.inputs(pixels)
        calibration = (x[order], sample_tag(x[order]))
        reference: np.ndarray | None = None
        for setting in candidates("cpu", cpu_supports_bf16()):  # bf16: native only
            runner = open_runner(
                setting, embedder.model, embedder.device, embedder.folder, calibration
            )
            runner(x[:8])  # warm-up
            start = time.perf_counter()
            features = run_batches(runner, x)
            rate = len(x) / (time.perf_counter() - start)
            if reference is None:
                reference = features
            found = compare(reference, features, labels)
            eligible = found["at1"] >= found["at1_fp32"] - 0.01 and found["overlap"] >= 0.9
            row = (
                f"| {name} ({embedder.weights_label}, {embedder.pooling}) | {setting} | "
                f"{rate:.1f} | {found['cosine']:.4f} | {found['at1']:.3f} "
                f"({found['at1_fp32']:.3f}) | {found['overlap']:.3f} | "
                f"{'yes' if eligible else 'NO'} |"
            )
            print(row, flush=True)
            lines.append(row)
            assert setting != Setting("torch", "fp32") or found["overlap"] == 1.0
    OUT.mkdir(exist_ok=True)
    path = OUT / f"runtimes-{datetime.now(UTC):%Y%m%d-%H%M%S}.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
