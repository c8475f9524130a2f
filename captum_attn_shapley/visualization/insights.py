#!/usr/bin/env python3
r"""
Our attention attributions in Captum Insights.

Captum Insights (``captum.insights.AttributionVisualizer``) ships with captum 0.8 only; it
was removed in captum 0.9. Install it with the ``insights`` extra::

    pip install "captum-attn-shapley[insights]"   # captum 0.8.0, numpy<2, flask, ...

:func:`register_insights_methods` adds AttnGradShapley (its game and weighting as
parameters, i.e. all six paper variants), Grad-SAM and Att to Insights' list of attribution
methods, next to Captum's own. :func:`text_visualizer` and :func:`image_visualizer` build a
ready :class:`~captum.insights.AttributionVisualizer` for a Hugging Face text or image
classifier. With captum 0.9 these functions raise :class:`InsightsUnavailableError`, which
says how to get Insights, or to write the self-contained HTML report instead.
"""

import importlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import captum
import torch
from captum.log import log_usage
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.forward import as_tuple, forward_args_tuple, logits_from_output
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.attr._received import ReceivedAttentionAttribution
from captum_attn_shapley.attr.att import AttentionReceived
from captum_attn_shapley.attr.attention_attribution import AttentionAttribution
from captum_attn_shapley.attr.attn_grad_shapley import AttnGradShapley
from captum_attn_shapley.attr.grad_sam import GradSAM
from captum_attn_shapley.capture.attention import find_model
from captum_attn_shapley.capture.influence_matrix import WEIGHTINGS
from captum_attn_shapley.capture.players import text_player_mask
from captum_attn_shapley.shapley.games import BUILTIN_GAMES
from captum_attn_shapley.visualization.images import patch_attributions_to_pixels

#: How to get Insights, or what to use instead; part of every "unavailable" error.
INSIGHTS_HELP = (
    "Captum Insights ships with captum 0.8 only (it was removed in captum 0.9). Install it with "
    '`pip install "captum-attn-shapley[insights]"` (captum==0.8.0, numpy<2, flask, flask-compress, '
    "ipywidgets), or write the self-contained HTML report instead, which works with any captum: "
    '`captum-attn-shapley explain "some text" --report report.html` or the functions of '
    "`captum_attn_shapley.visualization.report`."
)


class InsightsUnavailableError(ImportError):
    r"""Raised when Captum Insights (or its server's requirements) cannot be imported."""


def insights_available() -> bool:
    r"""
    Whether Captum Insights and its Flask server can be imported here.

    Returns:
        bool: True with captum 0.8 and the ``insights`` extra installed.
    """
    try:
        _insights_modules()
    except InsightsUnavailableError:
        return False
    return True


def check_insights_available() -> None:
    r"""
    Raises:
        InsightsUnavailableError: Without Captum Insights (captum >= 0.9), or without one of
                    its dependencies, with the install command.
    """
    _insights_modules()


def _insights_modules() -> Tuple[Any, Any, Any]:
    """captum.insights, its attr_vis.config and its features, or a clear error."""
    try:
        insights = importlib.import_module("captum.insights")
        config = importlib.import_module("captum.insights.attr_vis.config")
        features = importlib.import_module("captum.insights.attr_vis.features")
        importlib.import_module("captum.insights.attr_vis.server")
    except ImportError as err:
        missing = getattr(err, "name", None) or str(err)
        if missing.startswith("captum"):
            reason = f"captum {captum.__version__} has no `captum.insights`."
        else:
            reason = f"Captum Insights needs the module {missing!r}, which is not installed."
        raise InsightsUnavailableError(f"{reason} {INSIGHTS_HELP}") from err
    return insights, config, features


def parse_layers(value: Union[None, str, int, Sequence[int]]) -> Optional[List[int]]:
    r"""
    Reads the ``layers`` parameter as typed in Insights' text box.

    Args:
        value (str, int, sequence of int or None): ``""`` or ``"all"`` (all layers), or
                    layer indices separated by spaces or commas, e.g. ``"0 1 -1"``.
                    Already parsed values are returned as they are.

    Returns:
        list[int] or None: The layer indices, or None for all layers.

    Examples::

        >>> parse_layers("0, 2 -1")
        [0, 2, -1]
        >>> parse_layers("all") is None
        True
    """
    if value is None:
        return None
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        text = value.replace(",", " ").strip()
        if text.lower() in ("", "all"):
            return None
        try:
            return [int(part) for part in text.split()]
        except ValueError:
            raise ValueError(
                f'Cannot read layers {value!r}: give layer indices separated by spaces, e.g. "0 1 -1", '
                "or leave the field empty for all layers."
            ) from None
    return [int(v) for v in value]


def _as_input_shaped(attributions: Tuple[Tensor, ...], inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    """Per-patch maps become per-pixel maps with the image's channels (what Insights draws)."""
    shaped = []
    for attr, inp in zip(attributions, inputs):
        if inp.dim() == 4 and attr.dim() == 3:
            pixels = patch_attributions_to_pixels(attr, inp)  # (batch, 1, H, W)
            attr = pixels.expand(-1, inp.shape[1], -1, -1) / inp.shape[1]
        shaped.append(attr)
    return tuple(shaped)


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
        return self.model.get_input_embeddings()(input_ids)  # type: ignore[operator]

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


def _text_player_mask(
    method: AttentionAttribution,
    inputs: Tuple[Tensor, ...],
    additional_forward_args: Any,
    player_mask: Optional[Tensor],
) -> Optional[Tensor]:
    """With TextEmbeddingForward, the players come from the ids passed along with the embeddings."""
    if player_mask is not None or not isinstance(method.forward_func, TextEmbeddingForward):
        return player_mask
    extra = forward_args_tuple(additional_forward_args)
    ids = extra[0] if extra else None
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.shape != inputs[0].shape[:2]:
        return None
    mask = extra[1] if len(extra) > 1 and isinstance(extra[1], Tensor) else None
    return text_player_mask(ids, mask, method.special_token_ids)


class _InsightsMixin:
    """Insights calls ``cls(model)`` and ``attribute(inputs, additional_forward_args=, target=, **params)``."""

    def _insights_attribute(
        self,
        base: Callable[..., Any],
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike,
        additional_forward_args: Any,
        layers: Any,
        player_mask: Optional[Tensor],
        **kwargs: Any,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        assert isinstance(self, AttentionAttribution)
        inputs_tuple = as_tuple(inputs)
        players = _text_player_mask(self, inputs_tuple, additional_forward_args, player_mask)
        attr = base(
            self,
            inputs,
            target=target,
            additional_forward_args=additional_forward_args,
            layers=parse_layers(layers),
            player_mask=players,
            **kwargs,
        )
        shaped = _as_input_shaped(as_tuple(attr), inputs_tuple)
        return shaped if isinstance(inputs, tuple) else shaped[0]


class InsightsAttnGradShapley(_InsightsMixin, AttnGradShapley):
    r"""
    :class:`~captum_attn_shapley.AttnGradShapley` as an Insights method: ``game``,
    ``weighting`` and ``layers`` are Insights parameters; image results come as pixel maps
    with the image's channels; with :class:`TextEmbeddingForward` the special tokens are
    found from the ids passed along.
    """

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        game: str = "max_mutual",
        weighting: str = "grad_attention",
        layers: Union[None, str, Sequence[int]] = None,
        player_mask: Optional[Tensor] = None,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""
        Args:
            inputs, target, additional_forward_args, game, weighting, player_mask: As in
                        :meth:`AttnGradShapley.attribute`.
            layers (str or sequence of int, optional): As in
                        :meth:`AttnGradShapley.attribute`, or Insights' text (see
                        :func:`parse_layers`).

        Returns:
            *Tensor* or *tuple[Tensor, ...]*: Shaped like ``inputs`` for images (pixel
            maps repeated over the channels, divided by their number); per token for text.
        """
        return self._insights_attribute(
            AttnGradShapley.attribute.__wrapped__,
            inputs,
            target,
            additional_forward_args,  # type: ignore
            layers,
            player_mask,
            game=game,
            weighting=weighting,
        )


class _InsightsReceived(_InsightsMixin):
    """Att and Grad-SAM in Insights: the ``layers`` parameter."""

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        layers: Union[None, str, Sequence[int]] = None,
        player_mask: Optional[Tensor] = None,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""
        Args and Returns: as :meth:`InsightsAttnGradShapley.attribute`.
        """
        return self._insights_attribute(
            ReceivedAttentionAttribution.attribute.__wrapped__,
            inputs,
            target,
            additional_forward_args,  # type: ignore
            layers,
            player_mask,
        )


class InsightsAttentionReceived(_InsightsReceived, AttentionReceived):
    r""":class:`~captum_attn_shapley.attr.AttentionReceived` ("Att") as an Insights method."""


class InsightsGradSAM(_InsightsReceived, GradSAM):
    r""":class:`~captum_attn_shapley.attr.GradSAM` as an Insights method (``layers`` parameter)."""


#: The methods :func:`register_insights_methods` adds, by their name in Insights.
INSIGHTS_METHODS: Dict[str, Type[AttentionAttribution]] = {
    cls.get_name(): cls for cls in (InsightsAttnGradShapley, InsightsGradSAM, InsightsAttentionReceived)
}


def register_insights_methods() -> List[str]:
    r"""
    Adds AttnGradShapley, Grad-SAM and Att to Captum Insights' attribution methods, with
    their options as Insights parameters: ``game`` (``cls``, ``mutual``, ``max_mutual``)
    and ``weighting`` (``grad_attention``, ``attention``) for AttnGradShapley, so all six
    paper variants, and ``layers`` (empty for all, or indices such as ``"0 1 -1"``) for
    all three. Idempotent.

    Returns:
        list[str]: The names added to Insights' method list.

    Raises:
        InsightsUnavailableError: With captum 0.9 or later (no Insights) or without the
                    Flask server's requirements; the message says how to get them, or to
                    use the HTML report.

    Examples::

        >>> from captum_attn_shapley.visualization.insights import register_insights_methods
        >>> register_insights_methods()
        ['AttnGradShapley', 'Grad-SAM', 'Att']
    """
    _, config, _ = _insights_modules()
    layers = config.StrConfig(value="")
    params: Dict[str, Dict[str, Any]] = {
        InsightsAttnGradShapley.get_name(): {
            "game": config.StrEnumConfig(value="max_mutual", limit=list(BUILTIN_GAMES)),
            "weighting": config.StrEnumConfig(value="grad_attention", limit=list(WEIGHTINGS)),
            "layers": layers,
        },
        InsightsGradSAM.get_name(): {"layers": layers},
        InsightsAttentionReceived.get_name(): {"layers": layers},
    }
    for name, cls in INSIGHTS_METHODS.items():
        config.ATTRIBUTION_NAMES_TO_METHODS[name] = cls
        config.ATTRIBUTION_METHOD_CONFIG[name] = config.ConfigParameters(
            params=params[name], post_process={"layers": parse_layers}
        )
    return list(INSIGHTS_METHODS)


def _classes(model: Module, classes: Optional[Sequence[str]]) -> List[str]:
    if classes is not None:
        return [str(c) for c in classes]
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
    if not id2label:
        raise ValueError("The model's config has no id2label: pass `classes=` (one name per output).")
    return [str(id2label[i]) for i in sorted(int(k) for k in id2label)]


def _labels(labels: Sequence[int], n: int, num_classes: int) -> List[int]:
    if labels is None or len(labels) != n:
        given = "no labels" if labels is None else f"{len(labels)} labels"
        raise ValueError(
            f"Got {given} for {n} examples: give one label per example (Captum Insights leaves out examples "
            "without a label)."
        )
    gold = [int(v) for v in labels]
    if any(not 0 <= v < num_classes for v in gold):
        raise ValueError(f"Labels must be class indices in [0, {num_classes}), got {gold}.")
    return gold


def text_visualizer(
    model: Module,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    classes: Optional[Sequence[str]] = None,
    max_length: int = 128,
) -> Any:
    r"""
    A Captum Insights visualizer of a Hugging Face text classifier, with our methods
    registered next to Captum's (Captum's gradient methods attribute to the word
    embeddings, with an all-zero embedding baseline; ours to the tokens).

    Args:
        model (Module): A Hugging Face sequence classifier (``eval()`` mode).
        tokenizer: Its tokenizer.
        texts (sequence of str): The examples to show (one Insights batch each, unpadded).
        labels (sequence of int): Their true class indices (Insights shows only labelled examples).
        classes (sequence of str, optional): Class names (default: ``model.config.id2label``).
        max_length (int): Truncation length.

    Returns:
        captum.insights.AttributionVisualizer: Call ``.serve()`` (a local web page) or
        ``.render()`` (a notebook widget).

    Raises:
        InsightsUnavailableError: Without Captum Insights (captum >= 0.9); see
                    :data:`INSIGHTS_HELP`.

    Examples::

        >>> from captum_attn_shapley.visualization.insights import text_visualizer
        >>> visualizer = text_visualizer(model, tokenizer, ["the crew was rude"], labels=[0])
        >>> port = visualizer.serve()   # http://localhost:<port>/
    """
    insights, _, features = _insights_modules()
    register_insights_methods()
    if len(texts) == 0:
        raise ValueError("No texts given: pass at least one text to visualise.")
    forward = TextEmbeddingForward(model).eval()
    names = _classes(model, classes)
    gold = _labels(labels, len(texts), len(names))
    dataset = []
    for text, label in zip(texts, gold):
        if not text.strip():
            raise ValueError("One of the texts is empty: give non-empty texts.")
        ids = tokenizer([text], return_tensors="pt", truncation=True, max_length=max_length)["input_ids"]
        dataset.append(insights.Batch(inputs=ids, labels=torch.tensor([label]), additional_args=(ids,)))

    def to_tokens(ids: Tensor) -> List[str]:
        return list(tokenizer.convert_ids_to_tokens(ids.reshape(-1).tolist()))

    feature = features.TextFeature(
        "Text", baseline_transforms=None, input_transforms=[forward.embed], visualization_transform=to_tokens
    )
    return insights.AttributionVisualizer(
        models=[forward],
        classes=names,
        features=[feature],
        dataset=dataset,
        score_func=lambda logits: torch.softmax(logits, dim=1),
    )


def image_visualizer(
    model: Module,
    images: Tensor,
    labels: Sequence[int],
    classes: Optional[Sequence[str]] = None,
    image_mean: Optional[Sequence[float]] = None,
    image_std: Optional[Sequence[float]] = None,
    processor: Any = None,
) -> Any:
    r"""
    A Captum Insights visualizer of a Hugging Face image classifier (ViT, DeiT, ...), with
    our methods registered next to Captum's. Our per-patch scores are shown as pixel maps.

    Args:
        model (Module): A Hugging Face image classifier (``eval()`` mode).
        images (Tensor): ``(n, 3, H, W)`` images in ``[0, 1]`` at the model's input size.
        labels (sequence of int): Their true class indices (Insights shows only labelled examples).
        classes (sequence of str, optional): Class names (default: ``model.config.id2label``).
        image_mean, image_std (sequence of float, optional): Normalisation into the
                    model's ``pixel_values``; default: the ``processor``'s.
        processor (optional): The model's image processor (gives mean and std).

    Returns:
        captum.insights.AttributionVisualizer: Call ``.serve()`` or ``.render()``.

    Raises:
        InsightsUnavailableError: Without Captum Insights (captum >= 0.9).

    Examples::

        >>> from captum_attn_shapley.visualization.insights import image_visualizer
        >>> visualizer = image_visualizer(vit, images, labels, processor=processor)
        >>> port = visualizer.serve()
    """
    insights, _, features = _insights_modules()
    register_insights_methods()
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError("`images` must be a non-empty (n, 3, H, W) tensor of images in [0, 1].")
    if image_mean is None or image_std is None:
        if processor is None:
            raise ValueError(
                "Give the model's normalisation: `processor=` or both `image_mean=` and `image_std=`."
            )
        image_mean = image_mean if image_mean is not None else processor.image_mean
        image_std = image_std if image_std is not None else processor.image_std
    assert image_mean is not None and image_std is not None
    forward = ImageLogitsForward(model, image_mean, image_std).eval()
    find_model(forward)  # a model without discoverable attention fails here, clearly
    names = _classes(model, classes)
    gold = _labels(labels, images.shape[0], len(names))
    dataset = [insights.Batch(inputs=images[i : i + 1], labels=torch.tensor([g])) for i, g in enumerate(gold)]
    feature = features.ImageFeature("Image", baseline_transforms=None, input_transforms=None)
    return insights.AttributionVisualizer(
        models=[forward],
        classes=names,
        features=[feature],
        dataset=dataset,
        score_func=lambda logits: torch.softmax(logits, dim=1),
    )


__all__ = [
    "INSIGHTS_HELP",
    "INSIGHTS_METHODS",
    "ImageLogitsForward",
    "InsightsAttentionReceived",
    "InsightsAttnGradShapley",
    "InsightsGradSAM",
    "InsightsUnavailableError",
    "check_insights_available",
    "TextEmbeddingForward",
    "image_visualizer",
    "insights_available",
    "parse_layers",
    "register_insights_methods",
    "text_visualizer",
]
