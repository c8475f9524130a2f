#!/usr/bin/env python3
"""captum-attn-shapley: attention-game Shapley attributions and token-level TCAV for transformers.

The names a user reaches for; everything else is in the subpackages: :mod:`~captum_attn_shapley.attr`,
:mod:`~captum_attn_shapley.concept`, :mod:`~captum_attn_shapley.metrics`,
:mod:`~captum_attn_shapley.shapley`, :mod:`~captum_attn_shapley.capture`,
:mod:`~captum_attn_shapley.evaluation`, :mod:`~captum_attn_shapley.visualization` and
:mod:`~captum_attn_shapley.demos`.
"""

from captum_attn_shapley.attr import (
    AttentionReceived,
    AttnGradShapley,
    GradSAM,
    LLMAttnGradShapley,
    ShapleyInput,
    ShapText,
)
from captum_attn_shapley.concept import TokenTCAV, TokenTCAVScores, image_concept, text_concept
from captum_attn_shapley.metrics import (
    FaithfulnessCurves,
    comprehensiveness,
    faithfulness_curves,
    sufficiency,
    sufficiency_f1,
)

__version__ = "0.1.0"

__all__ = [
    "AttentionReceived",
    "AttnGradShapley",
    "FaithfulnessCurves",
    "GradSAM",
    "LLMAttnGradShapley",
    "ShapText",
    "ShapleyInput",
    "TokenTCAV",
    "TokenTCAVScores",
    "__version__",
    "comprehensiveness",
    "faithfulness_curves",
    "image_concept",
    "sufficiency",
    "sufficiency_f1",
    "text_concept",
]
