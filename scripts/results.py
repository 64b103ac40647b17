"""Write the README's demo results from a run: `python scripts/results.py RUN_DIR README.md`
(`make results` runs the demo first, then this)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the project, not scripts/

from engine.errors import FashionrecError  # noqa: E402
from engine.evaluate.summary import rewrite  # noqa: E402


def main(argv: list[str]) -> int:
    """Rewrite README's results block from RUN_DIR/metrics.json; 1 with one line on error."""
    if len(argv) != 2:
        print("usage: python scripts/results.py RUN_DIR README.md", file=sys.stderr)
        return 2
    run, readme = Path(argv[0]), Path(argv[1])
    try:
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        text = rewrite(readme.read_text(encoding="utf-8"), metrics)
    except (OSError, ValueError, KeyError, FashionrecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    part = readme.with_name(readme.name + ".part")
    part.write_text(text, encoding="utf-8")
    part.replace(readme)
    print(f"{readme}: results written from {run / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
