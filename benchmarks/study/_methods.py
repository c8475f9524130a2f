"""The study's methods (PROTOCOL.md, "Methods"): what the package has at run time, plus the floor, a random
ranking and the per-head ablation."""

import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from captum.attr import Attribution
from torch import Tensor
from torch.nn import Module

import captum_attn_shapley.attr as attr
from captum_attn_shapley.attr import AttentionAttribution, AttnGradShapley, GradientRollout, variant_name
from captum_attn_shapley.capture import WEIGHTINGS, InfluenceRequest, default_player_mask
from captum_attn_shapley.capture.players import infer_layout
from captum_attn_shapley.evaluation import MethodSpec, standard_methods
from captum_attn_shapley.evaluation.adapters import classifier_forward
from captum_attn_shapley.shapley import shapley_values

GAMES = ("cls", "mutual", "max_mutual")
#: The baselines that are expensive per example: run on the first examples only (PROTOCOL.md).
EXPENSIVE = ("LayerIntegratedGradients", "KernelShap", "SHAP")
#: The peers that are not attention games (the best peer of each metric is chosen among them on dev).
PEERS = ("AttnLRP", "Chefer-Rollout", "Grad-SAM", "LayerIntegratedGradients", "KernelShap", "SHAP")
FLOORS = ("Floor", "Floor (end)")
NEW_WEIGHTINGS = tuple(w for w in ("lrp_attention", "ig_attention") if w in WEIGHTINGS)
GRADIENT_WEIGHTINGS = ("grad_attention",) + NEW_WEIGHTINGS
#: PROTOCOL.md amendment 6: the test run leaves out the IG-Att pairwise games (set by run_study.py).
SKIP_IG_PAIRWISE = False
HAS_SIGNED = "signed" in inspect.signature(AttnGradShapley.__init__).parameters
AttnLRP: Optional[type] = getattr(attr, "AttnLRP", None)


def game_name(game: str, weighting: str, signed: bool = False) -> str:
    """The variant's name (the package's ``variant_name`` where it knows the weighting and the flag)."""
    labels = {
        "attention": "Att",
        "grad_attention": "Grad-Att",
        "ig_attention": "IG-Att",
        "lrp_attention": "LRP-Att",
    }
    label = ("Signed-" if signed else "") + labels[weighting]
    name = variant_name(game, "grad_attention")  # "Shapley-Grad-Att-<Game>"
    return name.replace("Grad-Att", label, 1)


class Floor(Attribution):  # type: ignore[misc]
    """One fused forward and ``torch.autograd.grad`` of the summed target logits w.r.t. the input embeddings
    (or pixels): the cheapest pass a gradient method needs. Returns gradient x input summed over the hidden
    axis (text) or the channels, per patch (images)."""

    def __init__(self, model: Module, patch: int = 0) -> None:
        super().__init__(classifier_forward(model))
        self.model, self.patch = model, patch

    def attribute(self, inputs: Tensor, target: Tensor, additional_forward_args: Any = None) -> Tensor:
        if inputs.is_floating_point():  # images
            pixels = inputs.detach().requires_grad_(True)
            logits = self.model(pixel_values=pixels).logits
            (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), pixels)
            per_pixel = (grad * pixels).sum(1)
            b, h, w = per_pixel.shape
            p = self.patch
            return per_pixel.reshape(b, h // p, p, w // p, p).sum(dim=(2, 4)).detach()
        (mask,) = additional_forward_args
        embeds = self.model.get_input_embeddings()(inputs).detach().requires_grad_(True)
        logits = self.model(inputs_embeds=embeds, attention_mask=mask).logits
        (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), embeds)
        return (grad * embeds).sum(-1).detach()


class RandomScores(Attribution):  # type: ignore[misc]
    """Uniform random scores (a fixed generator): the chance level of every metric."""

    def __init__(self, shape_of: Callable[[Tensor], Tuple[int, ...]] = lambda x: tuple(x.shape)) -> None:
        super().__init__(lambda *a: None)
        self.generator = torch.Generator().manual_seed(0)
        self.shape_of = shape_of

    def attribute(self, inputs: Tensor, target: Any = None, additional_forward_args: Any = None) -> Tensor:
        return torch.rand(self.shape_of(inputs), generator=self.generator)


class HeadGame(AttentionAttribution):
    """The Grad-Att (or Att) influence matrix of ONE head of one layer, solved by a built-in game's closed
    form: the per-head ablation (development split only; not a public option)."""

    def attribute(
        self,
        inputs: Tensor,
        target: Any = None,
        additional_forward_args: Any = None,
        layer: int = 0,
        head: int = 0,
        game: str = "cls",
        weighting: str = "grad_attention",
    ) -> Tensor:
        captured = self.capturer.capture(
            inputs,
            target=target,
            additional_forward_args=additional_forward_args,
            layers=[layer],
            request=InfluenceRequest("raw", weighting),
        )
        layout = infer_layout(captured, self.model, (inputs,), None)
        players = default_player_mask(captured, layout, (inputs,), self.special_token_ids)
        matrix = captured.attentions[0][:, head].double()
        if captured.gradients is not None:
            matrix = matrix * captured.gradients[0][:, head].double().clamp_min(0)
        return shapley_values(matrix, players, game, layout.cls_positions, torch.float64).float()


def _spec(name: str, method: Attribution, description: str, **kwargs: Any) -> MethodSpec:
    return MethodSpec(name, method, kwargs=kwargs, description=description)


def game_spec(
    model: Module, special: List[int], game: str, weighting: str, signed: bool = False, layers: Any = None
) -> MethodSpec:
    """One attention-game variant as a method of the comparison."""
    forward = classifier_forward(model)
    options: Dict[str, Any] = {"game": game, "weighting": weighting, "special_token_ids": special}
    if signed:
        options["signed"] = True
    method = AttnGradShapley(forward, **options)
    kwargs = {} if layers is None else {"layers": list(layers)}
    name = game_name(game, weighting, signed) + ("" if layers is None else f" [layers {list(layers)}]")
    return _spec(name, method, "exact, closed form", **kwargs)


def text_methods(
    model: Module, tokenizer: Any, expensive_n: int, have_shap: bool
) -> Tuple[List[MethodSpec], Dict]:
    """Every text method of the protocol that exists now, in the protocol's order, and what is absent."""
    special = list(tokenizer.all_special_ids)
    forward = classifier_forward(model)
    specs: List[MethodSpec] = [_spec("Floor", Floor(model), "fused forward + grad w.r.t. embeddings")]
    specs += standard_methods(
        model, tokenizer, [game_name(g, w) for w in ("attention", "grad_attention") for g in GAMES]
    )
    for weighting in NEW_WEIGHTINGS:
        games = GAMES if weighting != "ig_attention" or not SKIP_IG_PAIRWISE else ("cls",)
        specs += [game_spec(model, special, game, weighting) for game in games]
    if HAS_SIGNED:
        specs += [game_spec(model, special, "cls", w, signed=True) for w in GRADIENT_WEIGHTINGS]
    absent: Dict[str, str] = {}
    if AttnLRP is not None:
        specs.append(_spec("AttnLRP", AttnLRP(forward, model=model), "Achtibat et al. 2024"))
    else:
        absent["AttnLRP"] = "not in captum_attn_shapley.attr"
    for weighting in ("lrp_attention", "ig_attention"):
        if weighting not in NEW_WEIGHTINGS:
            absent[f"weighting={weighting!r}"] = "not in captum_attn_shapley.capture.WEIGHTINGS"
    if not HAS_SIGNED:
        absent["signed=True"] = "AttnGradShapley has no `signed` option"
    specs.append(
        _spec("Chefer-Rollout", GradientRollout(forward, special_token_ids=special), "Chefer et al. 2021")
    )
    baselines = ["Grad-SAM", "LayerIntegratedGradients", "KernelShap"] + (["SHAP"] if have_shap else [])
    if not have_shap:
        absent["SHAP"] = "the shap package is not installed"
    for spec in standard_methods(model, tokenizer, baselines):
        if spec.name in EXPENSIVE:
            spec.max_examples = expensive_n
        specs.append(spec)
    specs.append(_spec("Random", RandomScores(), "uniform scores, seed 0"))
    specs.append(_spec("Floor (end)", Floor(model), "the floor again, last"))
    return specs, absent


def head_specs(
    model: Module, special: List[int], game: str, layers: Sequence[int], heads: int
) -> List[MethodSpec]:
    """Every head of the given layers, Grad-Att weighting, the given game (the per-head ablation)."""
    method = HeadGame(classifier_forward(model), special_token_ids=special)
    return [
        _spec(
            f"head {layer}.{head} {game_name(game, 'grad_attention')}",
            method,
            "one head",
            layer=layer,
            head=head,
            game=game,
        )
        for layer in layers
        for head in range(heads)
    ]
