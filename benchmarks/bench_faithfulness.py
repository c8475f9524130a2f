#!/usr/bin/env python3
"""The paper's faithfulness benchmark, reproduced offline (the baselines and the metrics of docs/mathematics.md).

For each view of the data (``short``: at most 15 word-pieces, ``all``, ``long``: the longest
examples), balanced over the classes and drawn with a pinned seed, every method of
:func:`captum_attn_shapley.evaluation.standard_methods` is run by
:func:`captum_attn_shapley.evaluation.run_comparison` on the same batches: comprehensiveness
and sufficiency (bins 0/10/20/50%, [MASK] replacement), F1 at 20%, examples per second. It
also reports how close the unbiased sampling estimators get to the exact
Shapley-Grad-Att-Max-Mutual values, and the throughput of every exact variant relative to
KernelShap (n_samples=200) on the same examples and batch size.

Defaults: the embedded tweet classifier and the embedded tweets' held-out test split
(offline). ``--model`` takes any Hugging Face id or directory, ``--data`` sst2 / imdb /
ag_news (with the hub and ``datasets``), any hub id or a CSV. Results of finished methods
are kept under ``--out`` and reused (same model, data, settings), so a run can be resumed.

    python benchmarks/bench_faithfulness.py --views short all long --n 60 60 40 \\
        --expensive-n 20 --input-shapley-n 10 --out benchmarks/results/faithfulness
"""

import argparse
import importlib.util
import json
import pathlib
import platform
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch

from captum_attn_shapley.demos import load_classifier, load_text_dataset
from captum_attn_shapley.demos.datasets import select_view
from captum_attn_shapley.evaluation import (
    ComparisonResult,
    run_comparison,
    standard_method_names,
    standard_methods,
    summary_markdown,
)
from captum_attn_shapley.visualization import plot_comparison

EXACT = "Shapley-Grad-Att-Max-Mutual"
PAPER_VARIANTS = standard_method_names()[:6]
#: Methods run on the first --expensive-n examples of a view only.
EXPENSIVE = ("ShapleyValueSampling",)


def estimator_errors(result: ComparisonResult) -> List[Dict[str, float]]:
    """Relative L2 error and Pearson correlation of each sampling estimator to the exact values."""
    exact = result.attributions[EXACT]
    rows = []
    for name, sampled in result.attributions.items():
        if not name.startswith(EXACT + " ("):
            continue
        errors, correlations = [], []
        for truth, estimate in zip(exact, sampled):
            t, e = np.asarray(truth), np.asarray(estimate)
            errors.append(np.linalg.norm(e - t) / max(np.linalg.norm(t), 1e-12))
            if t.size > 1 and t.std() > 0 and e.std() > 0:
                correlations.append(np.corrcoef(t, e)[0, 1])
        rows.append(
            {
                "method": name,
                "relative_l2_error": float(np.mean(errors)),
                "pearson_r": float(np.mean(correlations)) if correlations else float("nan"),
            }
        )
    return rows


def throughput_ratios(result: ComparisonResult, reference: str = "KernelShap") -> Dict[str, float]:
    """Examples per second of each exact variant divided by the reference's, on the same examples."""
    rates = {row["method"]: row["examples_per_second"] for row in result.summary}
    if reference not in rates:
        return {}
    return {name: rates[name] / rates[reference] for name in PAPER_VARIANTS if name in rates}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="HF id or directory (default: the embedded classifier)")
    parser.add_argument("--data", default="tweets", help="tweets (default), sst2, imdb, ag_news, hub id, CSV")
    parser.add_argument("--views", nargs="+", default=["short", "all", "long"], choices=["short", "all", "long"])
    parser.add_argument("--n", type=int, nargs="+", default=[60, 60, 40], help="examples per view")
    parser.add_argument(
        "--expensive-n",
        type=int,
        default=20,
        help=f"examples for {', '.join(EXPENSIVE)} (the first ones of each view)",
    )
    parser.add_argument(
        "--input-shapley-n",
        type=int,
        default=10,
        help="examples of the short view for exact Shapley-Input (2^n forwards each)",
    )
    parser.add_argument("--methods", nargs="+", default=None, help="a subset of the standard method names")
    parser.add_argument("--no-shap", action="store_true", help="leave out the shap library's explainer")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results/faithfulness"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if len(args.n) == 1:
        args.n = args.n * len(args.views)
    if len(args.n) != len(args.views):
        parser.error("give one --n per view, or a single one for all")

    model, tokenizer, info = load_classifier(args.model)
    data = load_text_dataset(args.data)
    have_shap = importlib.util.find_spec("shap") is not None and not args.no_shap
    report = [
        "# Faithfulness benchmark",
        "",
        f"- command: `python {' '.join(['benchmarks/bench_faithfulness.py'] + (argv or sys.argv[1:]))}`",
        f"- model: {info.get('name_or_path')}"
        + (f" (held-out accuracy {info['accuracy']:.3f})" if "accuracy" in info else ""),
        f"- data: {args.data}; batch size {args.batch_size}; max length {args.max_length}; seed {args.seed}",
        f"- machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}",
        f"- {', '.join(EXPENSIVE)}: first {args.expensive_n} examples of each view; exact Shapley-Input: "
        f"first {args.input_shapley_n} of the short view"
        + ("" if have_shap else "; SHAP left out (shap not installed or --no-shap)"),
        "",
    ]
    summaries = {}
    for view, n in zip(args.views, args.n):
        subset = select_view(data, tokenizer, view, n, seed=args.seed)
        names = args.methods or [m for m in standard_method_names() if m != "SHAP" or have_shap]
        if view != "short":
            names = [m for m in names if m != "Shapley-Input"]
        methods = standard_methods(model, tokenizer, names, batch_size=args.batch_size)
        for spec in methods:
            if spec.name in EXPENSIVE:
                spec.max_examples = args.expensive_n
            elif spec.name == "Shapley-Input":
                spec.max_examples = args.input_shapley_n
        lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in subset.texts]
        began = time.perf_counter()
        section = len(report)
        result = run_comparison(
            model,
            tokenizer,
            subset.texts,
            subset.labels,
            methods,
            out_dir=args.out / f"{args.data}-{view}",
            batch_size=args.batch_size,
            max_length=args.max_length,
            seed=args.seed,
            progress=not args.no_progress,
            plot=plot_comparison,
        )
        summaries[view] = {
            "summary": result.summary,
            "estimators": estimator_errors(result),
            "throughput_vs_kernelshap": throughput_ratios(result),
        }
        report += [
            f"## View `{view}`: {len(subset)} examples, {min(lengths)}-{max(lengths)} word-pieces "
            f"(mean {np.mean(lengths):.1f}); {time.perf_counter() - began:.0f} s",
            "",
            summary_markdown(result.summary),
            "Sampling estimators against the exact Shapley-Grad-Att-Max-Mutual values (mean over examples):",
            "",
            "| estimator | relative L2 error | Pearson r |",
            "|---|---:|---:|",
        ]
        report += [
            f"| {r['method']} | {r['relative_l2_error']:.4f} | {r['pearson_r']:.4f} |"
            for r in summaries[view]["estimators"]
        ]
        ratios = summaries[view]["throughput_vs_kernelshap"]
        if ratios:
            report += [
                "",
                "Examples per second of each exact variant ÷ KernelShap's (target ≥ 50): "
                + ", ".join(f"{name} {ratio:.0f}×" for name, ratio in ratios.items()),
                "",
            ]
        print("\n".join(report[section:]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text("\n".join(report) + "\n")
    (args.out / "report.json").write_text(json.dumps(summaries, indent=1))
    print(f"wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
