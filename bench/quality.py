"""Retrieval quality on real photos: ImageNet weights against random init and a colour histogram.

On a labelled product catalog (default: the 4,196 photos of ../shared/data/fashion-products,
labels.csv with filename, id, gender, articleType, ...), in one run:

1. visual-only nearest neighbours, exact (numpy cosine over every item, self excluded):
   same article type @1, precision@5 of the article type and of the taxonomy group, over
   all items and within the same gender, for each backbone and weights source (ResNet-50
   imagenet-keras, MobileNetV2 imagenet-mobilenetv2, ResNet-50 random init: the floor)
   and a colour-histogram baseline (joint RGB, 8 bins per channel, of the photo as framed
   in the letterbox, padding left out; cosine); and the cosine of random pairs;
2. the same through the engine: each backbone is ingested by `ingest.pipeline.ingest` into
   a fresh Qdrant Edge store (retail taxonomy); for every Nth item, `Recommender.for_item`
   (k 5, default weights, and visual-only weights) against exact search under the same
   gender filter; precision@5 of the article type and of the category group, and the
   ANN's recall@5 against that exact search;
3. framing: ResNet-50 (ImageNet) with letterbox padding white (the pipeline's for unmasked
   photos), black and the ImageNet mean colour (the letterbox re-implemented here with a
   fill colour; checked equal to the pipeline's for white), and centre-crop;
4. throughput: the ingest end to end (workers, batch size as given) and the model alone,
   with the CPU other processes took meanwhile (shared cores skew timings).

The vectors of (1) for the three networks are read back from the stores of (2).

`--study compact` runs another study instead (bench/compact.py): average against GeM
pooling, and PCA / PCA-whitening learned on one half of the catalog and evaluated on the
other, also through the engine.

    TORCH_HOME=... python bench/quality.py [--data ../shared/data/fashion-products]
        [--limit N] [--every 20] [--workers 2] [--batch-size 32]
    python bench/quality.py --study compact [--networks resnet50,mobilenet_v2] [--seed 0]
        [--every 20] [--engine-best 3]
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this folder would come first on sys.path (and bench/ingest.py would
# shadow the `ingest` package): put the project root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from bench.compact import run as run_compact  # noqa: E402
from bench.retrieval import (  # noqa: E402
    Labels,
    labels_of,
    machine,
    paired,
    visual_metrics,
)
from engine.catalog.framing import decode_size  # noqa: E402
from engine.catalog.inputs import load_input  # noqa: E402
from engine.catalog.items import Item  # noqa: E402
from engine.catalog.masks import DEFAULT_REMOVED, apply_mask  # noqa: E402
from engine.catalog.sources import Catalog, open_catalog  # noqa: E402
from engine.catalog.taxonomy import Taxonomy, built_in  # noqa: E402
from engine.recommend.recommender import Params, Recommender  # noqa: E402
from engine.recommend.scoring import Weights  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402
from engine.vocabulary.schema import ITEM_ID, point_id  # noqa: E402
from ingest.embedder import Embedder  # noqa: E402
from ingest.options import IngestOptions  # noqa: E402
from ingest.pipeline import ingest  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-products"
NETWORKS = (  # label, backbone, weights
    ("ResNet-50, ImageNet", "resnet50", "imagenet"),
    ("MobileNetV2, ImageNet", "mobilenet_v2", "imagenet"),
    ("ResNet-50, random init", "resnet50", "random"),
)
PADDINGS = {"black": (0, 0, 0), "ImageNet mean": (124, 116, 104)}
VISUAL_ONLY = Weights(visual=1.0, popularity=0.0, category=0.0)
Pixels = np.ndarray


@dataclass
class Network:
    """One backbone and weights: its vectors (from the store), and what it cost."""

    label: str
    backbone: str
    provenance: str
    precision: str
    vectors: np.ndarray
    ingest_per_s: float
    model_per_s: float
    ingest_other: float  # cores other processes kept busy meanwhile
    model_other: float
    store: EdgeStore
    embedder: Embedder

    @property
    def title(self) -> str:
        floor = " (the floor)" if self.provenance == "random" else ""
        return f"{self.backbone}, {self.provenance}{floor}"


# catalog -------------------------------------------------------------------------------


def write_manifest(data: Path, limit: int | None, folder: Path) -> Path:
    """labels.csv → a fashionrec manifest (articleType as the category, id as the product)."""
    images = (data / "images").resolve()
    manifest = folder / "manifest.csv"
    with (data / "labels.csv").open(newline="", encoding="utf-8") as src:
        rows = list(csv.DictReader(src))[:limit]
    with manifest.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "gender", "category", "product_id", "item_id"])
        for row in rows:
            path = images / row["filename"]
            stem = Path(row["filename"]).stem
            writer.writerow([str(path), row["gender"], row["articleType"], row["id"], stem])
    return manifest


def catalog_items(data: Path, limit: int | None = None) -> list[Item]:
    """The catalog's items (labels.csv read as a manifest, retail taxonomy), in order."""
    with tempfile.TemporaryDirectory(prefix="fashionrec-quality-") as tmp:
        manifest = write_manifest(data, limit, Path(tmp))
        catalog = open_catalog(
            manifest, taxonomy=built_in("retail"), root=(data / "images").resolve()
        )
        return [e for e in catalog if isinstance(e, Item)]


# framing -------------------------------------------------------------------------------


def letterbox_filled(
    item: Item, fill: tuple[int, int, int], out: int = 224
) -> tuple[Pixels, tuple[int, int, int, int]]:
    """`load_input(item, "letterbox")` with another padding colour, and the photo's box
    (left, top, right, bottom): the same decode, mask and resize, pasted on a filled canvas."""
    with Image.open(item.image) as raw:
        raw.draft("RGB", decode_size(raw.size, "letterbox", out))
        image = raw.convert("RGB")
    if item.mask is not None:
        with Image.open(item.mask) as mask:
            mask.load()
            image = apply_mask(image, mask, DEFAULT_REMOVED)
    width, height = image.size
    scale = out / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    left, top = (out - size[0]) // 2, (out - size[1]) // 2
    canvas = Image.new("RGB", (out, out), fill)
    canvas.paste(image.resize(size, Image.Resampling.BILINEAR), (left, top))
    pixels = np.asarray(canvas, dtype=np.uint8).transpose(2, 0, 1)
    return np.ascontiguousarray(pixels), (left, top, left + size[0], top + size[1])


def filled_pixels(item: Item, fill: tuple[int, int, int]) -> Pixels:
    """The network input of `letterbox_filled`."""
    return letterbox_filled(item, fill)[0]


def check_letterbox(items: Sequence[Item]) -> None:
    """The re-implementation equals the pipeline's letterbox (white padding for these
    unmasked photos), and another fill changes the padding only."""
    for item in items:
        white, box = letterbox_filled(item, (255, 255, 255))
        if not np.array_equal(white, load_input(item, "letterbox")[0]):
            raise SystemExit(f"{item.item_id}: letterbox re-implementation differs from the engine")
        black, _ = letterbox_filled(item, (0, 0, 0))
        inside = np.zeros(black.shape[1:], dtype=bool)
        inside[box[1] : box[3], box[0] : box[2]] = True
        changed = (black != white).any(axis=0)
        if changed[inside].any() or not (white[:, ~inside] == 255).all():
            raise SystemExit(f"{item.item_id}: white padding changed pixels of the photo")


def batches(
    items: Sequence[Item], prepare: Callable[[Item], Pixels], size: int
) -> Iterator[torch.Tensor]:
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        yield torch.from_numpy(np.stack([prepare(i) for i in chunk]))


def embed_all(
    embedder: Embedder, items: Sequence[Item], prepare: Callable[[Item], Pixels], batch: int
) -> np.ndarray:
    return np.concatenate([embedder(x) for x in batches(items, prepare, batch)])


def histogram(item: Item) -> np.ndarray:
    """Joint RGB histogram (8×8×8) of the photo as letterboxed, padding excluded; unit L2."""
    pixels, (left, top, right, bottom) = letterbox_filled(item, (0, 0, 0))
    photo = pixels[:, top:bottom, left:right].reshape(3, -1).astype(np.int64) >> 5
    counts = np.bincount(photo[0] * 64 + photo[1] * 8 + photo[2], minlength=512)
    vector = counts.astype(np.float32) / counts.sum()
    return np.asarray(vector / np.linalg.norm(vector), dtype=np.float32)


# metrics -------------------------------------------------------------------------------


def chance(values: np.ndarray, within: np.ndarray | None = None) -> float:
    """Expected share of same-label pairs for a neighbour drawn at random (self excluded)."""
    scopes = [values] if within is None else [values[within == g] for g in np.unique(within)]
    hits = pairs = 0
    for scope in scopes:
        counts = np.unique(scope, return_counts=True)[1]
        hits += int((counts * (counts - 1)).sum())
        pairs += len(scope) * (len(scope) - 1)
    return hits / pairs


# the engine ----------------------------------------------------------------------------


def ingest_network(
    label: str,
    backbone: str,
    weights: str,
    catalog: Catalog,
    items: Sequence[Item],
    taxonomy: Taxonomy,
    args: argparse.Namespace,
    folder: Path,
) -> Network:
    embedder = Embedder(backbone, weights, device="cpu")
    store = EdgeStore(folder / f"{backbone}-{weights}")
    options = IngestOptions(batch_size=args.batch_size, workers=args.workers)
    load = OtherLoad()
    start = time.perf_counter()
    summary = ingest(catalog, store, {backbone: embedder}, options, taxonomy=taxonomy)
    ingest_per_s = summary.ingested / (time.perf_counter() - start)
    ingest_other = load.cores()
    if summary.ingested != len(items) or summary.failed:
        raise SystemExit(f"{label}: ingested {summary.ingested} of {len(items)} items")
    vectors = np.zeros((len(items), embedder.dim), dtype=np.float32)
    row = {item.item_id: i for i, item in enumerate(items)}
    for start in range(0, len(items), 512):
        ids = [i.item_id for i in items[start : start + 512]]
        for record in store.retrieve([point_id(i) for i in ids], vector=backbone):
            vectors[row[str(record.payload[ITEM_ID])]] = np.asarray(record.vector)
    probe = torch.from_numpy(np.stack([load_input(i)[0] for i in items[: args.batch_size]]))
    direct = embedder(probe)
    drift = float(np.abs(direct - vectors[: len(direct)]).max())
    if drift > 1e-3:
        raise SystemExit(f"{label}: stored vectors differ from the embedder's by {drift}")
    embedder(probe)  # warm-up
    load = OtherLoad()
    took = []
    for _ in range(5):
        start = time.perf_counter()
        embedder(probe)
        took.append(time.perf_counter() - start)
    model_per_s = len(probe) / float(np.median(took))
    model_other = load.cores()
    print(
        f"  {label}: {embedder.weights_label}, {embedder.precision}; ingest "
        f"{ingest_per_s:.1f} images/s, model {model_per_s:.1f} images/s (other processes: "
        f"{ingest_other:.2f}, {model_other:.2f} cores)",
        flush=True,
    )
    return Network(
        label,
        backbone,
        embedder.weights_label,
        embedder.precision,
        vectors,
        ingest_per_s,
        model_per_s,
        ingest_other,
        model_other,
        store,
        embedder,
    )


def engine_metrics(
    network: Network, labels: Labels, sample: np.ndarray, taxonomy: Taxonomy
) -> dict[str, float]:
    """for_item precision@5 (default weights, visual-only weights) and exact search under
    the same gender filter, over the sampled items."""
    recommender = Recommender(network.store, taxonomy)
    found: dict[str, float] = {}
    lists: dict[str, list[set[str]]] = {}
    for name, weights in (("engine", Weights()), ("engine visual", VISUAL_ONLY)):
        same_type, same_group, took = [], [], []
        lists[name] = []
        for i in sample:
            start = time.perf_counter()
            recs = recommender.for_item(
                labels.ids[i], Params(space=network.backbone, k=5, weights=weights)
            )
            took.append(time.perf_counter() - start)
            lists[name].append({r.item_id for r in recs})
            same_type.append(sum(r.category == labels.category[i] for r in recs) / 5)
            same_group.append(
                sum(taxonomy.group_of(r.category) == labels.group[i] for r in recs) / 5
            )
        found[f"{name} type"] = float(np.mean(same_type))
        found[f"{name} group"] = float(np.mean(same_group))
        found[f"{name} ms"] = 1000 * float(np.median(took))
    shown = np.array(
        [[g in taxonomy.shown_to(labels.gender[i]) for g in labels.gender] for i in sample]
    )
    scores = network.vectors[sample] @ network.vectors.T
    scores[~shown] = -np.inf
    scores[np.arange(len(sample)), sample] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    found["exact type"] = float((labels.category[top] == labels.category[sample, None]).mean())
    found["exact group"] = float((labels.group[top] == labels.group[sample, None]).mean())
    exact = [{labels.ids[j] for j in row} for row in top]
    found["recall"] = float(
        np.mean(
            [len(got & want) / 5 for got, want in zip(lists["engine visual"], exact, strict=True)]
        )
    )
    return found


# report --------------------------------------------------------------------------------


class OtherLoad:
    """CPU time other processes took from this machine since start (from /proc/stat, less
    this process's and its reaped children's): shared cores skew throughput figures."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            busy = (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            busy = float("nan")
        own = sum(os.times()[:4])
        return busy, own, time.perf_counter()

    def cores(self) -> float:
        """Cores busy with other processes on average since start."""
        busy, own, now = self._sample()
        return max(0.0, (busy - self.start[0]) - (own - self.start[1])) / (now - self.start[2])


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(cell(v) for v in row) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="first N photos of labels.csv")
    parser.add_argument("--every", type=int, default=20, help="engine queries: every Nth item")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--study",
        choices=("networks", "compact"),
        default="networks",
        help="networks: the sections above; compact: pooling (avg, GeM) and PCA / "
        "PCA-whitening learned on one half of the catalog, evaluated on the other "
        "(bench/compact.py)",
    )
    parser.add_argument(
        "--networks", default="resnet50,mobilenet_v2", help="compact: backbones to study"
    )
    parser.add_argument("--seed", type=int, default=0, help="compact: the split by product")
    parser.add_argument(
        "--engine-best", type=int, default=3, help="compact: best variants through the engine"
    )
    args = parser.parse_args()
    if args.study == "compact":
        run_compact(args, lambda data: catalog_items(data, args.limit))
        return

    began = time.perf_counter()
    whole_run = OtherLoad()
    taxonomy = built_in("retail")
    with tempfile.TemporaryDirectory(prefix="fashionrec-quality-") as tmp:
        folder = Path(tmp)
        manifest = write_manifest(args.data, args.limit, folder)
        catalog = open_catalog(manifest, taxonomy=taxonomy, root=(args.data / "images").resolve())
        entries = list(catalog)
        items = [e for e in entries if isinstance(e, Item)]
        labels = labels_of(items, taxonomy)
        sample = np.arange(0, len(items), args.every)
        genders = ", ".join(
            f"{g} {n}" for g, n in zip(*np.unique(labels.gender, return_counts=True), strict=True)
        )
        print(f"machine: {machine()}")
        print(
            f"catalog: {len(items)} photos ({len(entries) - len(items)} rejected), "
            f"{len(set(labels.category))} article types, {len(set(labels.group))} taxonomy "
            f"groups; genders: {genders}; "
            f"engine sample every {args.every}th item: {len(sample)} queries",
            flush=True,
        )
        check_letterbox(items[:64])

        print("ingest (fresh Qdrant Edge store per network):", flush=True)
        networks = [
            ingest_network(label, backbone, weights, catalog, items, taxonomy, args, folder)
            for label, backbone, weights in NETWORKS
        ]

        start = time.perf_counter()
        hist = np.stack([histogram(i) for i in items])
        print(f"  colour histogram: {len(items) / (time.perf_counter() - start):.0f} images/s")
        framings: dict[str, np.ndarray] = {
            "letterbox, white padding (default)": networks[0].vectors
        }
        resnet = networks[0].embedder
        for name, fill in PADDINGS.items():
            start = time.perf_counter()
            framings[f"letterbox, {name} padding"] = embed_all(
                resnet, items, functools.partial(filled_pixels, fill=fill), args.batch_size
            )
            print(
                f"  {name} padding: {len(items) / (time.perf_counter() - start):.1f} images/s",
                flush=True,
            )
        start = time.perf_counter()
        framings["centre-crop (the paper's)"] = embed_all(
            resnet, items, lambda i: load_input(i, "center-crop")[0], args.batch_size
        )
        print(
            f"  centre-crop: {len(items) / (time.perf_counter() - start):.1f} images/s", flush=True
        )

        visual = [(n.title, visual_metrics(n.vectors, labels)) for n in networks]
        visual.append(("colour histogram 8×8×8, cosine", visual_metrics(hist, labels)))
        engine = [(n, engine_metrics(n, labels, sample, taxonomy)) for n in networks]
        framed = [(name, visual_metrics(v, labels)) for name, v in framings.items()]
        for network in networks:
            network.store.close()

    print()
    print(f"### Visual-only nearest neighbours, exact, all {len(items)} items (self excluded)\n")
    header = [
        "features",
        "type @1",
        "type p@5",
        "group p@5",
        "same gender: type @1",
        "type p@5",
        "group p@5",
        "cosine of random pairs",
    ]
    keys = ["all @1", "all p@5", "all group p@5", "gender @1", "gender p@5", "gender group p@5"]
    rows: list[list[object]] = [
        [name, *(m[k] for k in keys), f"{m['pair cosine']:.4f} ± {m['pair spread']:.4f}"]
        for name, m in visual
    ]
    type_all, type_gender = chance(labels.category), chance(labels.category, labels.gender)
    group_all, group_gender = chance(labels.group), chance(labels.group, labels.gender)
    chances = [type_all, type_all, group_all, type_gender, type_gender, group_gender]
    rows.append(["chance (a random neighbour)", *chances, ""])
    table(header, rows)

    print(
        f"### Through the engine: `Recommender.for_item`, k 5, every {args.every}th item "
        f"({len(sample)} queries)\n"
    )
    header = [
        "network",
        "default weights: type p@5",
        "group p@5",
        "visual-only weights: type p@5",
        "group p@5",
        "exact search, same filter: type p@5",
        "group p@5",
        "ANN recall@5 vs exact",
        "p50 ms",
    ]
    keys = ["engine type", "engine group", "engine visual type", "engine visual group"]
    keys += ["exact type", "exact group", "recall"]
    rows = [[n.title, *(m[k] for k in keys), f"{m['engine ms']:.1f}"] for n, m in engine]
    table(header, rows)

    print(f"### Framing: {networks[0].title}, visual-only, exact, all items\n")
    header = ["framing", "type @1", "type p@5", "same gender: type @1", "type p@5"]
    header += ["Δ @1 vs white (± 2 SE)", "Δ p@5 vs white (± 2 SE)"]
    base = framed[0][1]
    rows = [
        [
            name,
            *(m[k] for k in ("all @1", "all p@5", "gender @1", "gender p@5")),
            "" if m is base else paired(m.per_item_at1, base.per_item_at1),
            "" if m is base else paired(m.per_item, base.per_item),
        ]
        for name, m in framed
    ]
    table(header, rows)
    paddings = [f for f in framed if f[0].startswith("letterbox")]
    for title, among in (("framing", framed), ("letterbox padding", paddings)):
        best = max(among, key=lambda f: (f[1]["all p@5"], f[1]["all @1"]))
        print(f"best {title} by type p@5: {best[0]}")
    print()

    print(f"### Throughput (CPU, batch {args.batch_size}, {args.workers} workers)\n")
    header = ["network", "precision", "ingest end to end, images/s", "model only, images/s"]
    header += ["other processes meanwhile (cores)"]
    rows = [
        [
            n.title,
            n.precision,
            f"{n.ingest_per_s:.1f}",
            f"{n.model_per_s:.1f}",
            f"{n.ingest_other:.2f} / {n.model_other:.2f}",
        ]
        for n in networks
    ]
    table(header, rows)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"{stamp}; wall time {time.perf_counter() - began:.0f} s; other processes kept "
        f"{whole_run.cores():.2f} cores busy on average meanwhile"
    )


if __name__ == "__main__":
    main()
