"""The attribution methods, as Captum :class:`~captum.attr.Attribution` classes."""

from captum_attn_shapley._utils.input_warnings import InputWarning
from captum_attn_shapley.attr._received import ReceivedAttentionAttribution
from captum_attn_shapley.attr.att import AttentionReceived
from captum_attn_shapley.attr.attention_attribution import AttentionAttribution
from captum_attn_shapley.attr.attn_grad_shapley import ESTIMATORS, PAPER_VARIANTS, AttnGradShapley, variant_name
from captum_attn_shapley.attr.attn_lrp import AttnLRP
from captum_attn_shapley.attr.grad_sam import GradSAM
from captum_attn_shapley.attr.gradient_rollout import GradientRollout
from captum_attn_shapley.attr.ig_attention import IGAttentionReceived, LayerIGAttentionReceived
from captum_attn_shapley.attr.layer_attention import (
    AttentionLayerAttribution,
    LayerAttentionReceived,
    LayerAttnGradShapley,
    LayerGradSAM,
    LayerReceivedAttention,
    attention_layer_calls,
)
from captum_attn_shapley.attr.layer_weighted_gradient import LayerAttentionWeightedGradient, TokenTerms
from captum_attn_shapley.attr.llm_attn_grad_shapley import LLMAttnGradShapley
from captum_attn_shapley.attr.lrp_received import LayerLRPAttentionReceived, LRPAttentionReceived
from captum_attn_shapley.attr.shap_text import ShapText
from captum_attn_shapley.attr.shapley_input import ShapleyInput

__all__ = [
    "AttentionAttribution",
    "AttentionLayerAttribution",
    "AttentionReceived",
    "AttnGradShapley",
    "AttnLRP",
    "ESTIMATORS",
    "GradSAM",
    "GradientRollout",
    "IGAttentionReceived",
    "InputWarning",
    "LLMAttnGradShapley",
    "LRPAttentionReceived",
    "LayerAttentionReceived",
    "LayerAttentionWeightedGradient",
    "LayerAttnGradShapley",
    "LayerGradSAM",
    "LayerIGAttentionReceived",
    "LayerLRPAttentionReceived",
    "LayerReceivedAttention",
    "PAPER_VARIANTS",
    "ReceivedAttentionAttribution",
    "ShapText",
    "ShapleyInput",
    "TokenTerms",
    "attention_layer_calls",
    "variant_name",
]
