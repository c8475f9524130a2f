#!/usr/bin/env python3
"""captum-attn-shapley: attention-game Shapley attributions for transformer classifiers."""
from captum_attn_shapley.attention_attribution import AttentionAttribution
from captum_attn_shapley.attention_capture import (
    AttentionCapture,
    CapturedAttention,
    discover_attention_modules,
    eager_attention,
    find_model,
)
from captum_attn_shapley.attn_grad_shapley import AttnGradShapley, variant_name
from captum_attn_shapley.baselines import AttentionReceived, GradSAM, ShapleyInput
from captum_attn_shapley.concept_classifier import TokenLogisticClassifier
from captum_attn_shapley.concepts import image_concept, text_concept
from captum_attn_shapley.comparison import MethodSpec, run_comparison, standard_methods
from captum_attn_shapley.estimators import exact_shapley, kernel_shapley, permutation_shapley
from captum_attn_shapley.faithfulness import (
    comprehensiveness,
    faithfulness_curves,
    sufficiency,
    sufficiency_f1,
)
from captum_attn_shapley.games import BUILTIN_GAMES, GameFunction, shapley_values
from captum_attn_shapley.images import patch_attributions_to_pixels
from captum_attn_shapley.influence import influence_matrix
from captum_attn_shapley.report import (
    ReportExample,
    attribution_report,
    comparison_report,
    image_examples,
    tcav_heatmap_examples,
    tcav_report,
    text_examples,
    write_report,
)
from captum_attn_shapley.shap_text import ShapText
from captum_attn_shapley.tcav_results import TokenTCAVScores, tcav_table
from captum_attn_shapley.token_tcav import TokenTCAV
from captum_attn_shapley.visualization import image_attr_maps, text_records

__version__ = "0.1.0"

__all__ = [
    "AttentionAttribution",
    "AttentionCapture",
    "AttentionReceived",
    "AttnGradShapley",
    "BUILTIN_GAMES",
    "CapturedAttention",
    "GameFunction",
    "GradSAM",
    "MethodSpec",
    "ReportExample",
    "ShapText",
    "ShapleyInput",
    "TokenLogisticClassifier",
    "TokenTCAV",
    "TokenTCAVScores",
    "attribution_report",
    "comparison_report",
    "comprehensiveness",
    "discover_attention_modules",
    "eager_attention",
    "exact_shapley",
    "faithfulness_curves",
    "find_model",
    "image_attr_maps",
    "image_concept",
    "image_examples",
    "influence_matrix",
    "kernel_shapley",
    "patch_attributions_to_pixels",
    "permutation_shapley",
    "run_comparison",
    "shapley_values",
    "standard_methods",
    "sufficiency",
    "sufficiency_f1",
    "tcav_heatmap_examples",
    "tcav_report",
    "tcav_table",
    "text_concept",
    "text_examples",
    "text_records",
    "variant_name",
    "write_report",
]
