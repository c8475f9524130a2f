#!/usr/bin/env python3
"""What builds each method of the comparison (:func:`~captum_attn_shapley.evaluation.standard_methods`) from
the model and its tokenizer, with the settings the comparison uses; the names live in
:mod:`~captum_attn_shapley.evaluation.registry`."""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

from captum.attr import (
    FeatureAblation,
    KernelShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    Lime,
    ShapleyValueSampling,
)
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley.attr import (
    PAPER_VARIANTS,
    AttentionReceived,
    AttnGradShapley,
    AttnLRP,
    GradientRollout,
    GradSAM,
    ShapleyInput,
    ShapText,
    variant_name,
)
from captum_attn_shapley.evaluation.adapters import embedding_layer
from captum_attn_shapley.evaluation.spec import MethodSpec
from captum_attn_shapley.metrics import Replacement, resolve_replacement

_GRADIENT_WEIGHTINGS = ("grad_attention", "lrp_attention", "ig_attention")

#: The attention games beyond the paper's six, by name: ``(game, weighting, signed)``: the relevance
#: (``Shapley-LRP-Att-*``) and path (``Shapley-IG-Att-*``) weightings, and every gradient weighting signed
#: (``Shapley-Signed-*``).
EXTENDED_VARIANTS: Dict[str, Tuple[str, str, bool]] = {
    variant_name(game, weighting, signed): (game, weighting, signed)
    for signed, weightings in ((False, ("lrp_attention", "ig_attention")), (True, _GRADIENT_WEIGHTINGS))
    for weighting in weightings
    for game in ("cls", "mutual", "max_mutual")
}

#: The sampling estimators run on Shapley-Grad-Att-Max-Mutual, at these sample counts.
SAMPLING_ESTIMATORS: Tuple[Tuple[str, int], ...] = (
    ("permutation", 100),
    ("permutation", 1000),
    ("kernel", 100),
    ("kernel", 1000),
)

#: Rows per forward pass given to the perturbation methods (as many as a batch of 16).
ROWS_PER_FORWARD = 16


@dataclass(frozen=True)
class _Setting:
    """What the builders of :data:`_BUILDERS` share."""

    model: Module
    tokenizer: Any
    forward: Callable[[Tensor, Tensor], Tensor]
    special: List[int]
    per_eval: int
    replacement: Replacement


def _sampled_name(estimator: str, n_samples: int) -> str:
    return f"Shapley-Grad-Att-Max-Mutual ({estimator}, {n_samples})"


_SAMPLED = {_sampled_name(est, n): (est, n) for est, n in SAMPLING_ESTIMATORS}


def _exact(name: str, s: _Setting) -> MethodSpec:
    game, weighting = PAPER_VARIANTS[name]
    method = AttnGradShapley(s.forward, game=game, weighting=weighting, special_token_ids=s.special)
    return MethodSpec(name, method, description="exact, closed form")


def _extended(name: str, s: _Setting) -> MethodSpec:
    game, weighting, signed = EXTENDED_VARIANTS[name]
    method = AttnGradShapley(s.forward, game=game, weighting=weighting, signed=signed, special_token_ids=s.special)
    return MethodSpec(name, method, description="exact, closed form" + (", signed weights" if signed else ""))


def _attn_lrp(name: str, s: _Setting) -> MethodSpec:
    return MethodSpec(name, AttnLRP(s.forward, model=s.model), description="Achtibat et al. 2024, one backward")


def _sampled(name: str, s: _Setting) -> MethodSpec:
    est, n = _SAMPLED[name]
    return MethodSpec(
        name,
        AttnGradShapley(s.forward, game="max_mutual", weighting="grad_attention", special_token_ids=s.special),
        kwargs={"estimator": est, "n_samples": n, "seed": 0},
        description=f"unbiased {est} estimator, {n} samples",
    )


def _att(name: str, s: _Setting) -> MethodSpec:
    return MethodSpec(
        name, AttentionReceived(s.forward, special_token_ids=s.special), description="attention received"
    )


def _grad_sam(name: str, s: _Setting) -> MethodSpec:
    return MethodSpec(name, GradSAM(s.forward, special_token_ids=s.special), description="Barkan et al. 2021")


def _chefer_rollout(name: str, s: _Setting) -> MethodSpec:
    method = GradientRollout(s.forward, special_token_ids=s.special)
    return MethodSpec(name, method, description="gradient-weighted rollout, Chefer et al. 2021")


def _shapley_input(name: str, s: _Setting) -> MethodSpec:
    return MethodSpec(
        name,
        ShapleyInput(s.forward, special_token_ids=s.special),
        kwargs={
            "baselines": resolve_replacement(s.replacement, s.tokenizer),
            "max_players": 15,
            "perturbations_per_eval": 512,
        },
        description="exact, 2^n forwards",
    )


def _shap(name: str, s: _Setting) -> MethodSpec:
    return MethodSpec(
        name,
        ShapText(s.forward, s.tokenizer),
        kwargs={"max_evals": 500},
        description="shap partition explainer, max_evals=500",
    )


def _integrated_gradients(name: str, s: _Setting) -> MethodSpec:
    return MethodSpec(
        name,
        LayerIntegratedGradients(s.forward, embedding_layer(s.model)),
        kwargs={"n_steps": 50},
        baselines="pad",
        description="embeddings, n_steps=50, [PAD] baseline",
    )


def _kernel_shap(name: str, s: _Setting) -> MethodSpec:
    kwargs = {"n_samples": 200, "perturbations_per_eval": ROWS_PER_FORWARD}
    return MethodSpec(
        name,
        KernelShap(s.forward),
        kwargs,
        baselines=s.replacement,
        feature_mask=True,
        description="n_samples=200",
    )


def _shapley_value_sampling(name: str, s: _Setting) -> MethodSpec:
    kwargs = {"n_samples": 25, "perturbations_per_eval": s.per_eval}
    method = ShapleyValueSampling(s.forward)
    return MethodSpec(name, method, kwargs, baselines=s.replacement, feature_mask=True, description="n_samples=25")


def _lime(name: str, s: _Setting) -> MethodSpec:
    kwargs = {"n_samples": 200, "perturbations_per_eval": ROWS_PER_FORWARD}
    return MethodSpec(
        name, Lime(s.forward), kwargs, baselines=s.replacement, feature_mask=True, description="n_samples=200"
    )


def _feature_ablation(name: str, s: _Setting) -> MethodSpec:
    kwargs = {"perturbations_per_eval": s.per_eval}
    method = FeatureAblation(s.forward)
    return MethodSpec(
        name, method, kwargs, baselines=s.replacement, feature_mask=True, description="one token at a time"
    )


def _input_x_gradient(name: str, s: _Setting) -> MethodSpec:
    method = LayerGradientXActivation(s.forward, embedding_layer(s.model))
    return MethodSpec(name, method, description="embeddings")


#: Every method of :func:`standard_methods`, in the paper's order: what builds it.
_BUILDERS: Dict[str, Callable[[str, _Setting], MethodSpec]] = {
    **{name: _exact for name in PAPER_VARIANTS},
    **{name: _extended for name in EXTENDED_VARIANTS},
    **{name: _sampled for name in _SAMPLED},
    "Att": _att,
    "Grad-SAM": _grad_sam,
    "Chefer-Rollout": _chefer_rollout,
    "AttnLRP": _attn_lrp,
    "Shapley-Input": _shapley_input,
    "SHAP": _shap,
    "LayerIntegratedGradients": _integrated_gradients,
    "KernelShap": _kernel_shap,
    "ShapleyValueSampling": _shapley_value_sampling,
    "Lime": _lime,
    "FeatureAblation": _feature_ablation,
    "InputXGradient": _input_x_gradient,
}
