"""Ingestion end to end (decode, mask, embed, write) per runtime and precision, against the
public code's method and today's pipeline, on the same photos, in one run.

Baseline: the public FashionRecommender code's loop — one image at a time, full-resolution
decode and masking colour by colour, resize 256 / centre-crop 224, fp32 torch. "Before":
the pipeline as it ran before runtimes could be chosen — torch, channels_last, bf16
autocast where the CPU has native bf16, else fp32. Then `ingest.pipeline.ingest` into a
fresh Qdrant Edge store with each setting (ingest.runtimes). int8 is calibrated on 256
photos of the catalog first (once per catalog, cached); its rate counts from the first
batch on, its one-time cost is shown apart. Indexing is left out (a stage of its own).

Two catalogs: synthetic 750×1101 JPEGs with segmentation masks (DeepFashion-MultiModal's
size), and the real shop photos of ../shared/data/fashion-products (no masks).

    python bench/ingest.py [--images 320] [--baseline-images 32] [--backbone resnet50]
        [--workers 2] [--batch-size 32] [--weights imagenet] [--settings ...]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

# Run as a script, this folder would come first on sys.path (and bench/ingest.py would
# shadow the `ingest` package): put the project root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from bench.quality import DEFAULT_DATA, write_manifest  # noqa: E402
from engine.catalog.items import Entry, Item  # noqa: E402
from engine.catalog.masks import DEFAULT_REMOVED, LEGEND  # noqa: E402
from engine.catalog.sources import open_catalog  # noqa: E402
from engine.catalog.taxonomy import built_in  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402
from engine.vocabulary.schema import GEM  # noqa: E402
from ingest.autotune import machine  # noqa: E402
from ingest.democatalog import write_demo_catalog  # noqa: E402
from ingest.embedder import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    Embedder,
    cpu_supports_bf16,
)
from ingest.loading import load_network  # noqa: E402
from ingest.options import IngestOptions  # noqa: E402
from ingest.pipeline import ingest  # noqa: E402
from ingest.runtimes import installed  # noqa: E402
from ingest.torchcompat import import_torchvision  # noqa: E402

SETTINGS = (
    "torch:fp32",
    "onnxruntime:fp32",
    "openvino:fp32",
    "onnxruntime:int8",
    "openvino:int8",
)
FULL_SET = 800_000


def _mark(marks: dict[str, float], stage: str) -> None:
    """When a stage first began."""
    marks.setdefault(stage, time.perf_counter())


def baseline(items: list[Item], backbone: str, weights: str) -> float:
    """Images/s of the public code's loop: one image at a time, fp32, full-size masking."""
    transforms = import_torchvision().transforms
    preprocess = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    model = load_network(backbone, weights).model.eval()
    removed = np.array([LEGEND[n] for n in DEFAULT_REMOVED], dtype=np.uint8)
    features = {}
    start = time.perf_counter()
    for item in items:
        image = np.array(Image.open(item.image).convert("RGB"))
        if item.mask is not None:
            mask = np.array(Image.open(item.mask).convert("RGB"))
            drop = np.zeros(mask.shape[:2], dtype=bool)
            for colour in removed:  # the public code compares colour by colour
                drop |= np.all(mask == colour, axis=-1)
            image[drop] = 0
        tensor = preprocess(Image.fromarray(image)).unsqueeze(0)
        with torch.no_grad():
            features[item.item_id] = model(tensor).squeeze(0).numpy()
    return len(items) / (time.perf_counter() - start)


def pipeline(
    entries: Iterable[Entry], embedder: Embedder, args: argparse.Namespace
) -> tuple[float, float, int]:
    """(images/s from the first batch on, one-time seconds before it, images stored)."""
    marks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp) / "store")
        options = IngestOptions(batch_size=args.batch_size, workers=args.workers)
        start = time.perf_counter()
        summary = ingest(
            entries,
            store,
            {args.backbone: embedder},
            options,
            on_stage=lambda stage, n: _mark(marks, stage),
            index=False,
        )
        end = time.perf_counter()
        store.close()
    embedding = marks.get("embedding", start)
    return summary.ingested / (end - embedding), embedding - start, summary.ingested


def catalogs(tmp: Path, args: argparse.Namespace) -> list[tuple[str, list[Entry]]]:
    """The synthetic catalog with masks and the real one, as ingest reads them."""
    per_product = max(1, -(-args.images // (23 * 3)))
    demo = write_demo_catalog(tmp / "demo", products_per_category=per_product)
    for extra in sorted(p.name for p in demo.images.iterdir())[args.images :]:
        (demo.images / extra).unlink()
    found = [("synthetic 750×1101 with masks", list(open_catalog(demo.images, demo.masks)))]
    if (args.data / "labels.csv").is_file():
        (tmp / "real").mkdir()
        manifest = write_manifest(args.data, args.images, tmp / "real")
        real = open_catalog(
            manifest, taxonomy=built_in("retail"), root=(args.data / "images").resolve()
        )
        found.append((f"real shop photos ({args.data.name})", list(real)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--baseline-images", type=int, default=32)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    args = parser.parse_args()

    before = "bf16" if cpu_supports_bf16() else "fp32"
    wanted = [("before: torch " + before, "torch", before)]
    for text in args.settings.split(","):
        runtime, precision = text.split(":")
        if installed(runtime):
            wanted.append((f"{runtime} {precision}", runtime, precision))
        else:
            print(f"  {runtime}: not installed, left out")
    print(
        f"{args.backbone}, weights {args.weights}, GeM; batch {args.batch_size}, "
        f"{args.workers} decoding workers; {machine()}"
    )
    if args.weights == "random":
        print("  WARNING: random-init weights; int8 ranges and neighbours are not the real ones")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for title, entries in catalogs(Path(tmp), args):
            items = [e for e in entries if isinstance(e, Item)]
            print(f"\n{title}: {len(items)} photos")
            base = baseline(items[: args.baseline_images], args.backbone, args.weights)
            print(f"  {'baseline (public code):':32s} {base:6.1f} img/s")
            reference = 0.0
            for label, runtime, precision in wanted:
                embedder = Embedder(
                    args.backbone,
                    args.weights,
                    "cpu",
                    precision=precision,
                    runtime=runtime,
                    pooling=GEM,
                )
                rate, setup, stored = pipeline(entries, embedder, args)
                reference = reference or rate
                line = (
                    f"  {label + ':':32s} {rate:6.1f} img/s  ×{rate / base:5.1f} baseline  "
                    f"×{rate / reference:4.2f} before  one-time {setup:5.1f} s  "
                    f"800K in {FULL_SET / rate / 3600:5.1f} h"
                )
                print(line, flush=True)
                rows.append(
                    [
                        title,
                        label,
                        f"{rate:.1f}",
                        f"{rate / base:.1f}",
                        f"{rate / reference:.2f}",
                        f"{setup:.1f}",
                        f"{FULL_SET / rate / 3600:.1f}",
                        stored,
                    ]
                )
    out = Path(__file__).resolve().parent / ".data" / "ingest-latest.csv"
    out.parent.mkdir(exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "catalog",
                "setting",
                "img/s",
                "x baseline",
                "x before",
                "one-time s",
                "800K hours",
                "stored",
            ]
        )
        writer.writerows(rows)
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
