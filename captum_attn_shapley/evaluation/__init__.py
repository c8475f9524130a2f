"""Side-by-side evaluation of attribution methods on a labelled dataset."""

from captum_attn_shapley.evaluation.comparison import (
    ComparisonResult,
    MethodSpec,
    run_comparison,
    standard_method_names,
    standard_methods,
    summary_markdown,
    write_results,
)

__all__ = [
    "ComparisonResult",
    "MethodSpec",
    "run_comparison",
    "standard_method_names",
    "standard_methods",
    "summary_markdown",
    "write_results",
]
