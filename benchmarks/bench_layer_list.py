#!/usr/bin/env python3
"""A list of layers in the layer API: one capture pass for every listed layer, against one pass per layer.

Same model (the pretrained all-MiniLM-L6-v2 with a fresh 2-class head, ``sdpa``, as
``bench_speed_memory.py``), same batch, one run, rounds interleaved in shuffled order, medians of per-round
ratios. For each variant (the CLS and Max-Mutual games, attention and gradient weightings) and Grad-SAM:

- *list*: ``LayerAttnGradShapley(model, list(blocks)).attribute(...)`` (every block; one pass);
- *per layer*: the same layers one call each (the cost of a list before this change);
- the floor: the ``sdpa`` forward (attention weighting) or the forward plus ``torch.autograd.grad`` of the
  target logits w.r.t. the input embeddings (gradient weightings).

The script also checks that the list's scores equal the single-layer calls' to float32 round-off. Usage::

    HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/bench_layer_list.py --out benchmarks/results/layer_list.md
"""

import argparse
import os
import platform
import random
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_speed_memory import build_inputs, load_model, make_callables, timed  # noqa: E402

from captum_attn_shapley.attr import LayerAttnGradShapley, LayerGradSAM  # noqa: E402

VARIANTS = [
    ("cls", "attention"),
    ("max_mutual", "attention"),
    ("cls", "grad_attention"),
    ("max_mutual", "grad_attention"),
]


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    model, tokenizer = load_model(None, args.length)
    ids, mask = build_inputs(tokenizer, args.batch, args.length)
    special = list(tokenizer.all_special_ids)  # type: ignore[attr-defined]
    blocks = list(model.base_model.encoder.layer)
    floors = make_callables(model, special, ids, mask)
    options = dict(additional_forward_args=(mask,))
    cases: Dict[str, Dict[str, Callable[[], object]]] = {}
    worst = 0.0
    for game, weighting in VARIANTS:
        listed = LayerAttnGradShapley(model, blocks, game=game, weighting=weighting, special_token_ids=special)
        singles = [
            LayerAttnGradShapley(model, b, game=game, weighting=weighting, special_token_ids=special)
            for b in blocks
        ]
        name = listed.attention_method.variant_name
        floor = floors["fused_att" if weighting == "attention" else "fused_grad"]
        cases[name] = {
            "list": lambda m=listed: m.attribute(ids, **options),
            "per layer": lambda s=singles: [m.attribute(ids, **options) for m in s],
            "floor": floor,
        }
    sam_list = LayerGradSAM(model, blocks, special_token_ids=special)
    sam_singles = [LayerGradSAM(model, b, special_token_ids=special) for b in blocks]
    cases["Grad-SAM"] = {
        "list": lambda: sam_list.attribute(ids, **options),
        "per layer": lambda: [m.attribute(ids, **options) for m in sam_singles],
        "floor": floors["fused_grad"],
    }
    for fns in cases.values():  # warm-up, and the agreement check
        together, apart = fns["list"](), fns["per layer"]()
        for a, b in zip(together, apart):  # type: ignore[call-overload]
            worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)))
        fns["floor"]()
    times: Dict[str, Dict[str, List[float]]] = {name: {k: [] for k in fns} for name, fns in cases.items()}
    rng = random.Random(0)
    for _ in range(args.rounds):
        order = [(name, kind) for name, fns in cases.items() for kind in fns]
        rng.shuffle(order)
        for name, kind in order:
            times[name][kind].append(timed(cases[name][kind]))
    lines = [
        "# The layer API: a list of layers in one pass",
        "",
        f"- command: `python benchmarks/bench_layer_list.py --length {args.length} --batch {args.batch} "
        f"--rounds {args.rounds}`",
        f"- model: all-MiniLM-L6-v2 (fresh 2-class head, sdpa), {len(blocks)} blocks listed; batch {args.batch} "
        f"x {args.length} tokens",
        f"- torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}; "
        f"total run {time.perf_counter() - started:.0f} s",
        f"- largest difference, list vs single-layer calls, relative to each layer's largest score: {worst:.1e}",
        "",
        "Medians over the rounds of per-round ratios (times in the same round).",
        "",
        "| variant | list, s | per layer, s | per layer ÷ list | list ÷ floor |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, t in times.items():
        speedup = statistics.median(p / q for p, q in zip(t["per layer"], t["list"]))
        over_floor = statistics.median(p / q for p, q in zip(t["list"], t["floor"]))
        lines.append(
            f"| {name} | {statistics.median(t['list']):.3f} | {statistics.median(t['per layer']):.3f} | "
            f"{speedup:.2f}× | {over_floor:.2f}× |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
