"""The classifier of the planted-word task (:mod:`captum_attn_shapley.demos.planted`), fine-tuned on first use.

:func:`load_planted_classifier` fine-tunes the pretrained all-MiniLM-L6-v2 on planted training sentences
with the default classifier's training loop (:func:`~captum_attn_shapley.demos.default_model.fine_tune`),
evaluates it on test sentences whose planted words were never seen in training and caches it with
:func:`~captum_attn_shapley.demos.model_cache.build_cached`.
"""

import pathlib
import sys
import time
from typing import Any, Dict, List

from captum_attn_shapley.demos import default_model, planted, planted_words
from captum_attn_shapley.demos.datasets import LABEL_NAMES
from captum_attn_shapley.demos.model_cache import build_cached, write_metrics
from captum_attn_shapley.demos.planted import MAX_LENGTH, make_planted_dataset
from captum_attn_shapley.demos.planted_words import TEST_WORD_FRACTION, WORD_SPLIT_SEED

#: Name of the cached planted classifier inside ``model_cache.cache_dir()`` (a change of its code or of
#: the package versions trains a new one: see :func:`~captum_attn_shapley.demos.model_cache.training_key`).
PLANTED_MODEL_NAME = "planted-minilm-v1"
#: Training recipe of :func:`load_planted_classifier`.
TRAIN_SIZE = 3072
TEST_SIZE = 1000
TRAIN_SEED = 0
TEST_SEED = 1
LEARNING_RATE = 2e-4
BATCH_SIZE = 32


def _train(out_dir: pathlib.Path, progress: bool) -> Dict[str, Any]:
    """Fine-tune the MiniLM on planted training sentences; save model, tokenizer and metrics."""
    base = default_model._base_model_path()
    start = time.perf_counter()
    train = make_planted_dataset(TRAIN_SIZE, seed=TRAIN_SEED, split="train")
    model, tokenizer = default_model.fine_tune(
        base,
        train.texts,
        train.labels,
        LABEL_NAMES,
        out_dir,
        seed=TRAIN_SEED,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        max_length=MAX_LENGTH,
        progress=progress,
        desc="Fine-tuning the planted-word classifier (first use only)",
    )
    train_seconds = time.perf_counter() - start
    test = make_planted_dataset(TEST_SIZE, seed=TEST_SEED, split="test")
    accuracy = default_model.evaluate_accuracy(model, tokenizer, test.texts, test.labels, max_length=MAX_LENGTH)
    metrics = {
        "accuracy": accuracy,
        "n_train": len(train),
        "n_test": len(test),
        "test_words_unseen": True,
        "seconds": round(time.perf_counter() - start, 1),
        "train_seconds": round(train_seconds, 1),
        "seed": TRAIN_SEED,
        "test_seed": TEST_SEED,
        "word_split_seed": WORD_SPLIT_SEED,
        "test_word_fraction": TEST_WORD_FRACTION,
        "base_model": default_model.BASE_MODEL,
        "epochs": 1,
        "learning_rate": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "max_length": MAX_LENGTH,
    }
    write_metrics(out_dir, metrics)
    return metrics


def training_modules() -> List[Any]:
    r"""The modules that define the planted-word classifier's data and training (their source keys its cache)."""
    return [*default_model.training_modules(), planted, planted_words, sys.modules[__name__]]


def load_planted_classifier(retrain: bool = False, progress: bool = True) -> default_model.Loaded:
    r"""A MiniLM classifier of the planted-word task, fine-tuned on first use.

    If the cache (``model_cache.model_path("planted-minilm-v1", training_modules())``, keyed by
    this code and the installed versions) holds a complete model with matching weights, it is
    loaded. Otherwise all-MiniLM-L6-v2 is fine-tuned for one epoch on :data:`TRAIN_SIZE`
    planted ``"train"`` sentences (80 s on 2 CPU cores, evaluation included), evaluated on
    :data:`TEST_SIZE` ``"test"`` sentences, whose planted words were never seen in training,
    and saved there atomically (written to a temporary directory renamed into place) with its
    ``metrics.json``.

    Args:
        retrain (bool, optional): Train again and replace the cached model.
            Default: ``False``
        progress (bool, optional): Show a progress bar while training. Default: ``True``

    Returns:
        tuple: ``(model, tokenizer, info)``: the classifier in eval mode (eager attention,
        ``id2label`` ``{0: "negative", 1: "positive"}``), its fast tokenizer and a dict with
        the training metrics (``accuracy`` on the held-out test sentences, ``n_train``,
        ``n_test``, ``seconds``, ``train_seconds``, ``seed``, ...) and ``name_or_path``.

    Examples::

        >>> from captum_attn_shapley.demos.planted_model import load_planted_classifier
        >>> model, tokenizer, info = load_planted_classifier()
        >>> info["accuracy"] >= 0.97
        True
    """
    final = build_cached(PLANTED_MODEL_NAME, lambda out: _train(out, progress), training_modules(), retrain)
    return default_model.load_classifier(str(final))
