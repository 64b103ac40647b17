"""One ranking query for every face (engine/recommend/query.py): the command line's options,
the service's query parameters and the page's controls are its fields, and a mistake reads
the same in each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cli.ranking import flag
from engine.errors import ConfigError
from engine.recommend.query import RankingQuery
from engine.settings import Settings
from serve.main import create_app
from tests.builders import ROOT, fashionrec

FIELDS = [name for name in RankingQuery.model_fields if name != "backbone"]


def test_every_field_is_an_option_of_recommend(tmp_path: Path) -> None:
    shown = fashionrec("recommend", "--help", home=tmp_path).stdout
    for name in FIELDS:
        assert flag(name) in shown, name
    evaluated = fashionrec("evaluate", "--help", home=tmp_path).stdout
    assert "--w-visual" in evaluated and "--max-km" not in evaluated  # its own part only


def test_every_field_is_a_query_parameter_of_the_service(tmp_path: Path) -> None:
    paths = create_app(Settings(home=tmp_path), api_key="").openapi()["paths"]
    for path in ("/items/{item_id}/similar", "/users/{user_id}/recommendations", "/search"):
        operation = paths[path].get("get") or paths[path]["post"]
        named = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert set(FIELDS) <= named, (path, set(FIELDS) - named)


def test_the_page_asks_only_for_fields_of_the_query() -> None:
    script = "".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "serve" / "static").glob("*.js")
    )
    asked = set(re.findall(r'q\.set\("([a-z_]+)"', script))
    assert asked and asked <= set(FIELDS), asked - set(FIELDS)


def test_a_user_query_refuses_what_only_an_item_takes() -> None:
    with pytest.raises(ConfigError, match="trendiness, lat, lon are for item and photo queries"):
        RankingQuery(trendiness=0.3, lat=48.0, lon=2.0).for_user()
    with pytest.raises(ConfigError, match="--trendiness, --at are for item and photo queries"):
        RankingQuery(trendiness=0.3, lat=48.0, lon=2.0).for_user(named=flag)
    assert RankingQuery(k=3).for_user().k == 3


def test_a_place_is_both_coordinates_on_the_earth() -> None:
    assert RankingQuery(lat=48.85, lon=2.35).params().at is not None
    with pytest.raises(ConfigError, match="give both lat and lon"):
        RankingQuery(lat=48.85).params()
    with pytest.raises(ConfigError, match="-90 <= LAT <= 90"):
        RankingQuery(lat=148.85, lon=2.0).params()


def test_a_mistake_reads_alike_on_the_command_line_and_the_service(tmp_path: Path) -> None:
    said = fashionrec("recommend", "--item", "x", "--rerank", "inside", home=tmp_path)
    assert said.returncode == 1
    assert said.stderr.strip() == "error: rerank must be one of client, server, got 'inside'"
    with TestClient(create_app(Settings(home=tmp_path), api_key="")) as client:
        answer = client.get("/items/x/similar", params={"rerank": "inside"})
    assert answer.status_code == 422
    assert answer.json() == {"error": "rerank must be one of client, server, got 'inside'"}
    too_many = fashionrec("recommend", "--item", "x", "-k", "500", home=tmp_path)
    assert too_many.returncode == 1 and too_many.stderr.startswith("error: --k: ")
