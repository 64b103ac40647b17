"""What the tests share besides fixtures: catalogs and stores with known contents, a fake
embedder, the command line (in this process and as a subprocess), a failing Qdrant server,
and the congruence check of the two store back-ends."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, Final

import numpy as np
import torch
import typer.testing
from numpy.typing import NDArray
from typer.testing import CliRunner

from cli.main import app
from engine.catalog.categories import CATEGORIES_BY_GENDER
from engine.catalog.items import Item
from engine.popularity.upkeep import sync_ranks
from engine.recommend.rerank import Recommendation
from engine.settings import STORE_DIR
from engine.vectorstore.base import Hit, Payload, PointBatch, VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.geo import Location
from engine.vocabulary.records import Purchase, User
from engine.vocabulary.schema import point_id
from ingest.democatalog import DemoCatalog
from ingest.pipeline import item_payload

ROOT: Final = Path(__file__).parents[1]

# --- catalogs on disk ----------------------------------------------------------------------


def copy_catalog(catalog: DemoCatalog, target: Path, limit: int | None = None) -> DemoCatalog:
    """A private copy of (part of) a catalog that a test may damage."""
    images, masks = target / "images", target / "segm"
    images.mkdir(parents=True)
    masks.mkdir()
    files = sorted(catalog.images.iterdir())[:limit]
    for image in files:
        (images / image.name).write_bytes(image.read_bytes())
        mask = catalog.masks / f"{image.stem}_segm.png"
        (masks / mask.name).write_bytes(mask.read_bytes())
    return DemoCatalog(images, masks, len(files))


# --- a store with known vectors: the recommendation tests' catalog -------------------------

CATALOG_DIM: Final = 48  # the length of build_catalog's vectors (stored as "resnet50")
SHOPS: Final = {
    "S01": Location(48.86, 2.35),  # central Paris
    "S02": Location(48.80, 2.13),  # Versailles, ~18 km away
    "S03": Location(49.05, 2.08),  # Cergy, ~30 km away
}
HOME: Final = Location(48.8566, 2.3522)  # where shopper() lives


def build_catalog(
    store: VectorStore, products_per_category: int = 6, seed: int = 0
) -> list[Payload]:
    """Write products in every gender/category, 3 views each, and return their payloads.

    Vectors ("resnet50", CATALOG_DIM long) are clustered by category, then product, then
    view; popularity and the shop (one of SHOPS, by product) are seeded.
    """
    rng = np.random.default_rng(seed)
    payloads: list[Payload] = []
    vectors, number = [], 0
    centres = {c: rng.normal(size=CATALOG_DIM) for cs in CATEGORIES_BY_GENDER.values() for c in cs}
    for gender, categories in CATEGORIES_BY_GENDER.items():
        for category in categories:
            for _ in range(products_per_category):
                number += 1
                product = centres[category] + 0.6 * rng.normal(size=CATALOG_DIM)
                shop = list(SHOPS)[number % 3]
                for view in ("front", "side", "back"):
                    item_id = f"{gender}-{category}-id_{number:08d}-01_{view}"
                    vectors.append(product + 0.2 * rng.normal(size=CATALOG_DIM))
                    payloads.append(
                        {
                            "item_id": item_id,
                            "product_id": f"id_{number:08d}-01",
                            "gender": gender,
                            "category": category,
                            "store_id": shop,
                            "store_location": SHOPS[shop].payload(),
                            "popularity": float(rng.integers(0, 101)),
                        }
                    )
    matrix = np.asarray(vectors, dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    store.ensure_vector("resnet50", CATALOG_DIM)
    ids = [point_id(p["item_id"]) for p in payloads]
    store.write(PointBatch(ids, payloads, "resnet50", matrix))
    sync_ranks(store)  # as ingest leaves a store: every item's popularity ranked
    store.optimize()
    return payloads


def fake_networks(
    store: VectorStore, backbone: str, pixels: NDArray[np.uint8]
) -> NDArray[np.float32]:
    """FakeEmbedder as the network of every backbone: a search by photo over a store of
    fake vectors (engine.application.PhotoNetworks)."""
    return FakeEmbedder()(torch.from_numpy(np.ascontiguousarray(pixels)))


def shopper(gender: str, trendiness: float = 0.5) -> User:
    """User "u1" of this gender and trendiness, living at HOME."""
    return User("u1", gender, trendiness, HOME)


def buy(item_ids: Sequence[str]) -> list[Purchase]:
    """User u1's purchases of these items, one a day from 2025-01-01, in no shop."""
    return [
        Purchase("u1", item, datetime(2025, 1, 1 + n, tzinfo=UTC), None)
        for n, item in enumerate(item_ids)
    ]


# --- catalog items without photos: the shopper-world tests' catalog -------------------------

ITEM_CATEGORIES: Final = {"WOMEN": ["Dresses", "Skirts", "Tees_Tanks"], "MEN": ["Denim", "Suiting"]}


def catalog_items(products_per_category: int = 4, store_id: str | None = None) -> list[Item]:
    """Items of ITEM_CATEGORIES, 3 views per product (15 items per product per category)."""
    items, number = [], 0
    for gender, categories in ITEM_CATEGORIES.items():
        for category in categories:
            for _ in range(products_per_category):
                number += 1
                for view in ("1_front", "2_side", "3_back"):
                    item_id = f"{gender}-{category}-id_{number:08d}-01_{view}"
                    items.append(
                        Item(
                            item_id,
                            f"id_{number:08d}-01",
                            gender,
                            category,
                            view.split("_")[1],
                            Path(f"/{item_id}.jpg"),
                            None,
                            store_id,
                        )
                    )
    return items


def store_items(store: VectorStore, items: Sequence[Item]) -> None:
    """Write the items with their catalog payloads and seeded 4-d "resnet50" vectors."""
    store.ensure_vector("resnet50", 4)
    vectors = np.random.default_rng(0).random((len(items), 4), dtype=np.float32)
    store.write(
        PointBatch(
            [point_id(i.item_id) for i in items],
            [item_payload(i, True) for i in items],
            "resnet50",
            vectors,
        )
    )


def home_with_items(home: Path) -> None:
    """A fashionrec home whose embedded store holds catalog_items(2), written without a CNN."""
    store = EdgeStore(home / STORE_DIR)
    store_items(store, catalog_items(2))
    store.close()


# --- a fake embedder -------------------------------------------------------------------------

FAKE: Final = "fake"  # the vector name the pipeline tests store FakeEmbedder's vectors under


class FakeEmbedder:
    """A deterministic stand-in for a CNN that satisfies ingest.pipeline.Embedder.

    Each image becomes a constant 1 (so no row is ever zero), its mean colour per channel
    and the mean colour of each quarter of the image (16 numbers), cut or padded with
    zeros to `dim`, then scaled to unit length. Cheap enough for bookkeeping tests.
    """

    def __init__(self, dim: int = 16, weights_label: str = "fake") -> None:
        if dim < 1:
            raise ValueError("dim must be positive")
        self._dim, self._weights_label = dim, weights_label

    @property
    def dim(self) -> int:
        """Length of the embeddings."""
        return self._dim

    @property
    def weights_label(self) -> str:
        """What the payload records as the weights."""
        return self._weights_label

    @property
    def precision(self) -> str:
        """Always fp32."""
        return "fp32"

    @property
    def device(self) -> torch.device:
        """Always the CPU."""
        return torch.device("cpu")

    def __call__(self, images: torch.Tensor) -> NDArray[np.float32]:
        """A uint8 batch (N, 3, H, W) in, unit-length float32 rows (N, dim) out."""
        pixels = images.to(torch.float32) / 255.0
        pool = torch.nn.functional.adaptive_avg_pool2d
        features = torch.cat(
            [
                torch.ones((len(pixels), 1)),
                pool(pixels, 1).flatten(1),  # mean colour: 3
                pool(pixels, 2).flatten(1),  # mean colour of each quarter: 12
            ],
            dim=1,
        ).numpy()
        rows = np.zeros((len(pixels), self._dim), dtype=np.float32)
        kept = min(self._dim, features.shape[1])
        rows[:, :kept] = features[:, :kept]
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return rows


# --- the command line --------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    """How a fashionrec command ended: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def _environment(home: Path) -> dict[str, str | None]:
    """FASHIONREC_HOME set, no server URL, wide lines."""
    return {"FASHIONREC_HOME": str(home), "FASHIONREC_QDRANT_URL": None, "COLUMNS": "200"}


# typer's CliRunner builds the whole command tree from the app (≈70 ms) on every invoke: the
# tests build it once (click commands keep no state between invocations).
typer.testing._get_command = functools.cache(typer.testing._get_command)


def fashionrec(*args: str | Path, home: Path) -> CliResult:
    """Run `fashionrec ARGS` in this process (typer's CliRunner) with FASHIONREC_HOME=home.

    The app turns every FashionrecError into one line on stderr and exit code 1 itself, so
    the result reads as a subprocess's would; anything else it raises fails the test.
    """
    result = CliRunner().invoke(
        app, [str(a) for a in args], env=_environment(home), catch_exceptions=False
    )
    return CliResult(result.exit_code, result.stdout, result.stderr)


def fashionrec_subprocess(*args: str | Path, home: Path) -> CliResult:
    """Run `python -m cli.main ARGS` as a separate process with FASHIONREC_HOME=home."""
    env = {**os.environ, **{k: v for k, v in _environment(home).items() if v is not None}}
    env.pop("FASHIONREC_QDRANT_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


# --- a failing Qdrant server -------------------------------------------------------------

QUOTA_ERROR: Final = b'{"status":{"error":"Service internal error: disk quota exceeded"}}'


class FailingQdrant(BaseHTTPRequestHandler):
    """A Qdrant server whose every call fails: 500 "disk quota exceeded" (status, body).

    With has_collection set it still says that a collection exists, so that a ServerStore
    opens (and knows its collection) before every later call fails.
    """

    has_collection: ClassVar[bool] = False
    status: ClassVar[int] = 500
    body: ClassVar[bytes] = QUOTA_ERROR

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # read the request, so the client sees the answer
        path = self.path.split("?")[0]
        if self.has_collection and path.startswith("/collections/") and path.endswith("/exists"):
            status = 200
            body = json.dumps({"result": {"exists": True}, "status": "ok", "time": 0.0}).encode()
        else:
            status, body = self.status, self.body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        """Quiet."""


class FailingCollection(FailingQdrant):
    """A Qdrant server that has the collection, and fails every call but asking that."""

    has_collection = True


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on a free local port answering with `handler`; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- congruence of the two back-ends -------------------------------------------------------

Ranking = Sequence[Hit]


def as_hits(recommendations: Iterable[Recommendation]) -> list[Hit]:
    """A list of recommendations as a ranking: item id, relevance and the item's keyword fields."""
    return [
        Hit(
            r.item_id,
            r.relevance,
            {"product": r.product_id, "shop": r.store_id, "gender": r.gender},
        )
        for r in recommendations
    ]


def _close(a: float, b: float, rel: float, abs_: float) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def assert_same_ranking(
    first: Ranking, second: Ranking, rel: float = 1e-4, abs_: float = 1e-5
) -> None:
    """Two rankings agree: same length, the same id (and payload) at each rank, scores equal
    within the tolerance.

    Like qdrant-client's congruence tests, except that points whose scores tie may come
    in either order: inside a run of tied scores the ids must match as a set, and a run
    that reaches the end of the list may have been cut differently by the two engines.
    """
    assert len(first) == len(second), (len(first), len(second))
    for rank, (a, b) in enumerate(zip(first, second, strict=True)):
        assert _close(a.score, b.score, rel, abs_), f"rank {rank}: score {a.score} != {b.score}"
    start = 0
    while start < len(first):
        end = start + 1
        while end < len(first) and _close(first[end].score, first[start].score, rel, abs_):
            end += 1
        run_a, run_b = first[start:end], second[start:end]
        if end - start == 1:
            assert run_a[0].id == run_b[0].id, f"rank {start}: {run_a[0].id} != {run_b[0].id}"
            assert run_a[0].payload == run_b[0].payload, f"rank {start}: payloads differ"
        elif end < len(first):
            ours = {h.id: h.payload for h in run_a}
            theirs = {h.id: h.payload for h in run_b}
            assert ours == theirs, f"ranks {start}-{end - 1} (tied): {ours} != {theirs}"
        start = end


def assert_congruent(
    query: Callable[[VectorStore], Sequence[Ranking]],
    edge: VectorStore,
    memory: VectorStore,
    rel: float = 1e-4,
    abs_: float = 1e-5,
) -> int:
    """Run the same query on two stores holding the same points (Qdrant Edge, and
    qdrant-client's local mode) and compare every ranking it returns; the number of
    results compared."""
    ours, theirs = query(edge), query(memory)
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    for n, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        try:
            assert_same_ranking(a, b, rel, abs_)
        except AssertionError as exc:
            raise AssertionError(f"ranking {n}: {exc}") from None
    return sum(len(a) for a in ours)
