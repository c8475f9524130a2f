"""Side-by-side evaluation of attribution methods on a labelled dataset: the method registry
(:mod:`~captum_attn_shapley.evaluation.registry`), the runner
(:mod:`~captum_attn_shapley.evaluation.runner`) and its results
(:mod:`~captum_attn_shapley.evaluation.results`)."""

from captum_attn_shapley.evaluation.adapters import classifier_forward, embedding_layer
from captum_attn_shapley.evaluation.registry import (
    ATTENTION_METHODS,
    SAMPLING_ESTIMATORS,
    attention_method,
    resolve_attention_methods,
    resolve_standard_methods,
    standard_method_names,
    standard_methods,
)
from captum_attn_shapley.evaluation.results import ComparisonResult, mean_interval, summary_markdown, write_results
from captum_attn_shapley.evaluation.runner import run_comparison
from captum_attn_shapley.evaluation.spec import MethodSpec

__all__ = [
    "ATTENTION_METHODS",
    "ComparisonResult",
    "MethodSpec",
    "SAMPLING_ESTIMATORS",
    "attention_method",
    "classifier_forward",
    "embedding_layer",
    "mean_interval",
    "resolve_attention_methods",
    "resolve_standard_methods",
    "run_comparison",
    "standard_method_names",
    "standard_methods",
    "summary_markdown",
    "write_results",
]
