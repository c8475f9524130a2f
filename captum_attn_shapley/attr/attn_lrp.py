#!/usr/bin/env python3
"""AttnLRP (Achtibat et al., ICML 2024): attention-aware layer-wise relevance propagation, a Captum attribution."""

from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.forward import as_tuple
from captum_attn_shapley._utils.input_warnings import warn_below_precision
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.attr.attention_attribution import AttentionAttribution
from captum_attn_shapley.capture import InfluenceRequest
from captum_attn_shapley.capture.lrp_rules import unsupported_norms
from captum_attn_shapley.capture.players import ClassificationPosition, infer_layout

#: What AttnLRP's capture reduces besides the relevance: the last layer's classification row (the least work
#: the capture can be asked for; the relevance itself comes from the embeddings' gradient).
_REQUEST = InfluenceRequest("cls_row", "lrp_attention")


class AttnLRP(AttentionAttribution):
    r"""
    AttnLRP (Achtibat et al., "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for Transformers",
    ICML 2024): the relevance of each input token to the target logit, from one forward and one modified
    backward pass (see :doc:`the AttnLRP page </attnlrp>`).

    The backward pass applies the paper's rules, written as gradient x input: the identity rule through
    LayerNorm / RMSNorm (the normalising denominator held constant) and element-wise non-linearities (GELU,
    SiLU, tanh, ...: the relevance passes unchanged), the uniform rule on the bilinear products of the
    attention (``Q K^T`` and ``A V``: each factor gets half) and of gated MLPs, the softmax rule, and the
    plain gradient through linear layers. A token's relevance is the sum over the embedding dimension of its
    input embedding times this modified gradient of the target logit: ``R_t = sum_d e_td dy/de_td``, where
    ``e`` is the output of ``embeddings`` (default: the model's input embeddings: word embeddings for text,
    the patch projection for Vision Transformers, which gives one relevance per patch).

    The model's forward pass, and so its logits, are unchanged (the rules change the backward pass only,
    for this call: nothing stays on the model). The relevances approximately sum to the target logit
    (conservation); what the biases, the position embeddings, the normalisations' shifts and the softmax's
    linearisation absorb is the convergence delta ``sum_t R_t - y``.

    Supported: Hugging Face models whose attention runs through transformers' registry (the fused capture;
    a model on eager attention is switched to ``sdpa`` for each call and restored): BERT-like encoders
    (BERT, MiniLM, RoBERTa, DistilBERT, ...), ViT/DeiT and decoder models (GPT-2, Llama-style; classifiers
    read at the classification position), in eval mode.

    Args:
        forward_func (Callable or Module): The model, or a Captum-style function wrapping it that returns
                    logits (or a Hugging Face output with ``logits``).
        model (Module, optional): The model behind ``forward_func`` when it cannot be found automatically.
        embeddings (Module, optional): The module whose output, ``(batch, tokens, dim)``, holds the input
                    embeddings the relevance is read at. Default: ``model.get_input_embeddings()``.
        classification_position (None, str or int): Where the model's head reads (decoder classifiers: the last
                    real token); see :class:`AttentionAttribution`.
        engine (str): ``"auto"`` (default) or ``"fused"``; AttnLRP's attention rules live in the fused capture.

    Examples::

        >>> from captum_attn_shapley.attr import AttnLRP
        >>> model = AutoModelForSequenceClassification.from_pretrained(name).eval()   # sdpa attention
        >>> enc = tokenizer(["the crew was rude"], return_tensors="pt", padding=True)
        >>> lrp = AttnLRP(model)
        >>> relevance, delta = lrp.attribute(enc["input_ids"], additional_forward_args=(enc["attention_mask"],),
        ...                                  return_convergence_delta=True)
        >>> relevance.shape   # (batch, seq_len); delta = relevance.sum(1) - target logit
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        model: Optional[Module] = None,
        embeddings: Optional[Module] = None,
        classification_position: ClassificationPosition = None,
        engine: str = "auto",
    ) -> None:
        if engine not in ("auto", "fused"):
            raise ValueError(
                f"engine={engine!r}: AttnLRP's attention rules are part of the fused capture; use engine='auto' "
                "or 'fused' (a Hugging Face model with attn_implementation='sdpa')."
            )
        super().__init__(forward_func, model=model, classification_position=classification_position, engine=engine)
        implementations = self.capturer._implementations()
        if not implementations or any(impl not in ("sdpa", "eager") for impl in implementations):
            raise ValueError(
                f"AttnLRP needs a Hugging Face model whose attention runs through transformers' registry with "
                f"sdpa or eager attention (eager is switched to sdpa for each call: the rules live in the fused "
                f"capture); {type(self.model).__name__} uses {implementations or 'no registered attention'}. "
                "Load it with attn_implementation='sdpa'."
            )
        unknown = unsupported_norms(self.model)
        if unknown:
            raise ValueError(
                f"AttnLRP has rules for LayerNorm and RMSNorm only; {type(self.model).__name__} has "
                f"{', '.join(unknown[:3])}{' ...' if len(unknown) > 3 else ''}. Use a model with those norms."
            )
        if embeddings is not None and not isinstance(embeddings, Module):
            raise TypeError(f"embeddings must be a torch.nn.Module (or None), got {type(embeddings).__name__}.")
        self._embeddings = embeddings

    @classmethod
    def get_name(cls) -> str:
        return "AttnLRP"

    def has_convergence_delta(self) -> bool:
        return True

    @property
    def embeddings(self) -> Module:
        """The module whose output the relevance is read at (see the class docstring)."""
        if self._embeddings is not None:
            return self._embeddings
        get = getattr(self.model, "get_input_embeddings", None)
        module = get() if callable(get) else None
        if not isinstance(module, Module):
            raise ValueError(
                f"{type(self.model).__name__} has no get_input_embeddings(): pass embeddings=<the module whose "
                "output is the (batch, tokens, dim) input embeddings>."
            )
        return module

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, ...], Tuple[Union[Tensor, Tuple[Tensor, ...]], Tensor]]:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): The model inputs, batch first: ``input_ids`` (batch, seq_len)
                        for text, ``pixel_values`` (batch, 3, H, W) for images. Called as
                        ``forward_func(*inputs, *additional_forward_args)``.
            target (int, list[int], Tensor, optional): The class whose logit is explained, as in Captum; default:
                        the predicted class.
            additional_forward_args (Any, optional): Extra positional arguments of ``forward_func``, e.g.
                        ``(attention_mask,)``.
            return_convergence_delta (bool): Also return ``sum_t R_t - y`` per example (conservation).

        Returns:
            **attributions** or 2-element tuple of **attributions**, **delta**:
            - **attributions** (*Tensor* or *tuple[Tensor, ...]*): Text: ``(batch, seq_len)``, every token's
                        relevance (special tokens included; padding gets what the model gives it, ~0). Images:
                        per-patch relevances ``(batch, rows, cols)``. For tuple inputs, a tuple whose first
                        element holds them (the others are zeros).
            - **delta** (*Tensor*, returned if return_convergence_delta=True): ``(batch,)``, the sum of the
                        relevances minus the target logit.
        """
        self._check_call(inputs, additional_forward_args, None, None)
        embeddings = self.embeddings
        captured = self.capturer.capture(
            inputs,
            target=target,
            additional_forward_args=additional_forward_args,
            layers=[-1],
            state_modules=[embeddings],
            state_gradients=True,
            request=_REQUEST,
            classification_position=self.classification_position,
        )
        assert captured.states is not None and captured.state_gradients is not None
        state, gradient = captured.states[0], captured.state_gradients[0]
        if state.dim() != 3:
            raise ValueError(
                f"The embeddings module {type(embeddings).__name__} returned shape {tuple(state.shape)}; AttnLRP "
                "reads (batch, tokens, dim) input embeddings: pass embeddings=<such a module>."
            )
        relevance = (state.float() * gradient.float()).sum(dim=-1)
        layout = infer_layout(captured, self.model, as_tuple(inputs), self.classification_position)
        offset = layout.num_tokens - relevance.shape[1]
        if offset < 0 or (offset > 0 and layout.kind != "image"):
            raise ValueError(
                f"The embeddings module {type(embeddings).__name__} has {relevance.shape[1]} tokens, the "
                f"attention {layout.num_tokens}: pass embeddings=<the module of the input token embeddings>."
            )
        tokens = torch.nn.functional.pad(relevance, (offset, 0))  # images: no relevance for the prefix tokens
        attributions = self._format_output(inputs, tokens, layout)
        warn_below_precision(attributions, self.model)
        if not return_convergence_delta:
            return attributions
        logit = captured.logits.float().gather(1, captured.target.view(-1, 1).to(captured.logits.device))[:, 0]
        return attributions, relevance.sum(dim=1) - logit.to(relevance.device)

    def compute_convergence_delta(self, attributions: Union[Tensor, Tuple[Tensor, ...]], *args: Any) -> Tensor:
        r"""
        Not available separately: call :meth:`attribute` with ``return_convergence_delta=True`` (the delta
        needs the same pass's target logit).
        """
        raise NotImplementedError(
            "AttnLRP's convergence delta comes with attribute(..., return_convergence_delta=True)."
        )
