"""A generation task whose answer is decided by known prompt tokens: key-value recall.

A prompt lists ``n`` pairs ``key=value`` (distinct lower-case letters as keys, distinct digits as values),
then a semicolon and a query ``key=`` naming one of the listed keys; the answer is that key's value::

    a=3 k=7 m=1 ; k=   ->   " 7"

The word-level tokenizer of :func:`recall_tokenizer` splits on whitespace, so each pair ``key=value`` is
ONE token (one of 260 pair words), followed by ``;`` and the query ``key=`` (one of 26 query words; no
special token is added to a prompt). Token positions are therefore known by construction: pair ``i`` is at
position ``i``, the semicolon at ``n`` and the query at ``n + 1``, the last position, which predicts the
answer. The **decisive tokens** of a prompt are the two tokens that decide its answer: the queried pair
``key=value`` in the list (:attr:`RecallPrompts.pair_positions`: it holds both the queried key and the
value the answer copies) and the query ``key=`` (:attr:`RecallPrompts.query_positions`). Changing either
changes (or removes) the answer; changing any other pair or the semicolon does not (keys and values are
distinct within a prompt, so no other token names the key or holds the answer's value).

Prompts are split into disjoint ``"train"`` and ``"test"`` sets by a checksum of their text
(:func:`prompt_split`), so held-out prompts are never seen in training.
"""

import zlib
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

#: The keys (one letter each, distinct within a prompt) and the values (one digit each, distinct within a prompt).
KEYS = tuple("abcdefghijklmnopqrstuvwxyz")
VALUES = tuple("0123456789")
#: Special tokens of the tokenizer: padding (id 0, Captum's default baseline id), unknown, end of answer.
PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
#: The punctuation word of a prompt: the semicolon before the query.
PUNCTUATION = (";",)
#: Inclusive range of the number of pairs of a prompt.
NUM_PAIRS = (3, 10)
#: One prompt in ``TEST_MODULUS`` (by :func:`prompt_split`) is held out for testing.
TEST_MODULUS = 10


def pair_word(key: str, value: str) -> str:
    r"""The word (and token) of a listed pair: ``pair_word("k", "7") == "k=7"``."""
    return f"{key}={value}"


def query_word(key: str) -> str:
    r"""The word (and token) of a query, the prompt's last: ``query_word("k") == "k="``."""
    return f"{key}="


def vocabulary() -> List[str]:
    r"""The tokenizer's words in id order: ``<pad>``, ``<unk>``, ``<eos>``, punctuation, values, queries, pairs."""
    pairs = [pair_word(k, v) for k in KEYS for v in VALUES]
    return [PAD, UNK, EOS, *PUNCTUATION, *VALUES, *(query_word(k) for k in KEYS), *pairs]


def recall_tokenizer() -> PreTrainedTokenizerFast:
    r"""The word-level tokenizer of the recall task, built offline.

    Words are split on whitespace and looked up in :func:`vocabulary` (``<unk>`` for anything else); no
    special token is added to an encoded text, and decoding joins the words with single spaces, so
    ``decode(encode(prompt)) == prompt`` for every prompt of :func:`recall_prompts`. A target such as
    ``" 7"`` encodes to the single value token. It is saved with the model (``save_pretrained``), so
    ``AutoTokenizer.from_pretrained(dir)`` loads it back.

    Returns:
        PreTrainedTokenizerFast: pad token ``<pad>`` (id 0), unknown token ``<unk>``, eos token
        ``<eos>``.

    Examples::

        >>> from captum_attn_shapley.demos.recall import recall_tokenizer
        >>> tokenizer = recall_tokenizer()
        >>> tokenizer.convert_ids_to_tokens(tokenizer.encode("a=3 k=7 ; k="))
        ['a=3', 'k=7', ';', 'k=']
    """
    words = vocabulary()
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=EOS,
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )


def prompt_split(prompt: str) -> str:
    r"""``"test"`` for one prompt in :data:`TEST_MODULUS` (by the CRC-32 of its text), else ``"train"``."""
    return "test" if zlib.crc32(prompt.encode()) % TEST_MODULUS == 0 else "train"


@dataclass
class RecallPrompts:
    r"""Key-value recall prompts with their answers and decisive token positions.

    Attributes:
        prompts (list of str): The prompts (words joined by single spaces, ending with ``"; key="``).
        targets (list of str): The answers as target texts, a space then the value (``" 7"``).
        pairs (list of tuple of (str, str)): The listed ``(key, value)`` pairs of each prompt.
        query_index (list of int): Index in ``pairs`` of the queried pair, which is also the token
            position of its pair word (the first decisive token).
        query_positions (list of int): Token position of the query ``key=`` after the semicolon (the
            second decisive token, the prompt's last).
    """

    prompts: List[str]
    targets: List[str]
    pairs: List[Tuple[Tuple[str, str], ...]]
    query_index: List[int]
    query_positions: List[int]

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def pair_positions(self) -> List[int]:
        r"""Token position of the queried pair word ``key=value`` of each prompt."""
        return list(self.query_index)

    @property
    def decisive_positions(self) -> List[Tuple[int, int]]:
        r"""``(pair, query)`` token positions of each prompt (increasing)."""
        return list(zip(self.pair_positions, self.query_positions))

    def decisive_labels(self, index: int) -> NDArray[np.int64]:
        r"""0/1 labels of prompt ``index``'s tokens: 1 at its two decisive positions."""
        labels = np.zeros(len(self.pairs[index]) + 2, dtype=np.int64)
        labels[list(self.decisive_positions[index])] = 1
        return labels


def format_prompt(pairs: Sequence[Tuple[str, str]], query: str) -> str:
    r"""The prompt listing ``pairs`` and asking for ``query``'s value: ``"a=3 k=7 ; k="``."""
    return " ".join(pair_word(key, value) for key, value in pairs) + " ; " + query_word(query)


def _draw(rng: np.random.Generator, num_pairs: Tuple[int, int]) -> Tuple[Tuple[Tuple[str, str], ...], int]:
    n = int(rng.integers(num_pairs[0], num_pairs[1] + 1))
    keys = rng.choice(len(KEYS), size=n, replace=False)
    values = rng.choice(len(VALUES), size=n, replace=False)
    pairs = tuple((KEYS[k], VALUES[v]) for k, v in zip(keys, values))
    return pairs, int(rng.integers(n))


def recall_prompts(
    n: int, seed: int = 0, split: str = "test", *, num_pairs: Tuple[int, int] = NUM_PAIRS
) -> RecallPrompts:
    r"""Random key-value recall prompts of one split, with answers and decisive token positions.

    Each prompt draws its number of pairs uniformly from ``num_pairs``, distinct keys of
    :data:`KEYS`, distinct values of :data:`VALUES` and the queried pair, from one
    ``numpy.random.default_rng(seed)``; prompts of the other split (:func:`prompt_split`) are drawn
    again, so the same arguments give the same prompts and ``"test"`` prompts never occur in training.

    Args:
        n (int): Number of prompts.
        seed (int, optional): Seed of the prompts. Default: ``0``
        split (str, optional): ``"train"``, ``"test"`` or ``"all"``. Default: ``"test"``
        num_pairs (tuple of int, optional): Inclusive range of the number of pairs.
            Default: :data:`NUM_PAIRS`

    Returns:
        RecallPrompts: ``prompts``, ``targets``, ``pairs``, ``query_index`` (the queried pair's token
        position) and ``query_positions``.

    Raises:
        ValueError: If ``n`` is negative, ``split`` is unknown or ``num_pairs`` is not a range within
            ``1 .. len(VALUES)``.

    Examples::

        >>> from captum_attn_shapley.demos.recall import recall_prompts, recall_tokenizer
        >>> data = recall_prompts(2, seed=0)
        >>> tokens = recall_tokenizer().tokenize(data.prompts[0])
        >>> tokens[data.pair_positions[0]].endswith("=" + data.targets[0].strip())
        True
    """
    if n < 0:
        raise ValueError(f"`n` must be >= 0, got {n}.")
    if split not in ("train", "test", "all"):
        raise ValueError(f"`split` must be 'train', 'test' or 'all', got {split!r}.")
    if len(num_pairs) != 2 or not 1 <= num_pairs[0] <= num_pairs[1] <= len(VALUES):
        raise ValueError(
            f"`num_pairs` must be (min, max) with 1 <= min <= max <= {len(VALUES)} (the values are distinct), "
            f"got {num_pairs}."
        )
    rng = np.random.default_rng(seed)
    out = RecallPrompts([], [], [], [], [])
    while len(out) < n:
        pairs, query = _draw(rng, num_pairs)
        prompt = format_prompt(pairs, pairs[query][0])
        if split != "all" and prompt_split(prompt) != split:
            continue
        out.prompts.append(prompt)
        out.targets.append(" " + pairs[query][1])
        out.pairs.append(pairs)
        out.query_index.append(query)
        out.query_positions.append(len(pairs) + 1)
    return out
