#!/usr/bin/env python3
"""Long inputs: all six AttnGradShapley variants at 4,096 tokens on a ModernBERT-style encoder.

A random-init ``ModernBertForSequenceClassification`` of realistic width (hidden 768, 12 heads,
intermediate 1152, local attention over 128 tokens with global attention every third layer, as
ModernBERT-base; ``--layers`` of them, default 4) explains one example of ``--length`` tokens
(default 4096). Each pass runs once in a fresh child process that reports its time and its peak
resident memory above the memory before the pass (as in ``bench_speed_memory.py``):

- the floors: the ``sdpa`` forward (``fused_att``) and the forward plus ``torch.autograd.grad`` of the
  target logit w.r.t. the input embeddings (``fused_grad``);
- the six variants with the fused capture (the default);
- the eager hook capture (``engine="hooks"``), which holds every layer's ``(heads, T, T)`` attention
  (and, for the gradient variants, its gradient), for the two Max-Mutual variants: the need the fused
  capture removes.

Usage::

    HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/bench_long_inputs.py --out benchmarks/results/long_inputs.md
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_speed_memory import _proc_status_kb, _reset_peak_rss  # noqa: E402

PASSES = ["fused_att", "fused_grad"] + [
    f"{engine}:{game}/{weighting}"
    for engine in ("fused",)
    for weighting in ("attention", "grad_attention")
    for game in ("cls", "mutual", "max_mutual")
]
HOOK_PASSES = ["hooks:max_mutual/attention", "hooks:max_mutual/grad_attention"]
MEMORY_BUDGET_GB = 2.0


def build_model(layers: int, length: int) -> torch.nn.Module:
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    torch.manual_seed(0)
    config = ModernBertConfig(
        vocab_size=50368,
        hidden_size=768,
        intermediate_size=1152,
        num_hidden_layers=layers,
        num_attention_heads=12,
        max_position_embeddings=max(length, 8192),
        local_attention=128,
        global_attn_every_n_layers=3,
        num_labels=2,
    )
    return ModernBertForSequenceClassification(config).eval()


def make_pass(kind: str, model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> Callable[[], None]:
    from captum_attn_shapley import AttnGradShapley

    if kind == "fused_att":

        def run() -> None:
            with torch.no_grad():
                model(input_ids=ids, attention_mask=mask)

        return run
    if kind == "fused_grad":

        def run_grad() -> None:
            embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
            logits = model(inputs_embeds=embeds, attention_mask=mask).logits
            torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), embeds)

        return run_grad
    engine, variant = kind.split(":")
    game, weighting = variant.split("/")
    explainer = AttnGradShapley(
        lambda i, m: model(input_ids=i, attention_mask=m).logits, game=game, weighting=weighting, engine=engine
    )
    return lambda: explainer.attribute(ids, additional_forward_args=(mask,))


def child(kind: str, layers: int, length: int) -> None:
    model = build_model(layers, length)
    make_pass(kind, model, torch.randint(5, 1000, (1, 64)), torch.ones(1, 64, dtype=torch.long))()  # warm-up
    ids = torch.randint(5, 50000, (1, length))
    mask = torch.ones_like(ids)
    run = make_pass(kind, model, ids, mask)
    gc.collect()
    reset = _reset_peak_rss()
    base = _proc_status_kb("VmRSS")
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    peak = _proc_status_kb("VmHWM") if reset else base
    print("RESULT " + json.dumps({"kind": kind, "seconds": seconds, "delta_mb": (peak - base) / 1024}), flush=True)


def measure(kind: str, layers: int, length: int) -> Dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", kind, "--layers", str(layers)]
    cmd += ["--length", str(length)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(128 * 1024))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return {
        "kind": kind,
        "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc={proc.returncode}",
    }


def render(results: List[Dict], args: argparse.Namespace) -> str:
    from captum_attn_shapley.attr import variant_name

    floors = {r["kind"]: r for r in results if r["kind"].startswith("fused_")}
    lines = [
        "# AttnGradShapley at long inputs",
        "",
        f"- model: random-init ModernBERT-style classifier, hidden 768, 12 heads, intermediate 1152, "
        f"{args.layers} layers (local attention 128, global every 3rd layer), one example of {args.length} tokens",
        f"- torch {torch.__version__} ({torch.get_num_threads()} threads), {os.cpu_count()} CPUs; each pass once, "
        "in a fresh child process; memory = peak RSS above the RSS before the pass",
        f"- memory budget of the fused capture: ≤ {MEMORY_BUDGET_GB:g} GB above the model, and ≤ 1.3 × its floor",
        "",
        "| pass | engine | time, s | time ÷ floor | peak memory, MB | memory ÷ floor |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        kind = r["kind"]
        if kind.startswith("fused_"):
            label, engine, floor = kind, "sdpa", r
        else:
            engine, variant = kind.split(":")
            game, weighting = variant.split("/")
            label = variant_name(game, weighting)
            floor = floors["fused_att" if weighting == "attention" else "fused_grad"]
        if "error" in r:
            lines.append(f"| {label} | {engine} | failed: {r['error'][:120]} | | | |")
            continue
        lines.append(
            f"| {label} | {engine} | {r['seconds']:.1f} | {r['seconds'] / floor['seconds']:.2f} | "
            f"{r['delta_mb']:.0f} | {r['delta_mb'] / max(floor['delta_mb'], 1e-9):.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--skip-hooks", action="store_true", help="do not measure the eager hook capture")
    parser.add_argument("--out", default=None)
    parser.add_argument("--_child", dest="child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.layers, args.length)
        return
    results = []
    for kind in PASSES + ([] if args.skip_hooks else HOOK_PASSES):
        results.append(measure(kind, args.layers, args.length))
        print(json.dumps(results[-1]), flush=True)
    table = render(results, args)
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table)


if __name__ == "__main__":
    main()
