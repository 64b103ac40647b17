"""Search by photo: a photo's category from its nearest item alone, or soft from its
nearest items (engine/recommend/recommender.py: SOFT, SHARPNESS), in the same run.

Every --every-th photo of a manifest (of the home's catalog, or photos it never stored: a
shopper's own) is taken as it is and altered three ways (shrunk to half its size, its
centre cropped to 80 %, recompressed as JPEG at quality 30), embedded as the
store's photos were (`Application.search_photo`), and searched for the k most relevant
items of any gender with the default weights. Per setting and alteration: how often the
photo's own product is listed, and the share of listed items of its own category.

    python bench/photos.py --home HOME --manifest catalog.csv [--every 40] [-k 5]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the project, not bench/

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import stats  # noqa: E402

import engine.recommend.recommender as recommender  # noqa: E402
from engine.application import Application  # noqa: E402
from engine.recommend.params import Params  # noqa: E402
from engine.settings import Settings  # noqa: E402
from ingest.photos import PhotoNetworks  # noqa: E402

Alteration = Callable[[Image.Image], Image.Image]


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _crop(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((w // 10, h // 10, w - w // 10, h - h // 10))


ALTERATIONS: dict[str, Alteration] = {
    "as it is": lambda im: im,
    "shrunk ½": lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2))),
    "cropped 80 %": _crop,
    "JPEG q30": lambda im: _jpeg(im, 30),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--every", type=int, default=40)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    with args.manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:: args.every]
    started = time.perf_counter()
    settings = {"nearest": (1, 1.0), "soft": (recommender.SOFT, recommender.SHARPNESS)}
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with Application.open(Settings(home=args.home), networks=PhotoNetworks()) as app:
        params = Params(k=args.k)
        for row in rows:
            photo = Image.open(row["path"])
            product = row.get("product_id") or Path(row["path"]).stem
            for name, alter in ALTERATIONS.items():
                buffer = io.BytesIO()
                alter(photo).convert("RGB").save(buffer, "PNG")
                for setting, (neighbours, sharp) in settings.items():
                    recommender.SOFT, recommender.SHARPNESS = neighbours, sharp  # type: ignore[misc]
                    listed = app.search_photo(buffer.getvalue(), params, name).lists[0]
                    recs = listed.recommendations
                    own = float(any(r.product_id == product for r in recs))
                    same = sum(r.category == row["category"] for r in recs) / max(len(recs), 1)
                    found.setdefault((name, setting), []).append((own, same))
    print(
        f"{len(rows)} photos of {args.manifest} (every {args.every}th), k {args.k}, "
        f"{time.perf_counter() - started:.0f} s; soft: the {settings['soft'][0]} nearest "
        f"items' categories weighted by exp(cos / {settings['soft'][1]:g}); Δ: soft − nearest, "
        "paired, 95 % bootstrap interval\n"
    )
    print(
        "| photo | own product listed: nearest, soft | listed of its category: nearest | soft | Δ |"
    )
    print("|---|---|---|---|---|")
    for name in ALTERATIONS:
        near, soft = np.array(found[name, "nearest"]), np.array(found[name, "soft"])
        diff = soft[:, 1] - near[:, 1]
        low, high = _interval(diff)
        print(
            f"| {name} | {near[:, 0].mean():.3f}, {soft[:, 0].mean():.3f} | "
            f"{near[:, 1].mean():.3f} | {soft[:, 1].mean():.3f} | "
            f"{diff.mean():+.3f} [{low:+.3f}, {high:+.3f}] |"
        )
    return 0


def _interval(values: np.ndarray) -> tuple[float, float]:
    if float(np.ptp(values)) == 0.0:
        return float(values.mean()), float(values.mean())
    found = stats.bootstrap(
        (values,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(0)
    )
    return float(found.confidence_interval.low), float(found.confidence_interval.high)


if __name__ == "__main__":
    sys.exit(main())
