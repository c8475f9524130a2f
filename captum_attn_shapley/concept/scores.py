#!/usr/bin/env python3
"""The result of a :class:`~captum_attn_shapley.TokenTCAV` run, as Captum's nested dict and as a table."""

import math
from typing import Any, Dict, List, Optional, Sequence, Union, cast

from torch import Tensor

from captum_attn_shapley._utils.formatting import format_number

#: Columns of :func:`tcav_table`, in order.
TABLE_COLUMNS = (
    "concept_set",
    "concept",
    "concept_id",
    "layer",
    "t_tcav",
    "t_tcav_sd",
    "magnitude",
    "repeats",
    "cav_accuracy",
    "p_value",
    "p_value_corrected",
    "p_value_random",
    "p_value_random_corrected",
    "significant",
)


class TokenTCAVScores(dict[str, Dict[str, Dict[str, Tensor]]]):
    r"""
    T-TCAV scores in Captum's layout, ``scores[concepts_key][layer][metric]``, where
    ``concepts_key`` joins the concept ids of an experimental set with ``"-"`` (as
    :meth:`captum.concept.TCAV.interpret` returns them) and each metric is a tensor with
    one entry per concept of the set, in the set's order:

    - ``"sign_count"``: the T-TCAV score (fraction of target examples whose
      attention-weighted directional derivative is positive), mean over the R CAVs;
    - ``"magnitude"``: the mean directional derivative (Captum's definition), mean over R;
    - ``"sign_count_repeats"`` / ``"magnitude_repeats"``: the same per CAV, shape ``(k, R)``;
    - ``"cav_accuracy"``: the probes' mean held-out accuracy;
    - ``"p_value"``: two-sided one-sample t-test of the R scores against 0.5;
    - ``"p_value_corrected"``: the same after the multiple-testing correction (if any);
    - ``"p_value_random"`` (and ``"p_value_random_corrected"``): Captum's original test
      against CAVs of random concepts, when random concepts were given.

    Being a ``dict``, it drops into code written for Captum's TCAV; :meth:`rows`,
    :meth:`to_markdown` and :meth:`to_dataframe` give the same numbers as a table.

    Attributes:
        concept_names (dict): ``concepts_key`` -> the names of the set's concepts.
        concept_ids (dict): ``concepts_key`` -> the ids of the set's concepts.
        alpha (float): Significance level of the ``significant`` column.
        correction (str or None): The multiple-testing correction applied.
        num_examples (int): Number of target examples scored.
    """

    def __init__(self, alpha: float = 0.05, correction: Optional[str] = None, num_examples: int = 0) -> None:
        super().__init__()
        self.concept_names: Dict[str, List[str]] = {}
        self.concept_ids: Dict[str, List[Any]] = {}
        self.alpha = alpha
        self.correction = correction
        self.num_examples = num_examples

    def rows(self) -> List[Dict[str, Any]]:
        r"""
        One row per (experimental set, layer, concept).

        A row is ``significant`` when its (corrected, if a correction was chosen) t-test
        p-value is below ``alpha`` and, if the random-concept test was run, so is that
        test's p-value.

        Returns:
            list[dict]: Rows with the keys of :data:`TABLE_COLUMNS` (``pandas.DataFrame(rows)``
            makes a data frame of them).
        """
        out: List[Dict[str, Any]] = []
        for key, by_layer in self.items():
            names = self.concept_names.get(key, key.split("-"))
            ids = self.concept_ids.get(key, key.split("-"))
            for layer, metrics in by_layer.items():
                for i, name in enumerate(names):
                    repeats = metrics["sign_count_repeats"][i]
                    row: Dict[str, Any] = {
                        "concept_set": " / ".join(names),
                        "concept": name,
                        "concept_id": ids[i],
                        "layer": layer,
                        "t_tcav": _value(metrics["sign_count"], i),
                        "t_tcav_sd": float(repeats.std(unbiased=True)) if repeats.numel() > 1 else math.nan,
                        "magnitude": _value(metrics["magnitude"], i),
                        "repeats": int(repeats.numel()),
                        "cav_accuracy": _value(metrics.get("cav_accuracy"), i),
                        "p_value": _value(metrics.get("p_value"), i),
                        "p_value_corrected": _value(metrics.get("p_value_corrected"), i),
                        "p_value_random": _value(metrics.get("p_value_random"), i),
                        "p_value_random_corrected": _value(metrics.get("p_value_random_corrected"), i),
                    }
                    p = row["p_value_corrected"] if self.correction else row["p_value"]
                    p_random = row["p_value_random_corrected"] if self.correction else row["p_value_random"]
                    significant = not math.isnan(p) and p < self.alpha
                    if "p_value_random" in metrics:
                        significant = significant and not math.isnan(p_random) and p_random < self.alpha
                    row["significant"] = bool(significant)
                    out.append(row)
        return out

    def to_dataframe(self) -> Any:
        r"""
        The rows as a ``pandas.DataFrame`` (pandas must be installed).

        Returns:
            pandas.DataFrame: One row per (set, layer, concept).
        """
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("to_dataframe needs pandas: pip install pandas (or use rows()).") from err
        return pd.DataFrame(self.rows(), columns=list(TABLE_COLUMNS))

    def to_markdown(self, columns: Optional[Sequence[str]] = None) -> str:
        r"""
        The rows as a Markdown table.

        Args:
            columns (sequence of str, optional): Columns to show. Default: set, concept,
                        layer, T-TCAV (± sd), p-values present, significant.

        Returns:
            str: The table.
        """
        return cast(str, tcav_table(self, markdown=True, columns=columns))


def _value(tensor: Optional[Tensor], i: int) -> float:
    if tensor is None:
        return math.nan
    return float(tensor[i])


def tcav_table(
    scores: TokenTCAVScores, markdown: bool = False, columns: Optional[Sequence[str]] = None
) -> Union[List[Dict[str, Any]], str]:
    r"""
    Turns :meth:`TokenTCAV.interpret` results into a table.

    Args:
        scores (TokenTCAVScores): The results.
        markdown (bool): Return a Markdown string instead of rows. Default: False
        columns (sequence of str, optional): With ``markdown``, the columns to show.

    Returns:
        list[dict] or str: The rows (see :meth:`TokenTCAVScores.rows`), or the Markdown.

    Examples::

        >>> scores = tcav.interpret(pixel_values, [[striped, dotted, zigzag]], target=0)
        >>> import pandas as pd
        >>> pd.DataFrame(tcav_table(scores))
        >>> print(tcav_table(scores, markdown=True))
    """
    if not isinstance(scores, TokenTCAVScores):
        raise TypeError(
            f"tcav_table expects the TokenTCAVScores of TokenTCAV.interpret, got {type(scores).__name__}."
        )
    rows = scores.rows()
    if not markdown:
        return rows
    if columns is None:
        columns = ["concept_set", "concept", "layer", "t_tcav", "t_tcav_sd", "p_value"]
        if scores.correction:
            columns.append("p_value_corrected")
        if any(not math.isnan(r["p_value_random"]) for r in rows):
            columns.append("p_value_random_corrected" if scores.correction else "p_value_random")
        columns.append("significant")
    unknown = [c for c in columns if c not in TABLE_COLUMNS]
    if unknown:
        raise ValueError(f"Unknown columns {unknown}; choose from {TABLE_COLUMNS}.")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_number(row[c], digits=3) for c in columns) + " |")
    return "\n".join(lines) + "\n"
