#!/usr/bin/env python3
"""The attention-weighted token gradient of a transformer block, as a Captum layer attribution.

For a block's output token states ``h_t`` and the target logit ``y``, the attribution of token ``t`` is
``a_t * dy/dh_t``, with ``a_t`` the classification token's attention to ``t`` in that block's attention
(averaged over heads). It is the quantity T-TCAV projects on a concept vector (see the mathematics page of the
documentation, section "Token-level concept sensitivity (T-TCAV)"), and the ``layer_attr_method`` of
:class:`~captum_attn_shapley.concept.TokenTCAV` and, for flattened token states, of Captum's own
:class:`~captum.concept.TCAV`.
"""

from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from captum.attr import GradientAttribution, LayerAttribution
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley._utils.validation import (
    GradientCheckedForward,
    check_architecture,
    check_inputs,
    check_not_compiled,
    unwrap_compiled,
)
from captum_attn_shapley.attr.layer_attention import attention_layer_calls
from captum_attn_shapley.capture import (
    AttentionCapture,
    CapturedAttention,
    InfluenceRequest,
    ModuleSpec,
    OutputSelector,
    find_model,
)
from captum_attn_shapley.capture.players import real_token_mask

#: What the attention weighting reads of the attention: per layer, the classification row averaged over heads.
CLS_ROWS = InfluenceRequest("layer_cls_rows", "attention")


class TokenTerms(NamedTuple):
    r"""
    The factors of one block's attention-weighted token gradient, for a batch.

    Args:
        gradients (Tensor): ``dy/dh_t``, the target logit's gradient w.r.t. the block's output token states,
                    ``(batch, T, hidden)`` (float32).
        weights (Tensor): ``a_t``, the classification token's attention to each token averaged over heads
                    (or ones without attention weighting), zero at padding, ``(batch, T)``.
        valid (Tensor): The non-padding tokens, bool ``(batch, T)``.
    """

    gradients: Tensor
    weights: Tensor
    valid: Tensor

    @property
    def attribution(self) -> Tensor:
        """``a_t * dy/dh_t``, shape ``(batch, T, hidden)``."""
        return self.weights.unsqueeze(-1) * self.gradients


class LayerAttentionWeightedGradient(LayerAttribution, GradientAttribution):  # type: ignore[misc]  # captum: Any
    r"""
    The gradient of the target logit w.r.t. a transformer block's output token states, each token's
    gradient weighted by the classification token's attention to it in that block:
    ``A_t = a_t * dy/dh_t`` for every token ``t`` (Vision Transformer patches, word pieces).

    ``a_t`` is the row of the classification token (the model's rule, e.g. ``[CLS]`` at position 0) in
    the block's own attention probabilities, averaged over heads; it is zero at padding (the attention mask
    the model receives), where the attribution is zero too. A Captum layer attribution with gradient
    semantics like :class:`captum.attr.LayerGradientXActivation` with ``multiply_by_inputs=False`` (the local
    gradient, here weighted by attention); one forward and one backward pass for all of ``layer``'s blocks.

    Summed over tokens and projected on a concept activation vector ``v`` it is the T-TCAV example score
    ``s(x) = sum_t a_t (dy/dh_t . v)`` of :class:`~captum_attn_shapley.concept.TokenTCAV`, whose
    ``layer_attr_method`` it is. Given to Captum's own :class:`~captum.concept.TCAV` as
    ``layer_attr_method``, the attributions are flattened to ``(batch, T * hidden)`` and dotted with a CAV
    trained on the flattened block outputs (one weight per token and feature), not with TokenTCAV's
    token-level CAV shared by all tokens.

    Args:
        forward_func (Callable): The model, or a function wrapping it that returns logits.
        layer (Module, list of Module or None): A transformer block whose output is the token sequence its
                    attention module sees (e.g. ``model.vit.layers[4]`` or
                    ``model.bert.encoder.layer[4]``), or a list of them (the attributions are then a list, as
                    in Captum's layer methods). Each block must hold exactly one of the model's attention
                    modules (see :func:`~captum_attn_shapley.attr.attention_layer_calls`). None: set ``layer``
                    before calling :meth:`attribute` (Captum's ``TCAV`` sets it for each of its layers).
        model (Module, optional): The model behind ``forward_func`` when it cannot be found automatically.
        attention_modules, attention_output_index, switch_to_eager: As for
                    :class:`~captum_attn_shapley.AttentionCapture` (models that do not declare their
                    attention; eager attention switching).
        attention_weighting (bool): Weight each token's gradient by the classification token's attention.
                    If False, ``a_t`` is 1 at every non-padding token (the block's gradient, zero at
                    padding). Default: True

    Examples::

        >>> from captum.concept import TCAV
        >>> from captum_attn_shapley.attr import LayerAttentionWeightedGradient
        >>> block = vit.vit.layers[4]
        >>> method = LayerAttentionWeightedGradient(vit, block)
        >>> attributions = method.attribute(pixel_values, target=3)   # (batch, 1 + patches, hidden)
        >>> tcav = TCAV(vit, ["vit.layers.4"], layer_attr_method=LayerAttentionWeightedGradient(vit, None))
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: Union[None, Module, List[Module]],
        model: Optional[Module] = None,
        attention_modules: Optional[Sequence[ModuleSpec]] = None,
        attention_output_index: OutputSelector = 1,
        switch_to_eager: bool = True,
        attention_weighting: bool = True,
    ) -> None:
        forward_func = unwrap_compiled(forward_func)  # a torch.compile'd model: its eager module, same weights
        model = find_model(forward_func, unwrap_compiled(model))
        check_not_compiled(model)
        check_architecture(model)
        if not isinstance(attention_weighting, bool):
            raise TypeError(f"attention_weighting must be True or False, got {attention_weighting!r}.")
        LayerAttribution.__init__(self, forward_func, layer)
        GradientAttribution.__init__(self, forward_func)
        checked = forward_func if isinstance(forward_func, GradientCheckedForward) else None  # TokenTCAV's
        self.capturer = AttentionCapture(
            checked if checked is not None else GradientCheckedForward(forward_func),
            model=model,
            attention_modules=attention_modules,
            attention_output_index=attention_output_index,
            switch_to_eager=switch_to_eager,
        )
        self.attention_weighting = attention_weighting

    @property
    def multiplies_by_inputs(self) -> bool:
        """False: the attribution is a (weighted) gradient, not multiplied by the layer's activations."""
        return False

    def _blocks(self) -> List[Module]:
        layer = self.layer
        blocks = layer if isinstance(layer, (list, tuple)) else [layer]
        if layer is None or not blocks or not all(isinstance(b, Module) for b in blocks):
            raise TypeError(
                f"`layer` must be a transformer block (torch.nn.Module) or a non-empty list of them, got "
                f"{layer!r}. Set it, e.g. `method.layer = model.vit.encoder.layer[4]`."
            )
        return list(blocks)

    def attention_indices(self) -> List[int]:
        r"""
        The layer index (attention call) of each block's attention module.

        Returns:
            list[int]: One index per block of ``layer``, in order.

        Raises:
            ValueError: If a block holds no attention module or more than one, or its attention module runs
                        more than once per forward pass (a shared layer: its output has no single attention).
        """
        indices = []
        for block in self._blocks():
            calls = attention_layer_calls(self.capturer, block)
            if len(calls) != 1:
                raise ValueError(
                    f"`layer` {type(block).__name__} runs its attention {len(calls)} times per forward pass (a "
                    "shared layer); the attention-weighted gradient needs a block that runs once."
                )
            indices.append(calls[0])
        return indices

    def capture(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
    ) -> CapturedAttention:
        r"""
        One forward and one backward pass: the classification rows of the blocks' attention and the
        gradients of the target logits w.r.t. the blocks' output token states (the pass behind
        :meth:`attribute`; read its factors with :meth:`token_terms`).

        Args:
            inputs (Tensor or tuple[Tensor, ...]): The model inputs (``pixel_values`` or ``input_ids``).
            target (int, list, Tensor, optional): Captum-style target; default: the predicted class.
            additional_forward_args (Any, optional): Extra model arguments, e.g. the attention mask.

        Returns:
            CapturedAttention: With ``state_gradients`` of the blocks, in order, and ``layer_rows``.
        """
        check_inputs(self.capturer.model, inputs, additional_forward_args)
        blocks, indices = self._blocks(), self.attention_indices()
        return self.capturer.capture(
            inputs,
            target=target,
            additional_forward_args=additional_forward_args,
            layers=sorted(set(indices)),
            state_modules=blocks,
            state_gradients=True,
            request=CLS_ROWS,
        )

    def token_terms(self, captured: CapturedAttention) -> List[TokenTerms]:
        r"""
        The factors ``a_t`` and ``dy/dh_t`` of each block's attribution, from a :meth:`capture` of the same
        blocks.

        Args:
            captured (CapturedAttention): The capture.

        Returns:
            list[TokenTerms]: One per block of ``layer``, in order.
        """
        assert captured.state_gradients is not None and captured.layer_rows is not None
        position = {idx: i for i, idx in enumerate(captured.layer_indices)}
        out = []
        for block, idx, grad in zip(self._blocks(), self.attention_indices(), captured.state_gradients):
            batch, tokens = grad.shape[0], grad.shape[1]
            valid = real_token_mask(captured, batch, tokens, grad.device)
            cls_attention = captured.layer_rows[position[idx]].float()
            if cls_attention.shape[-1] != tokens:
                raise RuntimeError(
                    f"Block {type(block).__name__} has {tokens} token states but its attention covers "
                    f"{cls_attention.shape[-1]} tokens; give blocks whose output is the token sequence the "
                    "attention sees."
                )
            weight = cls_attention if self.attention_weighting else torch.ones_like(cls_attention)
            out.append(TokenTerms(grad.float(), weight * valid, valid))
        return out

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
    ) -> Union[Tensor, List[Tensor]]:
        r"""
        The attention-weighted token gradients ``a_t * dy/dh_t`` of the block(s) ``layer``.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): The model inputs, batch first.
            target (int, list, Tensor, optional): The class whose logit is differentiated, as in Captum;
                        default: the predicted class.
            additional_forward_args (Any, optional): Extra model arguments, e.g. the attention mask.
            attribute_to_layer_input (bool): Must be False: the attribution is to the block's output (the
                        token states its attention row weights). Accepted because Captum's ``TCAV`` passes it.

        Returns:
            Tensor or list[Tensor]: ``(batch, T, hidden)`` (float32) per block; a list when ``layer`` is a list.
        """
        if attribute_to_layer_input:
            raise ValueError(
                "attribute_to_layer_input=True is not supported: the attention-weighted gradient is taken "
                "w.r.t. a block's output. To use a block's input, give the previous block as `layer`."
            )
        terms = self.token_terms(self.capture(inputs, target, additional_forward_args))
        attributions = [term.attribution for term in terms]
        return attributions if isinstance(self.layer, (list, tuple)) else attributions[0]
