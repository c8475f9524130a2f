"""Everything that touches a model's internals: attention capture, the players, influence matrices."""

from captum_attn_shapley.capture.attention import ENGINES, AttentionCapture
from captum_attn_shapley.capture.captured import CapturedAttention
from captum_attn_shapley.capture.discovery import (
    ModuleSpec,
    OutputSelector,
    config_value,
    discover_attention_modules,
    find_model,
    model_behind,
)
from captum_attn_shapley.capture.eager import eager_attention
from captum_attn_shapley.capture.influence_matrix import WEIGHTINGS, influence_matrix, received_per_token
from captum_attn_shapley.capture.one_pass import model_lock
from captum_attn_shapley.capture.players import TokenLayout, default_player_mask, text_player_mask
from captum_attn_shapley.capture.reductions import REDUCTIONS, InfluenceRequest
from captum_attn_shapley.capture.special_tokens import (
    config_special_token_ids,
    model_special_token_ids,
    offline_tokenizer,
    resolve_special_token_ids,
    tokenizer_special_token_ids,
    unique_ids,
)

__all__ = [
    "AttentionCapture",
    "CapturedAttention",
    "ENGINES",
    "InfluenceRequest",
    "REDUCTIONS",
    "ModuleSpec",
    "OutputSelector",
    "TokenLayout",
    "WEIGHTINGS",
    "config_special_token_ids",
    "config_value",
    "default_player_mask",
    "discover_attention_modules",
    "eager_attention",
    "find_model",
    "influence_matrix",
    "model_behind",
    "model_lock",
    "model_special_token_ids",
    "offline_tokenizer",
    "received_per_token",
    "resolve_special_token_ids",
    "text_player_mask",
    "tokenizer_special_token_ids",
    "unique_ids",
]
