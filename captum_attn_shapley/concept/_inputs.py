#!/usr/bin/env python3
"""Validation of TokenTCAV's model, settings, concept sets and target examples, and the split of the examples into
batches."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from captum.concept import Concept
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.forward import forward_args_tuple
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley._utils.validation import (
    GradientCheckedForward,
    check_architecture,
    check_inputs,
    check_not_compiled,
    check_weights_loaded,
    unwrap_compiled,
)
from captum_attn_shapley.capture import model_behind
from captum_attn_shapley.concept.stats import CORRECTIONS

#: One batch: the inputs, the target and the additional forward arguments, cut to the batch's rows.
Batch = Tuple[Tuple[Tensor, ...], TargetLike, Tuple[Any, ...]]


def check_model_and_settings(
    model: Module, forward_func: Optional[Callable[..., Any]], repeats: int, batch_size: int
) -> Tuple[Module, Callable[..., Any]]:
    r"""
    Checks TokenTCAV's model (a supported architecture with loaded weights; a ``torch.compile``'d model
    is unwrapped to its module), ``repeats`` (at least 2, for the t-test) and ``batch_size`` (positive).

    Args:
        model (Module): The model.
        forward_func (Callable, optional): The forward function (default: the model).
        repeats (int): R, the CAVs per concept.
        batch_size (int): Target examples per forward/backward pass.

    Returns:
        tuple: The model and the forward function the capture runs (checking, where gradients are
        needed, that its logits are attached to the autograd graph).
    """
    if not isinstance(model, Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    model = unwrap_compiled(model)
    forward = unwrap_compiled(forward_func) if forward_func is not None else model
    behind = model_behind(forward) if forward is not model else None
    if behind is not None:
        check_not_compiled(behind)
    check_architecture(model)
    check_weights_loaded(model)
    if not isinstance(repeats, int) or repeats < 2:
        raise ValueError(
            f"repeats must be an int >= 2 (the t-test against 0.5 needs at least two CAVs per concept), "
            f"got {repeats!r}. The paper uses 50."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    return model, GradientCheckedForward(forward)


def check_test_settings(kwargs: Dict[str, Any], correction: Optional[str], alpha: float) -> None:
    r"""
    Checks the arguments of :meth:`TokenTCAV.interpret` that choose its tests.

    Args:
        kwargs (dict): Arguments ``interpret`` does not take (Captum's layer-attribution ones).
        correction (str, optional): The multiple-testing correction, one of ``CORRECTIONS``.
        alpha (float): The significance level, in (0, 1).
    """
    if kwargs:
        raise TypeError(
            f"Unexpected arguments {sorted(kwargs)}: TokenTCAV differentiates the target logit directly and "
            "takes no layer-attribution arguments."
        )
    if correction is not None and correction not in CORRECTIONS:
        raise ValueError(f"Unknown correction {correction!r}: use None or one of {CORRECTIONS}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")


def check_sets(experimental_sets: Sequence[Sequence[Concept]]) -> None:
    r"""
    Checks that ``experimental_sets`` is a non-empty list of sets of at least two distinct concepts.

    Args:
        experimental_sets (sequence of sequence of Concept): The concept sets.
    """
    if not isinstance(experimental_sets, (list, tuple)) or len(experimental_sets) == 0:
        raise ValueError("experimental_sets is empty: give a list of concept sets, e.g. [[striped, dotted]].")
    for concepts in experimental_sets:
        if not isinstance(concepts, (list, tuple)) or len(concepts) < 2:
            raise ValueError(
                f"Each experimental set needs at least two concepts (relative CAVs separate a concept from "
                f"the others of its set), got {concepts!r}."
            )
        for c in concepts:
            if not isinstance(c, Concept):
                raise TypeError(f"Experimental sets hold captum.concept.Concept objects, got {type(c).__name__}.")
        ids = [c.id for c in concepts]
        if len(set(ids)) != len(ids):
            raise ValueError(f"An experimental set repeats a concept id: {ids}.")


def register_concepts(known: Set[Concept], concepts: Sequence[Concept]) -> None:
    r"""
    Adds concepts to a TCAV's ``concepts``, refusing a second Concept object with a known id.

    Args:
        known (set[Concept]): The concepts registered so far (updated).
        concepts (sequence of Concept): The concepts to add.
    """
    for c in concepts:
        for other in known:
            if other.id == c.id and other is not c:
                raise ValueError(
                    f"Two different Concept objects share id {c.id} ({other.name!r} and {c.name!r}); "
                    "CAVs are stored by concept id, so reuse one instance per concept."
                )
        known.add(c)


def check_random_concepts(
    random_concepts: Sequence[Concept], experimental_sets: Sequence[Sequence[Concept]]
) -> List[Concept]:
    r"""
    Checks the random concepts of Captum's random-concept test.

    Args:
        random_concepts (sequence of Concept): At least 3 concepts, ids distinct from the sets'.
        experimental_sets (sequence of sequence of Concept): The tested concept sets.

    Returns:
        list[Concept]: The random concepts.
    """
    random_concepts = list(random_concepts)
    if len(random_concepts) < 3:
        raise ValueError(
            f"Captum's random-concept test needs at least 3 random concepts (a reference r_0 and two or more "
            f"partners, so that each side of the t-test has 2 scores), got {len(random_concepts)}."
        )
    for c in random_concepts:
        if not isinstance(c, Concept):
            raise TypeError(f"random_concepts holds captum.concept.Concept objects, got {type(c).__name__}.")
    set_ids = {c.id for concepts in experimental_sets for c in concepts}
    clash = [c.id for c in random_concepts if c.id in set_ids]
    if clash:
        raise ValueError(f"Random concepts reuse ids {clash} of the experimental sets' concepts.")
    return random_concepts


def split_batches(
    inputs: Any, target: TargetLike, additional_forward_args: Any, batch_size: int, model: Optional[Module] = None
) -> List[Batch]:
    r"""
    Checks the target examples and cuts them, a per-example target and the per-example
    additional forward arguments into batches of ``batch_size`` rows.

    Args:
        model (Module, optional): The model, whose inputs are validated
                    (:func:`~captum_attn_shapley._utils.validation.check_inputs`).
        inputs (Tensor or tuple[Tensor, ...]): The examples, along dim 0.
        target (int, list, Tensor, optional): Captum-style target.
        additional_forward_args (Any, optional): Extra model arguments; tensors with one row
                    per example are cut, anything else is passed whole to every batch.
        batch_size (int): Rows per batch.

    Returns:
        list[Batch]: ``(inputs, target, additional_forward_args)`` per batch.
    """
    inputs_tuple = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if len(inputs_tuple) == 0 or not isinstance(inputs_tuple[0], Tensor) or inputs_tuple[0].dim() == 0:
        raise ValueError("inputs must be a tensor (or tuple of tensors) with the examples along dim 0.")
    n = inputs_tuple[0].shape[0]
    if n == 0:
        raise ValueError("inputs hold no examples: give at least one target example.")
    check_inputs(model, inputs_tuple, additional_forward_args)
    extra = forward_args_tuple(additional_forward_args)
    for t in inputs_tuple[1:] + extra:
        if isinstance(t, Tensor) and t.dim() > 0 and t.shape[0] != n:
            raise ValueError(
                f"inputs have {n} examples but another input or additional_forward_args tensor has "
                f"{t.shape[0]} rows: they must match (one row per example)."
            )
    per_example_target = isinstance(target, (list, tuple)) or (
        isinstance(target, Tensor) and target.dim() == 1 and target.numel() > 1
    )
    if per_example_target and len(target) != n:  # type: ignore[arg-type]
        raise ValueError(f"`target` has {len(target)} entries for {n} examples.")  # type: ignore[arg-type]

    def cut(t: Any, start: int, stop: int) -> Any:
        return t[start:stop] if isinstance(t, Tensor) and t.dim() > 0 and t.shape[0] == n else t

    batches = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        tgt = target[start:stop] if per_example_target else target  # type: ignore[index]
        batches.append(
            (tuple(cut(t, start, stop) for t in inputs_tuple), tgt, tuple(cut(t, start, stop) for t in extra))
        )
    return batches
