#!/usr/bin/env python3
"""The special tokens of a model: never players, never replaced.

See the mathematics page of the documentation, sections "Notation" and "Faithfulness metrics".

The one rule every method and metric follows: the ids given explicitly, else those of the given
tokenizer, else those of the model (its config and the tokenizer saved beside it, loaded offline).
"""

import warnings
from typing import Any, Callable, List, Optional, Sequence

from torch.nn import Module

from captum_attn_shapley.capture.discovery import config_value, model_behind


def unique_ids(ids: Optional[Sequence[int]]) -> List[int]:
    """Sorted, de-duplicated ids."""
    return sorted(set(int(i) for i in ids)) if ids is not None else []


def config_special_token_ids(model: Module) -> List[int]:
    r"""
    Special token ids named in a Hugging Face config (pad, bos, eos, sep, cls, mask).

    Args:
        model (Module): The model.

    Returns:
        list[int]: The ids found (possibly empty).
    """
    ids = set()
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id", "mask_token_id"):
        value = config_value(model, name)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return sorted(ids)


def offline_tokenizer(model: Module) -> Any:
    r"""
    The tokenizer saved beside the model, if it loads offline from ``model.name_or_path``
    (a local directory or the local hub cache).

    Args:
        model (Module): A Hugging Face model.

    Returns:
        The tokenizer, or None if none was found.
    """
    path = getattr(model, "name_or_path", None) or config_value(model, "_name_or_path")
    if not path:
        return None
    try:
        from transformers import AutoTokenizer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "no tokenizer available offline"
        return None


def tokenizer_special_token_ids(model: Module) -> Optional[List[int]]:
    r"""
    Special token ids of the tokenizer saved beside the model (:func:`offline_tokenizer`).

    Args:
        model (Module): A Hugging Face model.

    Returns:
        list[int] or None: ``tokenizer.all_special_ids``, or None if no tokenizer was found.
    """
    tokenizer = offline_tokenizer(model)
    if tokenizer is None:
        return None
    return unique_ids(tokenizer.all_special_ids)


def model_special_token_ids(model: Module) -> List[int]:
    r"""
    The special token ids of a model: those of its config and of the tokenizer saved
    beside it.

    Args:
        model (Module): A Hugging Face model.

    Returns:
        list[int]: Sorted ids (possibly empty).
    """
    ids = set(config_special_token_ids(model))
    ids.update(tokenizer_special_token_ids(model) or [])
    return sorted(ids)


def model_token_id_sources(forward_func: Callable[..., Any]) -> List[Any]:
    r"""
    Where the named token ids (``mask_token_id``, ...) of the model behind a forward function
    can be read: the tokenizer saved beside it (offline) and its config.

    Args:
        forward_func (Callable): The model or a function calling it.

    Returns:
        list: ``[tokenizer or None, config or None]``, or ``[]`` when no model is found.
    """
    model = model_behind(forward_func)
    if model is None:
        return []
    return [offline_tokenizer(model), getattr(model, "config", None)]


def resolve_special_token_ids(
    special_token_ids: Optional[Sequence[int]],
    tokenizer: Any = None,
    forward_func: Optional[Callable[..., Any]] = None,
    model: Optional[Module] = None,
    required: bool = True,
) -> List[int]:
    r"""
    The ids that are never replaced (and never players).

    Args:
        special_token_ids (sequence of int, optional): Given explicitly.
        tokenizer (optional): Else ``tokenizer.all_special_ids``.
        forward_func (Callable, optional): Else those of the model behind it (the tokenizer
                    saved beside it, loaded offline, and its config).
        model (Module, optional): The model itself, instead of finding it behind
                    ``forward_func``.
        required (bool): Raise when no special token is found (else return ``[]``).

    Returns:
        list[int]: Sorted ids.

    Examples::

        >>> resolve_special_token_ids(None, tokenizer)            # tokenizer.all_special_ids, sorted
        >>> resolve_special_token_ids(None, forward_func=model)   # the model's config and saved tokenizer
    """
    if special_token_ids is not None:
        return unique_ids(special_token_ids)
    if tokenizer is not None:
        return unique_ids(tokenizer.all_special_ids)
    if model is None and forward_func is not None:
        model = model_behind(forward_func)
    ids = model_special_token_ids(model) if model is not None else []
    if not ids and required:
        raise ValueError(
            "Cannot tell the special tokens (never replaced) from the players: pass `tokenizer=`, "
            "`special_token_ids=` (e.g. tokenizer.all_special_ids) or `player_mask=`."
        )
    return unique_ids(ids)
