"""docker-compose.yml (no container runs here): the cluster profile holds three Qdrant
peers, PostgreSQL and two service replicas, and the replicas are configured with the
settings and `serve` options fashionrec reads."""

from __future__ import annotations

import re
from typing import Any

import yaml

from engine.settings import API_KEY_ENV, EVENTS_URL_ENV
from tests.builders import ROOT, fashionrec


def _services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services: dict[str, Any] = compose["services"]
    return services


def test_the_cluster_profile_has_peers_a_database_and_two_replicas() -> None:
    services = _services()
    cluster = {n for n, s in services.items() if "cluster" in s.get("profiles", [])}
    assert cluster == {"node1", "node2", "node3", "postgres", "app1", "app2"}
    assert all(
        "--bootstrap http://node1:6335" in services[n]["command"] for n in ("node2", "node3")
    )
    assert services["postgres"]["image"] == "postgres:15"


def test_the_replicas_share_one_store_and_one_log(tmp_path: Any) -> None:
    services = _services()
    replicas = [services["app1"], services["app2"]]
    for replica in replicas:
        env = replica["environment"]
        assert env["FASHIONREC_QDRANT_URL"] == "http://node1:6333"
        assert (
            env[EVENTS_URL_ENV].startswith("postgresql://")
            and "@postgres:5432/" in env[EVENTS_URL_ENV]
        )
        assert API_KEY_ENV in env  # replicas listen beyond loopback: writes need the key
    assert replicas[0]["environment"] == replicas[1]["environment"]
    assert {r["ports"][0] for r in replicas} == {"8001:8000", "8002:8000"}
    options = re.findall(r"--[a-z-]+", " ".join(replicas[0]["command"]))
    shown = fashionrec("serve", "--help", home=tmp_path)
    assert shown.returncode == 0
    assert all(option in shown.stdout for option in options), options
