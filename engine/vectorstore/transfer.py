"""Precomputed embeddings in bulk: export a backbone's vectors and payloads, load them back.

The files: `vectors.npy` (float32, one row per point) and `payloads.jsonl` (one JSON
object per line, in the same order, each with at least item_id, product_id, gender and
category), and `stores.csv` (the stores the payloads name, as `stores import` reads it,
written by the CLI beside them). An operator embeds on a GPU machine, exports, and loads
elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np

from engine.catalog.items import Naming, Rejected
from engine.errors import TransferError
from engine.helpers import batched
from engine.vectorstore.base import Filter, PointBatch, VectorStore
from engine.vocabulary.backbones import is_compact, spec
from engine.vocabulary.schema import (
    CATEGORY,
    CATEGORY_GROUP,
    GENDER,
    ITEM_ID,
    PRODUCT_ID,
    STORE_ID,
    point_id,
    weights_field,
)

VECTORS: Final = "vectors.npy"
PAYLOADS: Final = "payloads.jsonl"
STORES: Final = "stores.csv"
REQUIRED: Final = (ITEM_ID, PRODUCT_ID, GENDER, CATEGORY)
BATCH: Final = 1000  # points per write of a load
COPY_BATCH: Final = 500  # points per page and write of a copy


def export_points(store: VectorStore, backbone: str, folder: Path) -> int:
    """Write every point holding the backbone's (or a compact space's) vector; returns the
    count. The payloads leave out which projection wrote the other compact spaces'
    vectors: those vectors stay behind."""
    count = store.count(Filter(has_vector=backbone))
    if count == 0:
        raise TransferError(f"no {backbone} vectors in {store.location} to export")
    dims = store.vector_dims()
    dim = dims[backbone]
    # which projection wrote a compact space's vector: not carried with other vectors
    others = {weights_field(n) for n in dims if is_compact(n) and n != backbone}
    folder.mkdir(parents=True, exist_ok=True)
    vectors = np.lib.format.open_memmap(folder / VECTORS, "w+", np.float32, (count, dim))
    written = 0
    with (folder / PAYLOADS).open("w", encoding="utf-8") as out:
        for record in store.scroll(None, Filter(has_vector=backbone), vector=backbone):
            assert record.vector is not None
            vectors[written] = record.vector
            payload = {k: v for k, v in record.payload.items() if k not in others}
            out.write(json.dumps(payload, sort_keys=True) + "\n")
            written += 1
    vectors.flush()
    return written


def store_ids(payloads_path: Path) -> set[str]:
    """The store ids the payloads name (lines that do not parse are left to load_points)."""
    try:
        lines = payloads_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TransferError(f"{payloads_path}: cannot read ({exc})") from None
    found: set[str] = set()
    for line in lines:
        try:
            payload = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(payload, dict) and payload.get(STORE_ID) is not None:
            found.add(str(payload[STORE_ID]))
    return found


def _payload(line: str, where: str, naming: Naming) -> dict[str, Any]:
    try:
        payload = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TransferError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(payload, dict):
        raise TransferError(f"{where}: not a JSON object")
    missing = [k for k in REQUIRED if not payload.get(k)]
    if missing:
        raise TransferError(f"{where}: missing {', '.join(missing)}")
    try:
        gender = naming.gender(str(payload[GENDER]))
        category = naming.category(str(payload[CATEGORY]), where)
    except Rejected as exc:
        raise TransferError(f"{where}: {exc}") from None
    group = naming.taxonomy.group_of(category)
    return {**payload, GENDER: gender, CATEGORY: category, CATEGORY_GROUP: group}


def load_points(
    store: VectorStore,
    backbone: str,
    vectors_path: Path,
    payloads_path: Path,
    on_progress: Callable[[int], None] = lambda n: None,
    naming: Naming | None = None,
) -> tuple[int, int]:
    """Load precomputed vectors into the store; returns (written, already there).

    Genders and categories are named by `naming` (DeepFashion's taxonomy, new categories
    accepted, by default).

    Every line is checked before anything is written. Points that already hold the
    backbone's vector are skipped, so a load can be repeated or resumed.
    """
    try:
        vectors = np.load(vectors_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise TransferError(f"{vectors_path}: not a .npy array ({exc})") from None
    dim = spec(backbone).dim
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise TransferError(
            f"{vectors_path}: shape {vectors.shape}, expected (N, {dim}) for {backbone}"
        )
    try:
        lines = payloads_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TransferError(f"{payloads_path}: cannot read ({exc})") from None
    if len(lines) != len(vectors):
        raise TransferError(
            f"{payloads_path}: {len(lines)} lines for {len(vectors)} vectors in {vectors_path}"
        )
    naming = naming or Naming()
    payloads = [_payload(line, f"{payloads_path}:{n}", naming) for n, line in enumerate(lines, 1)]
    store.ensure_vector(backbone, dim)
    written = already = 0
    for number, chunk in enumerate(batched(payloads, BATCH)):
        start = number * BATCH
        ids = [point_id(str(p[ITEM_ID])) for p in chunk]
        have = store.ids_matching(Filter(ids=frozenset(ids), has_vector=backbone), len(ids))
        rows = [i for i, pid in enumerate(ids) if pid not in have]
        already += len(ids) - len(rows)
        if rows:
            block = np.asarray(vectors[start : start + len(chunk)], dtype=np.float32)[rows]
            block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
            chosen = [
                {
                    **chunk[i],
                    weights_field(backbone): chunk[i].get(weights_field(backbone), "imported"),
                }
                for i in rows
            ]
            store.write(PointBatch([ids[i] for i in rows], chosen, backbone, block))
            written += len(rows)
        on_progress(len(chunk))
        if number % 50 == 49:
            store.flush()
    store.flush()
    if written:
        store.optimize()
    return written, already


def copy_points(
    source: VectorStore, target: VectorStore, on_progress: Callable[[int], None] = lambda n: None
) -> dict[str, int]:
    """Copy every point, every named vector and the whole payload to another store.

    Used to migrate the embedded store into a Qdrant server; re-running it rewrites the
    same points (ids are deterministic), so an interrupted migration can simply restart.
    """
    copied: dict[str, int] = {}
    for backbone, dim in sorted(source.vector_dims().items()):
        target.ensure_vector(backbone, dim)
        records = source.scroll(None, Filter(has_vector=backbone), page=COPY_BATCH, vector=backbone)
        for batch in batched(records, COPY_BATCH):
            vectors = np.asarray([r.vector for r in batch], dtype=np.float32)
            ids, payloads = [r.id for r in batch], [r.payload for r in batch]
            target.write(PointBatch(ids, payloads, backbone, vectors))
            on_progress(len(batch))
        copied[backbone] = target.count(Filter(has_vector=backbone))
    target.flush()
    return copied
