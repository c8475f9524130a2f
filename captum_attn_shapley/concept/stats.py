#!/usr/bin/env python3
"""Significance tests of TCAV scores and multiple-testing corrections.

See the mathematics page of the documentation, section "Token-level concept sensitivity (T-TCAV)", step 5.
"""

import warnings
from typing import Any, Callable, Optional

import numpy as np
from numpy.typing import NDArray
from scipy import stats

#: Multiple-testing corrections accepted by :func:`correct_pvalues`.
CORRECTIONS = ("bonferroni", "holm", "bh", "by")


def _quiet_test(test: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        # identical scores (e.g. every CAV gives T-TCAV = 1) make scipy warn about precision
        warnings.simplefilter("ignore", RuntimeWarning)
        return test(*args, **kwargs)


def ttest_against_half(scores: NDArray[Any]) -> NDArray[Any]:
    r"""
    Two-sided one-sample t-test of T-TCAV scores against 0.5 over the last axis (the
    R repeats with different negative draws).

    When all R scores are equal the t-statistic is infinite (p = 0) unless they equal 0.5
    (p = 1): the result then does not depend on the draw at all.

    Args:
        scores (ndarray): Shape ``(..., R)``, R >= 2.

    Returns:
        ndarray: The p-values, shape ``(...)``.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.shape[-1] < 2:
        raise ValueError(
            f"The t-test against 0.5 needs at least 2 scores per concept (repeats >= 2), got {scores.shape[-1]}."
        )
    p = np.asarray(_quiet_test(stats.ttest_1samp, scores, 0.5, axis=-1).pvalue, dtype=float)
    constant = np.all(scores == scores[..., :1], axis=-1)
    p = np.where(constant & (scores[..., 0] == 0.5), 1.0, p)
    return np.where(constant & (scores[..., 0] != 0.5), 0.0, p)


def random_concept_test(concept_scores: NDArray[Any], random_scores: NDArray[Any]) -> float:
    r"""
    Captum's original TCAV test: a two-sided two-sample t-test of a concept's scores
    (against each random partner concept) versus a random concept's scores (against the
    same partners).

    Args:
        concept_scores (ndarray): Shape ``(m,)``, m >= 2.
        random_scores (ndarray): Shape ``(m,)``.

    Returns:
        float: The p-value (1.0 when both samples are constant and equal, 0.0 when both
        are constant and differ).
    """
    a = np.asarray(concept_scores, dtype=float).ravel()
    b = np.asarray(random_scores, dtype=float).ravel()
    if a.size < 2 or b.size < 2:
        raise ValueError("The random-concept test needs at least 2 scores on each side (3 random concepts).")
    if np.all(a == a[0]) and np.all(b == b[0]):
        return 1.0 if a[0] == b[0] else 0.0
    return float(_quiet_test(stats.ttest_ind, a, b).pvalue)


def correct_pvalues(pvalues: NDArray[Any], method: Optional[str]) -> NDArray[Any]:
    r"""
    Adjusts a family of p-values for multiple comparisons.

    Args:
        pvalues (ndarray): Any shape; NaNs are left out of the family and kept.
        method (str or None): ``None`` (no correction), ``"bonferroni"``, ``"holm"``
                    (Holm-Bonferroni step-down), ``"bh"`` (Benjamini-Hochberg false
                    discovery rate) or ``"by"`` (Benjamini-Yekutieli).

    Returns:
        ndarray: Adjusted p-values, same shape, capped at 1.
    """
    p = np.asarray(pvalues, dtype=float)
    if method is None:
        return p.copy()
    if method not in CORRECTIONS:
        raise ValueError(f"Unknown correction {method!r}: use None or one of {CORRECTIONS}.")
    out = p.copy()
    ok = ~np.isnan(p)
    flat = p[ok]
    m = flat.size
    if m == 0:
        return out
    if method == "bonferroni":
        adjusted = np.minimum(flat * m, 1.0)
    elif method == "holm":
        order = np.argsort(flat)
        steps = np.maximum.accumulate(flat[order] * (m - np.arange(m)))
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(steps, 1.0)
    else:
        adjusted = stats.false_discovery_control(flat, method=method)
    out[ok] = adjusted
    return out
