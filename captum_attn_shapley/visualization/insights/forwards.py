#!/usr/bin/env python3
"""Hugging Face classifiers as the models Captum Insights' text and image features need."""

from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.forward import logits_from_output


class TextEmbeddingForward(Module):
    r"""
    A Hugging Face text classifier as Insights' ``TextFeature`` needs it: the model input
    is the word embeddings (what Captum's gradient methods attribute to), and the token ids
    come along as an additional forward argument so that the attention methods know which
    tokens are special (never players).

    ``forward(inputs_embeds, input_ids=None, attention_mask=None)`` returns the logits;
    ``input_ids`` is not used by the model.

    Args:
        model (Module): The Hugging Face sequence classifier.

    Examples::

        >>> forward = TextEmbeddingForward(model)
        >>> ids = tokenizer(["great crew"], return_tensors="pt")["input_ids"]
        >>> logits = forward(forward.embed(ids), ids)
    """

    def __init__(self, model: Module) -> None:
        super().__init__()
        self.model = model

    def embed(self, input_ids: Tensor) -> Tensor:
        r"""
        The word embeddings of ``input_ids``.

        Args:
            input_ids (Tensor): Token ids, any shape.

        Returns:
            Tensor: Their word embeddings, shape ``(*input_ids.shape, hidden)``.
        """
        embedded: Tensor = self.model.get_input_embeddings()(input_ids)  # type: ignore[operator]
        return embedded

    def forward(
        self, inputs_embeds: Tensor, input_ids: Optional[Tensor] = None, attention_mask: Optional[Tensor] = None
    ) -> Tensor:
        return logits_from_output(self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask))


class ImageLogitsForward(Module):
    r"""
    A Hugging Face image classifier returning plain logits, with the normalisation inside,
    so that Insights' ``ImageFeature`` can pass ``[0, 1]`` images.

    Args:
        model (Module): The Hugging Face image classifier.
        image_mean, image_std (sequence of float): The per-channel normalisation of the
                    model's image processor.
    """

    def __init__(self, model: Module, image_mean: Sequence[float], image_std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.tensor(list(image_mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(image_std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        pixel_values = (images - self.mean) / self.std
        return logits_from_output(self.model(pixel_values=pixel_values))
