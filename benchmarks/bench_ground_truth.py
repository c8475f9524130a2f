#!/usr/bin/env python3
"""Ground truth beyond the paper: do the methods find the tokens that decide the label?

Sentences of neutral filler words carry 1-3 planted VADER lexicon words of one polarity,
which alone decide the label (:mod:`captum_attn_shapley.demos.planted`); the test sentences use
lexicon words never planted in training. A MiniLM fine-tuned on such sentences
(:func:`captum_attn_shapley.demos.planted_model.load_planted_classifier`) is explained by every method
of :func:`captum_attn_shapley.evaluation.standard_methods` through
:func:`captum_attn_shapley.evaluation.run_comparison`, and each method's ranking of the
word-pieces is scored against the planted ones: average precision (AUPRC), R-precision
(precision = recall at k = the number of planted word-pieces) and whether the top token is
planted; comprehensiveness, sufficiency and throughput come with the run.

    python benchmarks/bench_ground_truth.py --n 100 --expensive-n 20 --out benchmarks/results/ground_truth
"""

import argparse
import importlib.util
import json
import pathlib
import sys
from typing import Dict, List, Optional

import torch

from captum_attn_shapley.capture import text_player_mask
from captum_attn_shapley.demos import load_planted_classifier, make_planted_dataset, planted_token_mask
from captum_attn_shapley.demos.planted import token_recovery
from captum_attn_shapley.evaluation import mean_interval, run_comparison, standard_method_names, standard_methods

EXPENSIVE = ("ShapleyValueSampling",)


def recovery_table(scores: Dict[str, List[List[float]]], planted_flags: List[List[bool]]) -> List[Dict]:
    """Token recovery of each method, from the players' scores and planted flags per example."""
    width = max(len(flags) for flags in planted_flags)
    rows = []
    for name, per_example in scores.items():
        n = len(per_example)
        attr = torch.zeros(n, width, dtype=torch.float64)
        planted = torch.zeros(n, width, dtype=torch.bool)
        players = torch.zeros(n, width, dtype=torch.bool)  # methods run on the first n examples
        for i, (values, flags) in enumerate(zip(per_example, planted_flags[:n])):
            attr[i, : len(values)] = torch.tensor(values, dtype=torch.float64)
            planted[i, : len(flags)] = torch.tensor(flags)
            players[i, : len(flags)] = True
        found = token_recovery(attr, planted, players)
        row = {"method": name, "n": n}
        for key in ("auprc", "precision_at_k", "precision_at_1"):
            row[key], row[key + "_ci95"] = mean_interval(found[key].tolist())
        rows.append(row)
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="test sentences (balanced)")
    parser.add_argument("--expensive-n", type=int, default=20, help=f"examples for {', '.join(EXPENSIVE)}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test sentences and the methods")
    parser.add_argument("--no-shap", action="store_true")
    parser.add_argument("--methods", nargs="+", default=None, help="a subset of the standard method names")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results/ground_truth"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods or ()) - set(standard_method_names()))
    if unknown:
        parser.error(f"unknown --methods {unknown}; use names of {standard_method_names()}")

    model, tokenizer, info = load_planted_classifier()
    data = make_planted_dataset(args.n, seed=args.seed + 1000, split="test")
    ids, mask, planted = planted_token_mask(tokenizer, data)
    players = text_player_mask(ids, mask, tokenizer.all_special_ids)
    planted_flags = [planted[i][players[i]].tolist() for i in range(len(data))]

    have_shap = importlib.util.find_spec("shap") is not None and not args.no_shap
    names = [
        m
        for m in standard_method_names()
        if m != "Shapley-Input" and (m != "SHAP" or have_shap) and (args.methods is None or m in args.methods)
    ]
    methods = standard_methods(model, tokenizer, names, batch_size=args.batch_size)
    for spec in methods:
        if spec.name in EXPENSIVE:
            spec.max_examples = args.expensive_n
    result = run_comparison(
        model,
        tokenizer,
        data.texts,
        data.labels,
        methods,
        out_dir=args.out / "run",
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
    )
    for name, per_example in result.attributions.items():  # same tokenizer and player rule: same players
        assert [len(v) for v in per_example] == [len(f) for f in planted_flags][: len(per_example)], name
    recovery = recovery_table(result.attributions, planted_flags)
    faithful = {row["method"]: row for row in result.summary}
    lines = [
        "# Ground truth: recovering planted sentiment words",
        "",
        f"- command: `python {' '.join(['benchmarks/bench_ground_truth.py'] + (argv or sys.argv[1:]))}`",
        f"- model: {info.get('name_or_path')} (held-out accuracy {info.get('accuracy', float('nan')):.3f})",
        f"- data: {len(data)} test sentences (planted words unseen in training), "
        f"{sum(len(w) for w in data.planted_words)} planted words, "
        f"{int(planted.sum())} planted word-pieces among {int(players.sum())} players",
        f"- {', '.join(EXPENSIVE)}: the first {args.expensive_n} sentences"
        + ("" if have_shap else "; SHAP left out (shap not installed or --no-shap)"),
        "",
        "| method | n | AUPRC ↑ (±95%) | R-precision ↑ (±95%) | top-1 planted ↑ | comprehensiveness ↑ "
        "| sufficiency ↓ | examples/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in recovery:
        f = faithful[row["method"]]
        lines.append(
            f"| {row['method']} | {row['n']} | {row['auprc']:.3f} ± {row['auprc_ci95']:.3f} "
            f"| {row['precision_at_k']:.3f} ± {row['precision_at_k_ci95']:.3f} | {row['precision_at_1']:.3f} "
            f"| {f['comprehensiveness']:.4f} | {f['sufficiency']:.4f} | {f['examples_per_second']:.3g} |"
        )
    base_rate = float(planted.sum()) / float(players.sum())
    lines += [
        "",
        f"A random ranking's expected AUPRC is about the planted share of the players, {base_rate:.3f}.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(report)
    (args.out / "report.json").write_text(
        json.dumps({"recovery": recovery, "faithfulness": result.summary}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
