"""Adapters from a Hugging Face sequence classifier to what Captum's methods expect."""

from typing import Callable

from torch import Tensor
from torch.nn import Module


def classifier_forward(model: Module) -> Callable[[Tensor, Tensor], Tensor]:
    r"""
    A Captum-style forward function of a Hugging Face sequence classifier.

    Args:
        model (Module): The classifier.

    Returns:
        Callable: ``forward(input_ids, attention_mask) -> logits``.

    Examples::

        >>> forward = classifier_forward(model)
        >>> AttnGradShapley(forward).attribute(input_ids, additional_forward_args=(attention_mask,))
    """

    def forward(input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        logits: Tensor = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits

    return forward


def embedding_layer(model: Module) -> Module:
    r"""
    The embedding module of a Hugging Face encoder (words, positions and token types), the
    layer ``LayerIntegratedGradients`` attributes to.

    Args:
        model (Module): The classifier.

    Returns:
        Module: ``model.base_model.embeddings`` if present, else the input embeddings.

    Examples::

        >>> LayerIntegratedGradients(classifier_forward(model), embedding_layer(model))
    """
    base = getattr(model, "base_model", model)
    layer = getattr(base, "embeddings", None)
    if isinstance(layer, Module):
        return layer
    embeddings: Module = model.get_input_embeddings()  # type: ignore[operator]
    return embeddings
