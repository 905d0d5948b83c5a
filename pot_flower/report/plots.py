"""The report's pictures: matplotlib PNGs of :class:`LedgerSeries` (Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pot_flower.report.series import LedgerSeries, short_labels

MAX_LINES = 20  # miners drawn one line each; the rest are summed into "others"


class PlottingUnavailable(RuntimeError):
    """matplotlib (the ``report`` extra) is not installed."""


def require() -> None:
    """:class:`PlottingUnavailable` unless matplotlib imports (check it first)."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # an optional extra
        raise PlottingUnavailable(
            "pot report draws with matplotlib: pip install 'pot-flower[report]'"
        ) from exc
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _rounds_axis(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def verdicts(series: LedgerSeries, path: Path) -> Path:
    """Stacked bars per round: accepted (paid, unpaid), then each rejection reason."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    paid = [a - u for a, u in zip(series.accepted, series.unpaid, strict=True)]
    ax.bar(series.rounds, paid, label="accepted, paid", color="#2e7d32")
    ax.bar(
        series.rounds,
        series.unpaid,
        bottom=paid,
        label="accepted, paid nothing",
        color="#a5d6a7",
        hatch="//",
    )
    bottom = list(series.accepted)
    colors = plt.get_cmap("tab20")  # 25 reasons exist; 20 colours, then hatches
    for i, reason in enumerate(series.reasons):
        counts = [r.get(reason, 0) for r in series.rejected]
        ax.bar(
            series.rounds,
            counts,
            bottom=bottom,
            label=reason,
            color=colors(i % 20),
            hatch="xx" if i >= 20 else None,
        )
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    _rounds_axis(ax)
    ax.set_ylabel("submissions")
    ax.set_title("Verdicts per round (rejections by reason)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
    return _save(fig, path)


def _top(values: dict[str, list[int]]) -> list[str]:
    return sorted(values, key=lambda k: (-values[k][-1] if values[k] else 0, k))


def rewards(series: LedgerSeries, path: Path) -> Path:
    """Cumulative balances: one line per miner (top ones), validators dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ranked = _top(series.miner_balance)
    for label in ranked[:MAX_LINES]:
        ax.plot(
            series.rounds,
            series.miner_balance[label],
            marker=".",
            label=f"miner {label}",
        )
    if len(ranked) > MAX_LINES:
        rest = [series.miner_balance[k] for k in ranked[MAX_LINES:]]
        summed = [sum(col) for col in zip(*rest, strict=True)]
        ax.plot(series.rounds, summed, color="grey", label=f"{len(rest)} others")
    for index, values in sorted(series.validator_balance.items()):
        ax.plot(series.rounds, values, linestyle="--", label=f"validator {index}")
    _rounds_axis(ax)
    ax.set_ylabel("balance (token units)")
    ax.set_title("Cumulative rewards")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1, 1))
    return _save(fig, path)


def quality(series: LedgerSeries, path: Path) -> Path:
    """Per miner and round: the quality its pay followed (and scores, if any)."""
    plt = _pyplot()
    panels = [("quality (ppm of the reference)", series.quality)]
    if series.score:
        panels.append(("committee score (x 1e-6)", series.score))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)))
    axes = axes if len(panels) > 1 else [axes]
    for ax, (title, table) in zip(axes, panels, strict=True):
        labels = sorted(table)
        short = short_labels(labels)
        grid = [[float("nan") if v is None else v for v in table[k]] for k in labels]
        image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(
            [short[k] for k in labels] if len(labels) <= 30 else [""] * len(labels)
        )
        step = max(1, len(series.rounds) // 20)  # at most ~20 round ticks
        ax.set_xticks(range(0, len(series.rounds), step))
        ax.set_xticklabels(series.rounds[::step])
        ax.set_xlabel("round (blank: not accepted or absent)")
        ax.set_title(title)
        fig.colorbar(image, ax=ax)
    return _save(fig, path)


def privacy(series: LedgerSeries, path: Path) -> Path:
    """Epsilon after each round: the committee's (central DP) and the miners'."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    if any(e is not None for e in series.epsilon):
        eps = [float("nan") if e is None else e for e in series.epsilon]
        ax.plot(series.rounds, eps, marker="o", color="black", label="central DP")
    short = short_labels(series.local_epsilon)
    for label, values in sorted(series.local_epsilon.items())[:MAX_LINES]:
        eps = [float("nan") if e is None else e for e in values]
        ax.plot(
            series.rounds, eps, marker=".", alpha=0.7, label=f"miner {short[label]}"
        )
    delta = f", delta {series.delta:g}" if series.delta else ""
    ax.set_title(f"Privacy spent (epsilon{delta})")
    _rounds_axis(ax)
    ax.set_ylabel("epsilon")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1, 1))
    return _save(fig, path)
