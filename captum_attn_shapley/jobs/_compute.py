"""The computation of one shard: its examples in batches sorted by length, every method's token scores,
the predictions and the metrics, as columns ready for Parquet."""

import warnings
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import torch

from captum_attn_shapley.capture import text_player_mask
from captum_attn_shapley.evaluation.adapters import classifier_forward
from captum_attn_shapley.evaluation.registry import standard_methods
from captum_attn_shapley.evaluation.runner import _batch_arguments
from captum_attn_shapley.jobs.spec import JobSpec
from captum_attn_shapley.metrics import faithfulness_curves, token_scores

Columns = Dict[str, List[Any]]


def shard_batches(tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int) -> List[List[int]]:
    r"""
    The batches of a shard: positions in the shard sorted by token length (stable), ``batch_size`` at a time.

    Args:
        tokenizer: The tokenizer.
        texts (sequence of str): The shard's texts.
        batch_size (int): Examples per batch.
        max_length (int): Truncation length.

    Returns:
        list[list[int]]: Positions of each batch.
    """
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def encoded_batches(
    tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int, offsets: bool = False
) -> Iterator[Tuple[List[int], Any]]:
    r"""
    The batches of a shard (:func:`shard_batches`), each with its padded, truncated encoding.

    Args:
        tokenizer: The tokenizer.
        texts (sequence of str): The shard's texts.
        batch_size (int): Examples per batch.
        max_length (int): Truncation length.
        offsets (bool): Also return the tokens' character offsets (``offset_mapping``). Default: False

    Yields:
        tuple: The batch's positions in the shard, and its encoding (PyTorch tensors).
    """
    for batch in shard_batches(tokenizer, texts, batch_size, max_length):
        enc = tokenizer(
            [texts[i] for i in batch],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
            return_offsets_mapping=offsets,
        )
        yield batch, enc


def compute_shard(
    spec: JobSpec, model: Any, tokenizer: Any, texts: Sequence[str], labels: Any, first: int
) -> Dict[str, Columns]:
    r"""
    Every method's token scores on a shard's examples (and, per example, the prediction and metrics).

    Args:
        spec (JobSpec): The job.
        model (Module): The classifier.
        tokenizer: Its tokenizer.
        texts (sequence of str): The shard's texts.
        labels (sequence of int, optional): Their labels.
        first (int): The example id of ``texts[0]`` (its row in the input).

    Returns:
        dict: ``{"tokens": columns, "examples": columns}``, rows in example order.
    """
    methods = standard_methods(model, tokenizer, list(spec.methods), spec.batch_size, spec.baselines)
    forward = classifier_forward(model)
    special = sorted({int(i) for i in tokenizer.all_special_ids})
    offsets = bool(getattr(tokenizer, "is_fast", False))
    per_token: Dict[int, Columns] = {}
    per_example: Dict[int, Dict[str, Any]] = {}
    for batch, enc in encoded_batches(tokenizer, texts, spec.batch_size, spec.max_length, offsets):
        ids, mask = enc["input_ids"], enc["attention_mask"]
        with torch.no_grad():
            probs = forward(ids, mask).softmax(dim=-1)
        target = probs.argmax(dim=-1)
        players = text_player_mask(ids, mask, special, model=model)
        scores: Dict[str, torch.Tensor] = {}
        comp: Dict[str, torch.Tensor] = {}
        suff: Dict[str, torch.Tensor] = {}
        for method in methods:
            kwargs = _batch_arguments(method, ids, players, tokenizer, forward)
            torch.manual_seed(spec.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Captum's batch warnings and progress bars
                attr = method.attribution.attribute(ids, target=target, additional_forward_args=(mask,), **kwargs)
            scores[method.name] = token_scores(attr, tuple(ids.shape)).detach().float()
            if spec.metrics:
                curves = faithfulness_curves(
                    forward,
                    ids,
                    scores[method.name],
                    target=target,
                    additional_forward_args=(mask,),
                    bins=spec.bins,
                    baselines=spec.baselines,
                    tokenizer=tokenizer,
                    player_mask=players,
                )
                comp[method.name], suff[method.name] = curves.comprehensiveness(), curves.sufficiency()
        for row, position in enumerate(batch):
            example = first + position
            real = mask[row].bool()
            n = int(real.sum())
            pieces = tokenizer.convert_ids_to_tokens(ids[row][real].tolist())
            cols: Columns = {
                "example": [example] * n,
                "token_index": torch.nonzero(real).flatten().tolist(),
                "token": list(pieces),
                "is_player": players[row][real].tolist(),
            }
            if offsets:
                pairs = enc["offset_mapping"][row][real].tolist()
                cols["start"] = [int(a) for a, _ in pairs]
                cols["end"] = [int(b) for _, b in pairs]
            for name, score in scores.items():
                cols[name] = score[row][real].tolist()
            per_token[example] = cols
            info: Dict[str, Any] = {"example": example, "n_tokens": n, "n_players": int(players[row].sum())}
            if labels is not None:
                info["label"] = int(labels[position])
            if spec.predictions:
                info["predicted"] = int(target[row])
                info["probability"] = float(probs[row, target[row]])
            for name in comp:
                info[f"comprehensiveness:{name}"] = float(comp[name][row])
                info[f"sufficiency:{name}"] = float(suff[name][row])
            per_example[example] = info
    tokens: Columns = {}
    for example in sorted(per_token):
        for key, column in per_token[example].items():
            tokens.setdefault(key, []).extend(column)
    examples: Columns = {key: [per_example[e][key] for e in sorted(per_example)] for key in per_example[first]}
    return {"tokens": tokens, "examples": examples}
