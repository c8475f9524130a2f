"""The TokenTCAV bar chart: bar heights, error bars, the 0.5 line and the significance marks."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import stats  # noqa: E402

from captum_attn_shapley.concept import TokenTCAVScores  # noqa: E402
from captum_attn_shapley.visualization import plot_tcav_scores  # noqa: E402
from captum_attn_shapley.visualization.plots import TCAV_COLOURS  # noqa: E402

CONCEPTS = ["striped", "dotted", "zig<zag>"]
LAYERS = ["vit.layers.1", "vit.layers.2"]
#: Per layer, per concept, the R = 4 T-TCAV scores of the repeated CAVs.
REPEATS = {
    "vit.layers.1": [[0.9, 0.95, 0.85, 0.9], [0.5, 0.6, 0.4, 0.5], [0.1, 0.2, 0.15, 0.05]],
    "vit.layers.2": [[0.55, 0.45, 0.6, 0.5], [0.6, 0.7, 0.55, 0.65], [0.5, 0.5, 0.5, 0.5]],
}


def hand_made_scores(correction=None, random_p=None, alpha=0.05):
    """A TokenTCAVScores built by hand; p-values from scipy's one-sample t-test against 0.5.

    ``random_p``: per layer, the p-values of Captum's random-concept test (optional).
    With ``correction="bonferroni"`` the corrected p-values are min(1, 6 p) over the 6 cells.
    """
    result = TokenTCAVScores(alpha=alpha, correction=correction, num_examples=20)
    result.concept_names["0-1-2"] = list(CONCEPTS)
    result.concept_ids["0-1-2"] = [0, 1, 2]
    result["0-1-2"] = {}
    for layer in LAYERS:
        reps = np.array(REPEATS[layer])
        p = []
        for row in reps:
            p.append(1.0 if np.all(row == 0.5) else float(stats.ttest_1samp(row, 0.5).pvalue))
        metrics = {
            "sign_count": torch.tensor(reps.mean(axis=1)),
            "magnitude": torch.tensor([0.01, -0.02, 0.003]),
            "sign_count_repeats": torch.tensor(reps),
            "magnitude_repeats": torch.zeros(3, 4),
            "cav_accuracy": torch.tensor([0.9, 0.8, 0.85]),
            "p_value": torch.tensor(p, dtype=torch.float64),
        }
        if correction == "bonferroni":
            metrics["p_value_corrected"] = torch.clamp(metrics["p_value"] * 6, max=1.0)
        if random_p is not None:
            metrics["p_value_random"] = torch.tensor(random_p[layer], dtype=torch.float64)
            if correction == "bonferroni":
                metrics["p_value_random_corrected"] = torch.clamp(metrics["p_value_random"] * 6, max=1.0)
        result["0-1-2"][layer] = metrics
    return result


def expected_significance(scores):
    """Independent rule: (corrected) t-test p < alpha, and the random test too when present."""
    out = {}
    for layer in LAYERS:
        m = scores["0-1-2"][layer]
        p = m["p_value_corrected"] if scores.correction else m["p_value"]
        ok = (p < scores.alpha).numpy()
        if "p_value_random" in m:
            pr = m["p_value_random_corrected"] if scores.correction else m["p_value_random"]
            ok = ok & (pr < scores.alpha).numpy()
        out[layer] = ok.tolist()
    return out


def _panels(fig):
    return {ax.get_title().split("\n")[-1]: ax for ax in fig.axes if ax.get_title()}


def _check_chart(fig, scores):
    significant = expected_significance(scores)
    panels = _panels(fig)
    assert sorted(panels) == sorted(LAYERS)
    for layer, ax in panels.items():
        reps = np.array(REPEATS[layer])
        means, sds = reps.mean(axis=1), reps.std(axis=1, ddof=1)
        bars = next(c for c in ax.containers if isinstance(c, BarContainer))
        heights = [patch.get_height() for patch in bars.patches]
        assert np.allclose(heights, means, atol=1e-12)
        # error bars: one vertical segment per bar from mean - sd to mean + sd
        segments = bars.errorbar.lines[2][0].get_segments()
        assert np.allclose([s[0][1] for s in segments], means - sds, atol=1e-9)
        assert np.allclose([s[1][1] for s in segments], means + sds, atol=1e-9)
        # the 0.5 reference line
        assert any(np.allclose(np.asarray(line.get_ydata(), dtype=float), 0.5) for line in ax.lines)
        # one mark per bar, above it, matching the significance
        marks = sorted(((t.get_position()[0], t.get_text()) for t in ax.texts), key=lambda m: m[0])
        assert [m[1] for m in marks] == ["*" if s else "n.s." for s in significant[layer]]
        assert [round(m[0]) for m in marks] == [0, 1, 2]
        for t, height in zip(sorted(ax.texts, key=lambda t: t.get_position()[0]), heights):
            assert t.get_position()[1] > height
        colours = [matplotlib.colors.to_hex(p.get_facecolor()) for p in bars.patches]
        assert colours == [TCAV_COLOURS[0].lower() if s else TCAV_COLOURS[1].lower() for s in significant[layer]]
        assert [t.get_text() for t in ax.get_xticklabels()] == CONCEPTS


def test_bars_error_bars_and_marks_follow_the_scores():
    scores = hand_made_scores()
    fig = plot_tcav_scores(scores, title="class: striped")
    try:
        _check_chart(fig, scores)
        # the truth of this case: layer 1 striped and zigzag clearly off 0.5, dotted not
        assert expected_significance(scores)["vit.layers.1"] == [True, False, True]
        assert fig._suptitle.get_text() == "class: striped"
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        assert Image.open(io.BytesIO(buffer.getvalue())).format == "PNG"
    finally:
        plt.close(fig)


def test_marks_use_the_corrected_and_the_random_test():
    plain = hand_made_scores()
    corrected = hand_made_scores(correction="bonferroni")
    raw = expected_significance(plain)
    after = expected_significance(corrected)
    # layer 2, dotted: p = 0.030 < 0.05, but 6 p = 0.18 after the correction
    assert raw["vit.layers.2"][1] and not after["vit.layers.2"][1]
    fig = plot_tcav_scores(corrected)
    try:
        _check_chart(fig, corrected)
    finally:
        plt.close(fig)
    with_random = hand_made_scores(random_p={"vit.layers.1": [0.5, 0.001, 0.001], "vit.layers.2": [0.01] * 3})
    assert expected_significance(with_random)["vit.layers.1"] == [False, False, True]
    fig = plot_tcav_scores(with_random)
    try:
        _check_chart(fig, with_random)
    finally:
        plt.close(fig)


def test_bad_input():
    with pytest.raises(TypeError, match="TokenTCAVScores"):
        plot_tcav_scores({"0-1": {}})
    with pytest.raises(ValueError, match="no rows"):
        plot_tcav_scores(TokenTCAVScores())
