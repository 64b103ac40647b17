"""A retailer-like purchase log over the real catalog, written apart from fashionrec's own
simulators, to import and score with (`purchases import`, `tune`, `evaluate --use-log`):
48 weeks, each with 25 hot items per gender; 1,500 shoppers of the catalog's genders, each
keeping to two article types, buying 2–8 times, half of the time one of the week's hot
items of their gender, else one of their two types; no trendiness is given.

    python bench/retaillog.py --labels ../shared/data/fashion-products/labels.csv \
        --out purchases.csv
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shoppers", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with args.labels.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_gender: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_gender[row["gender"]].append(row)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    hot = {
        week: {g: rng.sample(items, min(25, len(items))) for g, items in by_gender.items()}
        for week in range(48)
    }
    out = []
    for n in range(args.shoppers):
        gender = rng.choice(["Men", "Women", "Men", "Women", "Boys", "Girls"])
        pool = by_gender[gender]
        types = rng.sample(sorted({r["articleType"] for r in pool}), 2)
        liked = [r for r in pool if r["articleType"] in types]
        for _ in range(rng.randint(2, 8)):
            week = rng.randrange(48)
            when = start + timedelta(weeks=week, seconds=rng.randrange(7 * 86400))
            item = rng.choice(hot[week][gender]) if rng.random() < 0.5 else rng.choice(liked)
            out.append((f"c{n:05d}", item["id"], when.isoformat(), gender))
    out.sort(key=lambda r: r[2])
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "timestamp", "gender"])
        writer.writerows(out)
    print(f"{len(out)} purchases by {args.shoppers} shoppers written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
