"""TokenTCAV finds the concept each class depends on, and where it is (small versions of the benchmark)."""
import math

from captum_attn_shapley.tcav_ground_truth import text_ground_truth, tweet_ground_truth, vision_ground_truth


def _check(report, layers, min_pointing):
    assert report.rows, "no rows"
    for row in report.rows:
        if row["layer"] not in layers:
            continue
        if row["planted"]:
            assert row["t_tcav"] > 0.5 and row["p_value"] < 0.01, row
        else:
            assert not (row["t_tcav"] > 0.5 and row["p_value"] < 0.01), row
        assert 0.0 <= row["p_value_random"] <= 1.0
    for loc in report.localisation:
        if loc["layer"] not in layers:
            continue
        assert loc["pointing_game"] >= min_pointing, loc
        assert not math.isnan(loc["mass_inside"]) and loc["mass_inside"] > loc["chance"] + 0.3, loc


def test_text_planted_polarity_words(planted_classifier, tmp_path):
    model, tokenizer, _ = planted_classifier
    report = text_ground_truth(model, tokenizer, layers=(2, 3), n_targets=16, n_words=24, n_random=3,
                               repeats=8, save_path=str(tmp_path))
    assert {r["target_class"] for r in report.rows} == {"positive", "negative"}
    _check(report, layers={"bert.encoder.layer.2"}, min_pointing=0.8)
    # the planted words are about a fifth of each sentence's words
    assert all(0.1 < loc["chance"] < 0.35 for loc in report.localisation)


def test_vision_planted_textures(texture_classifier, tmp_path):
    """The texture classes: T-TCAV at block 2, heatmaps at block 1 (see the README for the colour classes)."""
    model = texture_classifier[0]
    report = vision_ground_truth(model, layers=(1, 2), classes=("striped", "dotted", "zigzag"),
                                 groups=("textures",), n_targets=20, n_concept=16, n_random=3, repeats=10,
                                 save_path=str(tmp_path))
    assert len(report.rows) == 3 * 3 * 2
    for row in report.rows:
        if row["layer"] == "vit.layers.2":
            assert row["ok"], row
    for loc in report.localisation:
        if loc["layer"] == "vit.layers.1":
            assert loc["pointing_game"] >= 0.8 and loc["mass_inside"] > loc["chance"] + 0.3, loc


def test_tweets_depend_on_their_polarity_words(default_classifier, tmp_path):
    model, tokenizer, _ = default_classifier
    report = tweet_ground_truth(model, tokenizer, layers=(3,), n_targets=16, n_words=24, n_random=3, repeats=6,
                                save_path=str(tmp_path))
    assert len(report.rows) == 4 and not report.localisation
    assert report.passed(), report.to_markdown()
