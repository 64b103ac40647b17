"""Ingestion throughput: the pipeline vs the public code's method, on the same photos, one run.

The baseline follows the public FashionRecommender code: one image at a time (batch
size 1), full-resolution decode and masking, resize 256 / centre-crop 224, fp32, no
channels_last. The pipeline is `ingest.pipeline.ingest` into a fresh Qdrant Edge
store: DataLoader workers decoding at reduced scale, batched inference, channels_last
and bf16 autocast where the CPU supports it (or CUDA when present).

    python bench/ingest.py [--images 96] [--backbone resnet50] [--workers 2] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder would come first on sys.path (and bench/ingest.py would
# shadow the `ingest` package): put the project root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from engine.catalog.items import Item, open_catalog  # noqa: E402
from engine.catalog.masks import DEFAULT_REMOVED, LEGEND  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402
from ingest.democatalog import write_demo_catalog  # noqa: E402
from ingest.embedder import IMAGENET_MEAN, IMAGENET_STD, Embedder, build_model  # noqa: E402
from ingest.pipeline import IngestOptions, ingest  # noqa: E402
from ingest.torchcompat import import_torchvision  # noqa: E402


def baseline(items: list[Item], backbone: str) -> float:
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
    model = build_model(backbone, "random")
    removed = np.array([LEGEND[n] for n in DEFAULT_REMOVED], dtype=np.uint8)
    features = {}
    start = time.perf_counter()
    for item in items:
        image = np.array(Image.open(item.image).convert("RGB"))
        assert item.mask is not None
        mask = np.array(Image.open(item.mask).convert("RGB"))
        drop = np.zeros(mask.shape[:2], dtype=bool)
        for colour in removed:  # the public code compares colour by colour
            drop |= np.all(mask == colour, axis=-1)
        image[drop] = 0
        tensor = preprocess(Image.fromarray(image)).unsqueeze(0)
        with torch.no_grad():
            features[item.item_id] = model(tensor).squeeze(0).numpy()
    return len(items) / (time.perf_counter() - start)


def pipeline(items_dir: Path, masks_dir: Path, backbone: str, args: argparse.Namespace) -> float:
    """Images/s of the ingestion pipeline, store writes included."""
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp) / "store")
        embedder = Embedder(backbone, "random", device=args.device)
        options = IngestOptions(batch_size=args.batch_size, workers=args.workers)
        start = time.perf_counter()
        summary = ingest(open_catalog(items_dir, masks_dir), store, {backbone: embedder}, options)
        elapsed = time.perf_counter() - start
        store.close()
    print(f"  pipeline device {embedder.device}, precision {embedder.precision}")
    return summary.ingested / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--baseline-images", type=int, default=32)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        per_product = max(1, -(-args.images // (23 * 3)))
        catalog = write_demo_catalog(Path(tmp), products_per_category=per_product)
        names = sorted(p.name for p in catalog.images.iterdir())[: args.images]
        for extra in sorted(p.name for p in catalog.images.iterdir())[args.images :]:
            (catalog.images / extra).unlink()
        items = [e for e in open_catalog(catalog.images, catalog.masks) if isinstance(e, Item)]
        print(
            f"{len(names)} JPEGs of 750x1101 with masks; {args.backbone}; "
            f"{torch.get_num_threads()} torch threads; {platform.processor() or platform.machine()}"
        )
        base = baseline(items[: args.baseline_images], args.backbone)
        print(f"  baseline (public code's method): {base:7.1f} images/s")
        ours = pipeline(catalog.images, catalog.masks, args.backbone, args)
        print(f"  pipeline:                        {ours:7.1f} images/s")
        print(f"  ratio pipeline / baseline:       {ours / base:7.2f}x")


if __name__ == "__main__":
    main()
