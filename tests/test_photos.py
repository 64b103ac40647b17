"""Search by photo on real photos: a catalog photo finds its own item first, and a resized,
cropped or re-encoded copy within the top 5; the same over HTTP; bad photos in one line."""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.application import Application
from engine.errors import FashionrecError, WeightsError
from engine.recommend.recommender import Params
from engine.settings import Settings
from engine.vocabulary.schema import point_id
from ingest.job import IngestJob
from ingest.options import IngestOptions
from ingest.photos import PhotoNetworks
from ingest.runs import Ingester, check_job
from serve.main import create_app
from tests.builders import fashionrec

with warnings.catch_warnings():  # starlette would rather have httpx2; httpx works the same
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SHARED = Path(__file__).parents[2] / "shared" / "data" / "fashion-products"
PHOTOS = 40  # of the real catalog, every 100th row

pytestmark = [
    pytest.mark.slow,  # a CNN embeds the photos
    pytest.mark.skipif(
        not SHARED.is_dir(), reason="the shared real catalog is not on this machine"
    ),
]


def _home(folder: Path, weights: str) -> tuple[Path, list[dict[str, str]]]:
    """A home of PHOTOS real photos embedded by MobileNetV2 (fp32, torch)."""
    with (SHARED / "labels.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[::100][:PHOTOS]
    manifest = folder / "catalog.csv"
    with manifest.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "gender", "category", "product_id"])
        for row in rows:
            writer.writerow(
                [SHARED / "images" / row["filename"], row["gender"], row["articleType"], row["id"]]
            )
    settings = Settings(home=folder / "home")
    job = IngestJob(
        path=manifest,
        backbones=("mobilenet_v2",),
        manifest=True,
        weights=weights,
        root=SHARED,
        runtime="torch",
        precision="fp32",
        options=IngestOptions(workers=0),
    ).validate()
    checked = check_job(settings, job)
    with Application.open(settings) as app:
        ingester = Ingester(app)
        try:
            embedders = ingester.embedders(job)
        except WeightsError as exc:
            pytest.skip(f"no ImageNet weights on this machine (`make weights`): {exc}")
        outcome = ingester.run(checked, embedders, folder / "report.csv")
    assert outcome.summary.ingested == len(rows)
    return settings.home, rows


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[dict[str, str]]]]:
    yield _home(tmp_path_factory.mktemp("photos"), "imagenet")


def _copies(path: Path) -> dict[str, bytes]:
    """The photo as a shopper might send it: resized, cropped, re-encoded."""
    with Image.open(path) as image:
        picture = image.convert("RGB")
    w, h = picture.size
    made = {
        "half size": picture.resize((w // 2, h // 2)),
        "cropped 10 %": picture.crop((w // 20, h // 20, w - w // 20, h - h // 20)),
        "JPEG quality 30": picture,
    }
    out = {}
    for name, copy in made.items():
        buffer = io.BytesIO()
        copy.save(buffer, "JPEG", quality=30 if "quality" in name else 92)
        out[name] = buffer.getvalue()
    return out


def test_a_catalog_photo_finds_its_item_and_a_copy_the_top_5(
    real: tuple[Path, list[dict[str, str]]],
) -> None:
    home, rows = real
    with Application.open(Settings(home=home), networks=PhotoNetworks()) as app:
        for row in rows[::4]:
            photo = SHARED / "images" / row["filename"]
            found = app.search_photo(photo, Params(k=5), "the photo").lists[0].recommendations
            first = found[0]
            assert first.item_id == row["id"] or first.visual == pytest.approx(1.0), row["id"]
            for name, copy in _copies(photo).items():
                lists = app.search_photo(copy, Params(k=5), name).lists
                listed = [r.item_id for r in lists[0].recommendations]
                assert row["id"] in listed, (row["id"], name)


def test_search_over_http_is_recommend_image(
    real: tuple[Path, list[dict[str, str]]], tmp_path: Path
) -> None:
    home, rows = real
    photo = SHARED / "images" / rows[3]["filename"]
    cli = fashionrec("recommend", "--image", photo, "-k", "4", "--json", home=home)
    assert cli.returncode == 0, cli.stderr
    with TestClient(create_app(Settings(home=home), api_key="")) as client:
        answer = client.post(
            "/search",
            params={"k": 4},
            content=photo.read_bytes(),
            headers={"content-type": "image/jpeg"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["lists"][0]["recommendations"][0]["item_id"] == rows[3]["id"]
        assert body == json.loads(cli.stdout)
        wrong_type = client.post("/search", content=b"x", headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415
        garbage = client.post(
            "/search", content=b"not a photo", headers={"content-type": "image/png"}
        )
        assert garbage.status_code == 422 and "not an image" in garbage.json()["error"]
        assert "object at 0x" not in garbage.json()["error"]  # no Python object's name
        assert garbage.json()["error"] == (
            "the uploaded photo: not an image this tool can read (JPEG, PNG, WebP, …); send a "
            "JPEG or PNG photo"
        )
    missing = fashionrec("recommend", "--image", tmp_path / "none.jpg", home=home)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_a_photo_is_embedded_as_its_item_was(tmp_path: Path) -> None:
    """The recipe on random-init weights (no ImageNet needed): a catalog photo's query
    vector is its stored vector (same network, pooling, runtime, precision, framing)."""
    home, rows = _home(tmp_path, "random")
    with Application.open(Settings(home=home), networks=PhotoNetworks()) as app:
        photo = SHARED / "images" / rows[0]["filename"]
        vector = app.photo_vector(photo, "mobilenet_v2", "the photo")
        stored = app.store.retrieve([point_id(rows[0]["id"])], vector="mobilenet_v2")[0].vector
        with pytest.raises(FashionrecError, match="not an image"):
            app.search_photo(b"nothing", Params(), "the upload")
        with pytest.raises(FashionrecError, match="no resnet50 vectors"):
            app.photo_vector(photo, "resnet50", "the photo")
    assert stored is not None
    assert float(np.dot(vector, stored)) == pytest.approx(1.0, abs=1e-5)
