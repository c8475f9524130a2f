#!/usr/bin/env python3
"""Exact Shapley-Input and the faithfulness metrics, timed side by side (issue 17, item 5).

Same model (the embedded default tweet classifier), same examples, same machine, one run,
timing rounds interleaved (the order shuffled every round), medians reported:

**Exact Shapley-Input** on short held-out tweets (the ``short`` view, examples with at most
``--max-players`` players and no special token inside the text, so that every method has the
same players), three ways:

- *ours*: ``ShapleyInput.attribute`` on length-sorted batches of ``--batch`` examples padded to
  the batch's longest, as ``run_comparison`` calls it (``--rows`` coalitions per forward pass);
- *ours, previous*: the implementation before this change (one example at a time, every
  coalition at the batch's padded length, two more forwards for the efficiency gap), kept
  below for this comparison;
- *authors*: a re-implementation, written for this benchmark, of the steps of
  ``shapley_values`` in the paper's public code (github.com/marteeggen/Attention-based-XAI-for-transformers,
  ``shapley/methods/shapley_values/shapley_values.py`` and ``.../utils.py``, commit 7ac9565):
  each sentence tokenized alone (no padding), all ``2^n`` binary coalitions from
  ``itertools.product``, the masked sequences built coalition by coalition with numpy, forward
  passes of ``--rows`` coalitions (512 in their ``main_shapley.py``), softmax, one ``.item()``
  per coalition into a dictionary keyed by player tuples, then each player's value as the mean
  over coalition sizes of the mean marginal contribution (``itertools.combinations``).

**Faithfulness metrics** (comprehensiveness, sufficiency, F1's predictions at 20%; bins
0/10/20/50%, [MASK]) of the same attributions (attention received, ``Att``) on batches of
``--batch`` tweets of the ``all`` view, three ways:

- *ours*: ``faithfulness_curves``, one forward pass of the originals and every distinct masked
  input of every bin;
- *ours, previous*: the loop before this change (the originals, then one pass of the batch per
  bin and metric), kept below;
- *authors*: a re-implementation of ``get_masked_input_ids`` and ``calc_faithfulness`` of the
  same repository (``shapley/eval/eval.py``): the masked inputs built example by example and
  bin by bin with ``torch.topk`` and Python sets, then three passes (the originals, all bins'
  comprehensiveness inputs, all bins' sufficiency inputs).

The script checks that the three ways give the same numbers (largest absolute difference
printed) and writes a Markdown report::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_reference_speed.py \\
        --out benchmarks/results/reference_speed.md
"""

import argparse
import itertools
import math
import pathlib
import platform
import random
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from bench_speed_memory import OtherCpu

from captum_attn_shapley import AttentionReceived, ShapleyInput
from captum_attn_shapley.demos import load_classifier, load_text_dataset
from captum_attn_shapley.demos.datasets import select_view
from captum_attn_shapley.evaluation.adapters import classifier_forward
from captum_attn_shapley.metrics import faithfulness_curves, top_players
from captum_attn_shapley.shapley import exact_shapley

BINS = (0, 10, 20, 50)

# ----------------------------------------------------------------------------- Shapley-Input


def authors_shapley_input(model: Any, tokenizer: Any, texts: Sequence[str], rows: int) -> List[np.ndarray]:
    """The authors' enumeration, step by step (see the module docstring); one array per text."""
    mask_id = tokenizer.mask_token_id
    results = []
    for text in texts:
        enc = tokenizer(text, return_tensors="pt", truncation=True, padding=True)
        ids, attention = enc["input_ids"][0], enc["attention_mask"]
        with torch.no_grad():
            target = int(torch.softmax(model(**enc).logits, dim=1).argmax(dim=1).item())
        n = ids.numel() - 2
        binary = list(itertools.product([0, 1], repeat=n))
        keys = [tuple(i + 1 for i, bit in enumerate(c) if bit == 1) for c in binary]
        values: Dict[Tuple[int, ...], float] = {}
        for start in range(0, len(binary), rows):
            chunk = binary[start : start + rows]
            inner = [np.where(np.array(c) == 0, mask_id, ids[1:-1].numpy()) for c in chunk]
            body = torch.tensor(np.array(inner), dtype=torch.long)
            first = torch.full((len(chunk), 1), int(ids[0]))
            last = torch.full((len(chunk), 1), int(ids[-1]))
            with torch.no_grad():
                logits = model(input_ids=torch.cat([first, body, last], dim=1), attention_mask=attention).logits
            probs = torch.softmax(logits, dim=1)[:, target]
            for key, p in zip(keys[start : start + rows], probs):
                values[key] = p.item()
        players = list(range(1, n + 1))
        phi = []
        for player in players:
            others = [p for p in players if p != player]
            per_size = []
            for size in range(n):
                subsets = list(itertools.combinations(others, size))
                gains = [values[tuple(sorted(s + (player,)))] - values[s] for s in subsets]
                per_size.append(sum(gains) / len(subsets))
            phi.append(sum(per_size) / n)
        results.append(np.array(phi))
    return results


def previous_shapley_input(
    method: ShapleyInput, ids: torch.Tensor, mask: torch.Tensor, mask_id: int, rows: int
) -> torch.Tensor:
    """The implementation before this change: per example, every coalition at the padded length."""
    prepared = method._prepare(ids, None, (mask,), "attention", None, None, reduction="cls_row")
    phi = torch.zeros(prepared.players.shape, dtype=torch.float64)
    for b in range(ids.shape[0]):
        players = torch.nonzero(prepared.players[b]).flatten()
        target = int(prepared.captured.target[b])

        @torch.no_grad()
        def game(m: torch.Tensor, coalitions: torch.Tensor) -> torch.Tensor:
            values = []
            for start in range(0, coalitions.shape[0], rows):
                chunk = coalitions[start : start + rows]
                x = ids[b : b + 1].expand(chunk.shape[0], -1).clone()
                kept = x[:, players]
                x[:, players] = torch.where(chunk, kept, torch.full_like(kept, mask_id))
                logits = method.forward_func(x, mask[b : b + 1].expand(chunk.shape[0], -1))
                values.append(torch.softmax(logits.double(), dim=1)[:, target])
            return torch.cat(values)

        unused = torch.zeros(players.numel(), players.numel())
        if players.numel():
            phi[b, players] = exact_shapley(game, unused, max_players=players.numel()).double()
            everyone = torch.ones(1, players.numel(), dtype=torch.bool)
            game(unused, torch.cat([~everyone, everyone]))  # the efficiency gap's two forwards
    return phi


def shapley_input_batches(tokenizer: Any, texts: Sequence[str], batch: int) -> List[Tuple[List[int], Any]]:
    """Length-sorted batches, each padded to its longest (as run_comparison forms them)."""
    order = sorted(range(len(texts)), key=lambda i: (len(tokenizer(texts[i])["input_ids"]), i))
    out = []
    for start in range(0, len(order), batch):
        chosen = order[start : start + batch]
        out.append((chosen, tokenizer([texts[i] for i in chosen], padding=True, return_tensors="pt")))
    return out


# ----------------------------------------------------------------------------- metrics


def previous_curves(
    forward: Callable[..., torch.Tensor],
    ids: torch.Tensor,
    mask: torch.Tensor,
    scores: torch.Tensor,
    players: torch.Tensor,
    mask_id: int,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The metrics' loop before this change: the originals, then one pass per bin and metric."""
    rows = torch.arange(ids.shape[0])
    with torch.no_grad():
        original = torch.softmax(forward(ids, mask).double(), dim=1)
    explained = original.argmax(dim=1)
    p_x = original[rows, explained]
    comp, suff, preds = [], [], []
    for k in BINS:
        top = top_players(scores, players, k)
        for removed, drops in ((top, comp), (players & ~top, suff)):
            if bool(removed.any()):
                with torch.no_grad():
                    probs = torch.softmax(forward(torch.where(removed, mask_id, ids), mask).double(), dim=1)
            else:
                probs = original
            drops.append(p_x - probs[rows, explained])
            if drops is suff:
                preds.append(probs.argmax(dim=1))
    return torch.stack(comp, 1), torch.stack(suff, 1), torch.stack(preds, 1)


def authors_curves(
    model: Any, tokenizer: Any, ids: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The authors' evaluation, step by step (see the module docstring)."""
    batch, bins = ids.shape[0], list(BINS)
    special = torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])
    attributions = scores.masked_fill(~valid, float("-inf"))
    num_tokens = valid.sum(dim=1)
    comp_ids = ids.clone().repeat_interleave(len(bins), dim=0)
    suff_ids = ids.clone().repeat_interleave(len(bins), dim=0)
    row = 0
    for b in range(batch):
        for k in bins:
            count = int(math.ceil(int(valid[b].sum()) * (k / 100)))
            keep_comp = torch.isin(comp_ids[row], special)
            keep_suff = torch.isin(suff_ids[row], special)
            if count == 0:
                suff_ids[row] = torch.where(keep_suff, suff_ids[row], tokenizer.mask_token_id)
            else:
                top = torch.topk(attributions[b], k=count, dim=0).indices
                keep_suff[top] = True
                suff_ids[row] = torch.where(keep_suff, suff_ids[row], tokenizer.mask_token_id)
                rest = list(set(range(1, int(num_tokens[b]) + 1)) - set(top.numpy().tolist()))
                keep_comp[rest] = True
                comp_ids[row] = torch.where(keep_comp, comp_ids[row], tokenizer.mask_token_id)
            row += 1
    repeated = mask.repeat_interleave(len(bins), dim=0)
    with torch.no_grad():
        original = model(input_ids=ids, attention_mask=mask).logits
        comp_logits = model(input_ids=comp_ids, attention_mask=repeated).logits
        suff_logits = model(input_ids=suff_ids, attention_mask=repeated).logits
    target = torch.softmax(original, dim=1).argmax(dim=1)
    p_x = torch.softmax(original, dim=1)[torch.arange(batch), target]
    index = torch.arange(batch * len(bins))
    comp_p = torch.softmax(comp_logits, dim=1)[index, target.repeat_interleave(len(bins))].reshape(batch, -1)
    suff_p = torch.softmax(suff_logits, dim=1)[index, target.repeat_interleave(len(bins))].reshape(batch, -1)
    preds = suff_logits.argmax(dim=-1).reshape(batch, -1)
    return p_x.unsqueeze(1) - comp_p, p_x.unsqueeze(1) - suff_p, preds


# ----------------------------------------------------------------------------- timing


class Timed:
    """A callable that adds up the seconds spent inside it (the model's forward passes)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.seconds, self.rows, self.calls = fn, 0.0, 0, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            first = args[0] if args else kwargs["input_ids"]
            self.rows += first.shape[0]
            self.calls += 1
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - began


def interleaved(
    fns: Dict[str, Callable[[], Any]], clocks: Dict[str, Timed], rounds: int, seed: int = 0
) -> Tuple[Dict[str, List[float]], Dict[str, List[float]], Dict[str, float], float]:
    """``rounds`` rounds of every function, shuffled each round: the wall-clock times, this process's
    CPU times, the share of the wall-clock time spent in the model's forward passes, and the other
    processes' mean CPU use meanwhile."""
    times: Dict[str, List[float]] = {k: [] for k in fns}
    cpu: Dict[str, List[float]] = {k: [] for k in fns}
    in_forward = {k: 0.0 for k in fns}
    rng = random.Random(seed)
    probe = OtherCpu()
    for _ in range(rounds):
        order = list(fns)
        rng.shuffle(order)
        for key in order:
            before = clocks[key].seconds
            began, began_cpu = time.perf_counter(), time.process_time()
            fns[key]()
            times[key].append(time.perf_counter() - began)
            cpu[key].append(time.process_time() - began_cpu)
            in_forward[key] += clocks[key].seconds - before
    return times, cpu, {k: in_forward[k] / sum(times[k]) for k in fns}, probe.stop()


def table(
    times: Dict[str, List[float]], cpu: Dict[str, List[float]], shares: Dict[str, float], reference: str
) -> List[str]:
    lines = [
        "| | median s | rounds (s) | median CPU s | in the model's forward passes "
        f"| {reference} ÷ this (time / CPU time) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    ref, ref_cpu = statistics.median(times[reference]), statistics.median(cpu[reference])
    for name, values in times.items():
        med, med_cpu = statistics.median(values), statistics.median(cpu[name])
        spread = " / ".join(f"{v:.2f}" for v in values)
        lines.append(
            f"| {name} | {med:.2f} | {spread} | {med_cpu:.2f} | {100 * shares[name]:.0f}% "
            f"| {ref / med:.2f} / {ref_cpu / med_cpu:.2f} |"
        )
    return lines


def shapley_section(args: argparse.Namespace, model: Any, tokenizer: Any, data: Any) -> List[str]:
    special = sorted(set(int(i) for i in tokenizer.all_special_ids))
    mask_id = tokenizer.mask_token_id
    pool = select_view(data, tokenizer, "short", None, seed=0)
    texts: List[str] = []
    for text in pool.texts:
        inner = tokenizer(text)["input_ids"][1:-1]
        if len(inner) <= args.max_players and not set(inner) & set(special) and text not in texts:
            texts.append(text)
        if len(texts) == args.n:
            break
    players = [len(tokenizer(t)["input_ids"]) - 2 for t in texts]
    batches = shapley_input_batches(tokenizer, texts, args.batch)
    forward = classifier_forward(model)
    clocks = {name: Timed(forward) for name in ("ours", "ours, previous")}
    clocks["authors (re-implemented)"] = Timed(model)
    method = ShapleyInput(clocks["ours"], model=model, special_token_ids=special)
    before = ShapleyInput(clocks["ours, previous"], model=model, special_token_ids=special)

    def ours() -> List[torch.Tensor]:
        return [
            method.attribute(
                enc["input_ids"],
                baselines=mask_id,
                additional_forward_args=(enc["attention_mask"],),
                max_players=args.max_players,
                perturbations_per_eval=args.rows,
            )
            for _, enc in batches
        ]

    def previous() -> List[torch.Tensor]:
        return [
            previous_shapley_input(before, enc["input_ids"], enc["attention_mask"], mask_id, args.rows)
            for _, enc in batches
        ]

    def authors() -> List[np.ndarray]:
        return authors_shapley_input(clocks["authors (re-implemented)"], tokenizer, texts, args.rows)

    ours_phi, prev_phi, auth_phi = ours(), previous(), authors()  # the agreement check, also a warm-up
    diff_prev, diff_auth = 0.0, 0.0
    for (chosen, _), a, p in zip(batches, ours_phi, prev_phi):
        diff_prev = max(diff_prev, float((a.double() - p).abs().max()))
        for j, i in enumerate(chosen):
            n = players[i]
            diff_auth = max(diff_auth, float(np.abs(a[j, 1 : n + 1].double().numpy() - auth_phi[i]).max()))
    fns = {"ours": ours, "ours, previous": previous, "authors (re-implemented)": authors}
    times, cpu, shares, other = interleaved(fns, clocks, args.rounds)
    med = {name: statistics.median(values) for name, values in times.items()}
    med_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    return [
        f"## Exact Shapley-Input: {len(texts)} short tweets, {min(players)}-{max(players)} players "
        f"({sum(2**n for n in players):,} coalitions); batches of {args.batch}; {args.rows} coalitions "
        "per forward pass",
        "",
        *table(times, cpu, shares, "authors (re-implemented)"),
        "",
        f"Ours is **{med['authors (re-implemented)'] / med['ours']:.2f}×** as fast as the authors' enumeration "
        f"({med_cpu['authors (re-implemented)'] / med_cpu['ours']:.2f}× in CPU time), "
        f"{med['ours, previous'] / med['ours']:.2f}× our previous implementation "
        f"({med_cpu['ours, previous'] / med_cpu['ours']:.2f}× in CPU time). Largest difference of the "
        f"values: ours vs previous {diff_prev:.1e}, ours vs authors {diff_auth:.1e}. Other processes used "
        f"{other:.2f} cores meanwhile.",
        "",
    ]


def metrics_section(args: argparse.Namespace, model: Any, tokenizer: Any, data: Any) -> List[str]:
    special = sorted(set(int(i) for i in tokenizer.all_special_ids))
    mask_id = tokenizer.mask_token_id
    view = select_view(data, tokenizer, "all", args.metric_n, seed=0)
    batches = shapley_input_batches(tokenizer, view.texts, args.batch)
    forward = classifier_forward(model)
    att = AttentionReceived(forward, special_token_ids=special)
    prepared = []
    for _, enc in batches:
        ids, mask = enc["input_ids"], enc["attention_mask"]
        scores = att.attribute(ids, additional_forward_args=(mask,)).double()
        valid = (mask == 1) & ~torch.isin(ids, torch.tensor(special))
        prepared.append((ids, mask, scores, valid))
    names = (
        "ours (each distinct input once)",
        "ours, previous (a pass per bin and metric)",
        "authors (re-implemented)",
    )
    clocks = {names[0]: Timed(forward), names[1]: Timed(forward), names[2]: Timed(model)}

    def metrics_ours() -> List[Any]:
        out = []
        for ids, mask, scores, valid in prepared:
            c = faithfulness_curves(
                clocks[names[0]],
                ids,
                scores,
                additional_forward_args=(mask,),
                tokenizer=tokenizer,
                player_mask=valid,
            )
            out.append((c.comprehensiveness_drops, c.sufficiency_drops, c.sufficiency_predictions))
        return out

    def metrics_previous() -> List[Any]:
        return [previous_curves(clocks[names[1]], ids, mask, s, v, mask_id) for ids, mask, s, v in prepared]

    def metrics_authors() -> List[Any]:
        return [authors_curves(clocks[names[2]], tokenizer, ids, mask, s, v) for ids, mask, s, v in prepared]

    fns = {names[0]: metrics_ours, names[1]: metrics_previous, names[2]: metrics_authors}
    results = {name: fn() for name, fn in fns.items()}  # the agreement check, also a warm-up
    passes_rows = {name: clock.rows for name, clock in clocks.items()}
    passes = {name: clock.calls for name, clock in clocks.items()}
    gaps = []
    for name in names[1:]:
        gap, flips = 0.0, 0
        for (c, s, p), (c2, s2, p2) in zip(results[names[0]], results[name]):
            gap = max(gap, float((c - c2.double()).abs().max()), float((s - s2.double()).abs().max()))
            flips += int((p != p2).sum())
        gaps.append((gap, flips))
    times, cpu, shares, other = interleaved(fns, clocks, args.metric_rounds)
    med = {name: statistics.median(values) for name, values in times.items()}
    med_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    n_ex = len(view.texts)
    return [
        f"## Faithfulness metrics: {n_ex} tweets of the `all` view in batches of {args.batch}, bins "
        f"{'/'.join(str(b) for b in BINS)}%, Att attributions",
        "",
        *table(times, cpu, shares, names[2]),
        "",
        f"Ours is **{med[names[2]] / med[names[0]]:.2f}×** as fast as the authors' evaluation "
        f"({med_cpu[names[2]] / med_cpu[names[0]]:.2f}× in CPU time), {med[names[1]] / med[names[0]]:.2f}× our "
        f"previous loop ({med_cpu[names[1]] / med_cpu[names[0]]:.2f}× in CPU time). Model inputs run per "
        f"call of all batches: ours {passes_rows[names[0]]} in {passes[names[0]]} passes (each distinct input "
        f"once), previous {passes_rows[names[1]]} in {passes[names[1]]} passes, authors "
        f"{passes_rows[names[2]]} in {passes[names[2]]} passes. Largest difference of the drops: vs previous "
        f"{gaps[0][0]:.1e} "
        f"({gaps[0][1]} predictions differ), vs authors {gaps[1][0]:.1e} ({gaps[1][1]} differ). Other "
        f"processes used {other:.2f} cores meanwhile.",
        "",
    ]


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="short tweets for Shapley-Input")
    parser.add_argument("--max-players", type=int, default=12, help="largest n of those tweets (2^n forwards)")
    parser.add_argument("--rows", type=int, default=512, help="coalitions per forward pass (both)")
    parser.add_argument("--batch", type=int, default=16, help="examples per batch")
    parser.add_argument("--metric-n", type=int, default=64, help="tweets of the 'all' view for the metrics")
    parser.add_argument("--rounds", type=int, default=2, help="timing rounds of Shapley-Input")
    parser.add_argument("--metric-rounds", type=int, default=7, help="timing rounds of the metrics")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--skip-shapley", action="store_true")
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.perf_counter()
    model, tokenizer, info = load_classifier(None)
    data = load_text_dataset("tweets")
    command = sys.argv[1:] if argv is None else argv
    report = [
        "# Exact Shapley-Input and the faithfulness metrics: ours, our previous implementation, the authors'",
        "",
        f"- command: `python benchmarks/bench_reference_speed.py {' '.join(command)}`",
        f"- model: {info.get('name_or_path')} (attention: {model.config._attn_implementation})",
        f"- machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}",
        "",
    ]
    if not args.skip_shapley:
        report += shapley_section(args, model, tokenizer, data)
        print("\n".join(report), flush=True)
    section = metrics_section(args, model, tokenizer, data)
    print("\n".join(section), flush=True)
    report += section + [f"Total run time {time.perf_counter() - began:.0f} s."]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(report) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
