#!/usr/bin/env python3
"""The text side of :class:`~captum_attn_shapley.attr.LLMAttnGradShapley`: prompts, targets and results.

- The prompt (a string, Captum's ``TextTokenInput`` or ``TextTemplateInput``) becomes its token ids, the
  players (the prompt's tokens minus special tokens) and the map from tokens to the input's interpretable
  features.
- The target (a string, token ids, or None: generated) becomes the target ids.
- Captum's ``LLMAttributionResult`` is built with either captum's constructor (0.8: positional
  ``(seq_attr, token_attr, input_tokens, output_tokens)``; 0.9: keyword-only, with ``output_probs``).
"""

import inspect
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr import LLMAttributionResult, TextTemplateInput, TextTokenInput
from torch import Tensor
from torch.nn import Module

#: Generation settings when ``target`` is None and no ``gen_args`` are given: greedy, a few new tokens.
DEFAULT_GEN_ARGS: Dict[str, Any] = {"max_new_tokens": 10, "do_sample": False}

#: What ``inp`` accepts.
PromptLike = Union[str, TextTokenInput, TextTemplateInput]

# Private-use characters that mark where a template inserts each value (see :func:`_value_spans`).
_OPEN, _MID, _CLOSE = "\ue000", "\ue001", "\ue002"


@dataclass
class Prompt:
    r"""
    A prompt, tokenized.

    Attributes:
        inp (TextTokenInput or TextTemplateInput): The interpretable input (a string is wrapped in a
                    ``TextTokenInput``).
        ids (Tensor): ``(1, P)``: the token ids the model reads.
        feature_of (Tensor): ``(P,)``: the interpretable feature of each token (``-1``: none).
        num_features (int): The input's interpretable features.
        players (Tensor): Bool ``(P,)``: the tokens that play the games.
        input_tokens (list[str]): The result's input tokens (the input's ``values``).
    """

    inp: Union[TextTokenInput, TextTemplateInput]
    ids: Tensor
    feature_of: Tensor
    num_features: int
    players: Tensor
    input_tokens: List[str]

    def to_features(self, token_scores: Tensor) -> Tensor:
        r"""
        Sums token scores over each interpretable feature's tokens (a ``TextTemplateInput`` with a ``mask``
        gives each of its values its group's sum, as Captum's ``format_attr`` does).

        Args:
            token_scores (Tensor): ``(n_target, P)``.

        Returns:
            Tensor: ``(n_target, len(input_tokens))``.
        """
        out = torch.zeros(token_scores.shape[0], self.num_features, dtype=token_scores.dtype)
        kept = self.feature_of >= 0
        index = self.feature_of[kept].unsqueeze(0).expand(token_scores.shape[0], -1)
        out.scatter_add_(1, index, token_scores[:, kept].cpu())
        return self.inp.format_attr(out) if isinstance(self.inp, TextTemplateInput) else out


def check_prompt_type(inp: Any) -> None:
    """``inp`` must be a string, a ``TextTokenInput`` or a ``TextTemplateInput``."""
    if not isinstance(inp, (str, TextTokenInput, TextTemplateInput)):
        raise TypeError(
            f"`inp` must be a string, a captum.attr.TextTokenInput or a captum.attr.TextTemplateInput, got "
            f"{type(inp).__name__}. Wrap the prompt: TextTokenInput(prompt, tokenizer)."
        )


def prompt_of(inp: PromptLike, tokenizer: Any, special_ids: Sequence[int]) -> Prompt:
    r"""
    Tokenizes a prompt and maps its tokens to the input's features.

    Args:
        inp (str, TextTokenInput or TextTemplateInput): The prompt.
        tokenizer (Any): The model's tokenizer.
        special_ids (sequence of int): Token ids that never play.

    Returns:
        Prompt: The tokenized prompt.
    """
    check_prompt_type(inp)
    if isinstance(inp, str):
        if not inp:
            raise ValueError("`inp` is an empty string: give a prompt with at least one token.")
        inp = TextTokenInput(inp, tokenizer)
    if isinstance(inp, TextTokenInput):
        ids = torch.as_tensor(inp.inp_tensor).long().reshape(1, -1)
        if inp.itp_mask is None:
            feature_of = torch.arange(ids.shape[1])
        else:
            mask = torch.as_tensor(inp.itp_mask).reshape(-1).bool()
            feature_of = torch.where(mask, mask.long().cumsum(0) - 1, torch.full_like(mask, -1, dtype=torch.long))
        num_features = int(inp.n_itp_features)
    else:
        ids, feature_of = _template_tokens(inp, tokenizer)
        num_features = int(inp.n_itp_features)
    if ids.shape[1] == 0:
        raise ValueError("`inp` tokenizes to no token: give a prompt with at least one token.")
    special = torch.as_tensor(sorted(set(int(i) for i in special_ids)), dtype=torch.long)
    players = ~torch.isin(ids[0], special)
    if isinstance(inp, TextTokenInput):
        players &= feature_of >= 0  # skip_tokens are not features: they do not play either
    if not bool(players.any()):
        raise ValueError(
            f"The prompt has no player: its {ids.shape[1]} tokens are all special tokens (or skip_tokens). "
            "Give a prompt with ordinary tokens, or pass special_token_ids=[] to let special tokens play."
        )
    return Prompt(inp, ids, feature_of, num_features, players, list(inp.values))


def _value_spans(inp: TextTemplateInput) -> List[Tuple[int, int, int]]:
    """``(start, end, value index)`` of every inserted value in the formatted prompt: the template is formatted
    once with marked values and the marks are read back (a value inserted twice gives two spans)."""
    marked = [f"{_OPEN}{i}{_MID}{v}{_CLOSE}" for i, v in enumerate(inp.values)]
    text = inp.format_fn(**dict(zip(inp.dict_keys, marked))) if inp.dict_keys else inp.format_fn(*marked)
    spans: List[Tuple[int, int, int]] = []
    plain: List[str] = []
    pos, cursor, current, start = 0, 0, -1, 0
    readable = True
    while pos < len(text) and readable:
        char = text[pos]
        if char == _OPEN:
            mid = text.find(_MID, pos)
            readable = mid > pos and text[pos + 1 : mid].isdigit() and current < 0
            current, start, pos = (int(text[pos + 1 : mid]) if readable else -1), cursor, mid + 1
            continue
        if char == _CLOSE:
            readable = current >= 0
            spans.append((start, cursor, current))
            current, pos = -1, pos + 1
            continue
        plain.append(char)
        cursor += 1
        pos += 1
    if not readable or current >= 0 or "".join(plain) != inp.to_model_input():
        raise ValueError(
            "`inp`'s template must insert each value verbatim (it changed a value or its marks): the tokens of "
            "each value cannot be located. Use a format string such as '{} feels {}', or a function that only "
            "places the values."
        )
    return spans


def _template_tokens(inp: TextTemplateInput, tokenizer: Any) -> Tuple[Tensor, Tensor]:
    """The prompt ids of a template input and each token's interpretable feature (by character overlap)."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            "A TextTemplateInput needs a fast tokenizer (offsets of the tokens in the text), got "
            f"{type(tokenizer).__name__}: load it with AutoTokenizer.from_pretrained(name, use_fast=True)."
        )
    spans = _value_spans(inp)
    encoded = tokenizer(inp.to_model_input(), return_offsets_mapping=True)
    group = list(inp.formatted_mask) if inp.mask is not None else list(range(len(inp.values)))
    feature_of = []
    for start, end in encoded["offset_mapping"]:
        owner = next((group[i] for s, e, i in spans if start < end and start < e and s < end), -1)
        feature_of.append(owner)
    return torch.tensor([encoded["input_ids"]], dtype=torch.long), torch.tensor(feature_of, dtype=torch.long)


def target_ids(
    target: Union[str, Tensor, None], gen_args: Optional[Dict[str, Any]], tokenizer: Any, vocabulary: Optional[int]
) -> Optional[Tensor]:
    r"""
    The target token ids, or None when they are to be generated.

    Args:
        target (str, Tensor or None): A string (encoded without special tokens, as Captum does), token ids
                    ``(n,)`` or ``(1, n)``, or None.
        gen_args (dict, optional): Generation arguments; only with ``target=None``.
        tokenizer (Any): The tokenizer.
        vocabulary (int, optional): The model's vocabulary size (range check of given ids).

    Returns:
        Tensor or None: Long ``(n_target,)``.
    """
    if gen_args is not None and not isinstance(gen_args, dict):
        raise TypeError(f"`gen_args` must be a dict of model.generate arguments, got {type(gen_args).__name__}.")
    new_tokens = (gen_args or {}).get("max_new_tokens", 1)
    if isinstance(new_tokens, bool) or not isinstance(new_tokens, int) or new_tokens < 1:
        raise ValueError(
            f"`gen_args['max_new_tokens']` must be a positive int, got {new_tokens!r}: nothing to explain."
        )
    if target is None:
        return None
    if gen_args is not None:
        raise ValueError("`gen_args` is used only to generate the target: pass either `target` or `gen_args`.")
    if isinstance(target, str):
        ids = torch.tensor(tokenizer.encode(target, add_special_tokens=False), dtype=torch.long)
        if ids.numel() == 0:
            raise ValueError(f"`target` {target!r} encodes to no token: give a non-empty target text.")
        return ids
    if not isinstance(target, Tensor):
        raise TypeError(f"`target` must be a string, a tensor of token ids or None, got {type(target).__name__}.")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"`target` must hold integer token ids, got dtype {target.dtype}: pass target.long().")
    if target.dim() == 2 and target.shape[0] == 1:
        target = target[0]
    if target.dim() != 1 or target.numel() == 0:
        raise ValueError(
            f"`target` must be a non-empty 1-D tensor of token ids (or shape (1, n)), got shape "
            f"{tuple(target.shape)}."
        )
    if vocabulary is not None and bool(((target < 0) | (target >= vocabulary)).any()):
        bad = int(target[(target < 0) | (target >= vocabulary)][0])
        raise ValueError(f"`target` holds token id {bad}, outside the vocabulary (ids 0..{vocabulary - 1}).")
    return target.long()


def generate_target(
    model: Module, prompt_ids: Tensor, gen_args: Optional[Dict[str, Any]], tokenizer: Any
) -> Tensor:
    r"""
    Generates the target with ``model.generate`` (default :data:`DEFAULT_GEN_ARGS`).

    Returns:
        Tensor: The new token ids ``(n_target,)``.
    """
    generate = getattr(model, "generate", None)
    if not callable(generate):
        raise ValueError(f"{type(model).__name__} has no generate(): pass the target text or ids as `target`.")
    args = dict(DEFAULT_GEN_ARGS if not gen_args else gen_args)
    config = getattr(model, "generation_config", None)
    if "pad_token_id" not in args and getattr(config, "pad_token_id", None) is None:
        pad = getattr(tokenizer, "pad_token_id", None)
        args["pad_token_id"] = pad if pad is not None else getattr(tokenizer, "eos_token_id", None)
    with torch.no_grad():
        output = generate(input_ids=prompt_ids, attention_mask=torch.ones_like(prompt_ids), **args)
    sequences = getattr(output, "sequences", output)
    new = sequences[0, prompt_ids.shape[1] :]
    if new.numel() == 0:
        raise ValueError(
            "Generation produced no new token (check gen_args, e.g. max_new_tokens >= 1): nothing to explain."
        )
    return torch.as_tensor(new).long()


def output_tokens_of(ids: Tensor, tokenizer: Any) -> List[str]:
    """Readable output tokens (Captum's own conversion where it has one)."""
    try:
        from captum.attr._core.llm_attr import _convert_ids_to_pretty_tokens

        tokens = list(_convert_ids_to_pretty_tokens(ids.cpu(), tokenizer))
        if len(tokens) == ids.numel():
            return tokens
    except Exception:  # noqa: BLE001  # a private helper of captum: any failure falls back
        pass
    return list(tokenizer.convert_ids_to_tokens(ids.tolist()))


def make_result(
    seq_attr: Tensor,
    token_attr: Tensor,
    input_tokens: List[str],
    output_tokens: List[str],
    output_probs: Tensor,
    inp: Any,
) -> LLMAttributionResult:
    r"""
    Captum's ``LLMAttributionResult``, with the constructor of the installed captum (0.8 or 0.9).

    Returns:
        LLMAttributionResult: The result (captum 0.9 also gets ``output_probs`` and ``inp``).
    """
    parameters = inspect.signature(LLMAttributionResult.__init__).parameters
    if "output_probs" in parameters:
        return LLMAttributionResult(
            seq_attr=seq_attr,
            token_attr=token_attr,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            output_probs=output_probs,
            inp=inp,
        )
    return LLMAttributionResult(seq_attr, token_attr, input_tokens, output_tokens)
