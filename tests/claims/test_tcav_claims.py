"""Claims tier: TokenTCAV finds the concept each class depends on, and where, at the benchmark's size.

The settings are those of ``benchmarks/bench_tcav_ground_truth.py`` (R = 50, 50 targets per class,
40 examples per concept, 10 random concepts, seed 0) and the checks are the README's claims ("Ground
truth: does T-TCAV find the planted concept, and where?"): a row passes when the planted concept has
T-TCAV > 0.5 with p < 0.01 and no other concept of its set has.
"""
import math

import pytest

from captum_attn_shapley.tcav_ground_truth import text_ground_truth, tweet_ground_truth, vision_ground_truth

BENCHMARK = dict(n_targets=50, n_random=10, repeats=50, seed=0)


def _rows(report, layer):
    rows = [row for row in report.rows if row["layer"] == layer]
    assert rows, f"no rows at {layer}"
    return rows


def _localises(report, layer):
    """The README's localisation claim: pointing game >= 0.8 and mass inside > chance + 0.3."""
    locs = [loc for loc in report.localisation if loc["layer"] == layer]
    assert locs, f"no heatmaps at {layer}"
    for loc in locs:
        assert loc["pointing_game"] >= 0.8, loc
        assert not math.isnan(loc["mass_inside"]) and loc["mass_inside"] > loc["chance"] + 0.3, loc


@pytest.fixture(scope="module")
def text_report(planted_classifier, tmp_path_factory):
    model, tokenizer, _ = planted_classifier
    return text_ground_truth(model, tokenizer, layers=(2, 3), n_words=40,
                             save_path=str(tmp_path_factory.mktemp("cav")), **BENCHMARK)


@pytest.mark.parametrize("block", [2, 3])
def test_planted_words_are_found_and_localised(text_report, block):
    layer = f"bert.encoder.layer.{block}"
    rows = _rows(text_report, layer)
    assert {row["target_class"] for row in rows} == {"positive", "negative"}
    assert all(row["ok"] for row in rows), text_report.to_markdown()
    _localises(text_report, layer)
    # the planted words are about a fifth of each sentence's words
    assert all(0.1 < loc["chance"] < 0.35 for loc in text_report.localisation)


def test_tweets_depend_on_their_polarity_words(default_classifier, tmp_path):
    model, tokenizer, _ = default_classifier
    report = tweet_ground_truth(model, tokenizer, layers=(2, 3, 4), n_words=40, save_path=str(tmp_path),
                                **BENCHMARK)
    assert len(report.rows) == 12 and not report.localisation
    assert report.passed(), report.to_markdown()


def test_planted_textures_are_found_at_block_2_and_localised_at_block_1(texture_classifier, tmp_path):
    report = vision_ground_truth(texture_classifier[0], layers=(1, 2), classes=("striped", "dotted", "zigzag"),
                                 groups=("textures",), n_concept=40, save_path=str(tmp_path), **BENCHMARK)
    rows = _rows(report, "vit.layers.2")
    assert len(rows) == 9
    assert all(row["ok"] for row in rows), report.to_markdown()
    _localises(report, "vit.layers.1")
