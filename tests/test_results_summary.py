"""The README's demo results come from a run: the block `make results` writes, and the
script's one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError
from engine.evaluate.summary import END, START, rewrite, summary
from tests.builders import ROOT


def _row(category: float, mae: float) -> dict[str, float]:
    return {"category_similarity": category, "gender_alignment": 100.0, "popularity_mae": mae}


METRICS: dict[str, Any] = {
    "setting": {
        "catalog_items": 138,
        "users": 20,
        "max_purchases": 5,
        "k": 5,
        "seed": 42,
        "weights": {"visual": 0.6, "popularity": 0.2, "category": 0.2, "gamma": 2.0},
        "backbones": ["resnet50"],
        "vector_weights": {"resnet50": "imagenet-keras"},
        "popularity": "all-time",
    },
    "table1": {"resnet50": _row(71.925, 0.1941), "random (same gender)": _row(29.78, 0.314)},
    "table2": {
        "full": _row(71.925, 0.1941),
        "no popularity": _row(70.1, 0.3352),
        "no visual": _row(72.15, 0.107),
        "no category": _row(32.89, 0.3082),
    },
    "beyond": {
        "resnet50": {"diversity": 0.14, "coverage": 0.754},
        "random (same gender)": {"diversity": None, "coverage": 0.848},
    },
    "holdout": {
        "shoppers": 14,
        "k": 10,
        "systems": {
            "full model": {
                "hit_rate": {"mean": 0.5, "low": 0.25, "high": 0.75},
                "ndcg": {"mean": 0.3, "low": 0.1, "high": 0.5},
            },
            "random": {
                "hit_rate": {"mean": 0.0714, "low": 0.0, "high": 0.2143},
                "ndcg": {"mean": 0.02, "low": 0.0, "high": 0.06},
            },
        },
    },
}


def test_the_block_is_written_from_the_metrics() -> None:
    text = summary(METRICS)
    assert "138 catalog items, 20 simulated users, 1–5 purchases each, k 5, seed 42" in text
    assert "| resnet50 (imagenet-keras) | 71.92 | 100 | 0.194 | 0.1400 | 0.754 |" in text
    assert "| random (same gender) | 29.78 | 100 | 0.314 | — | 0.848 |" in text
    assert "no category term → category similarity 32.89 % (full model 71.92 %)" in text
    assert "no popularity term → pop. MAE 0.335 (full model 0.194)" in text
    assert "Leave-last-out (resnet50, 14 shoppers" in text
    assert "| full model | 0.500 [0.250, 0.750] | 0.300 |" in text
    assert "| random | 0.071 [0.000, 0.214] | 0.020 |" in text


def test_rewriting_replaces_only_the_block_and_is_idempotent() -> None:
    readme = f"# title\n\nbefore\n{START}\nstale 32.6 %\n{END}\nafter\n"
    once = rewrite(readme, METRICS)
    assert once.startswith("# title\n\nbefore\n") and once.endswith(f"{END}\nafter\n")
    assert "stale" not in once and rewrite(once, METRICS) == once
    with pytest.raises(ConfigError, match="no results block"):
        rewrite("# no markers\n", METRICS)


def test_the_readme_has_the_block() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1


def test_the_script_writes_or_says_why_in_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{START}\n{END}\n", encoding="utf-8")
    script = [sys.executable, str(ROOT / "scripts" / "results.py")]
    done = subprocess.run([*script, str(run), str(readme)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| resnet50 (imagenet-keras) |" in readme.read_text(encoding="utf-8")
    missing = subprocess.run(
        [*script, str(tmp_path / "nowhere"), str(readme)], capture_output=True, text=True
    )
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "Traceback" not in missing.stderr
