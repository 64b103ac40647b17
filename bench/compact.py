"""Pooling and compact spaces on the real catalog: learned on one half, evaluated on the other.

`bench/quality.py --study compact` runs it. In one run:

1. every photo is embedded once per network with its real ImageNet weights (ResNet-50
   imagenet-keras, MobileNetV2 imagenet-mobilenetv2; random weights are refused), framed
   and decoded as ingest does (`engine.catalog.inputs.load_input`), and the last convolutional
   map is pooled both ways from the same forward pass: average (today's embedding) and
   GeM (p 3). The first batch is checked against `Embedder(pooling=avg|gem)`. The two
   matrices are cached under bench/.data/quality/, keyed by the weights' provenance, so
   a rerun skips the embedding;
2. the catalog is split in two halves by product (seeded; no product in both). Each
   projection (`engine.spaces.projection.fit`: PCA, PCA-whitening with shrinkage) is
   learned on one half and evaluated on the other only (queries and database both in
   it, self excluded): same article type @1 and p@5, over all items and within the same
   gender. Then the halves swap, and the figures are the mean of the two directions; the
   paired Δ against raw average pooling is over every item (each is a query once);
3. the best variants and raw average pooling go through the engine: the evaluated half's
   vectors in a fresh Qdrant Edge store (payloads as ingest writes them), and
   `Recommender.for_item` (default weights, k 5) for every Nth item: mean CatSim of the
   lists to the query's category (retail taxonomy), and type p@5;
4. a table, and a markdown block for docs/performance.md (written next to the cache).
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from bench.retrieval import Labels, Quality, labels_of, machine, paired, visual_metrics
from engine.catalog.inputs import load_input
from engine.catalog.items import Item
from engine.catalog.taxonomy import Taxonomy, built_in
from engine.recommend.recommender import Params, Recommender
from engine.recommend.scoring import Weights
from engine.spaces.projection import Projection, fit
from engine.vectorstore.base import PointBatch
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.schema import AVG, GEM, point_id
from ingest.embedder import IMAGENET_MEAN, IMAGENET_STD, Embedder
from ingest.networks import gem
from ingest.pipeline import item_payload
from ingest.tfjs import caffe_input

CACHE: Final = Path(__file__).resolve().parent / ".data" / "quality"
NETWORKS: Final = {"resnet50": "ResNet-50", "mobilenet_v2": "MobileNetV2"}
POOLINGS: Final = (AVG, GEM)
DIMS: Final = (256, 512, 1024)
SHRINKAGES: Final = (0.0, 0.1, 1.0)
VISUAL_ONLY: Final = Weights(visual=1.0, popularity=0.0, category=0.0)
Matrix = NDArray[np.float32]


# 1. embedding, both poolings from one forward pass ----------------------------------------


def pooled_both(embedder: Embedder, images: torch.Tensor) -> tuple[Matrix, Matrix]:
    """Unit rows pooled by average and by GeM from one pass of the embedder's trunk,
    with its preprocessing and precision (what `Embedder.__call__` does for each)."""
    model = embedder.model
    trunk = getattr(model, "trunk", None)
    if not isinstance(trunk, nn.Module):
        raise SystemExit(f"{embedder.spec.name}: no trunk to pool (its embedding is fc7)")
    with torch.inference_mode():
        pixels = images.to(embedder.device)
        if embedder.input == "caffe":
            x = caffe_input(pixels)
        else:
            mean = torch.tensor(IMAGENET_MEAN, device=embedder.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=embedder.device).view(1, 3, 1, 1)
            x = (pixels.float().div_(255.0) - mean) / std
        x = x.contiguous(memory_format=torch.channels_last)
        bf16 = embedder.precision == "bf16"
        with torch.autocast(embedder.device.type, dtype=torch.bfloat16, enabled=bf16):
            maps = trunk(x)
            average = torch.flatten(nn.functional.adaptive_avg_pool2d(maps, (1, 1)), 1)
            generalised = gem(maps)
        rows = [
            nn.functional.normalize(v.float(), dim=1).cpu().numpy() for v in (average, generalised)
        ]
    return rows[0], rows[1]


def cache_path(backbone: str, provenance: str, precision: str, items: Sequence[Item]) -> Path:
    """Where a network's matrices for these items are cached: keyed by the weights'
    provenance, the precision and the items (their ids and photos)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.item_id}\t{item.image}\n".encode())
    safe = provenance.replace("/", "_").replace(":", "_")
    return CACHE / f"{backbone}-{safe}-{precision}-letterbox-{digest.hexdigest()[:12]}.npz"


def embed_catalog(
    backbone: str, items: Sequence[Item], batch: int = 32
) -> tuple[dict[str, Matrix], str]:
    """Both poolings of every item (rows in items' order) and the weights' provenance;
    from the cache when it has them."""
    avg = Embedder(backbone, "imagenet", device="cpu")
    if not avg.weights_label.startswith("imagenet-"):
        raise SystemExit(f"{backbone}: weights {avg.weights_label}, not ImageNet; run make weights")
    path = cache_path(backbone, avg.weights_label, avg.precision, items)
    if path.is_file():
        with np.load(path) as saved:
            print(f"  {backbone}: {avg.weights_label}, {avg.precision}; cached {path.name}")
            return {p: np.asarray(saved[p], dtype=np.float32) for p in POOLINGS}, avg.weights_label
    other = Embedder(backbone, "imagenet", device="cpu", pooling=GEM)
    out: dict[str, list[Matrix]] = {p: [] for p in POOLINGS}
    start, last = time.perf_counter(), 0.0
    for first in range(0, len(items), batch):
        chunk = items[first : first + batch]
        pixels = torch.from_numpy(np.stack([load_input(i)[0] for i in chunk]))
        a, g = pooled_both(avg, pixels)
        if first == 0:  # the same vectors as ingest's embedder makes, for each pooling
            for pooling, mine, theirs in ((AVG, a, avg(pixels)), (GEM, g, other(pixels))):
                drift = float(np.abs(mine - theirs).max())
                if drift > 1e-4:
                    raise SystemExit(
                        f"{backbone} {pooling}: differs from the Embedder's by {drift}"
                    )
        out[AVG].append(a)
        out[GEM].append(g)
        done = first + len(chunk)
        if time.perf_counter() - last > 30 or done == len(items):
            last = time.perf_counter()
            rate = done / (last - start)
            print(f"  {backbone}: {done}/{len(items)} photos, {rate:.1f} images/s", flush=True)
    matrices = {p: np.concatenate(out[p]) for p in POOLINGS}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.npz")
    np.savez(partial, avg=matrices[AVG], gem=matrices[GEM])
    partial.replace(path)
    return matrices, avg.weights_label


# 2. projections learned on one half, evaluated on the other -------------------------------


@dataclass(frozen=True)
class Variant:
    """A pooling and a space: raw, PCA or PCA-whitening (with shrinkage) to `dim` dims."""

    pooling: str
    space: str  # raw, pca, whitened
    dim: int
    shrinkage: float = 0.0

    @property
    def title(self) -> str:
        if self.space == "raw":
            return f"{self.pooling}, raw {self.dim}"
        if self.space == "pca":
            return f"{self.pooling}, PCA {self.dim}"
        return f"{self.pooling}, PCA-whitened {self.dim}, shrinkage {self.shrinkage:g}"

    def vector_name(self, backbone: str) -> str:
        """A named vector for the store, e.g. resnet50-gem-w512-s0p1."""
        tag = {"raw": "raw", "pca": "pca", "whitened": "w"}[self.space]
        shrunk = f"-s{self.shrinkage:g}".replace(".", "p") if self.space == "whitened" else ""
        return f"{backbone}-{self.pooling}-{tag}{self.dim}{shrunk}"

    def learn(self, backbone: str, train: Matrix) -> tuple[Callable[[Matrix], Matrix], float]:
        """The map to this space learned on `train`, and the share of variance it keeps."""
        if self.space == "raw":
            return (lambda x: x), 1.0
        projection: Projection = fit(
            backbone, train, self.dim, whiten=self.space == "whitened", shrinkage=self.shrinkage
        )
        return projection, projection.kept_variance


def variants(size: int) -> list[Variant]:
    """Every pooling × raw, PCA and PCA-whitening (each shrinkage) at each of DIMS < size."""
    found = []
    for pooling in POOLINGS:
        found.append(Variant(pooling, "raw", size))
        for dim in (d for d in DIMS if d < size):
            found.append(Variant(pooling, "pca", dim))
            found += [Variant(pooling, "whitened", dim, s) for s in SHRINKAGES]
    return found


def halves(items: Sequence[Item], seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Item rows of two halves of the products (seeded): no product in both."""
    products = sorted({i.product_id for i in items})
    order = np.random.default_rng(seed).permutation(len(products))
    first = {products[j] for j in order[: len(products) // 2]}
    inside = np.array([i.product_id in first for i in items])
    return np.flatnonzero(inside), np.flatnonzero(~inside)


def subset(labels: Labels, rows: NDArray[np.int64]) -> Labels:
    return Labels(
        [labels.ids[r] for r in rows],
        labels.category[rows],
        labels.group[rows],
        labels.gender[rows],
    )


@dataclass
class Result:
    """A variant's figures: per direction, their mean, and per item over both directions."""

    variant: Variant
    directions: list[Quality]
    kept: list[float]
    at1: NDArray[np.float64]  # per item, each item a query once (in its own half)
    p5: NDArray[np.float64]

    def __getitem__(self, name: str) -> float:
        return float(np.mean([q[name] for q in self.directions]))


def evaluate(
    backbone: str,
    matrices: dict[str, Matrix],
    labels: Labels,
    split: tuple[NDArray[np.int64], NDArray[np.int64]],
) -> list[Result]:
    """Every variant learned on one half and evaluated on the other, both ways round."""
    size = matrices[AVG].shape[1]
    results = []
    directions = (split, split[::-1])
    for variant in variants(size):
        qualities, kept = [], []
        at1, p5 = np.zeros(len(labels.ids)), np.zeros(len(labels.ids))
        for train, test in directions:
            vectors = matrices[variant.pooling]
            project, share = variant.learn(backbone, vectors[train])
            quality = visual_metrics(project(vectors[test]), subset(labels, test))
            qualities.append(quality)
            kept.append(share)
            at1[test], p5[test] = quality.per_item_at1, quality.per_item
        results.append(Result(variant, qualities, kept, at1, p5))
        print(
            f"  {backbone} {variant.title}: type p@5 {results[-1]['all p@5']:.3f}, "
            f"@1 {results[-1]['all @1']:.3f}",
            flush=True,
        )
    return results


# 3. through the engine ------------------------------------------------------------------------


def engine_figures(
    backbone: str,
    variant: Variant,
    matrices: dict[str, Matrix],
    items: Sequence[Item],
    split: tuple[NDArray[np.int64], NDArray[np.int64]],
    taxonomy: Taxonomy,
    every: int,
    folder: Path,
) -> dict[str, float]:
    """For each direction: the evaluated half's vectors (projection learned on the other)
    in a fresh Qdrant Edge store, `for_item` for every Nth item; mean over both."""
    name = variant.vector_name(backbone)
    figures: dict[str, list[float]] = {}
    for number, (train, test) in enumerate((split, split[::-1])):
        vectors = matrices[variant.pooling]
        project, _ = variant.learn(backbone, vectors[train])
        projected = project(vectors[test])
        store = EdgeStore(folder / f"{name}-{number}")
        try:
            store.ensure_vector(name, projected.shape[1])
            chosen = [items[r] for r in test]
            for start in range(0, len(chosen), 512):
                block = chosen[start : start + 512]
                store.write(
                    PointBatch(
                        [point_id(i.item_id) for i in block],
                        [item_payload(i, False, taxonomy) for i in block],
                        name,
                        projected[start : start + len(block)],
                    )
                )
            store.flush()
            store.optimize()
            recommender = Recommender(store, taxonomy)
            for label, weights in (("default", Weights()), ("visual", VISUAL_ONLY)):
                catsim, same, cosine, took = [], [], [], []
                for row in test[::every]:
                    item = items[row]
                    start_s = time.perf_counter()
                    recs = recommender.for_item(
                        item.item_id, Params(space=name, k=5, weights=weights)
                    )
                    took.append(time.perf_counter() - start_s)
                    catsim.append(
                        float(np.mean([taxonomy(item.category, r.category) for r in recs]))
                    )
                    same.append(sum(r.category == item.category for r in recs) / 5)
                    cosine.append(float(np.mean([r.visual for r in recs])))
                figures.setdefault(f"{label} catsim", []).append(float(np.mean(catsim)))
                figures.setdefault(f"{label} p@5", []).append(float(np.mean(same)))
                figures.setdefault(f"{label} ms", []).append(1000 * float(np.median(took)))
                figures.setdefault(f"{label} cosine", []).append(float(np.mean(cosine)))
            figures.setdefault("queries", []).append(len(test[::every]))
        finally:
            store.close()
    found = {k: float(np.mean(v)) for k, v in figures.items()}
    found["queries"] = float(sum(figures["queries"]))
    return found


# 4. report ------------------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def where() -> str:
    """The machine: platform, CPU and cores (usable, online), torch, python."""
    return f"{platform.platform()}; {machine()}; python {platform.python_version()}"


def report_network(
    backbone: str,
    provenance: str,
    results: list[Result],
    engine: list[tuple[Result, dict[str, float]]],
    every: int,
) -> tuple[list[str], str]:
    """The markdown of one network's tables, and the line naming its best variant."""
    base = next(r for r in results if r.variant == Variant(AVG, "raw", r.variant.dim))
    lines = [
        f"#### {NETWORKS[backbone]} ({provenance}): learned on one half, evaluated on the other",
        "",
    ]
    header = [
        "pooling, space",
        "variance kept",
        "type @1",
        "type p@5",
        "group p@5",
        "same gender: type @1",
        "type p@5",
        "p@5 A→B / B→A",
        "Δ @1 vs avg raw (± 2 SE)",
        "Δ p@5 vs avg raw (± 2 SE)",
        "cosine of random pairs",
    ]
    rows: list[list[object]] = []
    for r in results:
        directions = " / ".join(f"{q['all p@5']:.3f}" for q in r.directions)
        rows.append(
            [
                r.variant.title,
                "" if r.variant.space == "raw" else f"{np.mean(r.kept):.1%}",
                r["all @1"],
                r["all p@5"],
                r["all group p@5"],
                r["gender @1"],
                r["gender p@5"],
                directions,
                "" if r is base else paired(r.at1, base.at1),
                "" if r is base else paired(r.p5, base.p5),
                f"{r['pair cosine']:.3f} ± {r['pair spread']:.3f}",
            ]
        )
    lines += markdown_table(header, rows)
    best = max(results, key=lambda r: (r["all p@5"], r["all @1"]))
    summary = (
        f"{NETWORKS[backbone]}: best by type p@5 is {best.variant.title}: "
        f"p@5 {best['all p@5']:.3f} against {base['all p@5']:.3f} for avg raw "
        f"{base.variant.dim} (Δ {paired(best.p5, base.p5)}), @1 {best['all @1']:.3f} "
        f"against {base['all @1']:.3f} (Δ {paired(best.at1, base.at1)}); same gender p@5 "
        f"{best['gender p@5']:.3f} against {base['gender p@5']:.3f}"
    )
    lines += ["", summary, ""]
    if engine:
        queries = int(next(iter(engine))[1]["queries"])
        lines += [
            f"Through the engine: `Recommender.for_item`, k 5, every {every}th item of the "
            f"evaluated half, both directions ({queries} queries):",
            "",
        ]
        header = [
            "pooling, space",
            "default weights: CatSim",
            "type p@5",
            "visual-only weights: CatSim",
            "type p@5",
            "mean cosine of the lists: default / visual-only",
            "p50 ms",
        ]
        rows = [
            [
                r.variant.title,
                f["default catsim"],
                f["default p@5"],
                f["visual catsim"],
                f["visual p@5"],
                f"{f['default cosine']:.3f} / {f['visual cosine']:.3f}",
                f"{f['default ms']:.1f}",
            ]
            for r, f in engine
        ]
        lines += [*markdown_table(header, rows), ""]
    return lines, summary


def run(args: argparse.Namespace, data_items: Callable[[Path], list[Item]]) -> None:
    """The study: embed (or read the cache), evaluate every variant both ways round,
    the best few through the engine, then the tables and the markdown block."""
    began = time.perf_counter()
    taxonomy = built_in("retail")
    items = data_items(args.data)
    labels = labels_of(items, taxonomy)
    split = halves(items, args.seed)
    print(f"machine: {where()}")
    print(
        f"catalog: {len(items)} photos, {len(set(labels.category))} article types; halves by "
        f"product (seed {args.seed}): {len(split[0])} and {len(split[1])} items",
        flush=True,
    )
    backbones = [b.strip() for b in args.networks.split(",") if b.strip()]
    markdown = [
        "### Pooling and compact spaces (`bench/quality.py --study compact`)",
        "",
        f"Machine: {where()}. Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"{len(items)} photos of `fashion-products`, split by product (seed {args.seed}) into "
        f"halves of {len(split[0])} and {len(split[1])}. Each projection "
        "(`engine.spaces.projection.fit`) is learned on one half and evaluated on the other "
        "(queries and database both in it, self excluded), then the halves swap; figures are "
        "the mean of the two directions, Δ is paired over all items (each a query once). "
        "Within a half the database is half the catalog, so the figures sit below the "
        "whole-catalog table above.",
        "",
    ]
    summaries = []
    with tempfile.TemporaryDirectory(prefix="fashionrec-compact-") as tmp:
        for backbone in backbones:
            print(f"{backbone}: embedding (both poolings, one pass)", flush=True)
            matrices, provenance = embed_catalog(backbone, items, args.batch_size)
            results = evaluate(backbone, matrices, labels, split)
            base = next(r for r in results if r.variant.space == "raw" and r.variant.pooling == AVG)
            ranked = sorted(results, key=lambda r: (r["all p@5"], r["all @1"]), reverse=True)
            chosen = [base, *(r for r in results if r.variant.space == "raw" and r is not base)]
            chosen += [r for r in ranked if r not in chosen][: args.engine_best]
            engine = []
            for result in chosen:
                figures = engine_figures(
                    backbone, result.variant, matrices, items, split, taxonomy, args.every,
                    Path(tmp),
                )  # fmt: skip
                print(
                    f"  engine {result.variant.title}: CatSim {figures['default catsim']:.3f}, "
                    f"p@5 {figures['default p@5']:.3f}",
                    flush=True,
                )
                engine.append((result, figures))
            lines, summary = report_network(backbone, provenance, results, engine, args.every)
            markdown += lines
            summaries.append(summary)
    markdown.append(f"Wall time {time.perf_counter() - began:.0f} s.")
    text = "\n".join(markdown) + "\n"
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"compact-{datetime.now(UTC):%Y%m%d-%H%M%S}.md"
    out.write_text(text, encoding="utf-8")
    print()
    print(text)
    for line in summaries:
        print(line)
    print(f"markdown written to {out}")
