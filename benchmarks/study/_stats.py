"""The study's statistics (PROTOCOL.md, "Statistics"): means and paired differences with Student t 95 %
intervals, time over the floor, the best peer, the candidate and the decision rule; Markdown tables."""

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

#: Per method, per metric: example -> value.
PerExample = Dict[str, Dict[str, Dict[int, float]]]
#: Which direction is better: +1 higher, -1 lower.
DIRECTION = {"comprehensiveness": 1, "sufficiency": -1, "auprc": 1}


def interval(values: Sequence[float], level: float = 0.95) -> Tuple[float, float, float, int]:
    """Mean and its two-sided Student t interval ``scipy.stats.t.interval(level, n - 1, mean, sem)``."""
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(data.mean())
    if n < 2 or float(data.std(ddof=1)) == 0.0:
        return mean, mean, mean, n
    low, high = stats.t.interval(level, n - 1, loc=mean, scale=float(data.std(ddof=1)) / math.sqrt(n))
    return mean, float(low), float(high), n


def paired(per: PerExample, metric: str, x: str, y: str, level: float = 0.95) -> Tuple[float, float, float, int]:
    """Mean of ``m(x) - m(y)`` over the examples both ran, with its paired t interval."""
    a, b = per.get(x, {}).get(metric, {}), per.get(y, {}).get(metric, {})
    common = sorted(set(a) & set(b))
    return interval([a[i] - b[i] for i in common], level)


def time_ratio(per: PerExample, method: str, ratios: Optional[Mapping[str, float]] = None) -> float:
    """The interleaved ratio where one was measured (``ratios``), else the method's seconds in the runner over
    the floor's on the same examples (the floor: mean of its two runs)."""
    if ratios and method in ratios:
        return float(ratios[method])
    seconds = per.get(method, {}).get("seconds", {})
    floors = [per[f]["seconds"] for f in ("Floor", "Floor (end)") if f in per]
    if not seconds or not floors:
        return math.nan
    common = [i for i in seconds if all(i in f for f in floors)]
    floor = sum(float(np.mean([f[i] for f in floors])) for i in common)
    return sum(seconds[i] for i in common) / floor if floor > 0 else math.nan


def best_of(per: PerExample, metric: str, candidates: Sequence[str]) -> Optional[str]:
    """The candidate with the best mean on ``metric`` (None if none ran)."""
    means = {m: float(np.mean(list(per[m][metric].values()))) for m in candidates if per.get(m, {}).get(metric)}
    if not means:
        return None
    return max(means, key=lambda m: DIRECTION[metric] * means[m])


def fmt(mean: float, low: float, high: float, signed: bool = False) -> str:
    if math.isnan(mean):
        return "–"
    head = f"{mean:+.3f}" if signed else f"{mean:.3f}"
    return f"{head} [{low:+.3f}, {high:+.3f}]" if signed else f"{head} ± {(high - low) / 2:.3f}"


def table(
    per: PerExample,
    methods: Sequence[str],
    metrics: Sequence[str],
    references: Mapping[str, Mapping[str, Optional[str]]],
    f1: Optional[Mapping[str, float]] = None,
    ratios: Optional[Mapping[str, float]] = None,
) -> List[str]:
    """One row per method: each metric's mean ± half-width, its paired difference [95 %] against each named
    reference (``references[label][metric]``), F1@20 % and time ÷ floor."""
    head = ["method", "n"]
    for metric in metrics:
        head.append(f"{metric} {'↑' if DIRECTION[metric] > 0 else '↓'}")
        head += [f"Δ {metric[:4]}. vs {label}" for label in references]
    head += (["F1@20%"] if f1 is not None else []) + ["time ÷ floor"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        if method not in per:
            continue
        first = metrics[0]
        cells = [method, str(len(per[method].get(first, {})))]
        for metric in metrics:
            cells.append(fmt(*interval(list(per[method].get(metric, {}).values()))[:3]))
            for label, refs in references.items():
                ref = refs.get(metric)
                if ref is None or ref == method or ref not in per:
                    cells.append("–" if ref != method else "(itself)")
                else:
                    cells.append(fmt(*paired(per, metric, method, ref)[:3], signed=True))
        if f1 is not None:
            cells.append(f"{f1.get(method, math.nan):.3f}")
        mark = "" if ratios and method in ratios else "*"
        cells.append(f"{time_ratio(per, method, ratios):.2f}{mark}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def choose_candidate(
    per: PerExample, games: Sequence[str], ratios: Optional[Mapping[str, float]] = None, max_ratio: float = 1.2
) -> Dict[str, Any]:
    """PROTOCOL.md's choice: among the games at most ``max_ratio`` x the floor, the largest mean of
    comprehensiveness minus sufficiency (ties: the faster)."""
    rows = []
    for name in games:
        comp, suff = per[name]["comprehensiveness"], per[name]["sufficiency"]
        score = float(np.mean([comp[i] - suff[i] for i in comp]))
        rows.append({"method": name, "comp_minus_suff": score, "time_ratio": time_ratio(per, name, ratios)})
    eligible = [r for r in rows if r["time_ratio"] <= max_ratio]
    eligible.sort(key=lambda r: (-r["comp_minus_suff"], r["time_ratio"]))
    return {
        "ranking": sorted(rows, key=lambda r: -r["comp_minus_suff"]),
        "candidate": eligible[0] if eligible else None,
    }


def decision(
    per: PerExample,
    candidate: str,
    ratios: Optional[Mapping[str, float]] = None,
    reference: str = "AttnLRP",
    level: float = 0.95,
) -> Dict[str, Any]:
    """The decision rule of PROTOCOL.md on one set."""
    if reference not in per or candidate not in per:
        return {"evaluable": False, "why": f"{reference if reference not in per else candidate} did not run"}
    comp = paired(per, "comprehensiveness", candidate, reference, level)
    suff = paired(per, "sufficiency", candidate, reference, level)
    ratio = time_ratio(per, candidate, ratios)
    checks = {
        "comprehensiveness_no_loss": comp[2] >= 0,
        "sufficiency_no_loss": suff[1] <= 0,
        "time_within_1.2": ratio <= 1.2,
    }
    return {
        "evaluable": True,
        "met": all(checks.values()),
        "checks": checks,
        "strict_met": comp[0] >= 0 and suff[0] <= 0 and ratio <= 1.2,
        "comprehensiveness_difference": comp,
        "sufficiency_difference": suff,
        "time_ratio": ratio,
        "level": level,
    }
