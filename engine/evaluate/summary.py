"""The README's demo results, written from a run's metrics.json (`make results`), so the
figures there always come from a run and never from memory."""

from __future__ import annotations

from typing import Any, Final

from engine.errors import ConfigError

START: Final = "<!-- results:start: written by `make results` from a run; do not edit -->"
END: Final = "<!-- results:end -->"


def summary(metrics: dict[str, Any]) -> str:
    """The setting, Table 1 with beyond-accuracy columns, and the ablation, as markdown."""
    setting = metrics["setting"]
    backbones: list[str] = list(setting["backbones"])
    labels: dict[str, str] = setting.get("vector_weights", {})
    w = setting["weights"]
    lines = [
        f"{setting['catalog_items']} catalog items, {setting['users']} simulated users, "
        f"1–{setting['max_purchases']} purchases each, k {setting['k']}, seed "
        f"{setting['seed']}, weights {w['visual']:g}/{w['popularity']:g}/{w['category']:g} "
        f"(γ {w['gamma']:g}), popularity {setting.get('popularity', 'all-time')}, NormPop "
        f"by {setting.get('normalise', 'minmax')}.",
        "",
        "| system (weights) | category sim. (%) | gender align. (%) | pop. MAE [0,1] | "
        "diversity | coverage |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in metrics["table1"].items():
        beyond = metrics["beyond"].get(name, {})
        shown = f"{name} ({labels[name]})" if name in labels else name
        diversity = beyond.get("diversity")
        lines.append(
            f"| {shown} | {row['category_similarity']:.2f} | {row['gender_alignment']:.0f} | "
            f"{row['popularity_mae']:.3f} | "
            + ("—" if diversity is None else f"{diversity:.4f}")
            + f" | {beyond.get('coverage', float('nan')):.3f} |"
        )
    ablation = metrics["table2"]
    full = ablation["full"]
    first = backbones[0]
    lines += [
        "",
        f"Ablation ({first}"
        + (f", {labels[first]} weights" if first in labels else "")
        + f"): no popularity term → pop. MAE {ablation['no popularity']['popularity_mae']:.3f}"
        f" (full model {full['popularity_mae']:.3f}); no category term → category similarity "
        f"{ablation['no category']['category_similarity']:.2f} % (full model "
        f"{full['category_similarity']:.2f} %); no visual term → pop. MAE "
        f"{ablation['no visual']['popularity_mae']:.3f}, category similarity "
        f"{ablation['no visual']['category_similarity']:.2f} %.",
    ]
    holdout = metrics.get("holdout")
    if holdout:
        k = holdout["k"]
        lines += [
            "",
            f"Leave-last-out ({first}, {holdout['shoppers']} shoppers, the last purchase held "
            f"out; hit rate@{k} with its 95 % bootstrap interval):",
            "",
            f"| system | hit rate@{k} | nDCG@{k} |",
            "|---|---|---|",
        ]
        for name, measured in holdout["systems"].items():
            hit, ndcg = measured["hit_rate"], measured["ndcg"]
            lines.append(
                f"| {name} | {hit['mean']:.3f} [{hit['low']:.3f}, {hit['high']:.3f}] | "
                f"{ndcg['mean']:.3f} |"
            )
    return "\n".join(lines)


def rewrite(text: str, metrics: dict[str, Any]) -> str:
    """The README text with its results block replaced; ConfigError without the markers."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ConfigError(f"the README has no results block ({START} … {END})")
    return text[: start + len(START)] + "\n" + summary(metrics) + "\n" + text[end:]
