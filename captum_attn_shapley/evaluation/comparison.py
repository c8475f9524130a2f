#!/usr/bin/env python3
"""Side-by-side comparison of attribution methods on a labelled text dataset.

:func:`run_comparison` computes every method's attributions in batches (with a progress
bar), times them, evaluates comprehensiveness, sufficiency and the F1 of the sufficiency
predictions (:mod:`captum_attn_shapley.metrics.faithfulness`), and writes a tidy CSV, a JSON file, a
markdown table and a plot. Each finished method is saved on its own with a fingerprint of
everything that determines its numbers, so an interrupted or extended run resumes without
recomputing finished methods.

Methods are :class:`MethodSpec` objects: any Captum ``Attribution`` (ours, or Captum's own
such as ``LayerIntegratedGradients``, ``KernelShap``, ``ShapleyValueSampling``, ``Lime``,
``FeatureAblation``) with the keyword arguments of its ``attribute`` call.
:func:`standard_methods` builds the paper's set for a Hugging Face classifier.
"""

import csv
import json
import math
import os
import pathlib
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from captum.attr import Attribution
from torch import Tensor
from torch.nn import Module
from tqdm.auto import tqdm

from captum_attn_shapley._utils.fingerprint import model_fingerprint
from captum_attn_shapley._utils.fingerprint import settings_digest as _digest
from captum_attn_shapley.capture.players import text_player_mask
from captum_attn_shapley.metrics.faithfulness import (
    DEFAULT_BINS,
    Replacement,
    check_bins,
    f1_of_predictions,
    faithfulness_curves,
    resolve_replacement,
    token_scores,
)

#: Bump when the stored per-method format or the protocol changes (invalidates resumable files).
RESULTS_VERSION = 1


@dataclass
class MethodSpec:
    r"""
    One attribution method of a comparison.

    Attributes:
        name (str): The name shown in the results.
        attribution (Attribution): A Captum attribution whose ``attribute(input_ids,
                    target=..., additional_forward_args=(attention_mask,), **kwargs)``
                    returns one score per token (``(batch, seq)``) or per embedding
                    (``(batch, seq, hidden)``).
        kwargs (dict): Further keyword arguments of ``attribute`` (``n_samples``, ...).
        baselines (int, str or None): If set, ``baselines=`` is passed: the input ids with
                    every player replaced by this token (an id, or ``"mask"``, ``"pad"``,
                    ``"unk"``); special tokens and padding keep their ids, so replacing them
                    changes nothing.
        feature_mask (bool): If True, ``feature_mask=`` is passed: each player its own
                    feature (1, 2, ...), every other position feature 0.
        batch_size (int, optional): Examples per ``attribute`` call, instead of the
                    comparison's batch size (e.g. 1 for methods that explain one example at
                    a time anyway).
        max_examples (int, optional): Run this method on the first ``max_examples``
                    examples only (in the order given), for methods too costly for all;
                    the summary's ``n`` says how many it saw.
        description (str): A short description for the results table.
    """

    name: str
    attribution: Attribution
    kwargs: Dict[str, Any] = field(default_factory=dict)
    baselines: Optional[Replacement] = None
    feature_mask: bool = False
    batch_size: Optional[int] = None
    max_examples: Optional[int] = None
    description: str = ""

    def fingerprint(self) -> Dict[str, Any]:
        """What determines this method's numbers (for resuming)."""
        attribution = self.attribution
        settings = {
            k: repr(v)
            for k, v in sorted(vars(attribution).items())
            if isinstance(v, (int, float, str, bool, tuple, list)) or v is None
        }
        return {
            "name": self.name,
            "class": f"{type(attribution).__module__}.{type(attribution).__qualname__}",
            "settings": settings,
            "kwargs": {k: repr(v) for k, v in sorted(self.kwargs.items())},
            "baselines": repr(self.baselines),
            "feature_mask": self.feature_mask,
            "batch_size": self.batch_size,
            "max_examples": self.max_examples,
        }


@dataclass
class ComparisonResult:
    r"""
    The outcome of :func:`run_comparison`.

    Attributes:
        rows (list[dict]): One tidy row per example and method.
        summary (list[dict]): One row per method: means with 95% intervals, F1, throughput.
        bins (tuple[float, ...]): The bins of the metrics.
        aopc (dict): Per method, the mean comprehensiveness and sufficiency drop per bin.
        attributions (dict): Per method, the players' scores of each example (lists).
        config (dict): The settings of the run.
    """

    rows: List[Dict[str, Any]]
    summary: List[Dict[str, Any]]
    bins: Tuple[float, ...]
    aopc: Dict[str, Dict[str, List[float]]]
    attributions: Dict[str, List[List[float]]]
    config: Dict[str, Any]

    def to_markdown(self) -> str:
        """The summary as a markdown table."""
        return summary_markdown(self.summary, self.config.get("f1_k", 20))


def classifier_forward(model: Module) -> Callable[[Tensor, Tensor], Tensor]:
    r"""
    A Captum-style forward function of a Hugging Face sequence classifier.

    Args:
        model (Module): The classifier.

    Returns:
        Callable: ``forward(input_ids, attention_mask) -> logits``.
    """

    def forward(input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    return forward


def embedding_layer(model: Module) -> Module:
    r"""
    The embedding module of a Hugging Face encoder (words, positions and token types), the
    layer ``LayerIntegratedGradients`` attributes to.

    Args:
        model (Module): The classifier.

    Returns:
        Module: ``model.base_model.embeddings`` if present, else the input embeddings.
    """
    base = getattr(model, "base_model", model)
    layer = getattr(base, "embeddings", None)
    if isinstance(layer, Module):
        return layer
    return model.get_input_embeddings()  # type: ignore[operator]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "method"


def _atomic_write(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Tuple[float, float]:
    r"""
    Mean and half-width of its Student-t confidence interval.

    Args:
        values (sequence of float): The sample.
        confidence (float): The interval's level.

    Returns:
        tuple[float, float]: ``(mean, half_width)``; the half-width is NaN for one value.
    """
    from scipy import stats

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    mean = float(data.mean())
    if data.size < 2:
        return mean, math.nan
    half = float(stats.sem(data) * stats.t.ppf((1 + confidence) / 2, data.size - 1))
    return mean, half


def _batch_arguments(
    spec: MethodSpec, ids: Tensor, players: Tensor, tokenizer: Any, forward: Callable
) -> Dict[str, Any]:
    kwargs = dict(spec.kwargs)
    if spec.baselines is not None:
        replacement = resolve_replacement(spec.baselines, tokenizer, forward)
        kwargs["baselines"] = torch.where(players, torch.full_like(ids, replacement), ids)
    if spec.feature_mask:
        kwargs["feature_mask"] = torch.where(players, players.long().cumsum(dim=1), torch.zeros_like(ids))
    return kwargs


def _run_method(
    spec: MethodSpec,
    encoded: List[Dict[str, Tensor]],
    targets: List[Tensor],
    forward: Callable,
    tokenizer: Any,
    special: List[int],
    bins: Tuple[float, ...],
    f1_k: float,
    replacement: Replacement,
    seed: int,
    progress: bool,
) -> Dict[str, Any]:
    rows: List[Dict[str, Any]] = []
    scores_out: List[List[float]] = []
    comp_drops: List[List[float]] = []
    suff_drops: List[List[float]] = []
    seconds = 0.0
    limit = spec.max_examples
    if limit is not None:
        encoded, targets = _first_examples(encoded, targets, limit)
    total = sum(int(b["input_ids"].shape[0]) for b in encoded)
    bar = tqdm(total=total, desc=spec.name, disable=not progress, leave=False)
    for batch, target in zip(encoded, targets):
        ids, mask, index = batch["input_ids"], batch["attention_mask"], batch["index"]
        players = text_player_mask(ids, mask, special)
        step = spec.batch_size or ids.shape[0]
        for start in range(0, ids.shape[0], step):
            part = slice(start, start + step)
            sub_ids, sub_mask, sub_players = ids[part], mask[part], players[part]
            kwargs = _batch_arguments(spec, sub_ids, sub_players, tokenizer, forward)
            torch.manual_seed(seed)
            began = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Lime/KernelShap warn about batches; progress bars
                attr = spec.attribution.attribute(
                    sub_ids, target=target[part], additional_forward_args=(sub_mask,), **kwargs
                )
            elapsed = time.perf_counter() - began
            seconds += elapsed
            scores = token_scores(attr, tuple(sub_ids.shape))
            curves = faithfulness_curves(
                forward,
                sub_ids,
                scores,
                target=target[part],
                additional_forward_args=(sub_mask,),
                bins=bins,
                replacement=replacement,
                tokenizer=tokenizer,
                player_mask=sub_players,
            )
            comp, suff = curves.comprehensiveness(), curves.sufficiency()
            preds = curves.predictions_at(f1_k)
            for j in range(sub_ids.shape[0]):
                rows.append(
                    {
                        "method": spec.name,
                        "example": int(index[part][j]),
                        "label": int(batch["label"][part][j]),
                        "predicted": int(target[part][j]),
                        "probability": float(curves.probability[j]),
                        "n_players": int(curves.num_players[j]),
                        "comprehensiveness": float(comp[j]),
                        "sufficiency": float(suff[j]),
                        f"prediction_at_{_pct(f1_k)}": int(preds[j]),
                        "seconds": elapsed / sub_ids.shape[0],
                    }
                )
                scores_out.append(scores[j][sub_players[j]].tolist())
                comp_drops.append(curves.comprehensiveness_drops[j].tolist())
                suff_drops.append(curves.sufficiency_drops[j].tolist())
            bar.update(sub_ids.shape[0])
    bar.close()
    return {
        "rows": rows,
        "scores": scores_out,
        "comprehensiveness_drops": comp_drops,
        "sufficiency_drops": suff_drops,
        "seconds": seconds,
    }


def _first_examples(
    encoded: List[Dict[str, Tensor]], targets: List[Tensor], limit: int
) -> Tuple[List[Dict[str, Tensor]], List[Tensor]]:
    """The batches restricted to the examples of index < limit (padding trimmed to the new longest)."""
    kept_batches, kept_targets = [], []
    for batch, target in zip(encoded, targets):
        rows = batch["index"] < limit
        if not bool(rows.any()):
            continue
        width = int(torch.nonzero(batch["attention_mask"][rows].any(dim=0)).max()) + 1  # trailing padding
        kept_batches.append(
            {key: value[rows][:, :width] if value.dim() == 2 else value[rows] for key, value in batch.items()}
        )
        kept_targets.append(target[rows])
    return kept_batches, kept_targets


def _pct(k: float) -> str:
    return f"{k:g}".replace(".", "_")


def _encode(
    tokenizer: Any, texts: Sequence[str], labels: Sequence[int], batch_size: int, max_length: int
) -> List[Dict[str, Tensor]]:
    """Batches of similar length (sorted by length, stable), each padded to its longest."""
    lengths = [len(tokenizer(t, truncation=True, max_length=max_length)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    batches = []
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in chosen], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        batches.append(
            {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                "index": torch.tensor(chosen),
                "label": torch.tensor([int(labels[i]) for i in chosen]),
            }
        )
    return batches


def run_comparison(
    model: Module,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    methods: Union[Sequence[MethodSpec], Mapping[str, Attribution]],
    out_dir: Optional[Union[str, pathlib.Path]] = None,
    batch_size: int = 16,
    max_length: int = 128,
    bins: Sequence[float] = DEFAULT_BINS,
    f1_k: float = 20,
    replacement: Replacement = "mask",
    seed: int = 0,
    resume: bool = True,
    progress: bool = True,
    plot: bool = True,
) -> ComparisonResult:
    r"""
    Computes, times and evaluates every method on the same examples.

    Each example is explained for the class the model predicts on it (the class whose
    probability the metrics follow, SPEC §6); every method sees the same batches (sorted
    by length, padded to the longest in the batch), and its wall time per batch is
    divided evenly among the batch's examples.

    Args:
        model (Module): A Hugging Face sequence classifier (or any module called as
                    ``model(input_ids=..., attention_mask=...)`` returning logits).
        tokenizer: Its tokenizer (padding, special tokens, the replacement token).
        texts (sequence of str): The examples.
        labels (sequence of int): Their gold labels (for the F1).
        methods (sequence of MethodSpec, or mapping name -> Attribution): The methods.
        out_dir (str or Path, optional): Where to write ``per_example.csv``,
                    ``results.json``, ``summary.md``, ``faithfulness.png`` and the
                    resumable per-method files (``methods/``). Default: nothing written.
        batch_size (int): Examples per ``attribute`` call.
        max_length (int): Truncation length of the tokenizer.
        bins (sequence of float): Bins of comprehensiveness and sufficiency, in percent.
        f1_k (float): The bin of the F1 (default 20; added to ``bins`` if missing).
        replacement (int or str): The token that removes players in the metrics.
        seed (int): ``torch.manual_seed`` before every ``attribute`` call.
        resume (bool): Reuse the saved results of methods whose fingerprint (model
                    parameters, data, settings, method) matches.
        progress (bool): Show progress bars.
        plot (bool): Write ``faithfulness.png`` (needs matplotlib).

    Returns:
        ComparisonResult: Tidy rows, the summary, AOPC curves and the attributions.

    Examples::

        >>> from captum.attr import LayerIntegratedGradients
        >>> forward = classifier_forward(model)
        >>> methods = [
        ...     MethodSpec("AttnGradShapley", AttnGradShapley(model)),
        ...     MethodSpec("LIG", LayerIntegratedGradients(forward, embedding_layer(model)),
        ...                baselines="pad"),
        ... ]
        >>> result = run_comparison(model, tokenizer, texts, labels, methods, out_dir="results")
        >>> print(result.to_markdown())
    """
    if len(texts) == 0:
        raise ValueError("No examples: `texts` is empty.")
    if labels is None or len(labels) != len(texts):
        raise ValueError(
            f"`labels` must give one gold label per text ({len(texts)} texts, "
            f"{0 if labels is None else len(labels)} labels): the F1 needs them."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    specs = _as_specs(methods)
    kept_bins = check_bins(tuple(bins) + (f1_k,))
    if float(f1_k) not in check_bins(bins):
        warnings.warn(f"f1_k={f1_k} is not among the bins {tuple(bins)}; it is added to them.", stacklevel=2)
    forward = classifier_forward(model)
    special = sorted(set(int(i) for i in tokenizer.all_special_ids))
    encoded = _encode(tokenizer, texts, labels, batch_size, max_length)
    with torch.no_grad():
        targets = [forward(b["input_ids"], b["attention_mask"]).argmax(dim=1) for b in encoded]
    _warm_up(model, forward, encoded[0])
    config = {
        "version": RESULTS_VERSION,
        "model": model_fingerprint(model),
        "model_name": str(getattr(model, "name_or_path", type(model).__name__)),
        "data": _digest([list(texts), [int(v) for v in labels]]),
        "n_examples": len(texts),
        "batch_size": batch_size,
        "max_length": max_length,
        "bins": list(kept_bins),
        "f1_k": f1_k,
        "replacement": resolve_replacement(replacement, tokenizer, forward),
        "seed": seed,
        "torch": torch.__version__,
    }
    root = pathlib.Path(out_dir) if out_dir is not None else None
    results: Dict[str, Dict[str, Any]] = {}
    for spec in tqdm(specs, desc="methods", disable=not progress):
        fingerprint = _digest({"config": config, "method": spec.fingerprint()})
        path = root / "methods" / f"{_slug(spec.name)}.json" if root is not None else None
        if resume and path is not None and path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("fingerprint") == fingerprint:
                results[spec.name] = stored
                continue
        outcome = _run_method(
            spec, encoded, targets, forward, tokenizer, special, kept_bins, f1_k, replacement, seed, progress
        )
        outcome["fingerprint"] = fingerprint
        outcome["description"] = spec.description
        results[spec.name] = outcome
        if path is not None:
            _atomic_write(path, json.dumps(outcome))
    result = _assemble(results, kept_bins, f1_k, config)
    if root is not None:
        write_results(result, root, plot=plot)
    return result


def _warm_up(model: Module, forward: Callable, batch: Dict[str, Tensor]) -> None:
    """Untimed passes (forward and backward; one attention capture), so that the first method
    timed does not pay the process's one-time start-up costs."""
    from captum_attn_shapley.capture.attention import AttentionCapture

    ids, mask = batch["input_ids"][:1], batch["attention_mask"][:1]
    params = [p for p in model.parameters() if p.requires_grad]
    logits = forward(ids, mask)
    if params:
        torch.autograd.grad(logits.sum(), params[:1], allow_unused=True)
    try:
        AttentionCapture(forward, model=model).capture(ids, additional_forward_args=(mask,), with_gradients=True)
    except (TypeError, ValueError):  # no discoverable attention: only Captum's methods can run
        pass


def _as_specs(methods: Union[Sequence[MethodSpec], Mapping[str, Attribution]]) -> List[MethodSpec]:
    if isinstance(methods, Mapping):
        specs = [MethodSpec(name, attr) for name, attr in methods.items()]
    else:
        specs = list(methods)
    if not specs:
        raise ValueError("No methods to compare: give at least one MethodSpec.")
    for spec in specs:
        if not isinstance(spec, MethodSpec):
            raise TypeError(f"Expected MethodSpec objects (or a mapping name -> Attribution), got {spec!r}.")
        if not callable(getattr(spec.attribution, "attribute", None)):
            raise TypeError(f"Method {spec.name!r}: {spec.attribution!r} has no `attribute` method.")
    names = [s.name for s in specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"Method names must be unique; repeated: {duplicated}.")
    return specs


def _assemble(
    results: Dict[str, Dict[str, Any]], bins: Tuple[float, ...], f1_k: float, config: Dict[str, Any]
) -> ComparisonResult:
    rows: List[Dict[str, Any]] = []
    summary: List[Dict[str, Any]] = []
    aopc: Dict[str, Dict[str, List[float]]] = {}
    attributions: Dict[str, List[List[float]]] = {}
    key = f"prediction_at_{_pct(f1_k)}"
    for name, outcome in results.items():
        method_rows = sorted(outcome["rows"], key=lambda r: r["example"])
        rows += method_rows
        comp_mean, comp_ci = mean_interval([r["comprehensiveness"] for r in method_rows])
        suff_mean, suff_ci = mean_interval([r["sufficiency"] for r in method_rows])
        f1 = f1_of_predictions([r["label"] for r in method_rows], [r[key] for r in method_rows])
        seconds = float(outcome["seconds"])
        summary.append(
            {
                "method": name,
                "description": outcome.get("description", ""),
                "n": len(method_rows),
                "comprehensiveness": comp_mean,
                "comprehensiveness_ci95": comp_ci,
                "sufficiency": suff_mean,
                "sufficiency_ci95": suff_ci,
                f"f1_at_{_pct(f1_k)}": f1,
                "seconds": seconds,
                "examples_per_second": len(method_rows) / seconds if seconds > 0 else math.inf,
            }
        )
        aopc[name] = {
            "comprehensiveness": np.mean(outcome["comprehensiveness_drops"], axis=0).tolist(),
            "sufficiency": np.mean(outcome["sufficiency_drops"], axis=0).tolist(),
        }
        order = np.argsort([r["example"] for r in outcome["rows"]], kind="stable")
        attributions[name] = [outcome["scores"][i] for i in order]
    return ComparisonResult(rows, summary, bins, aopc, attributions, config)


def summary_markdown(summary: Sequence[Mapping[str, Any]], f1_k: float = 20) -> str:
    r"""
    A markdown table of a comparison's summary.

    Args:
        summary (sequence of dict): :attr:`ComparisonResult.summary`.
        f1_k (float): The F1's bin.

    Returns:
        str: The table.
    """
    key = f"f1_at_{_pct(f1_k)}"
    lines = [
        f"| method | n | comprehensiveness ↑ (±95%) | sufficiency ↓ (±95%) | F1@{f1_k:g}% | examples/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        lines.append(
            f"| {row['method']} | {row['n']} "
            f"| {row['comprehensiveness']:.4f} ± {row['comprehensiveness_ci95']:.4f} "
            f"| {row['sufficiency']:.4f} ± {row['sufficiency_ci95']:.4f} | {row[key]:.3f} "
            f"| {_rate(row['examples_per_second'])} |"
        )
    return "\n".join(lines) + "\n"


def _rate(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def write_results(result: ComparisonResult, out_dir: Union[str, pathlib.Path], plot: bool = True) -> None:
    r"""
    Writes ``per_example.csv`` (tidy), ``results.json``, ``summary.md`` and, if ``plot``,
    ``faithfulness.png``.

    Args:
        result (ComparisonResult): The comparison.
        out_dir (str or Path): The directory.
        plot (bool): Also draw the figure.
    """
    root = pathlib.Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    if result.rows:
        with open(root / "per_example.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(result.rows[0]))
            writer.writeheader()
            writer.writerows(result.rows)
    payload = {
        "config": result.config,
        "bins": list(result.bins),
        "summary": result.summary,
        "aopc": result.aopc,
        "rows": result.rows,
    }
    _atomic_write(root / "results.json", json.dumps(payload, indent=1))
    _atomic_write(root / "summary.md", result.to_markdown())
    if plot:
        from captum_attn_shapley.visualization.plots import plot_comparison

        figure = plot_comparison(result)
        figure.savefig(root / "faithfulness.png", dpi=120, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(figure)


#: The sampling estimators run on Shapley-Grad-Att-Max-Mutual, at these sample counts.
SAMPLING_ESTIMATORS: Tuple[Tuple[str, int], ...] = (
    ("permutation", 100),
    ("permutation", 1000),
    ("kernel", 100),
    ("kernel", 1000),
)

#: Rows per forward pass given to the perturbation methods (as many as a batch of 16).
ROWS_PER_FORWARD = 16


def standard_method_names() -> List[str]:
    r"""
    Names accepted by :func:`standard_methods`, in the paper's order.

    Returns:
        list[str]: The names.
    """
    from captum_attn_shapley.attr.attn_grad_shapley import PAPER_VARIANTS

    sampled = [f"Shapley-Grad-Att-Max-Mutual ({est}, {n})" for est, n in SAMPLING_ESTIMATORS]
    captum = [
        "LayerIntegratedGradients",
        "KernelShap",
        "ShapleyValueSampling",
        "Lime",
        "FeatureAblation",
        "InputXGradient",
    ]
    return list(PAPER_VARIANTS) + sampled + ["Att", "Grad-SAM", "Shapley-Input", "SHAP"] + captum


def standard_methods(
    model: Module,
    tokenizer: Any,
    names: Optional[Sequence[str]] = None,
    batch_size: int = 16,
    replacement: Replacement = "mask",
) -> List[MethodSpec]:
    r"""
    The paper's methods (SPEC §3-4) for a Hugging Face text classifier, ready for
    :func:`run_comparison`.

    - the six exact variants ``Shapley-[Grad-]Att-{CLS,Mutual,Max-Mutual}``;
    - ``Shapley-Grad-Att-Max-Mutual (permutation|kernel, 100|1000)``: the unbiased
      sampling estimators on the same game;
    - ``Att``, ``Grad-SAM``; ``Shapley-Input`` (exact, 2^n forwards: short inputs only,
      refused above 15 players); ``SHAP`` (the ``shap`` library's partition explainer,
      optional extra ``[shap]``, ``max_evals=500``);
    - Captum's ``LayerIntegratedGradients`` (embeddings, ``n_steps=50``, [PAD] baseline on
      the players), ``KernelShap`` (``n_samples=200``), ``ShapleyValueSampling``
      (``n_samples=25``), ``Lime`` (``n_samples=200``), ``FeatureAblation`` (each player a
      feature, replaced by ``replacement``) and ``InputXGradient`` (gradient times
      activation of the embeddings, Captum's ``LayerGradientXActivation``). Captum's
      defaults otherwise; the perturbation methods evaluate ``ROWS_PER_FORWARD`` rows per
      forward pass.

    Args:
        model (Module): The classifier.
        tokenizer: Its tokenizer.
        names (sequence of str, optional): A subset of :func:`standard_method_names`
                    (default: all except ``SHAP`` and ``Shapley-Input``, which have limits).
        batch_size (int): The comparison's batch size (sets ``perturbations_per_eval`` of
                    the batched perturbation methods).
        replacement (int or str): The token of the perturbation methods' baselines.

    Returns:
        list[MethodSpec]: The methods, in the order of ``names``.

    Examples::

        >>> methods = standard_methods(model, tokenizer, ["Shapley-Grad-Att-Max-Mutual", "KernelShap"])
        >>> run_comparison(model, tokenizer, texts, labels, methods)
    """
    from captum.attr import (
        FeatureAblation,
        KernelShap,
        LayerGradientXActivation,
        LayerIntegratedGradients,
        Lime,
        ShapleyValueSampling,
    )

    from captum_attn_shapley.attr.att import AttentionReceived
    from captum_attn_shapley.attr.attn_grad_shapley import PAPER_VARIANTS, AttnGradShapley
    from captum_attn_shapley.attr.grad_sam import GradSAM
    from captum_attn_shapley.attr.shapley_input import ShapleyInput

    known = standard_method_names()
    if names is None:
        names = [n for n in known if n not in ("SHAP", "Shapley-Input")]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; choose from: {', '.join(known)}.")
    forward = classifier_forward(model)
    special = list(tokenizer.all_special_ids)
    per_eval = max(1, ROWS_PER_FORWARD // batch_size)
    sampled = {f"Shapley-Grad-Att-Max-Mutual ({est}, {n})": (est, n) for est, n in SAMPLING_ESTIMATORS}
    specs: List[MethodSpec] = []
    for name in names:
        if name in PAPER_VARIANTS:
            game, weighting = PAPER_VARIANTS[name]
            specs.append(
                MethodSpec(
                    name,
                    AttnGradShapley(forward, game=game, weighting=weighting, special_token_ids=special),
                    description="exact, closed form",
                )
            )
        elif name in sampled:
            est, n = sampled[name]
            specs.append(
                MethodSpec(
                    name,
                    AttnGradShapley(forward, special_token_ids=special),
                    kwargs={"estimator": est, "n_samples": n, "seed": 0},
                    description=f"unbiased {est} estimator, {n} samples",
                )
            )
        elif name == "Att":
            specs.append(
                MethodSpec(
                    name, AttentionReceived(forward, special_token_ids=special), description="attention received"
                )
            )
        elif name == "Grad-SAM":
            specs.append(
                MethodSpec(name, GradSAM(forward, special_token_ids=special), description="Barkan et al. 2021")
            )
        elif name == "Shapley-Input":
            specs.append(
                MethodSpec(
                    name,
                    ShapleyInput(forward, special_token_ids=special),
                    kwargs={
                        "baselines": resolve_replacement(replacement, tokenizer),
                        "max_players": 15,
                        "batch_size": 512,
                    },
                    description="exact, 2^n forwards",
                )
            )
        elif name == "SHAP":
            from captum_attn_shapley.attr.shap_text import ShapText

            specs.append(
                MethodSpec(
                    name,
                    ShapText(forward, tokenizer),
                    kwargs={"max_evals": 500},
                    description="shap partition explainer, max_evals=500",
                )
            )
        elif name == "LayerIntegratedGradients":
            specs.append(
                MethodSpec(
                    name,
                    LayerIntegratedGradients(forward, embedding_layer(model)),
                    kwargs={"n_steps": 50},
                    baselines="pad",
                    description="embeddings, n_steps=50, [PAD] baseline",
                )
            )
        elif name == "KernelShap":
            specs.append(
                MethodSpec(
                    name,
                    KernelShap(forward),
                    kwargs={"n_samples": 200, "perturbations_per_eval": ROWS_PER_FORWARD},
                    baselines=replacement,
                    feature_mask=True,
                    description="n_samples=200",
                )
            )
        elif name == "ShapleyValueSampling":
            specs.append(
                MethodSpec(
                    name,
                    ShapleyValueSampling(forward),
                    kwargs={"n_samples": 25, "perturbations_per_eval": per_eval},
                    baselines=replacement,
                    feature_mask=True,
                    description="n_samples=25",
                )
            )
        elif name == "Lime":
            specs.append(
                MethodSpec(
                    name,
                    Lime(forward),
                    kwargs={"n_samples": 200, "perturbations_per_eval": ROWS_PER_FORWARD},
                    baselines=replacement,
                    feature_mask=True,
                    description="n_samples=200",
                )
            )
        elif name == "FeatureAblation":
            specs.append(
                MethodSpec(
                    name,
                    FeatureAblation(forward),
                    kwargs={"perturbations_per_eval": per_eval},
                    baselines=replacement,
                    feature_mask=True,
                    description="one token at a time",
                )
            )
        else:  # InputXGradient
            specs.append(
                MethodSpec(
                    name, LayerGradientXActivation(forward, embedding_layer(model)), description="embeddings"
                )
            )
    return specs
