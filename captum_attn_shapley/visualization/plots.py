#!/usr/bin/env python3
"""matplotlib figures: a comparison (faithfulness with intervals, cost versus faithfulness, AOPC) and
TokenTCAV scores with their significance."""

import math
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from captum_attn_shapley.concept.scores import TokenTCAVScores
    from captum_attn_shapley.evaluation import ComparisonResult


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
        ax.annotate(
            r["method"],
            (per_example, r["comprehensiveness"]),
            fontsize=7,
            xytext=(3, 2),
            textcoords="offset points",
        )
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


#: Colours of the T-TCAV bars: significant, not significant.
TCAV_COLOURS = ("#4C72B0", "#B0B0B0")


def plot_tcav_scores(
    scores: "TokenTCAVScores", title: Optional[str] = None, panel_size: Tuple[float, float] = (3.6, 3.2)
) -> Any:
    r"""
    T-TCAV bar chart: one panel per (experimental set, layer), one bar per concept at its
    mean T-TCAV over the R repeated CAVs with ± one standard deviation over them as error
    bar, a dashed reference line at 0.5 (no directional effect), and a mark above each bar:
    ``*`` when the concept is significant, ``n.s.`` otherwise. Significance is the
    ``significant`` column of :meth:`TokenTCAVScores.rows` (the corrected p-values if a
    correction was applied, and Captum's random-concept test as well if it was run, at the
    scores' ``alpha``). Significant bars are blue, the others grey.

    Args:
        scores (TokenTCAVScores): The result of :meth:`TokenTCAV.interpret`.
        title (str, optional): The figure's title (e.g. the target class).
        panel_size (tuple[float, float]): Width and height of one panel, in inches.
                    Default: (3.6, 3.2)

    Returns:
        matplotlib.figure.Figure: The figure; panels in rows of experimental sets and
        columns of layers.

    Examples::

        >>> scores = tcav.interpret(zebras, [[striped, dotted, zigzag]], target=0, correction="holm")
        >>> fig = plot_tcav_scores(scores, title="class: striped")
        >>> fig.savefig("tcav.png", dpi=120, bbox_inches="tight")
    """
    from captum_attn_shapley.concept.scores import TokenTCAVScores

    if not isinstance(scores, TokenTCAVScores):
        raise TypeError(
            f"plot_tcav_scores expects the TokenTCAVScores of TokenTCAV.interpret, got {type(scores).__name__}."
        )
    rows = scores.rows()
    if not rows:
        raise ValueError("The TokenTCAVScores hold no rows (no concept set was scored).")
    panels: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for row in rows:
        panels.setdefault((row["concept_set"], str(row["layer"])), []).append(row)
    sets = list(dict.fromkeys(key for key, _ in panels))
    layers = list(dict.fromkeys(layer for _, layer in panels))
    plt = _pyplot()
    size = (panel_size[0] * len(layers), panel_size[1] * len(sets) + (0.4 if title else 0))
    fig, axes = plt.subplots(len(sets), len(layers), squeeze=False, sharey=True, figsize=size)
    test = "corrected p" if scores.correction else "p"
    for i, concept_set in enumerate(sets):
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            panel = panels.get((concept_set, layer), [])
            if not panel:
                ax.set_axis_off()
                continue
            positions = list(range(len(panel)))
            heights = [r["t_tcav"] for r in panel]
            errors = [0.0 if math.isnan(r["t_tcav_sd"]) else r["t_tcav_sd"] for r in panel]
            colours = [TCAV_COLOURS[0] if r["significant"] else TCAV_COLOURS[1] for r in panel]
            ax.bar(
                positions, heights, yerr=errors, color=colours, capsize=4, width=0.6, error_kw={"elinewidth": 1}
            )
            ax.axhline(0.5, color="black", linestyle="--", linewidth=0.8)
            for x, height, error, r in zip(positions, heights, errors, panel):
                ax.text(
                    x,
                    min(height + error, 1.0) + 0.03,
                    "*" if r["significant"] else "n.s.",
                    ha="center",
                    va="bottom",
                    fontsize=12 if r["significant"] else 8,
                )
            ax.set_xticks(positions)
            ax.set_xticklabels(
                [r["concept"] for r in panel],
                rotation=30 if len(panel) > 3 else 0,
                ha="right" if len(panel) > 3 else "center",
                fontsize=9,
            )
            ax.set_ylim(0, 1.15)
            ax.set_title(f"{concept_set}\n{layer}", fontsize=9)
            if j == 0:
                ax.set_ylabel("T-TCAV (mean ± sd over CAVs)")
    note = f"* significant ({test} < {scores.alpha:g}), n.s. not; dashed: 0.5"
    fig.text(0.5, 0.0, note, ha="center", va="bottom", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
