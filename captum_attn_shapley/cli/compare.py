"""``captum-attn-shapley compare``: faithfulness, F1 and speed of attribution methods on a labelled dataset."""

import argparse
import pathlib
from typing import List, Optional, Sequence

from captum_attn_shapley._utils.labels import model_label_names
from captum_attn_shapley.evaluation.registry import (
    resolve_standard_methods,
    standard_method_names,
    standard_methods,
)
from captum_attn_shapley.evaluation.runner import run_comparison


def resolve_compare_methods(names: Optional[Sequence[str]]) -> Optional[List[str]]:
    r"""
    Resolves the method names of ``compare`` (case, spaces and punctuation ignored).

    Args:
        names (sequence of str, optional): Names, or None for the default set.

    Returns:
        list[str] or None: Names of :func:`captum_attn_shapley.evaluation.standard_method_names`.

    Raises:
        SystemExit: For an unknown name.
    """
    try:
        return resolve_standard_methods(names)
    except ValueError as err:
        raise SystemExit(f"error: {err}")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    r"""
    Adds the ``compare`` command and its options.

    Args:
        sub: The program's sub-command parsers.
    """
    compare = sub.add_parser(
        "compare", help="compare attribution methods (faithfulness, F1, speed) on a labelled dataset"
    )
    compare.add_argument(
        "--model", default=None, help="Hugging Face model id or local directory (default: the embedded classifier)"
    )
    compare.add_argument(
        "--data",
        default="tweets",
        help="'tweets' (embedded, offline; default), sst2, imdb, ag_news (need the hub and "
        "`datasets`), another hub id, or a CSV with text,label columns",
    )
    compare.add_argument(
        "--view",
        default="all",
        choices=["short", "all", "long"],
        help="short (<= 15 word-pieces), all, or the longest examples (default: all)",
    )
    compare.add_argument("--n", type=int, default=100, help="examples, balanced over the classes (default 100)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the example draw and the methods")
    compare.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="method names (see --list-methods; spaces and punctuation optional, e.g. grad-att-max-mutual "
        "kernelshap 'grad-att-max-mutual-permutation-100'); default: all but SHAP and Shapley-Input",
    )
    compare.add_argument("--list-methods", action="store_true", help="print the known method names and exit")
    compare.add_argument("--batch-size", type=int, default=16, help="examples per attribute call (default 16)")
    compare.add_argument("--max-length", type=int, default=128, help="truncation length (default 128)")
    compare.add_argument(
        "--bins",
        type=float,
        nargs="+",
        default=[0, 10, 20, 50],
        help="bins of comprehensiveness/sufficiency in percent (default 0 10 20 50)",
    )
    compare.add_argument("--f1-k", type=float, default=20, help="bin of the F1 (default 20)")
    compare.add_argument(
        "--replacement", default="mask", help="token replacing removed tokens: mask (default), pad, unk, or an id"
    )
    compare.add_argument(
        "--out",
        type=pathlib.Path,
        required=False,
        default=None,
        help="output directory (CSV, JSON, markdown, PNG; resumable)",
    )
    compare.add_argument("--no-resume", action="store_true", help="recompute methods already saved in --out")
    compare.add_argument("--no-plot", action="store_true", help="do not draw faithfulness.png")
    compare.add_argument("--no-report", action="store_true", help="do not write report.html")
    compare.add_argument(
        "--report-examples",
        type=int,
        default=8,
        help="examples shown in report.html with every method side by side (default 8)",
    )


def run(args: argparse.Namespace) -> int:
    r"""
    Runs the comparison: prints the summary table, writes the results (and the figure and report).

    Args:
        args (argparse.Namespace): The parsed options.

    Returns:
        int: The exit status.
    """
    from transformers.utils import logging as hf_logging

    from captum_attn_shapley.demos.datasets import load_text_dataset, select_view
    from captum_attn_shapley.demos.default_model import load_classifier
    from captum_attn_shapley.visualization.plots import plot_comparison

    if args.list_methods:
        print("\n".join(standard_method_names()))
        return 0
    if args.out is None:
        raise SystemExit("error: --out DIR is required (where the results are written)")
    hf_logging.disable_progress_bar()
    names = resolve_compare_methods(args.methods)
    model, tokenizer, info = load_classifier(args.model)
    data = select_view(load_text_dataset(args.data), tokenizer, args.view, args.n, seed=args.seed)
    replacement = int(args.replacement) if args.replacement.isdigit() else args.replacement
    methods = standard_methods(model, tokenizer, names, batch_size=args.batch_size, baselines=replacement)
    result = run_comparison(
        model,
        tokenizer,
        data.texts,
        data.labels,
        methods,
        out_dir=args.out,
        batch_size=args.batch_size,
        max_length=args.max_length,
        bins=args.bins,
        f1_k=args.f1_k,
        baselines=replacement,
        seed=args.seed,
        resume=not args.no_resume,
        plot=None if args.no_plot else plot_comparison,
    )
    print(f"model: {info.get('name_or_path')}; data: {args.data} ({args.view} view, {len(data)} examples)")
    print()
    print(result.to_markdown())
    written = "summary.md, per_example.csv, results.json" + ("" if args.no_plot else ", faithfulness.png")
    if not args.no_report:
        from captum_attn_shapley.visualization.html import comparison_report, write_report

        page = comparison_report(
            result,
            data.texts,
            tokenizer,
            label_names=model_label_names(model),
            max_examples=args.report_examples,
            title=f"Comparison of attribution methods: {args.data} ({args.view} view)",
            plot=not args.no_plot,
            labels=data.labels,
        )
        write_report(args.out / "report.html", page)
        written += ", report.html"
    print(f"wrote {written} in {args.out}")
    return 0
