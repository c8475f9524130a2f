"""The report of a TokenTCAV ground-truth check: significance rows, localisation rows and a Markdown view.

:mod:`~captum_attn_shapley.demos.tcav_ground_truth` fills a :class:`GroundTruthReport` per run with
:func:`annotate` (is each concept significant exactly when it is planted?) and :func:`localise` (where
does the planted concept's heatmap put its mass?).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from captum_attn_shapley.concept.scores import TokenTCAVScores
from captum_attn_shapley.metrics.localisation import mass_inside, pointing_game

#: The significance level of the ground-truth checks.
ALPHA = 0.01


@dataclass
class GroundTruthReport:
    r"""
    Results of a ground-truth check.

    Attributes:
        rows (list[dict]): One row per (target class, concept set, layer, concept): the
                    columns of :func:`~captum_attn_shapley.tcav_table` plus ``target_class``,
                    ``planted`` (the class depends on this concept) and ``ok``: a planted
                    concept must have T-TCAV > 0.5 with a t-test p-value < ``alpha``; any
                    other concept must not. Captum's random-concept p-value is reported
                    beside it (``p_value_random``) but not part of ``ok``.
        localisation (list[dict]): One row per (target class, layer): ``mass_inside``
                    (mean fraction of the planted concept's positive heatmap mass inside the
                    object / planted tokens), ``pointing_game`` (fraction of examples whose
                    top cell is inside), ``chance`` (the mean area fraction of the region)
                    and ``n``.
        scores (dict): Target class name -> the :class:`TokenTCAVScores`.
        alpha (float): The significance level.
    """

    rows: List[Dict[str, Any]] = field(default_factory=list)
    localisation: List[Dict[str, Any]] = field(default_factory=list)
    scores: Dict[str, TokenTCAVScores] = field(default_factory=dict)
    alpha: float = ALPHA

    def passed(self, layers: Optional[Sequence[str]] = None) -> bool:
        r"""Whether every significance row (at ``layers``, default all) is ``ok``."""
        return all(r["ok"] for r in self.rows if layers is None or r["layer"] in layers)

    def to_markdown(self) -> str:
        r"""The significance rows and the localisation rows as two Markdown tables."""
        head = (
            "| class | concept set | concept | layer | T-TCAV | sd | p (t-test) | p (random) | planted "
            "| ok |\n|---|---|---|---|---|---|---|---|---|---|\n"
        )
        lines = [
            f"| {r['target_class']} | {r['concept_set']} | {r['concept']} | {r['layer']} | {r['t_tcav']:.3f} | "
            f"{r['t_tcav_sd']:.3f} | {_p(r['p_value'])} | {_p(r['p_value_random'])} | "
            f"{'yes' if r['planted'] else ''} | {'yes' if r['ok'] else 'NO'} |\n"
            for r in self.rows
        ]
        loc = (
            "\n| class | concept | layer | mass inside | pointing game | chance | n |\n"
            "|---|---|---|---|---|---|---|\n"
        )
        loc += "".join(
            f"| {r['target_class']} | {r['concept']} | {r['layer']} | {r['mass_inside']:.3f} | "
            f"{r['pointing_game']:.3f} | {r['chance']:.3f} | {r['n']} |\n"
            for r in self.localisation
        )
        return head + "".join(lines) + (loc if self.localisation else "")


def _p(value: float) -> str:
    """A p-value for the table: scientific below 1e-3, 0 included (``format_number`` would write 0.000)."""
    if value != value:
        return "–"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"


def annotate(
    report: GroundTruthReport, class_name: str, scores: TokenTCAVScores, planted: str, alpha: float
) -> None:
    r"""Add the significance rows of one target class to ``report``.

    Args:
        report (GroundTruthReport): The report to extend (its ``rows``).
        class_name (str): The target class.
        scores (TokenTCAVScores): TokenTCAV's scores for that class.
        planted (str): Name of the concept the class depends on.
        alpha (float): The significance level of ``ok``.
    """
    for row in scores.rows():
        row = {"target_class": class_name, **row, "planted": row["concept"] == planted}
        significant_above = row["t_tcav"] > 0.5 and row["p_value"] < alpha
        row["ok"] = significant_above if row["planted"] else not significant_above
        report.rows.append(row)


def localise(
    report: GroundTruthReport,
    class_name: str,
    concept: str,
    layer: str,
    maps: Tensor,
    region: Tensor,
    cells: Optional[Tensor] = None,
) -> None:
    r"""Add the localisation row of one (target class, layer) to ``report``.

    Args:
        report (GroundTruthReport): The report to extend (its ``localisation``).
        class_name (str): The target class.
        concept (str): The planted concept.
        layer (str): The layer of the heatmaps.
        maps (Tensor): The planted concept's heatmaps, one per example.
        region (Tensor): Where the planted concept is (object mask or planted tokens), shaped like ``maps``.
        cells (Tensor, optional): Which map cells exist (default all); chance is the region's share of
            them. Default: ``None``
    """
    cells = torch.ones_like(region) if cells is None else cells.float()
    share = region.reshape(region.shape[0], -1).float().sum(1) / cells.reshape(cells.shape[0], -1).sum(1)
    report.localisation.append(
        {
            "target_class": class_name,
            "concept": concept,
            "layer": layer,
            "mass_inside": float(mass_inside(maps, region).nanmean()),
            "pointing_game": float(pointing_game(maps, region).float().mean()),
            "chance": float(share.mean()),
            "n": int(maps.shape[0]),
        }
    )
