"""Pictures: the recommendation grid (the paper's Figure 3) and the w_p sweep plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from engine.errors import ConfigError
from engine.recommend.rerank import Recommendation
from engine.vocabulary.schema import CATEGORY, IMAGE

THUMB = (150, 220)


def picture_formats() -> tuple[str, ...]:
    """The file suffixes (without the dot) a picture can be written as."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))


def check_picture_path(path: Path, flag: str = "--out") -> None:
    """ConfigError unless `path` names a picture file that can be written: a known suffix,
    not a folder, in a folder that exists or can be made."""
    formats = picture_formats()
    suffix = path.suffix.lower().removeprefix(".")
    if suffix not in formats:
        found = f"{path.suffix!r}" if path.suffix else "no suffix"
        raise ConfigError(
            f"{flag} {path}: a picture needs one of the suffixes {', '.join(formats)} "
            f"(found {found}); e.g. {path.with_suffix('.png').name}"
        )
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; give the name of the picture to write")
    folder = next((f for f in path.parents if f.exists()), None)
    if folder is not None and not folder.is_dir():
        raise ConfigError(f"{flag} {path}: {folder} is a file, not a folder")


def _save(fig: Any, path: Path) -> None:
    """Write the figure beside `path` and rename it when complete (ConfigError naming the
    file when it cannot be written; nothing is left behind)."""
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, dpi=90, format=path.suffix.lower().removeprefix(".") or "png")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{path}: cannot write the picture ({reason}); nothing written") from None


def _thumb(path: object) -> np.ndarray:
    """The photo as an RGB array, or a grey placeholder when it cannot be read."""
    try:
        with Image.open(str(path)) as image:
            image.draft("RGB", THUMB)
            picture = ImageOps.contain(image.convert("RGB"), THUMB)  # small photos grow
            canvas = Image.new("RGB", THUMB, (255, 255, 255))
            canvas.paste(
                picture, ((THUMB[0] - picture.width) // 2, (THUMB[1] - picture.height) // 2)
            )
            return np.asarray(canvas)
    except (OSError, ValueError):
        return np.full((THUMB[1], THUMB[0], 3), 200, dtype=np.uint8)


def recommendation_grid(
    path: Path,
    title: str,
    purchased: Mapping[str, Any],
    rows: Sequence[tuple[str, Sequence[Recommendation]]],
    images: Mapping[str, object],
) -> Path:
    """One row per backbone (labelled with its weights): the purchased photo, then its top-k
    with category, relevance, km."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 1 + max((len(recs) for _, recs in rows), default=0)
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(2.1 * columns, 3.3 * len(rows)), squeeze=False
    )
    for row, (backbone, recs) in enumerate(rows):
        for col in range(columns):
            axes[row][col].axis("off")
        axes[row][0].imshow(_thumb(purchased.get(IMAGE)))
        axes[row][0].set_title(f"purchased\n{purchased.get(CATEGORY)}", fontsize=8, color="#b00")
        axes[row][0].text(
            -0.15,
            0.5,
            backbone,
            rotation=90,
            va="center",
            ha="center",
            transform=axes[row][0].transAxes,
            fontsize=10,
            weight="bold",
        )
        for col, rec in enumerate(recs, start=1):
            km = "—" if rec.distance_km is None else f"{rec.distance_km:.1f} km"
            axes[row][col].imshow(_thumb(images.get(rec.item_id)))
            axes[row][col].set_title(
                f"#{rec.rank} {rec.category}\nrel {rec.relevance:.3f} · {km}", fontsize=7
            )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def sweep_plot(
    path: Path,
    sweep: Mapping[str, Sequence[Mapping[str, float]]],
    diversity: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
) -> Path:
    """Category similarity and popularity MAE as w_p goes 0 → 1, one line per backbone;
    with a diversity sweep, a third panel: intra-list diversity and category similarity
    as MMR λ goes 0 → 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if diversity else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4.2))
    left, right = axes[0], axes[1]
    for backbone, points in sweep.items():
        w_p = [p["w_p"] for p in points]
        left.plot(w_p, [p["category_similarity"] for p in points], marker="o", label=backbone)
        right.plot(w_p, [p["popularity_mae"] for p in points], marker="o", label=backbone)
    left.set(
        xlabel="w_p (w_v = 1 − w_p, w_c = 0)",
        ylabel="category similarity (%)",
        title="Category similarity",
    )
    right.set(
        xlabel="w_p (w_v = 1 − w_p, w_c = 0)",
        ylabel="popularity MAE |NormPop − t|",
        title="Popularity MAE (0–1)",
    )
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    if diversity:
        lines = _diversity_panel(axes[2], diversity)
        # under the panel, so it hides no point; the panels keep one height
        fig.legend(handles=lines, loc="lower right", ncol=len(lines), fontsize=9)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
    else:
        fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def _diversity_panel(
    axis: Any, diversity: Mapping[str, Sequence[Mapping[str, float]]]
) -> list[Any]:
    """Intra-list diversity (left axis) and category similarity (right axis) against λ;
    returns the lines, for a legend."""
    twin = axis.twinx()
    lines = []
    for points in diversity.values():
        lam = [p["lambda"] for p in points]
        lines += axis.plot(
            lam,
            [_number(p["intra_list_diversity"]) for p in points],
            marker="o",
            color="black",
            label="intra-list diversity (left axis)",
        )
        lines += twin.plot(
            lam,
            [_number(p["category_similarity"]) for p in points],
            marker="s",
            linestyle="--",
            color="tab:purple",
            label="category similarity (right axis)",
        )
    axis.set(
        xlabel="MMR λ (0 = relevance only)",
        ylabel="intra-list diversity (1 − cos)",
        title=f"MMR diversity ({', '.join(diversity)})",
    )
    axis.yaxis.label.set_color("black")
    twin.set_ylabel("category similarity (%)", color="tab:purple")
    axis.set_xticks([p["lambda"] for points in diversity.values() for p in points])
    axis.grid(alpha=0.3)
    return lines


def _number(value: float | None) -> float:
    """NaN for a missing value (metrics.json's null), so the line just skips it."""
    return float("nan") if value is None else float(value)
