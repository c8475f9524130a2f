"""A ground-truth text task whose decisive tokens are known by construction.

Each sentence is a string of random neutral filler words
(:data:`~captum_attn_shapley.demos.planted_words.FILLER_WORDS`, none of which is in the VADER
sentiment lexicon) with one to three strongly polar words of the VADER lexicon planted at random
positions, all of the same polarity: that polarity is the label. A classifier that solves the task
(:mod:`~captum_attn_shapley.demos.planted_model`) can only do so from the planted words, so a good
token attribution ranks their word-pieces first; :func:`token_recovery` scores that.

The polar words are split once, with the fixed
:data:`~captum_attn_shapley.demos.planted_words.WORD_SPLIT_SEED`, into disjoint train and test word
sets (:mod:`~captum_attn_shapley.demos.planted_words`): sentences of the ``"test"`` split only plant
words the classifier never saw in training, so it has to rely on what the pretrained encoder knows
about them.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from captum_attn_shapley.demos.datasets import LABEL_NAMES
from captum_attn_shapley.demos.planted_words import (
    FILLER_WORDS,
    TEST_WORD_FRACTION,
    WORD_SPLIT_SEED,
    lexicon_split,
    sentiment_lexicon,
)

#: Truncation length of the task's sentences in word-pieces (:func:`planted_token_mask`, the classifier).
MAX_LENGTH = 64

Span = Tuple[int, int]


@dataclass
class PlantedDataset:
    r"""Sentences of neutral filler words with planted sentiment words.

    Attributes:
        texts (list of str): The sentences (lower-case words joined by single spaces).
        labels (list of int): ``1`` if the planted words are positive, ``0`` if negative.
        planted_words (list of tuple of str): The planted words of each sentence, in order.
        planted_spans (list of tuple of (int, int)): Character span ``(start, end)`` of each
            planted word in its text (``text[start:end] == word``), aligned with
            ``planted_words``.
        split (str): Which lexicon words were planted: ``"train"``, ``"test"`` or ``"all"``.
        label_names (tuple of str): Name of each label index.
    """

    texts: List[str]
    labels: List[int]
    planted_words: List[Tuple[str, ...]]
    planted_spans: List[Tuple[Span, ...]]
    split: str = "all"
    label_names: Tuple[str, ...] = field(default=LABEL_NAMES)

    def __len__(self) -> int:
        return len(self.texts)


def _check_range(name: str, bounds: Tuple[int, int], low: int) -> None:
    if len(bounds) != 2 or not low <= bounds[0] <= bounds[1]:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max, got {bounds}")


def make_planted_dataset(
    n: int,
    seed: int = 0,
    split: str = "train",
    *,
    n_filler: Tuple[int, int] = (8, 20),
    n_planted: Tuple[int, int] = (1, 3),
    min_abs_valence: float = 2.0,
    test_fraction: float = TEST_WORD_FRACTION,
    word_split_seed: int = WORD_SPLIT_SEED,
) -> PlantedDataset:
    r"""Random sentences of neutral filler words with planted sentiment words.

    Each sentence draws ``n_filler`` filler words (with replacement) from
    :data:`FILLER_WORDS` and ``n_planted`` distinct words of its label's polarity from the
    ``split``'s word set of :func:`lexicon_split`, and inserts the planted words at random
    positions. Half of the sentences are positive (label ``1``), half negative (``0``), in
    random order; an odd ``n`` has one more negative. Everything is drawn from one
    ``numpy.random.default_rng(seed)``: the same arguments give the same dataset.

    Args:
        n (int): Number of sentences.
        seed (int, optional): Seed of the sentences. Default: ``0``
        split (str, optional): ``"train"`` or ``"test"`` plant the disjoint word sets of
            :func:`lexicon_split` (so test sentences only contain words unseen in training);
            ``"all"`` plants any word of :func:`sentiment_lexicon`. Default: ``"train"``
        n_filler (tuple of int, optional): Inclusive range of the number of filler words.
            Default: ``(8, 20)``
        n_planted (tuple of int, optional): Inclusive range of the number of planted words.
            Default: ``(1, 3)``
        min_abs_valence (float, optional): Minimum absolute VADER valence of a planted word.
            Default: ``2.0``
        test_fraction (float, optional): Passed to :func:`lexicon_split`. Default: ``0.3``
        word_split_seed (int, optional): Passed to :func:`lexicon_split`.
            Default: :data:`WORD_SPLIT_SEED`

    Returns:
        PlantedDataset: ``texts``, ``labels``, ``planted_words`` and ``planted_spans``.

    Raises:
        ValueError: If ``n`` is negative, ``split`` is unknown, or a range is invalid.

    Examples::

        >>> from captum_attn_shapley.demos.planted import make_planted_dataset
        >>> data = make_planted_dataset(4, seed=0)
        >>> text, (start, end) = data.texts[0], data.planted_spans[0][0]
        >>> text[start:end] == data.planted_words[0][0]
        True
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    _check_range("n_filler", n_filler, 0)
    _check_range("n_planted", n_planted, 1)
    if split in ("train", "test"):
        pools = lexicon_split(min_abs_valence, test_fraction, word_split_seed)[split]
    elif split == "all":
        lexicon = sentiment_lexicon(min_abs_valence)
        pools = {label: tuple(sorted(w for w, v in lexicon.items() if (v > 0) == bool(label))) for label in (0, 1)}
    else:
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    smallest = min(len(pool) for pool in pools.values())
    if n_planted[1] > smallest:
        raise ValueError(f"n_planted max {n_planted[1]} exceeds the {smallest} words of a polarity")

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) >= (n + 1) // 2).astype(int).tolist()
    texts: List[str] = []
    planted_words: List[Tuple[str, ...]] = []
    planted_spans: List[Tuple[Span, ...]] = []
    for label in labels:
        n_fill = int(rng.integers(n_filler[0], n_filler[1] + 1))
        n_plant = int(rng.integers(n_planted[0], n_planted[1] + 1))
        fillers = [FILLER_WORDS[i] for i in rng.integers(0, len(FILLER_WORDS), size=n_fill)]
        pool = pools[label]
        planted = [pool[i] for i in rng.choice(len(pool), size=n_plant, replace=False)]
        slots = set(rng.choice(n_fill + n_plant, size=n_plant, replace=False).tolist())
        words: List[str] = []
        spans: List[Span] = []
        offset = 0
        planted_iter, filler_iter = iter(planted), iter(fillers)
        for position in range(n_fill + n_plant):
            word = next(planted_iter) if position in slots else next(filler_iter)
            if position in slots:
                spans.append((offset, offset + len(word)))
            words.append(word)
            offset += len(word) + 1
        texts.append(" ".join(words))
        planted_words.append(tuple(planted))
        planted_spans.append(tuple(spans))
    return PlantedDataset(
        texts=texts, labels=labels, planted_words=planted_words, planted_spans=planted_spans, split=split
    )


def planted_token_mask(
    tokenizer: PreTrainedTokenizerBase, dataset: PlantedDataset, max_length: int = MAX_LENGTH
) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Tokenize a planted dataset and flag the word-pieces of the planted words.

    Args:
        tokenizer (PreTrainedTokenizerBase): A *fast* tokenizer (it must support
            ``return_offsets_mapping``).
        dataset (PlantedDataset): The sentences and their planted spans.
        max_length (int, optional): Truncation length in tokens (sentences are padded to the
            longest one). Default: ``64``

    Returns:
        tuple: ``(input_ids, attention_mask, planted_mask)``, each of shape
        ``(batch, seq_len)``; ``planted_mask`` (bool) is true exactly at the word-pieces whose
        characters lie in a planted word, never at special tokens or padding.

    Raises:
        ValueError: If the tokenizer is not fast or the dataset is empty.

    Examples::

        >>> from captum_attn_shapley.demos.planted import make_planted_dataset, planted_token_mask
        >>> data = make_planted_dataset(8, seed=0)
        >>> input_ids, attention_mask, planted = planted_token_mask(tokenizer, data)
        >>> bool((planted & ~attention_mask.bool()).any())
        False
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"planted_token_mask needs a fast tokenizer (for return_offsets_mapping), got "
            f"{type(tokenizer).__name__}; load it with AutoTokenizer.from_pretrained(..., use_fast=True)"
        )
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    enc = tokenizer(
        list(dataset.texts),
        padding=True,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    offsets = enc["offset_mapping"]  # (batch, seq, 2)
    real = enc["attention_mask"].bool() & ~enc["special_tokens_mask"].bool() & (offsets[..., 1] > offsets[..., 0])
    planted = torch.zeros_like(real)
    for row, spans in enumerate(dataset.planted_spans):
        for start, end in spans:
            planted[row] |= (offsets[row, :, 0] < end) & (offsets[row, :, 1] > start)
    return enc["input_ids"], enc["attention_mask"], planted & real


def token_recovery(attributions: Tensor, planted_mask: Tensor, player_mask: Tensor) -> Dict[str, Tensor]:
    r"""How well per-token attributions recover the planted tokens, per example.

    Only the players (``player_mask``: the real, non-special tokens) are ranked; planted flags
    outside the players are ignored. With ``k`` the number of planted players of an example,
    the top ``k`` players by score (ties broken by position) give the R-precision.

    Args:
        attributions (Tensor): Scores of shape ``(batch, seq_len)``, or
            ``(batch, seq_len, hidden)`` (summed over the last axis).
        planted_mask (Tensor): Bool ``(batch, seq_len)``, true at the planted word-pieces
            (e.g. from :func:`planted_token_mask`).
        player_mask (Tensor): Bool ``(batch, seq_len)``, true at the tokens that are ranked.

    Returns:
        dict: Per-example tensors of shape ``(batch,)``:
        ``auprc`` (float64; average precision of the scores against the planted flags,
        :func:`sklearn.metrics.average_precision_score`), ``precision_at_k`` and
        ``recall_at_k`` (float64; equal, since ``k`` is the planted count),
        ``precision_at_1`` (float64; 1 if the top-scored player is planted, else 0),
        ``n_planted`` (long; ``k``) and ``n_players`` (long).

    Raises:
        ValueError: If the shapes disagree, scores are not finite, or an example has no
            players or no planted player.

    Examples::

        >>> import torch
        >>> from captum_attn_shapley.demos.planted import token_recovery
        >>> scores = torch.tensor([[0.0, 0.9, 0.1, 0.5, 0.0]])
        >>> planted = torch.tensor([[False, True, False, False, False]])
        >>> players = torch.tensor([[False, True, True, True, False]])
        >>> token_recovery(scores, planted, players)["auprc"]
        tensor([1.], dtype=torch.float64)
    """
    if attributions.dim() == 3:
        attributions = attributions.sum(-1)
    if attributions.dim() != 2:
        raise ValueError(
            "attributions must have shape (batch, seq_len) or (batch, seq_len, hidden), got "
            f"{tuple(attributions.shape)}"
        )
    for name, mask in (("planted_mask", planted_mask), ("player_mask", player_mask)):
        if tuple(mask.shape) != tuple(attributions.shape):
            raise ValueError(
                f"{name} must have the attributions' shape (batch, seq_len) = "
                f"{tuple(attributions.shape)}, got {tuple(mask.shape)}"
            )
    scores = attributions.detach().to("cpu", torch.float64)
    players = player_mask.detach().to("cpu").bool()
    planted = planted_mask.detach().to("cpu").bool() & players
    if not torch.isfinite(scores[players]).all():
        raise ValueError("attributions of the players must be finite")
    n_players = players.sum(-1)
    n_planted = planted.sum(-1)
    if bool((n_players == 0).any()):
        raise ValueError(f"examples {torch.nonzero(n_players == 0).flatten().tolist()} have no players")
    if bool((n_planted == 0).any()):
        raise ValueError(
            f"examples {torch.nonzero(n_planted == 0).flatten().tolist()} have no planted player "
            "(planted tokens truncated away, or outside player_mask)"
        )
    results: Dict[str, List[float]] = {"auprc": [], "precision_at_k": [], "precision_at_1": []}
    for row in range(scores.shape[0]):
        row_scores = scores[row][players[row]]
        flags = planted[row][players[row]]
        k = int(n_planted[row])
        order = torch.sort(row_scores, descending=True, stable=True).indices
        results["auprc"].append(float(average_precision_score(flags.numpy(), row_scores.numpy())))
        results["precision_at_k"].append(float(flags[order[:k]].sum()) / k)
        results["precision_at_1"].append(float(flags[order[0]]))
    out = {name: torch.tensor(values, dtype=torch.float64) for name, values in results.items()}
    out["recall_at_k"] = out["precision_at_k"].clone()
    out["n_planted"] = n_planted.long()
    out["n_players"] = n_players.long()
    return out
