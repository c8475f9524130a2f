#!/usr/bin/env python3
"""Who the players are: token layout of a batch and the default player mask.

See the mathematics page of the documentation, section "Notation".

The special tokens (never players) are resolved in :mod:`.special_tokens`.

Text: every real token except the classification position, the other special tokens and padding.
Images: every patch token (class, distillation and register tokens excluded).

The classification position is the token whose final state the model's head reads: position 0 for
encoders (Hugging Face's BERT-like heads read position 0 whatever the padding: with left padding that is a
padding token, and the logits differ from right padding's) and Vision Transformers (the class token), the
last real token for decoder-only sequence classifiers (GPT-2, Llama-style models: :data:`LAST_TOKEN_POOLING`).
"""

from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley.capture.captured import CapturedAttention
from captum_attn_shapley.capture.discovery import config_value
from captum_attn_shapley.shapley.games import cls_rows


@dataclass
class TokenLayout:
    r"""
    How the attention's token axis maps back onto the inputs.

    Attributes:
        kind (str): ``"text"`` (tokens aligned with ``input_ids``), ``"image"`` (patch
                    tokens on a grid) or ``"tokens"`` (any other sequence).
        num_tokens (int): ``T``, the attention's sequence length.
        grid (tuple[int, int] or None): For images, the patch grid ``(rows, cols)``.
        num_prefix_tokens (int): For images, the tokens before the patches.
        cls_positions (Tensor, optional): ``(batch,)``: each example's classification position
                    (see :func:`classification_positions`); None means position 0.
    """

    kind: str
    num_tokens: int
    grid: Optional[Tuple[int, int]] = None
    num_prefix_tokens: int = 1
    cls_positions: Optional[Tensor] = None

    def cls_rows(self, matrix: Tensor) -> Tensor:
        r"""
        Args:
            matrix (Tensor): Shape ``(batch, T, T)``.

        Returns:
            Tensor: ``(batch, T)``: each example's classification-position row ``matrix[b, cls_b, :]``.
        """
        return cls_rows(matrix, self.cls_positions)

    def to_output(self, token_scores: Tensor) -> Tensor:
        r"""
        Reshapes ``(batch, T)`` token scores to the user-facing layout: unchanged for
        text and generic tokens, ``(batch, rows, cols)`` patch maps for images.

        Args:
            token_scores (Tensor): Shape ``(batch, T)``.

        Returns:
            Tensor: The attributions in the output layout.
        """
        if self.kind != "image" or self.grid is None:
            return token_scores
        patches = token_scores[:, self.num_prefix_tokens :]
        return patches.reshape(token_scores.shape[0], *self.grid)


#: ``config.model_type`` of the decoder-only models whose sequence classifiers read the LAST real token
#: (Hugging Face's ``*ForSequenceClassification`` of these architectures pool the last non-padding token).
LAST_TOKEN_POOLING = frozenset(
    "gpt2 gpt_neo gpt_neox gptj gpt_bigcode openai-gpt ctrl llama mistral mixtral qwen2 qwen2_moe qwen3 qwen3_moe "
    "gemma gemma2 gemma3_text phi phi3 opt bloom falcon mpt olmo olmo2 stablelm starcoder2 persimmon biogpt "
    "smollm3 granite".split()
)

#: What ``classification_position`` accepts besides an index: the first or the last real token.
POSITION_RULES = ("first", "last")

#: None (the model's rule), ``"first"``, ``"last"`` or a token index.
ClassificationPosition = Union[None, str, int]


def check_classification_position(position: ClassificationPosition) -> ClassificationPosition:
    r"""
    Validates a ``classification_position`` setting (its range is checked per batch).

    Args:
        position (None, str or int): None, ``"first"``, ``"last"`` or a token index.

    Returns:
        None, str or int: ``position``, unchanged.
    """
    if isinstance(position, bool) or not (position is None or isinstance(position, (int, str))):
        raise TypeError(f"classification_position must be None, 'first', 'last' or an int, got {position!r}.")
    if isinstance(position, str) and position not in POSITION_RULES:
        raise ValueError(f"classification_position must be None, 'first', 'last' or an int, got {position!r}.")
    return position


def classification_positions(
    model: Optional[Module], real: Tensor, kind: str = "text", position: ClassificationPosition = None
) -> Tensor:
    r"""
    Each example's classification position: the token whose final state the classifier reads.

    Args:
        model (Module, optional): The model (its ``config.model_type`` selects the rule).
        real (Tensor): Bool ``(batch, T)``: the real (non-padding) tokens.
        kind (str): The layout's kind; by default images use position 0 (the class token).
        position (None, str or int): ``None``: the model's rule (the last real token for the
                    decoder-only architectures of :data:`LAST_TOKEN_POOLING`, else position 0);
                    ``"first"`` or ``"last"``: that real token (for a head that pools the first or last
                    real token); an int: that position in every example (negative counts from the end).

    Returns:
        Tensor: Shape ``(batch,)``, long.

    Examples::

        >>> real = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)  # left padding
        >>> classification_positions(None, real)  # an encoder's head reads position 0
        tensor([0, 0])
        >>> classification_positions(None, real, position="first")
        tensor([2, 0])
    """
    batch, num_tokens = real.shape
    check_classification_position(position)
    if isinstance(position, int):
        if not -num_tokens <= position < num_tokens:
            raise ValueError(f"classification_position={position} is outside the {num_tokens} tokens.")
        return torch.full((batch,), position % num_tokens, dtype=torch.long, device=real.device)
    if position is None:
        model_type = config_value(model, "model_type") if model is not None and kind != "image" else None
        if model_type not in LAST_TOKEN_POOLING:
            return torch.zeros(batch, dtype=torch.long, device=real.device)
        position = "last"
    positions = torch.arange(num_tokens, device=real.device).expand(batch, -1)
    if position == "first":
        return torch.where(real, positions, num_tokens).min(dim=1).values.clamp_max(num_tokens - 1)
    return torch.where(real, positions, -1).max(dim=1).values.clamp_min(0)


def infer_layout(
    captured: CapturedAttention, model: Module, inputs: Tuple[Any, ...], position: ClassificationPosition = None
) -> TokenLayout:
    r"""
    Works out whether the batch is text, image patches or a generic token sequence.

    Args:
        captured (CapturedAttention): The capture of this batch.
        model (Module): The model (its config gives the patch size and the classification position).
        inputs (tuple): The inputs passed to ``attribute``.
        position (None, str or int): See :func:`classification_positions`.

    Returns:
        TokenLayout: The layout, with each example's classification position.
    """
    layout = _infer_kind(captured, model, inputs)
    if captured.cls_positions is not None and captured.real_tokens is not None:
        layout.cls_positions = captured.cls_positions  # resolved by the capture, by the same rule
        return layout
    batch, device = captured.batch_size, captured.logits.device
    real = real_token_mask(captured, batch, layout.num_tokens, device)
    layout.cls_positions = classification_positions(model, real, layout.kind, position)
    return layout


def _infer_kind(captured: CapturedAttention, model: Module, inputs: Tuple[Any, ...]) -> TokenLayout:
    num_tokens = captured.num_tokens
    pixels = captured.model_inputs.get("pixel_values")
    if isinstance(pixels, Tensor) and pixels.dim() == 4:
        patch = config_value(model, "patch_size")
        if isinstance(patch, (list, tuple)):
            patch_h, patch_w = int(patch[0]), int(patch[1])
        elif isinstance(patch, int):
            patch_h = patch_w = patch
        else:
            patch_h = patch_w = 0
        if patch_h > 0:
            grid = (pixels.shape[-2] // patch_h, pixels.shape[-1] // patch_w)
            prefix = num_tokens - grid[0] * grid[1]
            if prefix >= 0:
                return TokenLayout("image", num_tokens, grid, prefix)
    if text_ids(captured, inputs) is not None:
        return TokenLayout("text", num_tokens)
    return TokenLayout("tokens", num_tokens)


def text_ids(captured: CapturedAttention, inputs: Tuple[Any, ...]) -> Optional[Tensor]:
    r"""
    The token ids of a text batch: those the model received, else integer ``inputs``.

    Args:
        captured (CapturedAttention): The capture of this batch.
        inputs (tuple): The inputs passed to ``attribute``.

    Returns:
        Tensor or None: Shape ``(batch, T)``, or None if the batch is not text.
    """
    num_tokens = captured.num_tokens
    candidates = [captured.model_inputs.get("input_ids")]
    candidates += [t for t in inputs if isinstance(t, Tensor)]
    for ids in candidates:
        if (
            isinstance(ids, Tensor)
            and ids.dim() == 2
            and not ids.is_floating_point()
            and ids.shape[1] == num_tokens
        ):
            return ids
    return None


def real_token_mask(captured: CapturedAttention, batch: int, num_tokens: int, device: torch.device) -> Tensor:
    r"""
    The non-padding tokens of a batch, from the ``attention_mask`` the model received.

    Args:
        captured (CapturedAttention): The capture of this batch.
        batch (int): Examples in the batch.
        num_tokens (int): ``T``.
        device (torch.device): Device of the result.

    Returns:
        Tensor: Bool mask of shape ``(batch, T)``; all true when the model got no mask of
        that shape (images, unpadded text).
    """
    return real_tokens_of(captured.model_inputs, batch, num_tokens, device)


def real_tokens_of(model_inputs: Dict[str, Any], batch: int, num_tokens: int, device: torch.device) -> Tensor:
    r"""
    The non-padding tokens, from the ``attention_mask`` among the inputs the model received.

    Args:
        model_inputs (dict): The transformer's keyword arguments.
        batch (int): Examples in the batch.
        num_tokens (int): ``T``.
        device (torch.device): Device of the result.

    Returns:
        Tensor: Bool mask of shape ``(batch, T)``; all true when there is no mask of that shape.
    """
    attention_mask = model_inputs.get("attention_mask")
    if isinstance(attention_mask, Tensor) and attention_mask.shape == (batch, num_tokens):
        return attention_mask.to(device).bool()
    return torch.ones(batch, num_tokens, dtype=torch.bool, device=device)


def default_player_mask(
    captured: CapturedAttention, layout: TokenLayout, inputs: Tuple[Any, ...], special_token_ids: Iterable[int]
) -> Tensor:
    r"""
    The default players of each example.

    Args:
        captured (CapturedAttention): The capture of this batch.
        layout (TokenLayout): Its layout.
        inputs (tuple): The inputs passed to ``attribute``.
        special_token_ids (iterable of int): Ids never treated as players (text).

    Returns:
        Tensor: Bool mask of shape ``(batch, T)``.
    """
    batch = captured.batch_size
    device = captured.logits.device
    num_tokens = layout.num_tokens
    positions = torch.arange(num_tokens, device=device).unsqueeze(0).expand(batch, -1)
    if layout.kind == "image":
        return positions >= layout.num_prefix_tokens
    real = real_token_mask(captured, batch, num_tokens, device)
    if layout.kind == "text":
        ids = text_ids(captured, inputs)
        assert ids is not None
        return text_player_mask(ids.to(device), real, special_token_ids, layout.cls_positions)
    cls = layout.cls_positions if layout.cls_positions is not None else torch.zeros(batch, dtype=torch.long)
    return (positions != cls.to(device).unsqueeze(1)) & real


def text_player_mask(
    input_ids: Tensor,
    attention_mask: Optional[Tensor],
    special_token_ids: Iterable[int],
    cls_positions: Optional[Tensor] = None,
    model: Optional[Module] = None,
) -> Tensor:
    r"""
    The players of a text batch: real tokens except the classification position and the special
    tokens.

    Args:
        input_ids (Tensor): Shape ``(batch, T)``.
        attention_mask (Tensor, optional): Shape ``(batch, T)``; zeros mark padding.
        special_token_ids (iterable of int): Ids never treated as players.
        cls_positions (Tensor, optional): ``(batch,)`` classification positions. Default: the
                    model's rule (:func:`classification_positions`) when ``model`` is given, else 0.
        model (Module, optional): The model whose head reads the classification position (the
                    real tokens come from ``attention_mask``, else from its ``pad_token_id``).

    Returns:
        Tensor: Bool mask of shape ``(batch, T)``.
    """
    batch, num_tokens = input_ids.shape
    if cls_positions is None and model is not None:
        pad = config_value(model, "pad_token_id")
        real = torch.ones(batch, num_tokens, dtype=torch.bool, device=input_ids.device)
        if attention_mask is not None:
            real = attention_mask.to(input_ids.device).bool()
        elif isinstance(pad, int):
            real = input_ids != pad
        cls_positions = classification_positions(model, real)
    if cls_positions is None:
        cls_positions = torch.zeros(batch, dtype=torch.long, device=input_ids.device)
    positions = torch.arange(num_tokens, device=input_ids.device)
    mask = positions.unsqueeze(0) != cls_positions.to(input_ids.device).unsqueeze(1)
    special = torch.as_tensor(sorted(set(special_token_ids)), dtype=input_ids.dtype, device=input_ids.device)
    if special.numel() > 0:
        mask = mask & ~torch.isin(input_ids, special)
    if attention_mask is not None:
        mask = mask & attention_mask.to(input_ids.device).bool()
    return mask


def check_player_mask(player_mask: Tensor, batch: int, num_tokens: int, layout: TokenLayout) -> Tensor:
    r"""
    Validates a user-given player mask and returns it as a ``(batch, T)`` bool tensor.

    Args:
        player_mask (Tensor): Shape ``(batch, T)`` (or ``(batch, rows, cols)`` for images,
                    over the patch grid).
        batch (int): The batch size.
        num_tokens (int): ``T``.
        layout (TokenLayout): The layout.

    Returns:
        Tensor: Bool mask of shape ``(batch, T)``.
    """
    if not isinstance(player_mask, Tensor):
        player_mask = torch.as_tensor(player_mask)
    if layout.kind == "image" and layout.grid is not None and player_mask.dim() == 3:
        if tuple(player_mask.shape) != (batch, *layout.grid):
            raise ValueError(
                f"player_mask has shape {tuple(player_mask.shape)}, expected (batch, rows, cols) = "
                f"{(batch, *layout.grid)} over the patch grid."
            )
        prefix = torch.zeros(batch, layout.num_prefix_tokens, dtype=torch.bool, device=player_mask.device)
        return torch.cat([prefix, player_mask.reshape(batch, -1).bool()], dim=1)
    if tuple(player_mask.shape) != (batch, num_tokens):
        raise ValueError(
            f"player_mask has shape {tuple(player_mask.shape)}, expected (batch, tokens) = "
            f"{(batch, num_tokens)}: one flag per token of each example."
        )
    return player_mask.bool()


def players_of(mask_row: Tensor) -> Tensor:
    """Indices of the players in one example's mask."""
    return torch.nonzero(mask_row, as_tuple=False).flatten()
