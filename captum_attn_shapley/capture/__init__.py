"""Everything that touches a model's internals: attention capture, the players, influence matrices."""

from captum_attn_shapley.capture.attention import (
    AttentionCapture,
    CapturedAttention,
    discover_attention_modules,
    eager_attention,
    find_model,
)
from captum_attn_shapley.capture.influence_matrix import WEIGHTINGS, influence_matrix, received_per_token
from captum_attn_shapley.capture.players import TokenLayout, default_player_mask, text_player_mask

__all__ = [
    "AttentionCapture",
    "CapturedAttention",
    "TokenLayout",
    "WEIGHTINGS",
    "default_player_mask",
    "discover_attention_modules",
    "eager_attention",
    "find_model",
    "influence_matrix",
    "received_per_token",
    "text_player_mask",
]
