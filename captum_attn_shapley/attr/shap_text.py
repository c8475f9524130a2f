#!/usr/bin/env python3
"""The ``shap`` library's partition explainer on text, as a Captum attribution (the paper's SHAP baseline)."""

from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from captum.attr import Attribution
from numpy.typing import NDArray
from torch import Tensor

from captum_attn_shapley._utils.forward import class_probabilities, logits_from_output
from captum_attn_shapley._utils.input_warnings import (
    attribution_dtype,
    warn_below_precision,
    warn_if_probabilities,
)
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike, normalize_target
from captum_attn_shapley._utils.validation import check_inputs
from captum_attn_shapley.capture import model_behind

SHAP_INSTALL_HINT = 'pip install "captum-attn-shapley[shap]"'


def _import_shap() -> Any:
    """Imports ``shap`` lazily, with an install hint when it is missing."""
    try:
        import shap
    except ImportError as err:
        raise ImportError(
            f"ShapText needs the `shap` library, which is not installed: {SHAP_INSTALL_HINT}"
        ) from err
    return shap


class ShapText(Attribution):  # type: ignore[misc]  # captum ships no types: Attribution is Any
    r"""
    SHAP's partition explainer on text (``shap.explainers.Partition`` with a
    ``shap.maskers.Text`` masker built on the model's own tokenizer), the SHAP baseline of
    the paper, as a Captum attribution. Unlike the paper's reference code, which always
    explained class 1, it explains the class given by ``target`` (default: the predicted
    class).

    The game: the players are the word-pieces of the text (the tokenizer's tokens), except
    the special tokens the tokenizer adds around it (``[CLS]``, ``[SEP]``) and ``[SEP]``
    tokens, which shap's masker never masks; an in-text ``[UNK]`` (e.g. an emoji) is a
    player. A coalition's value is the **softmax probability of the explained class**
    (not the logit: bounded, on the same scale for every class, and what shap explains by
    default for a Hugging Face text-classification pipeline, ``shap.models.TransformersPipeline``
    with ``rescale_to_logits=False``) on the text in which every word-piece outside the
    coalition is replaced by ``mask_token``, one mask per masked word-piece. shap builds
    these texts as strings (it substitutes the masked word-pieces' substrings), and they
    are tokenised again for the model, so masking a word-piece inside a word can change how
    the rest of that word splits (``"un[MASK]able"``), as in shap itself.

    The values are shap's Owen values for its hierarchical clustering of the tokens
    (``shap.maskers.Text.clustering``), computed with at most ``max_evals`` model
    evaluations. When ``max_evals`` suffices to expand the whole tree they are the exact
    Owen values, which equal the exact Shapley values for one or two players and for
    additive games; below that, the credit of clusters left unexpanded is split among
    their members in proportion to their size. shap's own split counts the always-kept
    special tokens among the members, which puts a small share of credit on them; here it
    is split among the cluster's players only, so special tokens get exactly zero and, for
    every example, the attributions sum to ``p(x) - p(all players masked)`` for the
    explained class (efficiency) at any budget. At full expansion the values are shap's
    own.

    shap breaks ties between equally promising clusters with numpy's global random
    generator; ``attribute`` seeds it (``seed``) and restores its state afterwards, so the
    result is deterministic for a given ``seed``, ``max_evals`` and ``batch_size`` (the
    budget is spent batch by batch, so the batch size can change which clusters a limited
    budget expands).

    Cost: up to ``max_evals`` forward passes per example, in batches of ``batch_size``
    masked texts (the padded length of each batch is that of its longest masked text). The
    first call in a process also compiles shap's numba kernels (a few seconds). ``shap`` is
    an optional dependency, imported on the first call: ``pip install
    "captum-attn-shapley[shap]"``.

    Args:
        forward_func (Callable or Module): A Captum-style function
                    ``forward_func(input_ids, attention_mask) -> logits`` of shape
                    ``(batch, num_classes)``, or a Hugging Face sequence classifier (an
                    output with a ``logits`` field is accepted).
        tokenizer: The model's Hugging Face tokenizer (a fast one, with offset mappings).
                    shap's masker splits texts with it, and the masked texts are tokenised
                    with it for ``forward_func``.
        mask_token (str, optional): The token that replaces masked word-pieces. Default:
                    ``tokenizer.mask_token`` (e.g. ``[MASK]``); an error is raised when
                    the tokenizer has none and none is given.
        collapse_mask_token (bool): shap's option to replace a run of consecutive masked
                    word-pieces by ONE mask token. Default False: one mask per word-piece
                    (shap's default for tokenizers with a mask token; shap would switch
                    to True whenever ``mask_token`` is passed explicitly).

    Examples::

        >>> explainer = ShapText(model, tokenizer)
        >>> enc = tokenizer(texts, return_tensors="pt", padding=True)
        >>> attributions = explainer.attribute(
        ...     enc["input_ids"], additional_forward_args=(enc["attention_mask"],), texts=texts)
        >>> # (batch, seq_len), 0 at [CLS], [SEP] and padding; texts= is optional (see attribute)
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        tokenizer: Any,
        mask_token: Optional[str] = None,
        collapse_mask_token: bool = False,
    ) -> None:
        super().__init__(forward_func)
        self.tokenizer = tokenizer
        if mask_token is None:
            mask_token = getattr(tokenizer, "mask_token", None)
        if mask_token is None or not isinstance(mask_token, str) or mask_token.strip() == "":
            raise ValueError(
                "ShapText needs a mask token to replace masked word-pieces, but the tokenizer has no "
                "`mask_token` and none was given: pass mask_token=... (e.g. tokenizer.unk_token or '...')."
            )
        self.mask_token: str = mask_token
        self.collapse_mask_token = bool(collapse_mask_token)

    @classmethod
    def get_name(cls) -> str:
        return "SHAP-Partition"

    def _masker(self, shap: Any) -> Any:
        return shap.maskers.Text(
            self.tokenizer, mask_token=self.mask_token, collapse_mask_token=self.collapse_mask_token
        )

    @log_usage()
    def attribute(
        self,
        inputs: Tensor,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        max_evals: int = 500,
        batch_size: int = 64,
        seed: Optional[int] = 0,
        texts: Optional[Sequence[str]] = None,
    ) -> Tensor:
        r"""
        Args:
            inputs (Tensor): Token ids, shape ``(batch, seq_len)``, as produced by
                        ``tokenizer(texts, padding=True)`` (one text per row, with the
                        tokenizer's special tokens, single sequences, no truncation; right or
                        left padding). Unless ``texts``
                        is given, each row's text is rebuilt by decoding its real tokens
                        between the tokenizer's leading and trailing special tokens.
                        Re-tokenising the text must reproduce the row's tokens exactly,
                        otherwise a ValueError says where they differ.
            target (int, list[int], Tensor or None): The class to explain, Captum-style:
                        one index for all examples, one per example, or None (default) for
                        the class the model predicts on ``inputs``.
            additional_forward_args (Tensor or tuple, optional): Captum convention: the
                        attention mask, shape ``(batch, seq_len)``, as the first element
                        (or the tensor itself). Without it, the real tokens are the ones
                        that are not ``tokenizer.pad_token_id``. Further non-tensor
                        elements are passed to ``forward_func`` after the attention mask;
                        tensors are refused (they could not follow the re-tokenisation).
            max_evals (int): shap's budget of model evaluations per example (shap's
                        default, 500). Two are spent on the full text and the fully masked
                        text.
            batch_size (int): Masked texts per model call (shap's ``batch_size``).
            seed (int or None): Seed of numpy's global generator while shap runs (it
                        breaks ties between clusters with it); the generator's state is
                        restored afterwards. None leaves it as found (not reproducible).
            texts (sequence of str, optional): The original texts, one per row. shap's
                        clustering of the tokens (hence the Owen values) depends on the
                        text's surface form (spacing, punctuation, an emoji versus the
                        ``[UNK]`` that a decoded text shows), so pass them to explain
                        exactly what ``shap`` explains on the raw texts. Each must tokenise
                        to exactly its row's real tokens.

        Returns:
            *Tensor*: Attributions of shape ``(batch, seq_len)``, aligned with ``inputs``,
            in the dtype of the model's logits: zero at the tokenizer's special tokens and
            at padding; for each example they sum to the explained class's probability on
            the text minus that on the fully masked text.
        """
        shap = _import_shap()
        model = model_behind(self.forward_func)
        check_inputs(model, inputs, additional_forward_args, warn_padding=False)  # no mask: built from pad ids
        if int(max_evals) < 3:
            raise ValueError("max_evals must be at least 3 (two evaluations go to the full and the masked text).")
        if int(batch_size) < 1:
            raise ValueError("batch_size must be at least 1.")
        if texts is not None:
            if isinstance(texts, str) or len(texts) != inputs.shape[0]:
                count = 1 if isinstance(texts, str) else len(texts)
                raise ValueError(
                    f"`texts` must be a sequence of {inputs.shape[0]} strings (one per row), got {count}."
                )
        attention_mask, extra = self._split_forward_args(inputs, additional_forward_args)
        real = attention_mask.to(inputs.device) != 0
        if not bool(real.any(dim=1).all()):
            raise ValueError("An example has no real tokens (its attention mask is all zero).")

        with torch.no_grad():
            logits = logits_from_output(self.forward_func(inputs, attention_mask, *extra))
        if logits.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"The forward function returned {logits.shape[0]} rows of logits for {inputs.shape[0]} examples."
            )
        targets = normalize_target(target, logits).tolist()
        warn_if_probabilities(logits, "ShapText (its game is the softmax probability)", "Return logits instead.")

        masker = self._masker(shap)
        attributions = torch.zeros(inputs.shape, dtype=torch.float64)
        for b in range(inputs.shape[0]):
            positions = real[b].nonzero().flatten()
            token_ids = [int(t) for t in inputs[b, positions].tolist()]
            text = self._text_of(token_ids, masker, b, None if texts is None else texts[b])
            players = ~np.asarray(masker.invariants(text)).reshape(-1)
            if not players.any():
                continue
            model_fn = self._probability_function(
                int(targets[b]), inputs.device, attention_mask.dtype, extra, int(batch_size)
            )
            explainer = shap.explainers.Partition(model_fn, masker)
            state = np.random.get_state()
            try:
                if seed is not None:
                    np.random.seed(seed)
                explanation = explainer([text], max_evals=int(max_evals), batch_size=int(batch_size), silent=True)
            finally:
                if seed is not None:
                    np.random.set_state(state)
            hierarchical = np.asarray(explanation.hierarchical_values[0], dtype=np.float64).reshape(-1)
            clustering = np.asarray(explanation.clustering[0], dtype=np.float64)
            n_tokens = len(token_ids)
            if np.asarray(explanation.values[0]).reshape(-1).shape[0] != n_tokens or players.shape[0] != n_tokens:
                raise RuntimeError(
                    f"Example {b}: shap returned {np.asarray(explanation.values[0]).size} values for "
                    f"{n_tokens} tokens; the token alignment is broken."
                )
            values = _lower_credit_to_players(hierarchical, clustering, players)
            attributions[b, positions.cpu()] = torch.from_numpy(values)
        result = attributions.to(device=logits.device, dtype=attribution_dtype(logits.dtype))
        warn_below_precision(result, model)
        return result

    def _split_forward_args(self, inputs: Tensor, additional_forward_args: Any) -> Tuple[Tensor, Tuple[Any, ...]]:
        args: Tuple[Any, ...]
        if additional_forward_args is None:
            args = ()
        elif isinstance(additional_forward_args, tuple):
            args = additional_forward_args
        elif isinstance(additional_forward_args, list):
            args = tuple(additional_forward_args)
        else:
            args = (additional_forward_args,)
        if args and args[0] is not None:
            mask = args[0]
            if not isinstance(mask, Tensor):
                raise ValueError(
                    "The first element of `additional_forward_args` must be the attention mask, a tensor "
                    f"shaped like `inputs` {tuple(inputs.shape)}; got {type(mask).__name__}."
                )
        else:
            pad_id = getattr(self.tokenizer, "pad_token_id", None)
            mask = (inputs != pad_id).long() if pad_id is not None else torch.ones_like(inputs)
        extra = tuple(args[1:])
        if any(isinstance(a, Tensor) for a in extra):
            raise ValueError(
                "ShapText re-tokenises the masked texts, so it can pass only the attention mask to the "
                "forward function: tensors after it in `additional_forward_args` (e.g. token_type_ids) "
                "cannot follow the new tokenisation. Wrap the model in a function of "
                "(input_ids, attention_mask) instead."
            )
        return mask, extra

    def _text_of(self, token_ids: List[int], masker: Any, index: int, given: Optional[str]) -> str:
        """The text of one example, checked to tokenise to exactly its tokens."""
        if given is not None:
            if not isinstance(given, str):
                raise TypeError(f"`texts[{index}]` must be a str, got {type(given).__name__}.")
            text = given
            retokenised = [int(t) for t in self.tokenizer(text)["input_ids"]]
            if retokenised != token_ids:
                raise ValueError(
                    _round_trip_message(index, text, token_ids, retokenised, self.tokenizer, "tokenising it", True)
                )
        else:
            prefix, suffix = int(masker.keep_prefix), int(masker.keep_suffix)
            if len(token_ids) < prefix + suffix:
                raise ValueError(
                    f"Example {index} has {len(token_ids)} real tokens, fewer than the {prefix + suffix} "
                    "special tokens the tokenizer adds around a text."
                )
            body = token_ids[prefix : len(token_ids) - suffix]
            # the natural spelling first ("don't"), then the literal one ("don ' t")
            for clean_up in (True, False):
                text = self.tokenizer.decode(
                    body, skip_special_tokens=False, clean_up_tokenization_spaces=clean_up
                )
                retokenised = [int(t) for t in self.tokenizer(text)["input_ids"]]
                if retokenised == token_ids:
                    break
            else:
                raise ValueError(_round_trip_message(index, text, token_ids, retokenised, self.tokenizer))
        shap_ids = [int(t) for t in masker.token_segments(text)[1]]
        if shap_ids != token_ids:
            raise ValueError(
                _round_trip_message(index, text, token_ids, shap_ids, self.tokenizer, "shap's masker")
            )
        return text

    def _probability_function(
        self, target: int, device: torch.device, mask_dtype: torch.dtype, extra: Tuple[Any, ...], batch_size: int
    ) -> Callable[[Any], NDArray[Any]]:
        """The model as shap sees it: strings -> probability of ``target`` (float64)."""

        def probability(texts: Any) -> NDArray[Any]:
            strings = [str(t) for t in np.asarray(texts, dtype=object).reshape(-1)]
            out: List[Tensor] = []
            for start in range(0, len(strings), batch_size):
                enc = self.tokenizer(strings[start : start + batch_size], padding=True, return_tensors="pt")
                ids = enc["input_ids"].to(device)
                mask = enc["attention_mask"].to(device=device, dtype=mask_dtype)
                with torch.no_grad():
                    logits = logits_from_output(self.forward_func(ids, mask, *extra))
                out.append(class_probabilities(logits)[:, target].cpu())
            if not out:
                return np.zeros(0)
            return torch.cat(out).numpy()

        return probability


def _lower_credit_to_players(
    hierarchical: NDArray[Any], clustering: NDArray[Any], players: NDArray[Any]
) -> NDArray[Any]:
    r"""
    Pushes shap's hierarchical (per-cluster) credit down to the leaves, as shap's
    ``lower_credit`` does, but splitting each cluster's credit in proportion to the number
    of PLAYERS in each child (shap uses the number of tokens, counting the always-kept
    special tokens). Clusters without players and the non-player leaves carry no credit
    (their masked and unmasked texts are identical). Returns the per-token values, zero
    at non-players.
    """
    n = players.shape[0]
    if hierarchical.shape[0] != 2 * n - 1 or clustering.shape[0] != n - 1:
        raise RuntimeError(
            f"Unexpected shap output: {hierarchical.shape[0]} cluster values and {clustering.shape[0]} merges "
            f"for {n} tokens."
        )
    counts = np.zeros(2 * n - 1)
    counts[:n] = players
    children = clustering[:, :2].astype(int)
    for k in range(n - 1):
        counts[n + k] = counts[children[k, 0]] + counts[children[k, 1]]
    values = hierarchical.copy()
    for node in range(2 * n - 2, n - 1, -1):  # children always precede their parent
        total = counts[node]
        if total == 0:
            continue
        left, right = children[node - n]
        values[left] += values[node] * counts[left] / total
        values[right] += values[node] * counts[right] / total
    return np.where(players, values[:n], 0.0)


def _round_trip_message(
    index: int,
    text: str,
    expected: Sequence[int],
    got: Sequence[int],
    tokenizer: Any,
    who: str = "re-tokenising it",
    given: bool = False,
) -> str:
    first = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))

    def show(ids: Sequence[int]) -> str:
        return str(tokenizer.convert_ids_to_tokens([int(t) for t in ids[max(0, first - 2) : first + 3]]))

    source = f"its text {text!r} was given" if given else f"its tokens decode to {text!r}"
    return (
        f"Example {index} does not round-trip through text: {source}, but {who} gives other tokens "
        f"({len(got)} tokens, {len(expected)} given), first differing at position {first} "
        f"(given {show(expected)}, re-tokenised {show(got)}). ShapText explains texts, so `inputs` must be "
        "exactly tokenizer(text)['input_ids'] of some text (with the tokenizer's special tokens, no "
        "truncation, a single sequence, no word-piece that cannot start a text)."
    )
