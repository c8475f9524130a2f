"""Time ÷ floor measured interleaved (PROTOCOL.md, amendment 1): on a shared machine, a method timed minutes
apart from the floor sees another load; here each batch-round runs the floor and every timed method once, in
a shuffled order, and a method's ratio is the median over batch-rounds of its time over the floor's."""

import gc
import random
import statistics
import time
import warnings
from typing import Any, Dict, List, Sequence

import torch
from _methods import Floor

from captum_attn_shapley.evaluation import MethodSpec
from captum_attn_shapley.evaluation.adapters import classifier_forward

ROUNDS, MAX_BATCHES, BATCH = 2, 8, 16


def _batches(tokenizer: Any, texts: Sequence[str]) -> List[List[int]]:
    """The runner's batching (sorted by length, 16 at a time), thinned to at most MAX_BATCHES spread over
    the lengths."""
    lengths = [len(tokenizer(t, truncation=True, max_length=128)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    batches = [order[s : s + BATCH] for s in range(0, len(order), BATCH)]
    step = max(1, len(batches) // MAX_BATCHES)
    return batches[::step][:MAX_BATCHES]


def interleaved_ratios(
    model: Any, tokenizer: Any, texts: Sequence[str], specs: Sequence[MethodSpec]
) -> Dict[str, Any]:
    """Median over batch-rounds of each method's time ÷ the floor's time in the same batch-round."""
    forward = classifier_forward(model)
    jobs = [("floor", Floor(model), {})] + [(s.name, s.attribution, dict(s.kwargs)) for s in specs]
    ratios: Dict[str, List[float]] = {s.name: [] for s in specs}
    rng = random.Random(0)
    encoded = []
    for chosen in _batches(tokenizer, texts):
        enc = tokenizer(
            [texts[i] for i in chosen], padding=True, truncation=True, max_length=128, return_tensors="pt"
        )
        with torch.no_grad():
            target = forward(enc["input_ids"], enc["attention_mask"]).argmax(1)
        encoded.append((enc["input_ids"], enc["attention_mask"], target))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, method, kwargs in jobs:  # warm-up, untimed
            ids, mask, target = encoded[0]
            method.attribute(ids, target=target, additional_forward_args=(mask,), **kwargs)
        for _ in range(ROUNDS):
            for ids, mask, target in encoded:
                order = list(jobs)
                rng.shuffle(order)
                seconds: Dict[str, float] = {}
                for name, method, kwargs in order:
                    gc.collect()
                    torch.manual_seed(0)
                    began = time.perf_counter()
                    method.attribute(ids, target=target, additional_forward_args=(mask,), **kwargs)
                    seconds[name] = time.perf_counter() - began
                for name in ratios:
                    ratios[name].append(seconds[name] / seconds["floor"])
    return {
        "ratios": {name: statistics.median(values) for name, values in ratios.items()},
        "batch_rounds": ROUNDS * len(encoded),
    }
