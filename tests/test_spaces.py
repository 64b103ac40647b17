"""Compact spaces: the projection's statistics, search in a space against the exact reference,
`compact fit` resumable and refusing bad input, new items projected, the default space,
snapshots, export and load."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.events.eventlog import EventLog
from engine.recommend.recommender import Params, Recommender
from engine.settings import EVENT_LOG, STORE_DIR, Settings
from engine.snapshot import create, restore
from engine.spaces import build
from engine.spaces.build import fill, make_space, pending, plan_fit
from engine.spaces.projection import fit
from engine.spaces.registry import (
    FitRequest,
    default_space,
    list_spaces,
    load_space,
    space_in_force,
    spaces_dir,
)
from engine.vectorstore.base import Filter, PointBatch, VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.exact import ExactIndex
from engine.vocabulary.backbones import is_compact, source_of, space_name
from engine.vocabulary.schema import HIT_FIELDS, ITEM_ID, point_id, weights_field
from ingest.democatalog import DemoCatalog
from ingest.job import IngestJob, check, run
from ingest.pipeline import item_payload
from tests.builders import (
    CliResult,
    FakeEmbedder,
    as_hits,
    assert_same_ranking,
    build_catalog,
    buy,
    catalog_items,
    copy_catalog,
    fashionrec,
    shopper,
)

with warnings.catch_warnings():  # starlette would rather have httpx2; httpx works the same
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SPACE: Final = "resnet50-pca8"  # of build_catalog's 48-d "resnet50" vectors
REQUEST: Final = FitRequest(whiten=False, shrinkage=0.0, sample=20_000, seed=0)


def _space(store: VectorStore, home: Path, dim: int = 8, request: FitRequest = REQUEST) -> Any:
    """Fit a space of the store's resnet50 vectors and write every item's vector."""
    space = make_space(store, home, plan_fit(store, home, "resnet50", dim, request))
    fill(store, space)
    return space


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home whose embedded store holds build_catalog (414 items, 48-d resnet50)."""
    home = tmp_path / "home"
    store = EdgeStore(home / STORE_DIR)
    build_catalog(store)
    store.close()
    return home


def _fit(home: Path, *more: str, backbone: str = "resnet50", ok: bool = True) -> CliResult:
    """`compact fit --backbone BACKBONE --dim 8 MORE`; must succeed unless ok is False."""
    done = fashionrec("compact", "fit", "--backbone", backbone, "--dim", "8", *more, home=home)
    assert done.returncode == 0 or not ok, done.stderr
    return done


def _open(home: Path) -> EdgeStore:
    return EdgeStore(home / STORE_DIR)


def _error_line(result: Any) -> str:
    """The one error line of a failed command."""
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- names and the projection --------------------------------------------------------------


def test_names_say_which_backbone_a_space_derives_from() -> None:
    assert space_name("resnet50", 512) == "resnet50-pca512"
    assert is_compact("resnet50-pca512") and is_compact("mobilenet_v2-pca64")
    assert not is_compact("resnet50") and not is_compact("resnet50-pca0")
    assert not is_compact("unknown-pca8") and not is_compact("resnet50-pcax")
    assert source_of("densenet121-pca128") == "densenet121" and source_of("vgg16") == "vgg16"


@pytest.mark.parametrize("shrinkage", [0.0, 0.5])
def test_training_vectors_project_to_zero_mean_and_whitened_unit_covariance(
    shrinkage: float,
) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 40)) @ rng.normal(size=(40, 40)) + rng.normal(size=40) * 5
    for whiten in (False, True):
        p = fit("resnet50", x, 12, whiten=whiten, shrinkage=shrinkage)
        raw = ((x - p.mean) @ p.axes.T) * p.scale  # before the projection's normalisation
        assert np.allclose(raw.mean(axis=0), 0.0, atol=1e-9)
        covariance = np.cov(raw, rowvar=False)
        assert np.allclose(covariance, np.diag(np.diag(covariance)), atol=1e-8)  # decorrelated
        if not whiten:
            expected = p.variances
        else:  # each variance divided by itself plus the shrinkage's share of the mean one
            mean_variance = np.trace(np.cov(x, rowvar=False)) / x.shape[1]
            expected = p.variances / (p.variances + shrinkage * mean_variance)
        assert np.allclose(np.diag(covariance), expected)
        if whiten and shrinkage == 0:
            assert np.allclose(covariance, np.eye(12), atol=1e-8)
        rows = p(x)
        assert rows.shape == (600, 12) and np.allclose(np.linalg.norm(rows, axis=1), 1.0)


# --- search in a space ---------------------------------------------------------------------


def test_a_space_ranks_as_an_exact_search_of_the_projected_vectors(
    store: VectorStore, tmp_path: Path
) -> None:
    payloads = build_catalog(store)
    space = _space(store, tmp_path)
    assert store.vector_dims()[SPACE] == 8
    assert store.count(Filter(has_vector=SPACE)) == len(payloads)
    assert store.provenance(SPACE) == {space.tag: len(payloads)}
    records = list(store.scroll(HIT_FIELDS, Filter(has_vector="resnet50"), vector="resnet50"))
    projected = space.projection(np.asarray([r.vector for r in records]))
    exact = ExactIndex([r.id for r in records], projected, [r.payload for r in records])
    engine = Recommender(store)
    reference = Recommender(store, searcher=exact.search)
    rng = np.random.default_rng(2)
    for rerank in ("client", "server"):
        params = Params(space=SPACE, k=5, candidates=30, rerank=rerank)
        for index in rng.choice(len(payloads), 15, replace=False):
            item = payloads[index]["item_id"]
            got, want = engine.for_item(item, params), reference.for_item(item, params)
            assert_same_ranking(as_hits(got), as_hits(want), rel=1e-3, abs_=1e-4)
        bought = [p["item_id"] for p in payloads if p["gender"] == "WOMEN"][::30][:4]
        got_user = engine.for_user(shopper("WOMEN"), buy(bought), params)
        want_user = reference.for_user(shopper("WOMEN"), buy(bought), params)
        assert_same_ranking(as_hits(got_user.merged), as_hits(want_user.merged), 1e-3, 1e-4)


# --- compact fit -----------------------------------------------------------------------------


class Writes:
    """Counts the compact vectors EdgeStore.add_vectors writes per item; raises
    KeyboardInterrupt after `stop_after` pages when set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None) -> None:
        self.per_item: dict[str, int] = {}
        self.pages = 0
        self.stop_after = stop_after
        original = EdgeStore.add_vectors

        def counting(store: EdgeStore, batch: PointBatch) -> None:
            if is_compact(batch.vector_name):
                if self.stop_after is not None and self.pages >= self.stop_after:
                    raise KeyboardInterrupt
                original(store, batch)
                self.pages += 1
                for pid in batch.ids:
                    self.per_item[pid] = self.per_item.get(pid, 0) + 1
            else:
                original(store, batch)

        monkeypatch.setattr(EdgeStore, "add_vectors", counting)


def test_an_interrupted_fit_run_again_writes_each_item_once(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "PAGE", 50)
    writes = Writes(monkeypatch, stop_after=1)
    args = ("compact", "fit", "--backbone", "resnet50", "--dim", "8", "--sample", "300")
    stopped = fashionrec(*args, home=home)
    assert stopped.returncode == 130
    assert "run the same command again to resume" in stopped.stderr
    assert sum(writes.per_item.values()) == 50
    space = load_space(home, SPACE)
    assert space is not None
    tag = space.tag

    writes.stop_after = None
    done = fashionrec(*args, home=home)
    assert done.returncode == 0, done.stderr
    assert (
        "resuming resnet50-pca8" in done.stdout and "wrote 364 · already written 50" in done.stdout
    )
    assert len(writes.per_item) == 414 and set(writes.per_item.values()) == {1}
    resumed = load_space(home, SPACE)
    assert resumed is not None and resumed.tag == tag  # the same projection
    again = fashionrec(*args, home=home)
    assert again.returncode == 0 and "wrote 0 · already written 414" in again.stdout
    assert set(writes.per_item.values()) == {1}
    store = _open(home)
    assert store.provenance(SPACE) == {tag: 414}
    store.close()


def test_other_settings_for_a_space_need_replace_which_rewrites_every_item(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fit(home)
    first = load_space(home, SPACE)
    assert first is not None
    writes = Writes(monkeypatch)
    line = _error_line(_fit(home, "--whiten", ok=False))
    assert "resnet50-pca8 exists" in line and "--replace" in line
    unchanged = load_space(home, SPACE)
    assert unchanged is not None and unchanged.tag == first.tag and not writes.per_item
    _fit(home, "--whiten", "--replace")
    space = load_space(home, SPACE)
    assert space is not None and space.projection.whiten and space.tag != first.tag
    assert len(writes.per_item) == 414 and set(writes.per_item.values()) == {1}
    store = _open(home)
    assert store.provenance(SPACE) == {space.tag: 414}
    store.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--backbone", "resnet5", "--dim", "8"), "unknown backbone 'resnet5' (did you mean"),
        (("--backbone", "vgg16", "--dim", "8"), "the store has no vgg16 vectors"),
        (("--backbone", "resnet50", "--dim", "48"), "--dim must be between 1 and 47"),
        (("--backbone", "resnet50", "--dim", "0"), "--dim must be between 1 and 47"),
        (("--backbone", "resnet50", "--dim", "8", "--sample", "8"), "needs more than 8 vectors"),
        (("--backbone", "resnet50", "--dim", "8", "--shrinkage", "0.1"), "add --whiten"),
        (("--backbone", "resnet50", "--dim", "8", "--whiten", "--shrinkage", "-1"), "≥ 0"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    home: Path, args: tuple[str, ...], says: str
) -> None:
    line = _error_line(fashionrec("compact", "fit", *args, home=home))
    assert says in line
    assert not spaces_dir(home).exists()
    store = _open(home)
    assert store.vector_dims() == {"resnet50": 48}
    store.close()


def test_an_empty_store_is_refused_and_left_empty(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    line = _error_line(_fit(home, ok=False))
    assert "is empty" in line and not home.exists()


# --- items added later -----------------------------------------------------------------------


def test_items_ingested_after_the_fit_get_the_compact_vector(
    small_catalog: DemoCatalog, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    first = copy_catalog(small_catalog, tmp_path / "first", limit=12)
    store, log = EdgeStore(home / STORE_DIR), EventLog(home / EVENT_LOG)
    embedders = {"resnet50": FakeEmbedder(16)}

    def ingest(path: Path, masks: Path) -> Any:
        checked = check(IngestJob(path, masks=masks).validate(), None, set())
        return run(checked, store, log, embedders, tmp_path / "report.csv", home=home)

    try:
        ingest(first.images, first.masks)
        space = _space(store, home, dim=4)
        assert store.count(Filter(has_vector="resnet50-pca4")) == 12
        outcome = ingest(small_catalog.images, small_catalog.masks)
        assert outcome.summary.vectors == {"resnet50": 11, "resnet50-pca4": 11}
        assert store.provenance("resnet50-pca4") == {space.tag: 23}
        source = {r.id: r.vector for r in store.scroll([], vector="resnet50")}
        compact = {r.id: r.vector for r in store.scroll([], vector="resnet50-pca4")}
        ids = sorted(source)
        want = space.projection(np.asarray([source[i] for i in ids]))
        assert np.allclose(np.asarray([compact[i] for i in ids]), want, atol=1e-5)
        assert pending(store, space) == []
    finally:
        log.close()
        store.close()


# --- the command line: querying, the default space, list and info ----------------------------


def _recommend(home: Path, *args: str) -> dict[str, Any]:
    done = fashionrec("recommend", "--item", FIRST, "-k", "5", "--json", *args, home=home)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


FIRST: Final = "WOMEN-Blouses_Shirts-id_00000001-01_front"  # an item of build_catalog


def test_recommend_searches_a_space_named_with_backbone(home: Path) -> None:
    _fit(home)
    document = _recommend(home, "--backbone", SPACE)
    space = load_space(home, SPACE)
    assert space is not None
    assert document["vectors"]["space"] == SPACE
    assert document["vectors"]["weights"] == {space.tag: 414}
    assert document["vectors"]["source"] == {"backbone": "resnet50", "weights": {}}
    store = _open(home)
    want = Recommender(store).for_item(FIRST, Params(space=SPACE, k=5))
    store.close()
    got = [r["item_id"] for r in document["lists"][0]["recommendations"]]
    assert got == [r.item_id for r in want]
    server = _recommend(home, "--backbone", SPACE, "--rerank", "server")
    assert [r["item_id"] for r in server["lists"][0]["recommendations"]] == got
    table = fashionrec("recommend", "--item", FIRST, "--backbone", SPACE, home=home)
    assert table.returncode == 0 and f"{SPACE} vectors: {space.tag} (resnet50" in table.stdout
    line = _error_line(
        fashionrec("recommend", "--item", FIRST, "--backbone", "resnet50-pca9", home=home)
    )
    assert (
        "no compact space resnet50-pca9" in line
        and "compact fit --backbone resnet50 --dim 9" in line
    )


def test_the_store_default_space_is_searched_unless_backbone_is_given(home: Path) -> None:
    assert _recommend(home)["vectors"]["space"] == "resnet50"
    _fit(home)
    done = fashionrec("compact", "default", SPACE, home=home)
    assert done.returncode == 0 and f"queries now search {SPACE}" in done.stdout
    assert default_space(home) == SPACE and space_in_force(home, None) == SPACE
    assert _recommend(home)["vectors"]["space"] == SPACE
    assert _recommend(home, "--backbone", "resnet50")["vectors"]["space"] == "resnet50"
    listed = fashionrec("compact", "list", home=home)
    assert listed.returncode == 0 and f"{SPACE} *" in listed.stdout and "414/414" in listed.stdout
    info = fashionrec("info", home=home)
    assert f"compact space {SPACE} (default): PCA of resnet50 to 8 dims" in info.stdout
    assert f"queries search {SPACE}" in info.stdout
    back = fashionrec("compact", "default", "resnet50", home=home)
    assert back.returncode == 0 and default_space(home) is None
    assert _recommend(home)["vectors"]["space"] == "resnet50"
    assert "unknown space" in _error_line(fashionrec("compact", "default", "nope", home=home))
    assert "no vgg16 vectors" in _error_line(fashionrec("compact", "default", "vgg16", home=home))


def test_an_unfinished_space_cannot_become_the_default(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "PAGE", 100)
    Writes(monkeypatch, stop_after=1)
    assert _fit(home, ok=False).returncode == 130
    line = _error_line(fashionrec("compact", "default", SPACE, home=home))
    assert "314 item(s) lack resnet50-pca8 vectors" in line and default_space(home) is None


def test_the_service_searches_the_default_space(home: Path) -> None:
    from serve.main import create_app

    _fit(home)
    assert fashionrec("compact", "default", SPACE, home=home).returncode == 0
    with TestClient(create_app(Settings(home=home), api_key="")) as client:
        assert client.get("/catalog").json()["default_space"] == SPACE
        similar = client.get(f"/items/{FIRST}/similar", params={"k": 3}).json()
        assert similar["vectors"]["space"] == SPACE
        assert similar["vectors"]["source"]["backbone"] == "resnet50"
        raw = client.get(f"/items/{FIRST}/similar", params={"k": 3, "space": "resnet50"})
        assert raw.json()["vectors"]["space"] == "resnet50"
        missing = client.get(f"/items/{FIRST}/similar", params={"space": "resnet50-pca9"})
        assert missing.status_code == 404 and "no compact space" in missing.json()["error"]


def test_evaluate_accepts_a_space_and_names_a_missing_one(home: Path, tmp_path: Path) -> None:
    line = _error_line(
        fashionrec("evaluate", "--backbones", "resnet50-pca8", "--users", "3", home=home)
    )
    assert "no compact space resnet50-pca8" in line
    _fit(home)
    done = fashionrec(
        "evaluate", "--backbones", f"resnet50,{SPACE}", "--users", "3", "--max-purchases", "2",
        "--no-diversity-sweep", "--out", tmp_path / "results", "--name", "run", home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "results" / "run" / "metrics.json").read_text())
    assert SPACE in json.dumps(metrics)


# --- snapshots, export and load ---------------------------------------------------------------


@pytest.mark.slow
def test_a_snapshot_round_trip_keeps_the_space_and_the_default(home: Path, tmp_path: Path) -> None:
    _fit(home)
    assert fashionrec("compact", "default", SPACE, home=home).returncode == 0
    space = load_space(home, SPACE)
    assert space is not None
    manifest = create(home, tmp_path / "backup.tar.gz")
    assert manifest["spaces"] == [SPACE]
    other = tmp_path / "restored"
    restore(tmp_path / "backup.tar.gz", other)
    assert [s.tag for s in list_spaces(other)] == [space.tag]
    assert default_space(other) == SPACE
    store = _open(other)
    assert store.provenance(SPACE) == {space.tag: 414}
    store.close()
    assert "wrote 0 · already written 414" in _fit(other).stdout  # the same projection
    assert _recommend(other)["vectors"]["space"] == SPACE


@pytest.mark.slow
def test_a_snapshot_whose_spaces_differ_from_its_manifest_is_refused(
    home: Path, tmp_path: Path
) -> None:
    import tarfile

    _fit(home)
    create(home, tmp_path / "backup.tar.gz")
    with tarfile.open(tmp_path / "backup.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (tmp_path / "unpacked" / "spaces" / f"{SPACE}.npz").unlink()
    with tarfile.open(tmp_path / "damaged.tar.gz", "w:gz") as tar:
        for name in ("manifest.json", "store", "events.sqlite", "spaces"):
            if (tmp_path / "unpacked" / name).exists():
                tar.add(tmp_path / "unpacked" / name, arcname=name)
    with pytest.raises(Exception, match="do not match its manifest"):
        restore(tmp_path / "damaged.tar.gz", tmp_path / "other")


def _home_with_densenet(home: Path, count: int = 45) -> None:
    """A home whose store holds catalog items with random densenet121 vectors of the size
    `ingest --vectors` checks (1024)."""
    items = catalog_items(3)[:count]
    vectors = np.random.default_rng(5).normal(size=(len(items), 1024)).astype(np.float32)
    store = EdgeStore(home / STORE_DIR)
    store.ensure_vector("densenet121", 1024)
    ids = [point_id(i.item_id) for i in items]
    payloads = [{**item_payload(i, True), weights_field("densenet121"): "random"} for i in items]
    store.write(PointBatch(ids, payloads, "densenet121", vectors))
    store.close()


def _split(export: Path, at: int, into: tuple[Path, Path]) -> None:
    """An export's vectors and payloads as two exports, of the first `at` items and the rest."""
    vectors = np.load(export / "vectors.npy")
    lines = (export / "payloads.jsonl").read_text().splitlines(keepends=True)
    for folder, part in zip(into, (slice(None, at), slice(at, None)), strict=True):
        folder.mkdir()
        np.save(folder / "vectors.npy", vectors[part])
        (folder / "payloads.jsonl").write_text("".join(lines[part]))


def _load(home: Path, folder: Path) -> CliResult:
    """`ingest --vectors --payloads` of an export's files."""
    return fashionrec(
        "ingest", "--backbone", "densenet121", "--vectors", folder / "vectors.npy",
        "--payloads", folder / "payloads.jsonl", home=home,
    )  # fmt: skip


def test_export_and_load_work_beside_spaces_and_loaded_items_are_projected(
    tmp_path: Path,
) -> None:
    space_name_ = "densenet121-pca8"
    source = tmp_path / "source"
    _home_with_densenet(source)
    _fit(source, backbone="densenet121")
    out = tmp_path / "out"
    exported = fashionrec("export", "--backbone", "densenet121", "--out", out, home=source)
    assert exported.returncode == 0, exported.stderr
    payloads = [json.loads(line) for line in (out / "payloads.jsonl").read_text().splitlines()]
    assert len(payloads) == 45 and not any(weights_field(space_name_) in p for p in payloads)
    compact = fashionrec("export", "--backbone", space_name_, "--out", tmp_path / "c", home=source)
    assert compact.returncode == 0 and np.load(tmp_path / "c" / "vectors.npy").shape == (45, 8)

    target, first, second = tmp_path / "target", tmp_path / "first", tmp_path / "second"
    _split(out, 20, (first, second))
    assert _load(target, first).returncode == 0
    shutil.copytree(spaces_dir(source), spaces_dir(target))  # the projection travels too
    assert "wrote 20 · already written 0" in _fit(target, backbone="densenet121").stdout
    more = _load(target, second)
    assert more.returncode == 0 and f"25 item(s) projected into {space_name_}" in more.stdout
    space = load_space(target, space_name_)
    assert space is not None
    store = _open(target)
    assert store.provenance(space_name_) == {space.tag: 45}
    held = {r.payload[ITEM_ID] for r in store.scroll([ITEM_ID], Filter(has_vector=space_name_))}
    assert held == {p[ITEM_ID] for p in payloads}
    store.close()


def test_a_projection_file_that_is_not_one_is_named(home: Path) -> None:
    _fit(home)
    (spaces_dir(home) / f"{SPACE}.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=f"{SPACE}.npz"):
        list_spaces(home)


def test_a_store_without_resnet50_is_queried_in_its_own_space(tmp_path: Path) -> None:
    from engine.spaces.registry import space_in_force

    assert space_in_force(tmp_path, None, {"mobilenet_v2": 1280}) == "mobilenet_v2"
    assert space_in_force(tmp_path, None, {"mobilenet_v2": 1280, "resnet50": 2048}) == "resnet50"
    assert space_in_force(tmp_path, None) == "resnet50"  # an empty store: the default
    assert space_in_force(tmp_path, "vgg16", {"mobilenet_v2": 1280}) == "vgg16"
