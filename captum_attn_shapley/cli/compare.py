"""``captum-attn-shapley compare``: faithfulness, F1 and speed of attribution methods on a labelled dataset."""

import argparse
import os
import pathlib
from typing import Any, List, Optional, Sequence, Union

from captum_attn_shapley._utils.labels import model_label_names
from captum_attn_shapley.cli._checks import (
    check_labels,
    check_max_length,
    check_model_source,
    check_output,
    loading,
)
from captum_attn_shapley.cli._common import UserError, non_negative_int, percentage, positive_int
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
        UserError: For an unknown name (a ``SystemExit`` with status 2).
    """
    try:
        return resolve_standard_methods(names)
    except ValueError as err:
        raise UserError(
            f"--methods: {err}", "Run 'captum-attn-shapley compare --list-methods' for the names."
        ) from None


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
    compare.add_argument(
        "--n", type=positive_int, default=100, help="examples, balanced over the classes (default 100)"
    )
    compare.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the example draw and the methods"
    )
    compare.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="method names (see --list-methods; spaces and punctuation optional, e.g. grad-att-max-mutual "
        "kernelshap 'grad-att-max-mutual-permutation-100'); default: all but SHAP and Shapley-Input",
    )
    compare.add_argument("--list-methods", action="store_true", help="print the known method names and exit")
    compare.add_argument(
        "--batch-size", type=positive_int, default=16, help="examples per attribute call (default 16)"
    )
    compare.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="truncation length (default 128, or the model's limit if it accepts fewer tokens)",
    )
    compare.add_argument(
        "--bins",
        type=percentage,
        nargs="+",
        default=[0, 10, 20, 50],
        help="bins of comprehensiveness/sufficiency in percent (default 0 10 20 50)",
    )
    compare.add_argument("--f1-k", type=percentage, default=20, help="bin of the F1 (default 20)")
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
        type=non_negative_int,
        default=8,
        help="examples shown in report.html with every method side by side (default 8)",
    )


def _replacement(value: str) -> Union[int, str]:
    """``--replacement``: a token id, or mask / pad / unk (checked against the tokenizer later)."""
    if value.isdigit():
        return int(value)
    if value.lower() not in ("mask", "pad", "unk"):
        raise UserError(
            f"--replacement {value!r} is neither a token id nor a special token name.",
            "Give mask (the default), pad, unk, or a token id (0 or more).",
        )
    return value.lower()


def _load_data(name: str) -> Any:
    """The dataset of ``--data``, its errors as user errors (before any model is loaded)."""
    from captum_attn_shapley.demos.datasets import load_text_dataset

    csv_fix = "Give a UTF-8 CSV file with a header holding text and label columns, and integer labels (0, 1, ...)."
    if name.lower().endswith(".csv") or os.path.exists(name):
        if not os.path.isfile(name):
            problem = "is a directory, not a CSV file" if os.path.isdir(name) else "no such file"
            raise UserError(f"--data {name!r}: {problem}.", csv_fix + " Or --data tweets (embedded, offline).")
        try:
            return load_text_dataset(name)
        except UnicodeDecodeError as err:
            raise UserError(
                f"--data {name!r} is not UTF-8 text ({err.reason} at byte {err.start}).", csv_fix
            ) from err
        except ValueError as err:
            raise UserError(f"--data {name!r}: {err}", csv_fix) from err
    try:
        return load_text_dataset(name)
    except (ImportError, OSError, ValueError) as err:
        raise UserError(
            f"--data {name!r} could not be loaded: {err}",
            "Give tweets (embedded, offline), a CSV file with text and label columns, or a Hugging Face dataset "
            "(sst2, imdb, ag_news or a hub id; needs the `datasets` package and the hub).",
        ) from err


def run(args: argparse.Namespace) -> int:
    r"""
    Runs the comparison: prints the summary table, writes the results (and the figure and report).

    Args:
        args (argparse.Namespace): The parsed options.

    Returns:
        int: The exit status.
    """
    from transformers.utils import logging as hf_logging

    from captum_attn_shapley.demos.datasets import select_view
    from captum_attn_shapley.demos.default_model import load_classifier
    from captum_attn_shapley.metrics import resolve_replacement
    from captum_attn_shapley.visualization.plots import plot_comparison

    if args.list_methods:
        print("\n".join(standard_method_names()))
        return 0
    # what needs no model, before one is loaded (or trained)
    if args.out is None:
        raise UserError(
            "--out DIR is required (where the results are written).",
            "Add --out results (a new or existing directory), or --list-methods to list the methods.",
        )
    check_output(args.out, "--out", directory=True)
    hf_logging.disable_progress_bar()
    names = resolve_compare_methods(args.methods)
    replacement = _replacement(args.replacement)
    check_model_source(args.model)
    dataset = _load_data(args.data)
    classes = len(set(dataset.labels))
    if args.n < classes:
        raise UserError(
            f"--n {args.n} is fewer than the {classes} classes of --data {args.data!r}.",
            f"The examples are balanced over the classes: give --n {classes} or more.",
        )
    with loading(args.model):
        model, tokenizer, info = load_classifier(args.model)
    # what needs the model, before anything is computed
    max_length = check_max_length(args.max_length, model, default=128)
    id2label = model_label_names(model)
    check_labels(dataset.labels, model, id2label, f"--data {args.data!r}")
    try:
        token = resolve_replacement(replacement, tokenizer)
    except ValueError as err:
        raise UserError(
            f"--replacement {args.replacement!r}: {err}", "Give mask, pad, unk or a token id."
        ) from None
    if not 0 <= token < len(tokenizer):
        raise UserError(
            f"--replacement {args.replacement!r} is not a token id of the tokenizer ({len(tokenizer)} tokens).",
            f"Give mask, pad, unk or a token id between 0 and {len(tokenizer) - 1}.",
        )
    try:
        data = select_view(dataset, tokenizer, args.view, args.n, seed=args.seed)
    except ValueError as err:
        raise UserError(
            f"--n {args.n} with --view {args.view}: {err}", "Give a smaller --n or another --view."
        ) from None
    methods = standard_methods(model, tokenizer, names, batch_size=args.batch_size, baselines=replacement)
    result = run_comparison(
        model,
        tokenizer,
        data.texts,
        data.labels,
        methods,
        out_dir=args.out,
        batch_size=args.batch_size,
        max_length=max_length,
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
            label_names=id2label,
            max_examples=args.report_examples,
            title=f"Comparison of attribution methods: {args.data} ({args.view} view)",
            plot=not args.no_plot,
            labels=data.labels,
        )
        write_report(args.out / "report.html", page)
        written += ", report.html"
    print(f"wrote {written} in {args.out}")
    return 0
