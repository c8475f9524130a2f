#!/usr/bin/env python3
"""Ground truth for generation: do the methods find the prompt tokens that decide a causal LM's answer?

The embedded recall LM (:func:`captum_attn_shapley.demos.recall_lm.load_recall_lm`, a 2-layer GPT-2 trained
here) answers key-value recall prompts (``"a=3 k=7 m=1 ; k="`` -> ``" 7"``, one token per word) whose
answer is decided by two known tokens: the queried pair ``k=7`` in the list and the query ``k=``
(:mod:`captum_attn_shapley.demos.recall`). On held-out prompts (never seen in training), each method explains
the log-probability of the true answer over the prompt's tokens, through Captum's LLM interface
(``TextTokenInput``, ``LLMAttributionResult``):

- ours: ``LLMAttnGradShapley`` with each game and weighting (all six variants), when the module imports;
- Captum: ``LLMGradientAttribution(LayerIntegratedGradients(model, model.transformer.wte))`` (n_steps 50),
  ``LLMAttribution(FeatureAblation)`` and ``LLMAttribution(KernelShap)`` (n_samples 100), with Captum's
  default baseline (token id 0, ``<pad>``);
- a random ranking (seeded), the floor.

Scores: (a) AUPRC of the attribution against the decisive-token labels
(``sklearn.metrics.average_precision_score``) and how often the top-ranked token is decisive; (b) the drop
of the target's log-probability when the top 10 / 20 / 30% of the prompt's tokens (at least one) are
deleted from the prompt; (c) seconds per example, every method timed on every prompt in turn (rotating
order, after one untimed warm-up), medians; and a side-by-side timing of ours against the LIG path on
longer prompts of equal length (interleaved, medians).

    python benchmarks/bench_generation.py --n 40 --threads 1 --repeats 15 --out benchmarks/results/generation.md

(One torch thread: on a 2-core machine shared with other jobs, two threads made every timing several times
slower and far noisier.)
"""

import argparse
import math
import pathlib
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import captum
import numpy as np
import torch
from captum.attr import (
    FeatureAblation,
    KernelShap,
    LayerIntegratedGradients,
    LLMAttribution,
    LLMGradientAttribution,
    TextTokenInput,
)
from sklearn.metrics import average_precision_score
from tqdm.auto import tqdm

from captum_attn_shapley.attr import PAPER_VARIANTS
from captum_attn_shapley.demos.recall import KEYS, VALUES, format_prompt, recall_prompts
from captum_attn_shapley.demos.recall_lm import load_recall_lm

Explain = Callable[[TextTokenInput, str], torch.Tensor]
LIG = "LayerIntegratedGradients"
PERCENTS = (10, 20, 30)


def our_methods(model, tokenizer) -> Dict[str, Explain]:
    """The six variants of ``LLMAttnGradShapley`` ({} when the class is not importable in this checkout)."""
    try:
        from captum_attn_shapley.attr.llm_attn_grad_shapley import LLMAttnGradShapley
    except ImportError:
        return {}
    methods: Dict[str, Explain] = {}
    for name, (game, weighting) in PAPER_VARIANTS.items():
        explainer = LLMAttnGradShapley(model, tokenizer, game=game, weighting=weighting)
        methods[name] = lambda inp, target, e=explainer: e.attribute(inp, target=target).seq_attr
    return methods


def captum_methods(model, tokenizer, n_steps: int, n_samples: int) -> Dict[str, Explain]:
    """Captum's LLM attributions: LayerIntegratedGradients on the token embeddings, FeatureAblation, KernelShap."""
    lig = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tokenizer)
    ablation = LLMAttribution(FeatureAblation(model), tokenizer)
    kernel = LLMAttribution(KernelShap(model), tokenizer)
    return {
        LIG: lambda inp, target: lig.attribute(inp, target=target, n_steps=n_steps).seq_attr,
        "FeatureAblation": lambda inp, target: ablation.attribute(inp, target=target).seq_attr,
        "KernelShap": lambda inp, target: kernel.attribute(inp, target=target, n_samples=n_samples).seq_attr,
    }


def floors(model, tokenizer) -> Dict[str, Explain]:
    """The model's own cost, timed like the methods: one forward pass over the prompt, and one forward plus the
    gradient of the target's log-probability w.r.t. the input embeddings (no attribution method can be cheaper
    than the pass it needs, so LIG's time over these bounds any speed-up)."""

    def teacher_forced(inp: TextTokenInput, target: str) -> tuple:
        """The ids of prompt + target[:-1] and the target ids (a multi-token target is read in one pass)."""
        target_ids = torch.tensor(tokenizer.encode(target, add_special_tokens=False))
        return torch.cat([inp.to_model_input()[0], target_ids[:-1]]).unsqueeze(0), target_ids

    def forward(inp: TextTokenInput, target: str) -> torch.Tensor:
        ids, _ = teacher_forced(inp, target)
        with torch.no_grad():
            return model(input_ids=ids).logits[0, -1]

    def forward_backward(inp: TextTokenInput, target: str) -> torch.Tensor:
        ids, target_ids = teacher_forced(inp, target)
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=embeds).logits[0, -len(target_ids) :]
        log_probs = torch.log_softmax(logits, -1).gather(1, target_ids.unsqueeze(1)).sum()
        return torch.autograd.grad(log_probs, embeds)[0]

    return {"floor: forward": forward, "floor: forward + backward": forward_backward}


@torch.no_grad()
def target_log_prob(model, prompt_ids: Sequence[int], target_id: int) -> float:
    """Log-probability of ``target_id`` as the next token after ``prompt_ids``."""
    ids = torch.tensor([list(prompt_ids)])
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1]
    return float(torch.log_softmax(logits.double(), -1)[target_id])


def removal_drops(model, ids: List[int], target_id: int, scores: np.ndarray) -> Dict[int, float]:
    """Log-probability drop of the target when the top k% of the prompt's tokens by ``scores`` are deleted."""
    full = target_log_prob(model, ids, target_id)
    order = np.argsort(-scores, kind="stable")
    drops = {}
    for percent in PERCENTS:
        removed = set(order[: max(1, math.ceil(percent / 100 * len(ids)))].tolist())
        kept = [t for i, t in enumerate(ids) if i not in removed]
        drops[percent] = full - target_log_prob(model, kept, target_id)
    return drops


def timed(explain: Explain, inp: TextTokenInput, target: str, seed: int) -> tuple:
    torch.manual_seed(seed)
    start = time.perf_counter()
    scores = explain(inp, target)
    return time.perf_counter() - start, np.asarray(scores.detach().double().cpu())


def ground_truth_run(model, tokenizer, methods: Dict[str, Explain], n: int, seed: int) -> Dict[str, Dict]:
    """Scores, drops and times of every method on ``n`` held-out prompts (timed in rotating order)."""
    data = recall_prompts(n, seed=seed, split="test")
    names = list(methods)
    found: Dict[str, Dict[str, list]] = {
        m: {"auprc": [], "top1": [], "seconds": [], **{p: [] for p in PERCENTS}} for m in [*names, "random"]
    }
    first = TextTokenInput(data.prompts[0], tokenizer)
    for name in names:  # warm-up, untimed
        methods[name](first, data.targets[0])
    rng = np.random.default_rng(seed)
    for i, (prompt, target) in enumerate(tqdm(list(zip(data.prompts, data.targets)), desc="prompts")):
        inp = TextTokenInput(prompt, tokenizer)
        ids = tokenizer.encode(prompt)
        target_id = tokenizer.encode(target, add_special_tokens=False)[0]
        labels = data.decisive_labels(i)
        scores_of = {"random": rng.random(len(ids))}
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            seconds, scores = timed(methods[name], inp, target, seed + i)
            if scores.shape != (len(ids),):
                raise RuntimeError(f"{name} gave {scores.shape} scores for a {len(ids)}-token prompt")
            found[name]["seconds"].append(seconds)
            scores_of[name] = scores
        for name, scores in scores_of.items():
            found[name]["auprc"].append(average_precision_score(labels, scores))
            found[name]["top1"].append(float(labels[int(np.argmax(scores))]))
            for percent, drop in removal_drops(model, ids, target_id, scores).items():
                found[name][percent].append(drop)
    return found


def speed_run(
    model, tokenizer, methods: Dict[str, Explain], pairs: Sequence[int], repeats: int, target_tokens: Sequence[int]
) -> List[Dict]:
    """Seconds per example of each method on prompts of ``p`` pairs (``p + 2`` tokens) and targets of ``k``
    tokens (teacher forced: the answer, then further values), interleaved, medians."""
    rows = []
    rng = np.random.default_rng(0)
    for n_target in target_tokens:
        for p in pairs:
            keys, values = rng.integers(len(KEYS), size=p), rng.integers(len(VALUES), size=p)
            listed = [(KEYS[k], VALUES[v]) for k, v in zip(keys, values)]  # repeats allowed: only timed
            prompt = format_prompt(listed, listed[p // 2][0])
            target = "".join(" " + VALUES[int(v)] for v in rng.integers(len(VALUES), size=n_target))
            inp = TextTokenInput(prompt, tokenizer)
            times: Dict[str, List[float]] = {m: [] for m in methods}
            for name in methods:
                methods[name](inp, target)  # warm-up
            for r in range(repeats):
                for j in range(len(methods)):
                    name = list(methods)[(r + j) % len(methods)]
                    times[name].append(timed(methods[name], inp, target, r)[0])
            medians = {m: statistics.median(t) for m, t in times.items()}
            rows.append({"tokens": len(tokenizer.encode(prompt)), "target_tokens": n_target, **medians})
    return rows


def mean_ci(values: Sequence[float]) -> str:
    a = np.asarray(values, dtype=np.float64)
    half = 1.96 * a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else float("nan")
    return f"{a.mean():.3f} ± {half:.3f}"


def report(found, speed, ours: List[str], info, args, n_players: float, seconds: float) -> str:
    lines = [
        "# Generation: recovering the decisive prompt tokens of a causal LM",
        "",
        f"- command: `python benchmarks/bench_generation.py {' '.join(args.argv)}`",
        "- model: the embedded recall LM (GPT-2, 2 layers, sdpa; held-out accuracy "
        f"{info.get('accuracy', float('nan')):.3f}), "
        f"{args.n} held-out prompts (seed {args.seed}), {n_players:.1f} prompt tokens on average, 2 decisive",
        f"- captum {captum.__version__}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
        f"{platform.machine()}; total run {seconds:.0f} s",
        f"- LIG n_steps {args.n_steps}, KernelShap n_samples {args.n_samples}; removal = deletion of the top k% "
        "prompt tokens (at least one); drop = log p(target | prompt) − log p(target | reduced prompt), nats",
        "" if ours else "- LLMAttnGradShapley is not importable in this checkout: only Captum's methods ran",
        "",
        "| method | AUPRC ↑ (±95%) | top-1 decisive ↑ | drop@10% ↑ | drop@20% ↑ | drop@30% ↑ | s / example "
        "| LIG time / time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lig = statistics.median(found[LIG]["seconds"]) if LIG in found else float("nan")
    for name, row in found.items():
        t = statistics.median(row["seconds"]) if row["seconds"] else float("nan")
        ratio = f"{lig / t:.1f}×" if row["seconds"] else "–"
        lines.append(
            f"| {name} | {mean_ci(row['auprc'])} | {np.mean(row['top1']):.3f} | "
            + " | ".join(f"{np.mean(row[p]):.2f}" for p in PERCENTS)
            + (f" | {t * 1e3:.1f} ms | {ratio} |" if row["seconds"] else " | – | – |")
        )
    best_auprc = max(found, key=lambda m: np.mean(found[m]["auprc"]))
    best_drop = max(found, key=lambda m: np.mean(found[m][20]))
    lines += ["", f"Highest AUPRC: {best_auprc}; largest drop at 20%: {best_drop}.", ""]
    if speed:
        names = [m for m in speed[0] if m not in ("tokens", "target_tokens")]
        lines += [
            f"## Time at equal prompt length (interleaved, medians of {args.repeats} rounds)",
            "",
            "Seconds per example; in brackets the LIG path's time divided by the method's (the speed-up). "
            "Columns: prompt tokens + target tokens (teacher forced). Captum's LLM LIG runs its 50 steps once per "
            "target token; ours one forward pass and one backward pass batched over the target tokens.",
            "",
            "| method | " + " | ".join(f"{row['tokens']} + {row['target_tokens']}" for row in speed) + " |",
            "|---|" + "---:|" * len(speed),
        ]
        for m in names:
            cells = [
                f"{row[m] * 1e3:.1f} ms" + ("" if m == LIG else f" ({row[LIG] / row[m]:.1f}×)") for row in speed
            ]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        ours = [m for m in names if m != LIG and not m.startswith("floor")]
        longest = max(row["tokens"] for row in speed)
        for row in (r for r in speed if r["tokens"] == longest and ours):
            ratios = [row[LIG] / row[m] for m in ours]
            lines += [
                "",
                f"Speed-up over LIG at {longest} prompt tokens and {row['target_tokens']} target token(s): "
                f"{min(ratios):.1f}× to {max(ratios):.1f}× "
                f"(target ≥ 50×: met by {sum(r >= 50 for r in ratios)} of {len(ratios)} variants).",
            ]
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="held-out prompts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-steps", type=int, default=50, help="LayerIntegratedGradients steps")
    parser.add_argument("--n-samples", type=int, default=100, help="KernelShap samples")
    parser.add_argument(
        "--speed-pairs",
        type=int,
        nargs="*",
        default=[8, 62, 126, 246],
        help="pairs of the timing prompts (p + 2 tokens); none skips the timing section",
    )
    parser.add_argument(
        "--target-tokens", type=int, nargs="+", default=[1, 8], help="target lengths of the timing section"
    )
    parser.add_argument("--repeats", type=int, default=9, help="timing rounds per length")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="also write the markdown here")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model, tokenizer, info = load_recall_lm()
    ours = our_methods(model, tokenizer)
    methods = {**ours, **captum_methods(model, tokenizer, args.n_steps, args.n_samples)}
    found = ground_truth_run(model, tokenizer, methods, args.n, args.seed)
    timing = {**ours, LIG: methods[LIG], **floors(model, tokenizer)}
    speed = (
        speed_run(model, tokenizer, timing, args.speed_pairs, args.repeats, args.target_tokens)
        if args.speed_pairs
        else []
    )
    n_players = float(np.mean([len(p.split()) for p in recall_prompts(args.n, args.seed, "test").prompts]))
    text = report(found, speed, list(ours), info, args, n_players, time.perf_counter() - start)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
