"""The causal LM of the key-value recall task (:mod:`captum_attn_shapley.demos.recall`), trained on first use.

:func:`load_recall_lm` trains a small GPT-2 (:func:`recall_lm_config`: 2 layers, 4 heads, 64 dimensions,
transformers' ``sdpa`` attention) from scratch on training prompts of the recall task, with the loss on the
answer and the ``<eos>`` after it, measures its accuracy on held-out prompts and caches it with its
word-level tokenizer under :func:`~captum_attn_shapley.demos.model_cache.cache_dir` (keyed by the code and
the package versions; :data:`STEPS` steps, about 1 minute on 2 idle CPU cores); later calls only load it.
Since the answer of each prompt is decided by two known prompt tokens (the queried pair ``key=value`` in the
list and the query ``key=``), attributions of its generation can be checked against ground truth
(``benchmarks/bench_generation.py``).

Why one token per pair: with the key and the value in separate tokens (``k = 7``) the task needs two
chained attention hops (the value must first learn its key, then the query can find it), and small models
trained from scratch sit on a long plateau before both hops form; in trials here (2-layer GPT-2 and Llama,
2,000-3,000 steps) they stayed at chance. With pair words one hop suffices: the loss still sits at chance
for about 1,000 steps (without gradient clipping, which lengthened that plateau past the budget), then the
hop forms within the budget.
"""

import logging
import pathlib
import sys
import time
from typing import Any, Dict, List, Optional, Tuple, Union, cast

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from captum_attn_shapley.demos import recall
from captum_attn_shapley.demos.model_cache import build_cached, loaded_info, model_path, write_metrics
from captum_attn_shapley.demos.recall import RecallPrompts, recall_prompts, recall_tokenizer
from captum_attn_shapley.demos.training import optimisation_step, reproducible_training

logger = logging.getLogger(__name__)

#: Name of the cached recall LM inside ``model_cache.cache_dir()`` (a change of its code or of the package
#: versions trains a new one: see :func:`~captum_attn_shapley.demos.model_cache.training_key`).
RECALL_MODEL_NAME = "recall-gpt2-v1"
#: Architecture of :func:`recall_lm_config`.
NUM_LAYERS = 2
NUM_HEADS = 4
HIDDEN_SIZE = 64
MAX_POSITIONS = 256
#: Training recipe of :func:`load_recall_lm`.
TRAIN_SIZE = 60000
TEST_SIZE = 1000
TRAIN_SEED = 0
TEST_SEED = 1
STEPS = 2000
BATCH_SIZE = 128
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.01
WARMUP_FRACTION = 0.02
MAX_GRAD_NORM: Optional[float] = None

Loaded = Tuple[GPT2LMHeadModel, PreTrainedTokenizerBase, Dict[str, Any]]


def recall_lm_config(vocab_size: int) -> GPT2Config:
    r"""The recall LM's GPT-2 configuration: :data:`NUM_LAYERS` layers, :data:`NUM_HEADS` heads,
    :data:`HIDDEN_SIZE` dimensions, :data:`MAX_POSITIONS` positions, no dropout, ``sdpa`` attention."""
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=MAX_POSITIONS,
        n_embd=HIDDEN_SIZE,
        n_layer=NUM_LAYERS,
        n_head=NUM_HEADS,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=2,
        eos_token_id=2,
        pad_token_id=0,
    )
    config._attn_implementation = "sdpa"
    config.loss_type = "ForCausalLM"
    return config


def answer_batch(tokenizer: PreTrainedTokenizerBase, data: RecallPrompts) -> Tuple[Tensor, Tensor]:
    r"""Token ids of ``prompt + target + <eos>`` (right-padded) and the labels of a causal-LM loss on the answer.

    Args:
        tokenizer (PreTrainedTokenizerBase): The recall tokenizer.
        data (RecallPrompts): The prompts and their targets.

    Returns:
        tuple: ``(input_ids, labels)``, both ``(len(data), length)``: ``labels`` is ``-100`` everywhere but
        at the answer token and the ``<eos>`` after it (what ``GPT2LMHeadModel(labels=...)`` learns to predict).
    """
    texts = [p + t + " " + recall.EOS for p, t in zip(data.prompts, data.targets)]
    ids = cast(Tensor, tokenizer(texts, padding=True, return_tensors="pt")["input_ids"])
    labels = torch.full_like(ids, -100)
    for row, prompt_length in enumerate(len(p.split()) for p in data.prompts):
        labels[row, prompt_length : prompt_length + 2] = ids[row, prompt_length : prompt_length + 2]
    return ids, labels


@torch.no_grad()
def recall_accuracy(
    model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerBase, data: RecallPrompts, batch_size: int = 256
) -> float:
    r"""Fraction of prompts whose greedy next token (after the prompt) is the answer's value token.

    Args:
        model (GPT2LMHeadModel): A recall LM; it is put in eval mode.
        tokenizer (PreTrainedTokenizerBase): Its tokenizer.
        data (RecallPrompts): Prompts and targets.
        batch_size (int, optional): Prompts per forward pass. Default: ``256``

    Returns:
        float: The accuracy.
    """
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        chunk = RecallPrompts(*(getattr(data, f)[start : start + batch_size] for f in _FIELDS))
        ids, labels = answer_batch(tokenizer, chunk)
        logits = model(input_ids=ids, attention_mask=(ids != tokenizer.pad_token_id).long()).logits
        rows = torch.arange(len(chunk))
        answer_at = torch.tensor([len(p.split()) for p in chunk.prompts])
        correct += int((logits[rows, answer_at - 1].argmax(-1) == ids[rows, answer_at]).sum())
    return correct / max(len(data), 1)


_FIELDS = ("prompts", "targets", "pairs", "query_index", "query_positions")


def train_recall_lm(
    data: RecallPrompts,
    *,
    seed: int = TRAIN_SEED,
    steps: int = STEPS,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    weight_decay: float = WEIGHT_DECAY,
    warmup_fraction: float = WARMUP_FRACTION,
    max_grad_norm: Optional[float] = MAX_GRAD_NORM,
    progress: bool = True,
    desc: str = "Training the recall LM",
) -> Tuple[GPT2LMHeadModel, PreTrainedTokenizerBase]:
    r"""Train a recall GPT-2 (:func:`recall_lm_config`) from scratch on recall prompts.

    It runs inside :func:`~captum_attn_shapley.demos.training.reproducible_training` (fixed thread count,
    deterministic algorithms, ``torch.manual_seed(seed)``) and draws its batches from a generator seeded
    with ``seed``: the same inputs give bit-identical weights on the same kind of machine. Each step takes
    ``batch_size`` random prompts of ``data`` and minimises the cross-entropy of the answer token and the
    ``<eos>`` after it (AdamW, linear warm-up over ``warmup_fraction`` of the steps, cosine decay to zero,
    gradient norm clipped to ``max_grad_norm``).

    Args:
        data (RecallPrompts): Training prompts (:func:`~captum_attn_shapley.demos.recall.recall_prompts`).
        seed (int, optional): Torch seed (initialisation, batches). Default: ``0``
        steps (int, optional): Optimisation steps. Default: :data:`STEPS`
        batch_size (int, optional): Prompts per step. Default: :data:`BATCH_SIZE`
        learning_rate (float, optional): Peak AdamW learning rate. Default: :data:`LEARNING_RATE`
        weight_decay (float, optional): AdamW weight decay. Default: :data:`WEIGHT_DECAY`
        warmup_fraction (float, optional): Fraction of the steps spent warming up.
            Default: :data:`WARMUP_FRACTION`
        max_grad_norm (float, optional): Clip the gradient norm of each step to this; ``None`` does not
            clip. Default: :data:`MAX_GRAD_NORM`
        progress (bool, optional): Show a tqdm progress bar. Default: ``True``
        desc (str, optional): Label of the progress bar. Default: ``"Training the recall LM"``

    Returns:
        tuple: ``(model, tokenizer)``: the trained LM in eval mode and
        :func:`~captum_attn_shapley.demos.recall.recall_tokenizer`.

    Raises:
        ValueError: If ``data`` is empty or ``steps`` / ``batch_size`` is not positive.

    Examples::

        >>> from captum_attn_shapley.demos.recall import recall_prompts
        >>> from captum_attn_shapley.demos.recall_lm import train_recall_lm
        >>> model, tokenizer = train_recall_lm(recall_prompts(256, split="train"), steps=10, progress=False)
    """
    if len(data) == 0:
        raise ValueError("the training data is empty")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    tokenizer = recall_tokenizer()
    ids, labels = answer_batch(tokenizer, data)
    lengths = (ids != tokenizer.pad_token_id).sum(1)
    with reproducible_training(seed):
        generator = torch.Generator().manual_seed(seed)
        model = GPT2LMHeadModel(recall_lm_config(len(tokenizer)))
        warmup = max(1, int(warmup_fraction * steps))
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: (
                (s + 1) / warmup
                if s < warmup
                else 0.5 * (1 + float(np.cos(np.pi * (s - warmup) / max(steps - warmup, 1))))
            ),
        )
        model.train()
        bar = tqdm(total=steps, desc=desc, disable=not progress)
        for _ in range(steps):
            index = torch.randint(len(data), (batch_size,), generator=generator)
            width = int(lengths[index].max())
            batch = ids[index, :width]
            mask = (batch != tokenizer.pad_token_id).long()
            loss = model(input_ids=batch, attention_mask=mask, labels=labels[index, :width]).loss
            optimisation_step(model, loss, optimizer, scheduler, bar, max_grad_norm)
        bar.close()
    return cast(GPT2LMHeadModel, model.eval()), tokenizer


def _train(out_dir: pathlib.Path, progress: bool) -> Dict[str, Any]:
    """Train the recall LM; save model, tokenizer and metrics in ``out_dir``."""
    start = time.perf_counter()
    train = recall_prompts(TRAIN_SIZE, seed=TRAIN_SEED, split="train")
    model, tokenizer = train_recall_lm(train, progress=progress, desc="Training the recall LM (first use only)")
    train_seconds = time.perf_counter() - start
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    test = recall_prompts(TEST_SIZE, seed=TEST_SEED, split="test")
    metrics = {
        "accuracy": recall_accuracy(model, tokenizer, test),
        "train_accuracy": recall_accuracy(
            model, tokenizer, recall_prompts(TEST_SIZE, seed=TEST_SEED, split="train")
        ),
        "n_train": len(train),
        "n_test": len(test),
        "test_prompts_unseen": True,
        "seconds": round(time.perf_counter() - start, 1),
        "train_seconds": round(train_seconds, 1),
        "seed": TRAIN_SEED,
        "test_seed": TEST_SEED,
        "num_pairs": list(recall.NUM_PAIRS),
        "num_layers": NUM_LAYERS,
        "num_heads": NUM_HEADS,
        "hidden_size": HIDDEN_SIZE,
        "steps": STEPS,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "weight_decay": WEIGHT_DECAY,
        "max_grad_norm": MAX_GRAD_NORM,
    }
    write_metrics(out_dir, metrics)
    logger.info("Recall LM trained: held-out accuracy %.3f in %.0f s", metrics["accuracy"], metrics["seconds"])
    return metrics


def training_modules() -> List[Any]:
    r"""The modules that define the recall LM's data and training (their source keys its cache)."""
    return [recall, sys.modules[__name__]]


def load_recall_model(path: Optional[Union[str, pathlib.Path]] = None) -> Loaded:
    r"""Load a recall LM saved with ``save_pretrained`` and its tokenizer.

    Args:
        path (str or pathlib.Path, optional): Its directory; ``None`` is the cached default
            (``model_cache.model_path("recall-gpt2-v1", training_modules())``), which must exist (see
            :func:`load_recall_lm`). Default: ``None``

    Returns:
        tuple: ``(model, tokenizer, info)`` as for :func:`load_recall_lm`.

    Examples::

        >>> from captum_attn_shapley.demos.recall_lm import load_recall_model
        >>> model, tokenizer, info = load_recall_model("path/to/saved/recall-lm")
    """
    path = pathlib.Path(path) if path is not None else model_path(RECALL_MODEL_NAME, training_modules())
    model = GPT2LMHeadModel.from_pretrained(path, attn_implementation="sdpa")
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, loaded_info(path, model.config.id2label or {})


def load_recall_lm(retrain: bool = False, progress: bool = True) -> Loaded:
    r"""The embedded causal LM of the key-value recall task, trained on first use.

    If the cache (``model_cache.model_path("recall-gpt2-v1", training_modules())``, keyed by this code and
    the installed versions) holds a complete model with matching weights, it is loaded. Otherwise a GPT-2
    (:func:`recall_lm_config`) is trained from scratch for :data:`STEPS` steps on :data:`TRAIN_SIZE`
    ``"train"`` prompts of :func:`~captum_attn_shapley.demos.recall.recall_prompts` (about 1 minute on
    2 idle CPU cores), evaluated on :data:`TEST_SIZE` held-out ``"test"`` prompts (never seen in training) and
    saved there atomically with its tokenizer and ``metrics.json``.

    Args:
        retrain (bool, optional): Train again and replace the cached model. Default: ``False``
        progress (bool, optional): Show a progress bar while training. Default: ``True``

    Returns:
        tuple: ``(model, tokenizer, info)``: the ``GPT2LMHeadModel`` in eval mode (``sdpa`` attention), its
        word-level tokenizer (:func:`~captum_attn_shapley.demos.recall.recall_tokenizer`) and a dict with the
        training metrics (``accuracy`` on the held-out prompts, ``train_accuracy``, ``n_train``,
        ``seconds``, ...) and ``name_or_path`` (the cached directory).

    Examples::

        >>> from captum.attr import TextTokenInput
        >>> from captum_attn_shapley.demos.recall import recall_prompts
        >>> from captum_attn_shapley.demos.recall_lm import load_recall_lm
        >>> model, tokenizer, info = load_recall_lm()
        >>> info["accuracy"] > 0.95
        True
        >>> data = recall_prompts(1, seed=0)
        >>> ids = tokenizer(data.prompts[0], return_tensors="pt").input_ids
        >>> tokenizer.decode(model.generate(ids, max_new_tokens=1)[0, -1:]) == data.targets[0].strip()
        True
    """
    final = build_cached(RECALL_MODEL_NAME, lambda out: _train(out, progress), training_modules(), retrain)
    return load_recall_model(final)
