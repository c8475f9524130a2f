"""The method names of the package, and what builds each method: one registry for the CLI, the
comparison runner and the Insights app.

Two sets of names:

- the attention methods (:data:`ATTENTION_METHODS`): the six exact variants of
  :class:`~captum_attn_shapley.attr.AttnGradShapley` by their paper names
  (:data:`~captum_attn_shapley.attr.PAPER_VARIANTS`), ``Att`` and ``Grad-SAM``; what
  ``captum-attn-shapley explain`` shows, built by :func:`attention_method`;
- the comparison's methods (:func:`standard_method_names`): those, the sampling
  estimators, ``Shapley-Input``, ``SHAP`` and Captum's own methods, each built as a
  :class:`~captum_attn_shapley.evaluation.MethodSpec` by :func:`standard_methods`.

:func:`resolve_attention_methods` and :func:`resolve_standard_methods` turn the loose
spellings the CLI accepts into these names.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

from torch.nn import Module

from captum_attn_shapley._utils.deprecation import renamed_keyword
from captum_attn_shapley.attr import (
    PAPER_VARIANTS,
    AttentionAttribution,
    AttentionReceived,
    AttnGradShapley,
    AttnLRP,
    GradSAM,
)
from captum_attn_shapley.evaluation._builders import (
    _BUILDERS,
    EXTENDED_VARIANTS,
    ROWS_PER_FORWARD,
    SAMPLING_ESTIMATORS,
    _Setting,
)
from captum_attn_shapley.evaluation.adapters import classifier_forward
from captum_attn_shapley.evaluation.spec import MethodSpec
from captum_attn_shapley.metrics import Replacement

#: The attention baselines next to the Shapley variants, by name: their class.
ATTENTION_BASELINES: Dict[str, Type[AttentionAttribution]] = {"Att": AttentionReceived, "Grad-SAM": GradSAM}

#: The attention methods (what ``explain`` shows), in order: the six paper variants, the extended variants,
#: ``Att``, ``Grad-SAM``, ``AttnLRP``.
ATTENTION_METHODS: Tuple[str, ...] = (
    tuple(PAPER_VARIANTS) + tuple(EXTENDED_VARIANTS) + tuple(ATTENTION_BASELINES) + ("AttnLRP",)
)

#: The attention attribution classes, one per family (the methods offered in Captum Insights).
ATTENTION_CLASSES: Tuple[Type[AttentionAttribution], ...] = (AttnGradShapley, GradSAM, AttentionReceived)


#: Methods of :func:`standard_methods` left out of its default set (they have limits).
OPT_IN_METHODS: Tuple[str, ...] = ("SHAP", "Shapley-Input") + tuple(
    name for name, (_, weighting, signed) in EXTENDED_VARIANTS.items() if signed or weighting == "ig_attention"
)


def attention_method(
    name: str, forward_func: Callable[..., Any], special_token_ids: Optional[Sequence[int]] = None
) -> AttentionAttribution:
    r"""
    Builds one of the :data:`ATTENTION_METHODS` by name.

    Args:
        name (str): A name of :data:`ATTENTION_METHODS` (see :func:`resolve_attention_methods`).
        forward_func (Callable or Module): The model, or its forward function.
        special_token_ids (sequence of int, optional): Tokens that are not players.

    Returns:
        AttentionAttribution: The method.

    Examples::

        >>> method = attention_method("Shapley-Grad-Att-Max-Mutual", model, tokenizer.all_special_ids)
        >>> method.attribute(input_ids, target=1, additional_forward_args=(attention_mask,))
    """
    if name in PAPER_VARIANTS:
        game, weighting = PAPER_VARIANTS[name]
        return AttnGradShapley(forward_func, game=game, weighting=weighting, special_token_ids=special_token_ids)
    if name in EXTENDED_VARIANTS:
        game, weighting, signed = EXTENDED_VARIANTS[name]
        return AttnGradShapley(
            forward_func, game=game, weighting=weighting, signed=signed, special_token_ids=special_token_ids
        )
    if name in ATTENTION_BASELINES:
        return ATTENTION_BASELINES[name](forward_func, special_token_ids=special_token_ids)
    if name == "AttnLRP":
        return AttnLRP(forward_func)
    raise ValueError(f"Unknown attention method {name!r}; choose from: {', '.join(ATTENTION_METHODS)}.")


def _attention_key(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    return key if key.startswith("shapley-") or key in ("att", "grad-sam", "attnlrp") else "shapley-" + key


def _standard_key(name: str) -> str:
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    return key[len("shapley") :] if key.startswith("shapley") and key != "shapleyvaluesampling" else key


def _resolve(names: Sequence[str], known: Sequence[str], key: Callable[[str], str]) -> List[str]:
    by_key = {key(n): n for n in known}
    resolved: List[str] = []
    for name in names:
        if name.lower() == "all":
            resolved += [n for n in known if n not in resolved]
            continue
        if key(name) not in by_key:
            raise ValueError(f"unknown method {name!r}; choose from: {', '.join(known)}")
        if by_key[key(name)] not in resolved:
            resolved.append(by_key[key(name)])
    return resolved


def resolve_attention_methods(names: Sequence[str]) -> List[str]:
    r"""
    Resolves names of attention methods as the CLI accepts them.

    Args:
        names (sequence of str): Paper names (``Shapley-Grad-Att-Max-Mutual``), short
                    forms (``grad-att-max-mutual``, ``grad_att_max_mutual``), ``Att``,
                    ``Grad-SAM`` (case ignored), or ``all``.

    Returns:
        list[str]: Names of :data:`ATTENTION_METHODS`, in the order given, without repeats.

    Raises:
        ValueError: For an unknown name (the message lists the known ones).

    Examples::

        >>> resolve_attention_methods(["grad_att_max_mutual", "att"])
        ['Shapley-Grad-Att-Max-Mutual', 'Att']
    """
    return _resolve(names, ATTENTION_METHODS, _attention_key)


def resolve_standard_methods(names: Optional[Sequence[str]]) -> Optional[List[str]]:
    r"""
    Resolves names of :func:`standard_method_names` as the CLI accepts them (case, spaces
    and punctuation ignored, the ``Shapley-`` prefix optional; ``all`` for every one).

    Args:
        names (sequence of str, optional): Names, or None for the default set.

    Returns:
        list[str] or None: Names of :func:`standard_method_names`, in the order given, without repeats.

    Raises:
        ValueError: For an unknown name (the message lists the known ones).

    Examples::

        >>> resolve_standard_methods(["KERNELSHAP", "grad-att-max-mutual-permutation-100"])
        ['KernelShap', 'Shapley-Grad-Att-Max-Mutual (permutation, 100)']
    """
    if names is None:
        return None
    return _resolve(names, standard_method_names(), _standard_key)


def standard_method_names() -> List[str]:
    r"""
    Names accepted by :func:`standard_methods`, in the paper's order.

    Returns:
        list[str]: The names.

    Examples::

        >>> standard_method_names()[:2]
        ['Shapley-Att-CLS', 'Shapley-Att-Mutual']
    """
    return list(_BUILDERS)


@renamed_keyword("replacement", "baselines")
def standard_methods(
    model: Module,
    tokenizer: Any,
    names: Optional[Sequence[str]] = None,
    batch_size: int = 16,
    baselines: Replacement = "mask",
) -> List[MethodSpec]:
    r"""
    The paper's methods (sections "Games and their Shapley values" and "The baselines" on
    :doc:`the mathematics page </mathematics>`) for a Hugging Face text classifier, ready for
    :func:`~captum_attn_shapley.evaluation.run_comparison`.

    - the six exact variants ``Shapley-[Grad-]Att-{CLS,Mutual,Max-Mutual}``;
    - ``Shapley-Grad-Att-Max-Mutual (permutation|kernel, 100|1000)``: the unbiased
      sampling estimators on the same game;
    - the extended variants (:data:`EXTENDED_VARIANTS`): ``Shapley-LRP-Att-*`` (in the default set),
      ``Shapley-IG-Att-*`` and ``Shapley-Signed-*`` (opt-in: :data:`OPT_IN_METHODS`);
    - ``Att``, ``Grad-SAM``, ``Chefer-Rollout`` (:class:`~captum_attn_shapley.attr.GradientRollout`),
      ``AttnLRP`` (:class:`~captum_attn_shapley.attr.AttnLRP`);
      ``Shapley-Input`` (exact, 2^n forwards: short inputs only,
      refused above 15 players); ``SHAP`` (the ``shap`` library's partition explainer,
      optional extra ``[shap]``, ``max_evals=500``);
    - Captum's ``LayerIntegratedGradients`` (embeddings, ``n_steps=50``, [PAD] baseline on
      the players), ``KernelShap`` (``n_samples=200``), ``ShapleyValueSampling``
      (``n_samples=25``), ``Lime`` (``n_samples=200``), ``FeatureAblation`` (each player a
      feature, replaced by ``baselines``) and ``InputXGradient`` (gradient times
      activation of the embeddings, Captum's ``LayerGradientXActivation``). Captum's
      defaults otherwise; the perturbation methods evaluate ``ROWS_PER_FORWARD`` rows per
      forward pass.

    Args:
        model (Module): The classifier.
        tokenizer: Its tokenizer.
        names (sequence of str, optional): A subset of :func:`standard_method_names`
                    (default: all except ``SHAP`` and ``Shapley-Input``, which have limits).
        batch_size (int): The comparison's batch size, in examples per ``attribute`` call
                    (sets ``perturbations_per_eval`` of the batched perturbation methods).
        baselines (int or str): The token of the perturbation methods' baselines.

    Returns:
        list[MethodSpec]: The methods, in the order of ``names``.

    Examples::

        >>> methods = standard_methods(model, tokenizer, ["Shapley-Grad-Att-Max-Mutual", "KernelShap"])
        >>> run_comparison(model, tokenizer, texts, labels, methods)
    """
    known = standard_method_names()
    if names is None:
        names = [n for n in known if n not in OPT_IN_METHODS]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; choose from: {', '.join(known)}.")
    setting = _Setting(
        model=model,
        tokenizer=tokenizer,
        forward=classifier_forward(model),
        special=list(tokenizer.all_special_ids),
        per_eval=max(1, ROWS_PER_FORWARD // batch_size),
        replacement=baselines,
    )
    return [_BUILDERS[name](name, setting) for name in names]


__all__ = [
    "ATTENTION_BASELINES",
    "ATTENTION_CLASSES",
    "ATTENTION_METHODS",
    "EXTENDED_VARIANTS",
    "OPT_IN_METHODS",
    "ROWS_PER_FORWARD",
    "SAMPLING_ESTIMATORS",
    "attention_method",
    "resolve_attention_methods",
    "resolve_standard_methods",
    "standard_method_names",
    "standard_methods",
]
