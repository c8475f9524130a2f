"""The outcome of a comparison and its files: tidy rows, per-method summary with intervals, AOPC curves,
and ``per_example.csv``, ``results.json``, ``summary.md`` (plus a figure drawn by a plotter given by the
caller, such as :func:`captum_attn_shapley.visualization.plot_comparison`)."""

import csv
import json
import math
import pathlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np

from captum_attn_shapley._utils.formatting import format_rate, percent_slug
from captum_attn_shapley._utils.io import atomic_write_text
from captum_attn_shapley.metrics import f1_of_predictions


@dataclass
class ComparisonResult:
    r"""
    The outcome of :func:`~captum_attn_shapley.evaluation.run_comparison`.

    Attributes:
        rows (list[dict]): One tidy row per example and method.
        summary (list[dict]): One row per method: means with 95% intervals, F1, throughput.
        bins (tuple[float, ...]): The bins of the metrics.
        aopc (dict): Per method, the mean comprehensiveness and sufficiency drop per bin.
        attributions (dict): Per method, the players' scores of each example (lists).
        config (dict): The settings of the run.

    Examples::

        >>> result = run_comparison(model, tokenizer, texts, labels, methods)
        >>> print(result.to_markdown())
    """

    rows: List[Dict[str, Any]]
    summary: List[Dict[str, Any]]
    bins: Tuple[float, ...]
    aopc: Dict[str, Dict[str, List[float]]]
    attributions: Dict[str, List[List[float]]]
    config: Dict[str, Any]

    def to_markdown(self) -> str:
        """The summary as a markdown table."""
        return summary_markdown(self.summary, self.config.get("f1_k", 20))


#: Draws a comparison: ``plotter(result)`` returns a matplotlib figure (e.g.
#: :func:`captum_attn_shapley.visualization.plot_comparison`).
Plotter = Callable[[ComparisonResult], Any]

#: What ``plot=`` accepts: a :data:`Plotter`, or False / None for no figure.
PlotArg = Union[None, bool, Plotter]


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Tuple[float, float]:
    r"""
    Mean and half-width of its Student-t confidence interval.

    Args:
        values (sequence of float): The sample.
        confidence (float): The interval's level.

    Returns:
        tuple[float, float]: ``(mean, half_width)``; the half-width is NaN for one value.

    Examples::

        >>> mean_interval([1.0, 2.0, 4.0])
        (2.333..., 3.79...)
    """
    from scipy import stats

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    mean = float(data.mean())
    if data.size < 2:
        return mean, math.nan
    half = float(stats.sem(data) * stats.t.ppf((1 + confidence) / 2, data.size - 1))
    return mean, half


def assemble_result(
    results: Mapping[str, Mapping[str, Any]], bins: Tuple[float, ...], f1_k: float, config: Dict[str, Any]
) -> ComparisonResult:
    r"""
    The comparison's result from each method's outcome (rows, scores, drops per bin, seconds).

    Args:
        results (mapping): Per method name, its outcome as the runner stores it.
        bins (tuple[float, ...]): The bins of the metrics.
        f1_k (float): The F1's bin.
        config (dict): The settings of the run.

    Returns:
        ComparisonResult: Rows sorted by example within each method, summary, AOPC and attributions.
    """
    rows: List[Dict[str, Any]] = []
    summary: List[Dict[str, Any]] = []
    aopc: Dict[str, Dict[str, List[float]]] = {}
    attributions: Dict[str, List[List[float]]] = {}
    key = f"prediction_at_{percent_slug(f1_k)}"
    for name, outcome in results.items():
        method_rows = sorted(outcome["rows"], key=lambda r: r["example"])
        rows += method_rows
        comp_mean, comp_ci = mean_interval([r["comprehensiveness"] for r in method_rows])
        suff_mean, suff_ci = mean_interval([r["sufficiency"] for r in method_rows])
        f1 = f1_of_predictions([r["label"] for r in method_rows], [r[key] for r in method_rows])
        seconds = float(outcome["seconds"])
        summary.append(
            {
                "method": name,
                "description": outcome.get("description", ""),
                "n": len(method_rows),
                "comprehensiveness": comp_mean,
                "comprehensiveness_ci95": comp_ci,
                "sufficiency": suff_mean,
                "sufficiency_ci95": suff_ci,
                f"f1_at_{percent_slug(f1_k)}": f1,
                "seconds": seconds,
                "examples_per_second": len(method_rows) / seconds if seconds > 0 else math.inf,
            }
        )
        aopc[name] = {
            "comprehensiveness": np.mean(outcome["comprehensiveness_drops"], axis=0).tolist(),
            "sufficiency": np.mean(outcome["sufficiency_drops"], axis=0).tolist(),
        }
        order = np.argsort([r["example"] for r in outcome["rows"]], kind="stable")
        attributions[name] = [outcome["scores"][i] for i in order]
    return ComparisonResult(rows, summary, bins, aopc, attributions, config)


def summary_markdown(summary: Sequence[Mapping[str, Any]], f1_k: float = 20) -> str:
    r"""
    A markdown table of a comparison's summary.

    Args:
        summary (sequence of dict): :attr:`ComparisonResult.summary`.
        f1_k (float): The F1's bin.

    Returns:
        str: The table.

    Examples::

        >>> print(summary_markdown(result.summary))
    """
    key = f"f1_at_{percent_slug(f1_k)}"
    lines = [
        f"| method | n | comprehensiveness ↑ (±95%) | sufficiency ↓ (±95%) | F1@{f1_k:g}% | examples/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        lines.append(
            f"| {row['method']} | {row['n']} "
            f"| {row['comprehensiveness']:.4f} ± {row['comprehensiveness_ci95']:.4f} "
            f"| {row['sufficiency']:.4f} ± {row['sufficiency_ci95']:.4f} | {row[key]:.3f} "
            f"| {format_rate(row['examples_per_second'])} |"
        )
    return "\n".join(lines) + "\n"


def check_plot(plot: PlotArg) -> None:
    r"""
    Checks a ``plot=`` argument: a plotter, False or None.

    Args:
        plot (Callable, bool or None): The argument.

    Raises:
        TypeError: For ``plot=True`` (this layer draws nothing itself: pass the plotter) or a
                    non-callable.
    """
    if plot is None or plot is False or callable(plot):
        return
    raise TypeError(
        f"`plot` must be a plotter such as captum_attn_shapley.visualization.plot_comparison, or False/None; "
        f"got {plot!r}."
    )


def write_results(result: ComparisonResult, out_dir: Union[str, pathlib.Path], plot: PlotArg = None) -> None:
    r"""
    Writes ``per_example.csv`` (tidy), ``results.json``, ``summary.md`` and, if ``plot``
    is a plotter, ``faithfulness.png`` (the figure it draws).

    Args:
        result (ComparisonResult): The comparison.
        out_dir (str or Path): The directory.
        plot (Callable, optional): Draws the figure, ``plot(result) -> Figure``, e.g.
                    :func:`captum_attn_shapley.visualization.plot_comparison`; None or False
                    for no figure.

    Examples::

        >>> from captum_attn_shapley.visualization import plot_comparison
        >>> write_results(result, "results", plot=plot_comparison)
    """
    check_plot(plot)
    root = pathlib.Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    if result.rows:
        with open(root / "per_example.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(result.rows[0]))
            writer.writeheader()
            writer.writerows(result.rows)
    payload = {
        "config": result.config,
        "bins": list(result.bins),
        "summary": result.summary,
        "aopc": result.aopc,
        "rows": result.rows,
    }
    atomic_write_text(root / "results.json", json.dumps(payload, indent=1))
    atomic_write_text(root / "summary.md", result.to_markdown())
    if callable(plot):
        figure = plot(result)
        figure.savefig(root / "faithfulness.png", dpi=120, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(figure)
