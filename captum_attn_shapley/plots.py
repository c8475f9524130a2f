#!/usr/bin/env python3
"""matplotlib figures of a comparison: faithfulness with intervals, cost versus faithfulness, AOPC."""
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from captum_attn_shapley.comparison import ComparisonResult


def _pyplot() -> Any:
    import matplotlib.pyplot as plt  # falls back to the Agg backend without a display

    return plt


def plot_comparison(result: "ComparisonResult", title: Optional[str] = None) -> Any:
    r"""
    Three panels: comprehensiveness (higher is better) and sufficiency (lower is better)
    per method with 95% intervals, and seconds per example (log scale) against
    comprehensiveness.

    Args:
        result (ComparisonResult): A comparison.
        title (str, optional): The figure's title.

    Returns:
        matplotlib.figure.Figure: The figure.

    Examples::

        >>> fig = plot_comparison(result)
        >>> fig.savefig("faithfulness.png")
    """
    plt = _pyplot()
    rows = result.summary
    names = [r["method"] for r in rows]
    positions = list(range(len(rows)))
    height = max(3.0, 0.32 * len(rows) + 1.2)
    fig, axes = plt.subplots(1, 3, figsize=(16, height), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    for ax, key, label in (
        (axes[0], "comprehensiveness", "comprehensiveness ↑"),
        (axes[1], "sufficiency", "sufficiency ↓"),
    ):
        values = [r[key] for r in rows]
        errors = [r[f"{key}_ci95"] for r in rows]
        ax.barh(positions, values, xerr=[0 if e != e else e for e in errors], color="#4C72B0", capsize=3)
        ax.set_yticks(positions)
        ax.set_yticklabels(names if ax is axes[0] else [])
        ax.invert_yaxis()
        ax.set_xlabel(f"{label} (mean ± 95% CI)")
        ax.axvline(0, color="black", linewidth=0.6)
    ax = axes[2]
    for r in rows:
        per_example = r["seconds"] / max(r["n"], 1)
        ax.scatter(per_example, r["comprehensiveness"], s=30)
        ax.annotate(r["method"], (per_example, r["comprehensiveness"]), fontsize=7,
                    xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("seconds per example (log)")
    ax.set_ylabel("comprehensiveness ↑")
    ax.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_aopc(result: "ComparisonResult", title: Optional[str] = None) -> Any:
    r"""
    The AOPC curves: mean probability drop per bin, for removing the top players
    (comprehensiveness) and for keeping only them (sufficiency), one line per method.

    Args:
        result (ComparisonResult): A comparison.
        title (str, optional): The figure's title.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    bins = list(result.bins)
    for name, curves in result.aopc.items():
        axes[0].plot(bins, curves["comprehensiveness"], marker="o", label=name)
        axes[1].plot(bins, curves["sufficiency"], marker="o", label=name)
    axes[0].set_title("drop when the top k% are removed")
    axes[1].set_title("drop when only the top k% are kept")
    for ax in axes:
        ax.set_xlabel("k (% of the tokens)")
        ax.set_ylabel("p(x) − p(x')")
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
