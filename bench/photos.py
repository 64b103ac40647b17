"""Search by photo on altered photos: a photo's category from its nearest item alone, or
soft from its 10 nearest (engine/recommend/recommender.py, SOFT), in the same run.

Every --every-th photo of an ingested manifest is altered three ways (shrunk to half its
size, its centre cropped to 80 %, recompressed as JPEG at quality 30), embedded as the
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

from PIL import Image  # noqa: E402

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
    with Application.open(Settings(home=args.home), networks=PhotoNetworks()) as app:
        params = Params(k=args.k)
        found: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for row in rows:
            photo = Image.open(row["path"])
            product = row.get("product_id") or Path(row["path"]).stem
            for name, alter in ALTERATIONS.items():
                buffer = io.BytesIO()
                alter(photo).convert("RGB").save(buffer, "PNG")
                for soft in (1, 10):
                    recommender.SOFT = soft  # type: ignore[misc]
                    recs = app.search_photo(buffer.getvalue(), params, name).lists[0]
                    listed = recs.recommendations
                    own = float(any(r.product_id == product for r in listed))
                    same = sum(r.category == row["category"] for r in listed) / max(len(listed), 1)
                    found.setdefault((name, soft), []).append((own, same))
    print(
        f"{len(rows)} photos of {args.manifest} (every {args.every}th), k {args.k}, "
        f"{time.perf_counter() - started:.0f} s\n"
    )
    print("| photo | category from | own product listed | listed of its category |")
    print("|---|---|---|---|")
    for (name, soft), values in found.items():
        own = sum(v[0] for v in values) / len(values)
        same = sum(v[1] for v in values) / len(values)
        source = "the nearest item" if soft == 1 else f"{soft} nearest (soft)"
        print(f"| {name} | {source} | {own:.3f} | {same:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
