"""Side-by-side comparison of attribution methods on a labelled text dataset.

:func:`run_comparison` computes every method's attributions in batches of examples (with a
progress bar), times them, evaluates comprehensiveness, sufficiency and the F1 of the
sufficiency predictions (:mod:`captum_attn_shapley.metrics`), and writes a tidy CSV, a JSON
file, a markdown table and, given a plotter, a figure
(:mod:`captum_attn_shapley.evaluation.results`). Each finished method is saved on its own with
a fingerprint of everything that determines its numbers, so an interrupted or extended run
resumes without recomputing finished methods.

Methods are :class:`~captum_attn_shapley.evaluation.MethodSpec` objects: any Captum
``Attribution`` (ours, or Captum's own such as ``LayerIntegratedGradients``, ``KernelShap``,
``ShapleyValueSampling``, ``Lime``, ``FeatureAblation``) with the keyword arguments of its
``attribute`` call. :func:`~captum_attn_shapley.evaluation.standard_methods` builds the paper's
set for a Hugging Face classifier.
"""

import json
import pathlib
import re
import time
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from captum.attr import Attribution
from torch import Tensor
from torch.nn import Module
from tqdm.auto import tqdm

from captum_attn_shapley._utils.deprecation import renamed_keyword
from captum_attn_shapley._utils.fingerprint import model_fingerprint
from captum_attn_shapley._utils.fingerprint import settings_digest as _digest
from captum_attn_shapley._utils.formatting import percent_slug
from captum_attn_shapley._utils.io import atomic_write_text
from captum_attn_shapley._utils.validation import check_classifier
from captum_attn_shapley.capture import model_behind, text_player_mask
from captum_attn_shapley.evaluation.adapters import classifier_forward
from captum_attn_shapley.evaluation.results import (
    ComparisonResult,
    PlotArg,
    assemble_result,
    check_plot,
    write_results,
)
from captum_attn_shapley.evaluation.spec import MethodSpec
from captum_attn_shapley.metrics import (
    DEFAULT_BINS,
    Replacement,
    check_bins,
    faithfulness_curves,
    resolve_replacement,
    token_scores,
)

#: Bump when the stored per-method format or the protocol changes (invalidates resumable files).
RESULTS_VERSION = 1


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "method"


def _batch_arguments(
    spec: MethodSpec, ids: Tensor, players: Tensor, tokenizer: Any, forward: Callable[..., Any]
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
    forward: Callable[..., Any],
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
        players = text_player_mask(ids, mask, special, model=model_behind(forward))
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
                baselines=replacement,
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
                        f"prediction_at_{percent_slug(f1_k)}": int(preds[j]),
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


@renamed_keyword("replacement", "baselines")
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
    baselines: Replacement = "mask",
    seed: int = 0,
    resume: bool = True,
    progress: bool = True,
    plot: PlotArg = None,
) -> ComparisonResult:
    r"""
    Computes, times and evaluates every method on the same examples.

    Each example is explained for the class the model predicts on it (the class whose
    probability the metrics follow: "Faithfulness metrics" on :doc:`the mathematics page </mathematics>`);
    every method sees the same batches (sorted by length, padded to the longest in the
    batch), and its wall time per batch is divided evenly among the batch's examples.

    Args:
        model (Module): A Hugging Face sequence classifier (or any module called as
                    ``model(input_ids=..., attention_mask=...)`` returning logits).
        tokenizer: Its tokenizer (padding, special tokens, the replacement token).
        texts (sequence of str): The examples.
        labels (sequence of int): Their gold labels (for the F1).
        methods (sequence of MethodSpec, or mapping name -> Attribution): The methods.
        out_dir (str or Path, optional): Where to write ``per_example.csv``,
                    ``results.json``, ``summary.md``, ``faithfulness.png`` (with ``plot``) and the
                    resumable per-method files (``methods/``). Default: nothing written.
        batch_size (int): Examples per batch (not rows per forward pass): the examples are
                    sorted by length and grouped this many at a time, each group padded to
                    its longest and given to one ``attribute`` call (unless a method's own
                    :attr:`MethodSpec.batch_size` splits it further).
        max_length (int): Truncation length of the tokenizer.
        bins (sequence of float): Bins of comprehensiveness and sufficiency, in percent.
        f1_k (float): The bin of the F1 (default 20; added to ``bins`` if missing).
        baselines (int or str): The token that removes players in the metrics.
        seed (int): ``torch.manual_seed`` before every ``attribute`` call.
        resume (bool): Reuse the saved results of methods whose fingerprint (model
                    parameters, data, settings, method) matches.
        progress (bool): Show progress bars.
        plot (Callable, optional): With ``out_dir``, draws ``faithfulness.png``:
                    ``plot(result) -> Figure``, e.g.
                    :func:`captum_attn_shapley.visualization.plot_comparison` (needs
                    matplotlib). Default: no figure.

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
        >>> from captum_attn_shapley.visualization import plot_comparison
        >>> result = run_comparison(
        ...     model, tokenizer, texts, labels, methods, out_dir="results", plot=plot_comparison
        ... )
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
    model = check_classifier(model, labels)
    specs = _as_specs(methods)
    check_plot(plot)
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
        "replacement": resolve_replacement(baselines, tokenizer, forward),
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
            spec, encoded, targets, forward, tokenizer, special, kept_bins, f1_k, baselines, seed, progress
        )
        outcome["fingerprint"] = fingerprint
        outcome["description"] = spec.description
        results[spec.name] = outcome
        if path is not None:
            atomic_write_text(path, json.dumps(outcome))
    result = assemble_result(results, kept_bins, f1_k, config)
    if root is not None:
        write_results(result, root, plot=plot)
    return result


def _warm_up(model: Module, forward: Callable[..., Any], batch: Dict[str, Tensor]) -> None:
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
