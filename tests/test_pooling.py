"""Pooling of the last convolutional map: GeM against average pooling, the avg path equal to
the networks' own forward, VGG16 refused, the payload's record, no mixing within a space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.catalog.sources import open_catalog
from engine.errors import ConfigError
from engine.vectorstore.base import Filter, VectorStore
from engine.vocabulary.schema import point_id, pooling_field
from ingest.democatalog import DemoCatalog
from ingest.embedder import Embedder
from ingest.job import IngestJob
from ingest.loading import load_network
from ingest.networks import Pooled, embedding, gem, trunk
from ingest.options import IngestOptions, pooling_for, stored_poolings
from ingest.pipeline import ingest
from serve.models import IngestIn
from tests.builders import FAKE, FakeEmbedder, copy_catalog, fashionrec, home_with_items

OPTIONS = IngestOptions(batch_size=8, workers=0)


class GemFake(FakeEmbedder):
    """FakeEmbedder that says it pools by generalised mean."""

    pooling = "gem"


def _maps(seed: int = 0, shape: tuple[int, ...] = (2, 8, 5, 7)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 4


# --- the pooling itself ----------------------------------------------------------------------


def test_gem_of_a_constant_map_is_the_constant() -> None:
    maps = torch.full((2, 3, 7, 7), 2.5)
    np.testing.assert_allclose(gem(maps).numpy(), 2.5, rtol=1e-6)
    assert gem(torch.zeros(1, 4, 3, 3)).allclose(torch.full((1, 4), 1e-6))  # clamped, not NaN


def test_gem_with_p_1_is_average_pooling() -> None:
    maps = _maps()
    average = torch.nn.functional.adaptive_avg_pool2d(maps, 1).flatten(1)
    np.testing.assert_allclose(gem(maps, p=1.0).numpy(), average.numpy(), rtol=1e-6)
    assert (gem(maps) >= average - 1e-6).all()  # power mean inequality: p = 3 ≥ p = 1
    assert (gem(maps) <= maps.amax(dim=(-2, -1)) + 1e-6).all()


def test_gem_runs_in_float32_under_bf16_autocast() -> None:
    maps = _maps()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = gem(maps.bfloat16())
    assert pooled.dtype == torch.float32
    np.testing.assert_allclose(pooled.numpy(), gem(maps.bfloat16().float()).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "mobilenet_v2"])
def test_average_pooling_is_exactly_the_networks_own_forward(name: str) -> None:
    model = load_network(name, "random").model  # today's embedding: the head removed
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(x)
        pooled = embedding(name, model, "avg").eval()
        assert isinstance(pooled, Pooled)
        torch.testing.assert_close(pooled(x), expected, rtol=0, atol=0)
        maps = trunk(name, model)(x)
        assert maps.ndim == 4 and maps.shape[1] == expected.shape[1]
        torch.testing.assert_close(embedding(name, model, "gem")(x), gem(maps))


def test_the_embedder_pools_as_asked() -> None:
    batch = torch.randint(0, 256, (2, 3, 96, 96), generator=torch.Generator().manual_seed(2))
    batch = batch.to(torch.uint8)
    avg = Embedder("mobilenet_v2", "random", device="cpu", precision="fp32", runtime="torch")
    gem_ = Embedder(
        "mobilenet_v2", "random", device="cpu", precision="fp32", runtime="torch", pooling="gem"
    )
    assert (avg.pooling, gem_.pooling, gem_.dim) == ("avg", "gem", 1280)
    model = load_network("mobilenet_v2", "random").model
    with torch.inference_mode():
        x = (batch.float() / 255 - avg._mean) / avg._std
        today = torch.nn.functional.normalize(model(x), dim=1).numpy()
        maps = trunk("mobilenet_v2", model)(x)
        generalised = torch.nn.functional.normalize(gem(maps), dim=1).numpy()
    np.testing.assert_allclose(avg(batch), today, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gem_(batch), generalised, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(gem_(batch), axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(gem_(batch), avg(batch))


# --- refusals ----------------------------------------------------------------------------------


def test_vgg16_with_gem_is_refused_before_any_weights_are_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Embedder(
            "vgg16", tmp_path / "no-such-weights.pth", device="cpu", pooling="gem", runtime="torch"
        )
    message = str(info.value)
    assert "fc7" in message and "--pooling avg" in message and "\n" not in message
    with pytest.raises(ConfigError, match="fc7"):
        IngestJob(tmp_path, backbones=("resnet50", "vgg16"), pooling="gem").validate()
    with pytest.raises(ConfigError, match="--pooling must be one of auto, avg, gem, got 'max'"):
        IngestJob(tmp_path, pooling="max").validate()  # type: ignore[arg-type]
    IngestJob(tmp_path, backbones=("vgg16",), pooling="avg").validate()


def test_the_command_line_refuses_vgg16_with_gem(tmp_path: Path) -> None:
    result = fashionrec(
        "ingest", tmp_path, "--backbone", "vgg16", "--pooling", "gem", home=tmp_path / "h"
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "fc7" in lines[0], result.stderr


# --- the store -------------------------------------------------------------------------------


def test_the_payload_records_the_pooling(
    small_catalog: DemoCatalog, store: VectorStore, tmp_path: Path
) -> None:
    part = copy_catalog(small_catalog, tmp_path / "part", limit=3)
    ingest(open_catalog(part.images), store, {FAKE: GemFake(), "plain": FakeEmbedder()}, OPTIONS)
    for record in store.retrieve([point_id(p.stem) for p in part.images.iterdir()]):
        assert record.payload[pooling_field(FAKE)] == "gem"
        assert record.payload[pooling_field("plain")] == "avg"  # no pooling said: avg
    assert stored_poolings(store, FAKE) == {"gem": 3}
    assert stored_poolings(store, "plain") == {"avg": 3}
    assert stored_poolings(store, "absent") == {}


def test_mixing_poolings_in_one_space_is_refused_with_nothing_written(
    small_catalog: DemoCatalog, store: VectorStore, tmp_path: Path
) -> None:
    first = copy_catalog(small_catalog, tmp_path / "first", limit=3)
    ingest(open_catalog(first.images), store, {FAKE: FakeEmbedder()}, OPTIONS)
    everything = open_catalog(small_catalog.images)
    with pytest.raises(ConfigError) as info:
        ingest(everything, store, {"other": GemFake(), FAKE: GemFake()}, OPTIONS)
    message = str(info.value)
    assert "3 avg-pooled fake vectors" in message and "--pooling gem" in message
    assert "--pooling avg" in message and "--home" in message and "\n" not in message
    assert store.count() == 3 and "other" not in store.vector_dims()  # nothing written
    more = ingest(everything, store, {FAKE: FakeEmbedder()}, OPTIONS)  # the same pooling: fine
    assert (more.ingested, more.already) == (20, 3)
    assert store.count(Filter(equals={pooling_field(FAKE): "avg"})) == 23


def test_auto_pools_as_the_store_does_else_by_gem(
    small_catalog: DemoCatalog, store: VectorStore, tmp_path: Path
) -> None:
    """The default: a new space is GeM-pooled (vgg16's fc7: avg), an existing one keeps
    its pooling, so a rerun never trips over the refusal to mix."""
    assert IngestJob(tmp_path).pooling == "auto"
    assert pooling_for(store, "resnet50", "auto") == "gem"
    assert pooling_for(store, "vgg16", "auto") == "avg"
    assert pooling_for(store, "resnet50", "avg") == "avg"
    first = copy_catalog(small_catalog, tmp_path / "first", limit=3)
    ingest(open_catalog(first.images), store, {FAKE: FakeEmbedder()}, OPTIONS)  # avg
    assert pooling_for(store, FAKE, "auto") == "avg"
    with pytest.raises(ConfigError, match="fc7"):
        pooling_for(store, "vgg16", "gem")


def test_points_without_a_pooling_field_are_average_pooled(tmp_path: Path) -> None:
    """A store ingested before the pooling was recorded: the points count as avg, `info`
    shows it, and a GeM ingest into it stops with one line."""
    home = tmp_path / "home"
    home_with_items(home)  # resnet50 points with no pooling field
    info = fashionrec("info", home=home)
    assert info.returncode == 0, info.stderr
    assert "pooling" in info.stdout and "│ avg" in info.stdout
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "WOMEN-Dresses-id_00000001-01_1_front.jpg").write_bytes(b"")
    result = fashionrec(
        "ingest", catalog, "--pooling", "gem", "--weights", "random", "--device", "cpu",
        "--workers", "0", "--runtime", "torch", home=home,
    )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "30 avg-pooled resnet50 vectors" in errors[0], result.stderr
    assert "--pooling gem" in errors[0] and "--pooling avg" in errors[0]
    assert "--home" in errors[0] and "Traceback" not in result.stderr


# --- the job, as the command line and the service pass it -----------------------------------


def test_ingest_job_json_round_trip(tmp_path: Path) -> None:
    job = IngestJob(tmp_path, backbones=("resnet50", "mobilenet_v2"), pooling="gem").validate()
    data = job.to_json()
    assert data["pooling"] == "gem"
    assert IngestJob.from_json(data) == job
    del data["pooling"]  # a job written before the pooling was a choice: as the store pools
    assert IngestJob.from_json(data).pooling == "auto"
    body = IngestIn(path=str(tmp_path), backbones=["resnet50"], pooling="gem")
    assert IngestJob.from_json(body.model_dump()).pooling == "gem"
    assert IngestJob.from_json(IngestIn(path=str(tmp_path)).model_dump()).pooling == "auto"
    with pytest.raises(ConfigError, match="fc7"):
        IngestJob.from_json(IngestIn(path="x", backbones=["vgg16"], pooling="gem").model_dump())
