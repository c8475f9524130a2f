"""The words of the planted-word task: neutral filler words and strongly polar VADER words.

:data:`FILLER_WORDS` are neutral English words, none of which is an entry of the VADER sentiment
lexicon; :func:`sentiment_lexicon` gives the strongly polar single words of that lexicon and
:func:`lexicon_split` splits them once, with the fixed :data:`WORD_SPLIT_SEED`, into disjoint train
and test word sets (:mod:`~captum_attn_shapley.demos.planted` builds the sentences from them).

The lexicon ships in the ``vaderSentiment`` wheel (PyPI ``vadersentiment``), installed with
``--no-deps``; its ``vader_lexicon.txt`` is read as a data file and the module is never imported.
"""

import functools
from typing import Dict, Tuple

import numpy as np

from captum_attn_shapley.demos.datasets import LABEL_NAMES, wheel_data_file

#: Seed of the fixed train / test split of the lexicon words (independent of any dataset seed).
WORD_SPLIT_SEED = 20240917
#: Fraction of the lexicon words of each polarity reserved for the test split.
TEST_WORD_FRACTION = 0.3

_LEXICON_FILE = "vader_lexicon.txt"
_INSTALL_HINT = "pip install --no-deps vadersentiment==3.3.2"

#: Neutral English words (function words, everyday nouns, plain verbs and adverbs of time and
#: place), none of which is an entry of the VADER lexicon.
FILLER_WORDS: Tuple[str, ...] = (
    # function words
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "on",
    "at",
    "by",
    "from",
    "with",
    "into",
    "over",
    "under",
    "after",
    "before",
    "between",
    "through",
    "during",
    "about",
    "and",
    "or",
    "then",
    "this",
    "that",
    "these",
    "those",
    "it",
    "they",
    "we",
    "he",
    "she",
    "its",
    "their",
    "our",
    "his",
    "her",
    "some",
    "many",
    "several",
    "each",
    "every",
    "other",
    "which",
    "when",
    "where",
    "there",
    "here",
    "while",
    "also",
    # nouns
    "table",
    "window",
    "door",
    "chair",
    "house",
    "street",
    "car",
    "train",
    "bus",
    "station",
    "river",
    "road",
    "bridge",
    "garden",
    "kitchen",
    "office",
    "city",
    "village",
    "morning",
    "evening",
    "afternoon",
    "week",
    "month",
    "year",
    "hour",
    "minute",
    "book",
    "paper",
    "letter",
    "pencil",
    "box",
    "bottle",
    "cup",
    "plate",
    "shelf",
    "wall",
    "floor",
    "roof",
    "stairs",
    "corner",
    "market",
    "shop",
    "school",
    "student",
    "farmer",
    "driver",
    "neighbor",
    "brother",
    "sister",
    "uncle",
    "cousin",
    "bag",
    "coat",
    "shirt",
    "hat",
    "shoe",
    "clock",
    "phone",
    "computer",
    "screen",
    "key",
    "map",
    "ticket",
    "menu",
    "bread",
    "rice",
    "water",
    "tea",
    "coffee",
    "milk",
    "salt",
    "tree",
    "grass",
    "stone",
    "sand",
    "hill",
    "field",
    "lake",
    "island",
    "cloud",
    "wind",
    "snow",
    "page",
    "chapter",
    "report",
    "meeting",
    "list",
    "name",
    "address",
    "platform",
    "airport",
    "engine",
    "wheel",
    "truck",
    "boat",
    "harbor",
    "tower",
    "building",
    "apartment",
    "hallway",
    "garage",
    "fence",
    "gate",
    "path",
    "lamp",
    "candle",
    "blanket",
    "pillow",
    "towel",
    "sofa",
    "desk",
    "drawer",
    "folder",
    "envelope",
    "parcel",
    "basket",
    "bucket",
    "ladder",
    "hammer",
    "jacket",
    "sweater",
    "pocket",
    "button",
    "notebook",
    "calendar",
    "bicycle",
    "tram",
    "subway",
    "corridor",
    "cabinet",
    "oven",
    "sink",
    "mirror",
    "curtain",
    "carpet",
    # verbs
    "walked",
    "opened",
    "closed",
    "carried",
    "moved",
    "turned",
    "placed",
    "took",
    "brought",
    "sent",
    "wrote",
    "read",
    "said",
    "asked",
    "looked",
    "saw",
    "went",
    "came",
    "arrived",
    "sat",
    "stood",
    "waited",
    "counted",
    "measured",
    "painted",
    "cooked",
    "washed",
    "parked",
    "drove",
    "called",
    "visited",
    "sold",
    "built",
    "folded",
    "poured",
    "printed",
    "typed",
    "listed",
    "stacked",
    "sorted",
    "checked",
    "started",
    # adverbs
    "yesterday",
    "today",
    "tomorrow",
    "later",
    "soon",
    "again",
    "already",
    "outside",
    "inside",
    "upstairs",
    "downstairs",
    "nearby",
    "often",
    "sometimes",
    "usually",
    "once",
    "twice",
    "afterwards",
    "meanwhile",
    "early",
)


def lexicon_path() -> str:
    r"""Path of ``vader_lexicon.txt`` inside the installed ``vaderSentiment`` wheel.

    The package is located with :func:`importlib.util.find_spec`, without importing it.

    Returns:
        str: Absolute path of the lexicon file.

    Raises:
        ImportError: If the ``vadersentiment`` wheel is not installed.
        FileNotFoundError: If the wheel is installed but the lexicon is missing.

    Examples::

        >>> from captum_attn_shapley.demos.planted_words import lexicon_path
        >>> lexicon_path().endswith("vader_lexicon.txt")
        True
    """
    return wheel_data_file("vaderSentiment", _LEXICON_FILE, "The VADER sentiment lexicon", _INSTALL_HINT)


@functools.lru_cache(maxsize=1)
def vader_entries() -> Dict[str, float]:
    r"""Every entry of the VADER lexicon (words, emoticons, acronyms) with its mean valence.

    Returns:
        dict: Entry to mean valence (from -4, most negative, to 4, most positive). The dict is
        cached: do not modify it.

    Examples::

        >>> from captum_attn_shapley.demos.planted_words import vader_entries
        >>> len(vader_entries()) > 7000
        True
    """
    entries: Dict[str, float] = {}
    with open(lexicon_path(), encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) >= 2 and fields[0]:
                entries[fields[0]] = float(fields[1])
    return entries


def sentiment_lexicon(min_abs_valence: float = 2.0) -> Dict[str, float]:
    r"""Strongly polar single words of the VADER lexicon.

    Args:
        min_abs_valence (float, optional): Keep words whose absolute mean valence (on VADER's
            -4..4 scale) is at least this. Default: ``2.0``

    Returns:
        dict: Word to mean valence, for the entries made only of lower-case ASCII letters
        (emoticons and entries with digits, punctuation or capitals are dropped).

    Examples::

        >>> from captum_attn_shapley.demos.planted_words import sentiment_lexicon
        >>> lexicon = sentiment_lexicon()
        >>> lexicon["adorable"] > 0 > lexicon["abhorrent"]
        True
    """
    return {
        word: valence
        for word, valence in vader_entries().items()
        if word.isascii() and word.isalpha() and word.islower() and abs(valence) >= min_abs_valence
    }


def lexicon_split(
    min_abs_valence: float = 2.0, test_fraction: float = TEST_WORD_FRACTION, seed: int = WORD_SPLIT_SEED
) -> Dict[str, Dict[int, Tuple[str, ...]]]:
    r"""Disjoint train / test sets of planted words, per polarity.

    Args:
        min_abs_valence (float, optional): Passed to :func:`sentiment_lexicon`.
            Default: ``2.0``
        test_fraction (float, optional): Fraction of each polarity's words held out for the
            test split. Default: ``0.3``
        seed (int, optional): Seed of the split. Default: :data:`WORD_SPLIT_SEED`

    Returns:
        dict: ``{"train": {0: negative words, 1: positive words}, "test": {...}}``, each a
        sorted tuple; train and test words are disjoint.

    Raises:
        ValueError: If ``test_fraction`` is not strictly between 0 and 1, or a set is empty.

    Examples::

        >>> from captum_attn_shapley.demos.planted_words import lexicon_split
        >>> words = lexicon_split()
        >>> set(words["train"][1]) & set(words["test"][1])
        set()
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    lexicon = sentiment_lexicon(min_abs_valence)
    rng = np.random.default_rng(seed)
    parts: Dict[str, Dict[int, Tuple[str, ...]]] = {"train": {}, "test": {}}
    for label in (0, 1):
        words = sorted(w for w, v in lexicon.items() if (v > 0) == bool(label))
        shuffled = [words[i] for i in rng.permutation(len(words))]
        n_test = int(round(test_fraction * len(words)))
        parts["test"][label] = tuple(sorted(shuffled[:n_test]))
        parts["train"][label] = tuple(sorted(shuffled[n_test:]))
        if not parts["test"][label] or not parts["train"][label]:
            raise ValueError(
                f"min_abs_valence={min_abs_valence} with test_fraction={test_fraction} leaves "
                f"no {LABEL_NAMES[label]} words for one split ({len(words)} in all)"
            )
    return parts
