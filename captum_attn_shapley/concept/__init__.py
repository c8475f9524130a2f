"""Concept-based interpretability: TokenTCAV, its probe, its scores and their significance tests."""

from captum_attn_shapley.concept.builders import image_concept, text_concept
from captum_attn_shapley.concept.classifier import TokenLogisticClassifier
from captum_attn_shapley.concept.scores import TABLE_COLUMNS, TokenTCAVScores, tcav_table
from captum_attn_shapley.concept.stats import CORRECTIONS, correct_pvalues, random_concept_test, ttest_against_half
from captum_attn_shapley.concept.token_tcav import TokenTCAV

__all__ = [
    "CORRECTIONS",
    "TABLE_COLUMNS",
    "TokenLogisticClassifier",
    "TokenTCAV",
    "TokenTCAVScores",
    "correct_pvalues",
    "image_concept",
    "random_concept_test",
    "tcav_table",
    "text_concept",
    "ttest_against_half",
]
