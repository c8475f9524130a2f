#!/usr/bin/env python3
"""LLMAttnGradShapley: attention-game Shapley values of the tokens a causal language model generates."""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr import Attribution, LLMAttributionResult
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.checks import check_choice
from captum_attn_shapley._utils.input_warnings import warn_training_mode
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.validation import (
    check_architecture,
    check_layers,
    check_not_compiled,
    check_text_length,
    unwrap_compiled,
    vocabulary_size,
)
from captum_attn_shapley.attr._generation_inputs import (
    DEFAULT_GEN_ARGS,
    PromptLike,
    check_prompt_type,
    generate_target,
    make_result,
    output_tokens_of,
    prompt_of,
    target_ids,
)
from captum_attn_shapley.attr._generation_pass import generation_games
from captum_attn_shapley.capture import AttentionCapture, unique_ids
from captum_attn_shapley.capture.players import LAST_TOKEN_POOLING
from captum_attn_shapley.shapley import shapley_values
from captum_attn_shapley.shapley.games import BUILTIN_GAMES, check_game

__all__ = ["DEFAULT_GEN_ARGS", "LLMAttnGradShapley"]


def check_causal_lm(model: Any) -> Module:
    r"""
    Refuses, before any work, a model that is not a decoder-only causal language model.

    Args:
        model (Any): The given model.

    Returns:
        Module: The model (a ``torch.compile``'d model's eager module).
    """
    model = unwrap_compiled(model)
    if not isinstance(model, Module):
        raise TypeError(
            f"`model` must be a causal language model (torch.nn.Module, e.g. AutoModelForCausalLM), got "
            f"{type(model).__name__}."
        )
    check_not_compiled(model)
    check_architecture(model)
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    bidirectional = getattr(config, "is_decoder", None) is False and model_type not in LAST_TOKEN_POOLING
    if getattr(config, "is_encoder_decoder", False) or bidirectional:
        kind = "an encoder-decoder" if getattr(config, "is_encoder_decoder", False) else "a bidirectional"
        raise ValueError(
            f"`model` is {kind} model ({type(model).__name__}, model_type {model_type!r}): LLMAttnGradShapley "
            "explains decoder-only causal language models (GPT-2, Llama-style AutoModelForCausalLM), whose "
            "queries see only earlier keys. For a classifier use AttnGradShapley."
        )
    get_head = getattr(model, "get_output_embeddings", None)
    if callable(get_head) and get_head() is None:
        raise ValueError(
            f"`model` ({type(model).__name__}) has no language-modelling head: load it with "
            "AutoModelForCausalLM.from_pretrained(name), not a sequence classifier or a bare base model."
        )
    return model


#: The weightings of the generative games (the path and relevance weightings are for classifiers only).
GENERATION_WEIGHTINGS = ("attention", "grad_attention")


def _check_generation_weighting(weighting: str) -> str:
    return check_choice(
        weighting,
        GENERATION_WEIGHTINGS,
        "weighting",
        " (the 'ig_attention' and 'lrp_attention' weightings are implemented for classifiers: AttnGradShapley)",
    )


class LLMAttnGradShapley(Attribution):  # type: ignore[misc]  # captum ships no types: Attribution is Any
    r"""
    Exact Shapley values of attention games for the tokens a decoder-only causal language model
    generates (GPT-2, Llama-style ``AutoModelForCausalLM``), returned as Captum's
    ``LLMAttributionResult``, like Captum's ``LLMAttribution`` / ``LLMGradientAttribution``.

    For generated token ``y_t`` (``t = 0 .. n-1``) after a prompt of ``P`` tokens, the position
    ``c_t = P - 1 + t`` that predicts it plays the classification token's role; the players are the prompt's
    tokens (minus special tokens such as BOS, and a ``TextTokenInput``'s ``skip_tokens``); the gradient
    weighting uses ``G_t = d log p(y_t) / dA``. One teacher-forced forward pass over prompt + target gives
    every ``log p(y_t)`` and the attention; one batched backward pass (vectorised over the target tokens,
    chunked when memory demands) gives every ``G_t``. With ``M_t = mean_{l,h} A * relu(G_t)`` (or
    ``mean_{l,h} A``) restricted to the players:

    - ``"cls"``: ``phi_i = M_t[c_t, i]``: the predicting position's (weighted) attention to token ``i``;
    - ``"mutual"``: pair weights ``m_ij + m_ji``; ``"max_mutual"``: ``max(m_ij, m_ji)``, both by the closed
      form of the pairwise games.

    Under causal attention ``m_ij = 0`` for ``j > i`` and every entry is ``>= 0``, so ``max(m_ij, m_ji) =
    m_ij + m_ji`` off the diagonal: **Max-Mutual equals Mutual** (same game, same values). The closed forms
    hold for any square matrix, triangular ones included (tested against enumeration). **Meaningful
    variants**: the CLS game (both weightings) and the Grad-Att pairwise games depend on the target token;
    the attention-only pairwise games read only the prompt's own rows, which causal attention computes
    before any target token exists: every target gets the same values (a description of the prompt, not of
    the prediction). See :doc:`/generation`.

    ``token_attr`` is ``(n_target, n_features)``; ``seq_attr`` its sum over the target tokens (as Captum
    sums per-token log-probability attributions). Features: a ``TextTokenInput``'s tokens (a string is
    wrapped in one); a ``TextTemplateInput``'s values, each getting the SUM of its tokens' Shapley values
    (the tokens overlapping the value's characters; template text tokens play but are reported in no
    feature; grouped values by ``mask`` share their group's sum).

    Args:
        model (Module): The causal language model (``AutoModelForCausalLM``), in eval mode.
        tokenizer (Any): Its tokenizer (a fast one for ``TextTemplateInput``).
        game (str): ``"cls"`` (default), ``"mutual"`` or ``"max_mutual"``.
        weighting (str): ``"grad_attention"`` (default) or ``"attention"``.
        layers (sequence of int, optional): Layers to average over (default: all).
        special_token_ids (sequence of int, optional): Ids that never play. Default:
                    ``tokenizer.all_special_ids``.
        switch_to_eager (bool): For the hook engine: switch ``sdpa``/flash attention to eager for each
                    call (restored afterwards); if False such a model raises an error.
        targets_per_backward (int, optional): Target tokens per batched backward pass. Default: as many as
                    fit 128 MiB of attention gradients.
        engine (str): ``"auto"`` (default: ``"fused"`` for Hugging Face models on ``sdpa`` in eval mode,
                    else ``"hooks"``), ``"fused"`` (the model keeps its fused kernel; ``A`` and its gradient
                    are rebuilt from each call's query, key, value and output gradient) or ``"hooks"``
                    (eager attention for the call); see
                    :class:`~captum_attn_shapley.capture.AttentionCapture`.

    Examples::

        >>> model = AutoModelForCausalLM.from_pretrained(name).eval()
        >>> explainer = LLMAttnGradShapley(model, tokenizer, game="cls", weighting="grad_attention")
        >>> result = explainer.attribute(TextTokenInput("a = 3 , k = 7 ; k =", tokenizer), target=" 7")
        >>> result.token_attr.shape  # (target tokens, prompt tokens)
        >>> result.plot_token_attr(show=True)
    """

    def __init__(
        self,
        model: Module,
        tokenizer: Any,
        game: str = "cls",
        weighting: str = "grad_attention",
        layers: Optional[Sequence[int]] = None,
        special_token_ids: Optional[Sequence[int]] = None,
        switch_to_eager: bool = True,
        targets_per_backward: Optional[int] = None,
        engine: str = "auto",
    ) -> None:
        model = check_causal_lm(model)
        if tokenizer is None or not callable(getattr(tokenizer, "encode", None)):
            raise TypeError(
                f"`tokenizer` must be the model's tokenizer (with encode()), got {type(tokenizer).__name__}."
            )
        self.game = self._check_game(game)
        self.weighting = _check_generation_weighting(weighting)
        self.layers = check_layers(layers)
        if targets_per_backward is not None and (
            isinstance(targets_per_backward, bool)
            or not isinstance(targets_per_backward, int)
            or targets_per_backward < 1
        ):
            raise ValueError(
                f"`targets_per_backward` must be a positive int or None, got {targets_per_backward!r}."
            )
        super().__init__(model)
        self.model = model
        self.tokenizer = tokenizer
        self.capturer = AttentionCapture(model, engine=engine, switch_to_eager=switch_to_eager)
        self.capturer.resolve_layers(self.layers)
        self.switch_to_eager = switch_to_eager
        self.targets_per_backward = targets_per_backward
        if special_token_ids is None:
            special_token_ids = list(getattr(tokenizer, "all_special_ids", None) or [])
        self.special_token_ids: List[int] = unique_ids(special_token_ids)

    @classmethod
    def get_name(cls) -> str:
        return "LLMAttnGradShapley"

    @staticmethod
    def _check_game(game: Any) -> str:
        if callable(game) or check_game(game) not in BUILTIN_GAMES:
            raise ValueError(f"`game` must be one of {list(BUILTIN_GAMES)} for generation, got {game!r}.")
        return str(game)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live."""
        return next(self.model.parameters()).device

    @log_usage()
    def attribute(
        self,
        inp: PromptLike,
        target: Union[str, Tensor, None] = None,
        gen_args: Optional[Dict[str, Any]] = None,
        game: Optional[str] = None,
        weighting: Optional[str] = None,
        layers: Optional[Sequence[int]] = None,
    ) -> LLMAttributionResult:
        r"""
        Args:
            inp (str, TextTokenInput or TextTemplateInput): The prompt. A string is read as
                        ``TextTokenInput(inp, tokenizer)``.
            target (str, Tensor, optional): The target text (encoded without special tokens, teacher
                        forced), its token ids ``(n,)``, or None (default) to generate it with
                        ``model.generate(**gen_args)``.
            gen_args (dict, optional): Generation arguments, only with ``target=None``. Default:
                        :data:`DEFAULT_GEN_ARGS` (greedy, 10 new tokens).
            game (str, optional): Overrides the instance's game.
            weighting (str, optional): Overrides the instance's weighting.
            layers (sequence of int, optional): Overrides the instance's layers.

        Returns:
            LLMAttributionResult: ``seq_attr`` ``(n_features,)``, ``token_attr`` ``(n_target, n_features)``
            (zero for features that do not play), ``input_tokens`` (the input's values),
            ``output_tokens``; with captum >= 0.9 also ``output_probs`` (``p(y_t)`` under teacher forcing)
            and ``inp``.
        """
        game = self._check_game(self.game if game is None else game)
        weighting = _check_generation_weighting(self.weighting if weighting is None else weighting)
        layer_ids = self.capturer.resolve_layers(check_layers(layers) if layers is not None else self.layers)
        check_prompt_type(inp)
        target_tokens = target_ids(target, gen_args, self.tokenizer, vocabulary_size(self.model))
        prompt = prompt_of(inp, self.tokenizer, self.special_token_ids)
        prompt_ids = prompt.ids.to(self.device)
        if target_tokens is None:
            target_tokens = generate_target(self.model, prompt_ids, gen_args, self.tokenizer)
        target_tokens = target_tokens.to(self.device)
        ids = torch.cat([prompt_ids, target_tokens[:-1].unsqueeze(0)], dim=1)
        check_text_length(self.model, ids, "inp and target")
        warn_training_mode(self.model)
        phi, log_probs = self._token_values(ids, target_tokens, prompt.players, game, weighting, layer_ids)
        token_attr = prompt.to_features(phi.cpu())
        return make_result(
            token_attr.sum(dim=0),
            token_attr,
            prompt.input_tokens,
            output_tokens_of(target_tokens, self.tokenizer),
            log_probs.exp().cpu(),
            prompt.inp,
        )

    def _token_values(
        self, ids: Tensor, targets: Tensor, players: Tensor, game: str, weighting: str, layers: List[int]
    ) -> Tuple[Tensor, Tensor]:
        """Shapley values ``(n_target, P)`` (float64, zero for non-players) and ``log p(y_t)``."""
        games = generation_games(
            self.capturer,
            ids,
            targets,
            layers,
            weighting,
            need_block=game != "cls",
            switch_to_eager=self.switch_to_eager,
            targets_per_backward=self.targets_per_backward,
        )
        n_target = targets.shape[0]
        mask = players.to(games.rows.device).unsqueeze(0).expand(n_target, -1)
        if game == "cls":
            zero = torch.zeros((), dtype=torch.float64, device=mask.device)
            return torch.where(mask, games.rows.double(), zero), games.log_probs
        assert games.block is not None
        block = games.block.expand(n_target, -1, -1) if games.block.shape[0] == 1 else games.block
        return shapley_values(block, mask, game, dtype=torch.float64), games.log_probs
