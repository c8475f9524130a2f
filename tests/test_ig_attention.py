"""weighting="ig_attention" (Hao et al. 2021, attention attribution by integrated gradients) and signed=True.

Ground truth: a direct eager computation, independent of the capture engine. The tiny BERT runs Hugging Face's
eager attention path with its attention function replaced by a plain one (softmax(Q K^T s + mask) V) in which
the probabilities of chosen layers can be overridden by given tensors. The path is walked one point at a time:
the selected layers' attention is set to ``alpha * A`` (``A`` recorded on the unmodified input, the override a
leaf tensor), one forward, ``torch.autograd.grad`` of the target logit w.r.t. the overrides; the gradients are
averaged over the points. The influence matrix built from them is fed into brute-force enumeration of the
game's 2^n coalitions (``exact_shapley`` with the game's characteristic function).
"""

import copy
import math

import numpy as np
import pytest
import torch
from tiny_models import (
    REGISTRY_TEXT_ARCHS,
    SPECIAL_IDS,
    image_batch,
    text_batch,
    tiny_image_model,
    tiny_text_model,
    zoo_model,
)
from transformers import AttentionInterface

from captum_attn_shapley.attr import (
    AttentionReceived,
    AttnGradShapley,
    GradSAM,
    IGAttentionReceived,
    LayerAttnGradShapley,
    LayerIGAttentionReceived,
    variant_name,
)
from captum_attn_shapley.capture import AttentionCapture, InfluenceRequest
from captum_attn_shapley.shapley import exact_shapley, game_function

GAMES = ("cls", "mutual", "max_mutual")


class _PlainAttention:
    """Plain attention (softmax(Q K^T s + mask) V, one key/value head per query head) whose probabilities on
    chosen layers are replaced by ``override[layer]``; registered as the models' ``sdpa`` function."""

    def __init__(self) -> None:
        self.override = None
        self.recorded = []
        self.call = 0

    def __call__(self, module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
        layer = self.call
        self.call += 1
        groups = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
        scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling
        causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
        if attention_mask is not None and attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        elif attention_mask is not None:
            scores = scores + attention_mask
        elif causal and query.shape[2] > 1:
            future = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool).triu(1)
            scores = scores.masked_fill(future, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        if self.override is None:
            self.recorded.append(probs.detach())
        elif layer in self.override:
            probs = self.override[layer]
        return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs


def _model(seed=0, layers=2):
    """A tiny BERT with weights large enough for attention gradients well above float round-off."""
    return _enlarged(tiny_text_model("bert", seed=seed, layers=layers), seed)


def _enlarged(model, seed=0):
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("weight") and param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.4)
    return model


class _Reference:
    """The path of Hao et al., walked point by point on an eager copy of the model."""

    def __init__(self, model, ids, mask, monkeypatch):
        self.model = copy.deepcopy(model)
        self.attention = _PlainAttention()
        monkeypatch.setitem(AttentionInterface._global_mapping, "sdpa", self.attention)
        self.ids, self.mask = ids, mask
        logits = self._run(None)
        self.A = self.attention.recorded
        self.target = logits.argmax(dim=1)
        self.y1 = logits.gather(1, self.target[:, None]).squeeze(1).detach()

    def _run(self, override):
        self.attention.override, self.attention.call = override, 0
        if self.mask is None:  # images
            return self.model(pixel_values=self.ids).logits
        return self.model(input_ids=self.ids, attention_mask=self.mask).logits

    def target_logit(self, override):
        return self._run(override).gather(1, self.target[:, None]).squeeze(1)

    def mean_gradients(self, layers, alphas, weights=None):
        """``sum_k w_k dy/dP(alpha_k A)`` per selected layer (default weights ``1/m``: the Riemann mean)."""
        weights = [1.0 / len(alphas)] * len(alphas) if weights is None else weights
        total = [torch.zeros_like(self.A[layer]) for layer in layers]
        for alpha, weight in zip(alphas, weights):
            override = {layer: (alpha * self.A[layer]).requires_grad_(True) for layer in layers}
            grads = torch.autograd.grad(self.target_logit(override).sum(), [override[layer] for layer in layers])
            for t, g in zip(total, grads):
                t.add_(weight * g)
        return total

    def influence(self, layers, n_steps, signed=False):
        alphas = [k / n_steps for k in range(1, n_steps + 1)]
        grads = self.mean_gradients(layers, alphas)
        per_layer = [self.A[layer] * (g if signed else g.clamp_min(0)) for layer, g in zip(layers, grads)]
        return torch.stack(per_layer).mean(dim=0).mean(dim=1).double()  # mean over layers, then heads

    def players(self, cls_position=0):
        special = torch.isin(self.ids, torch.tensor(SPECIAL_IDS))
        return self.mask.bool() & ~special


def _enumerated(matrix, players, game):
    """Brute-force Shapley values of the game on ``matrix`` (classification row 0)."""
    phi = torch.zeros(players.shape, dtype=torch.float64)
    for b in range(players.shape[0]):
        idx = players[b].nonzero().squeeze(1)
        m = matrix[b][idx][:, idx]
        phi[b, idx] = exact_shapley(game_function(game, cls_row=matrix[b, 0, idx]), m)
    return phi


def _close(ours, reference, rtol=2e-4):
    scale = reference.abs().max().item()
    assert scale > 1e-6, "the reference is too small to be a meaningful check"
    torch.testing.assert_close(ours.double(), reference, rtol=0, atol=rtol * scale)


@pytest.fixture(scope="module")
def setting():
    model = _model()
    ids, mask = text_batch(seed=2, batch=3, length=9)
    return model, ids, mask


@pytest.mark.parametrize("signed", [False, True])
def test_ig_attention_equals_the_eager_path_fed_into_enumeration(setting, monkeypatch, signed):
    model, ids, mask = setting
    steps = 6
    ref = _Reference(model, ids, mask, monkeypatch)
    matrix = ref.influence([0, 1], steps, signed)
    monkeypatch.undo()
    for game in GAMES:
        expected = _enumerated(matrix, ref.players(), game)
        method = AttnGradShapley(model, game=game, weighting="ig_attention", special_token_ids=SPECIAL_IDS)
        ours, delta = method.attribute(
            ids, additional_forward_args=(mask,), n_steps=steps, signed=signed, return_convergence_delta=True
        )
        _close(ours, expected)
        assert delta.abs().max() < 1e-6 * expected.abs().max() + 1e-12
        if signed:
            assert (expected < 0).any(), "the signed game should have negative values on this model"
        elif game == "cls":
            assert (expected >= 0).all()


def test_signed_grad_attention_equals_the_eager_gradients(setting, monkeypatch):
    """signed=True on the paper's weighting: A * dy/dA (each layer's gradient with the others recomputed)."""
    model, ids, mask = setting
    ref = _Reference(model, ids, mask, monkeypatch)
    per_layer = [ref.A[layer] * ref.mean_gradients([layer], [1.0])[0] for layer in (0, 1)]
    matrix = torch.stack(per_layer).mean(dim=0).mean(dim=1).double()
    monkeypatch.undo()
    for game in GAMES:
        expected = _enumerated(matrix, ref.players(), game)
        ours = AttnGradShapley(model, game=game, signed=True, special_token_ids=SPECIAL_IDS).attribute(
            ids, additional_forward_args=(mask,)
        )
        _close(ours, expected)
        hooks = AttnGradShapley(model, game=game, engine="hooks", special_token_ids=SPECIAL_IDS)
        _close(hooks.attribute(ids, additional_forward_args=(mask,), signed=True), expected)
    grad_sam = GradSAM(model, special_token_ids=SPECIAL_IDS)
    players = ref.players()
    real = mask.bool().double()
    received = (real[:, :, None] * matrix).sum(dim=1) / real.sum(dim=1, keepdim=True)
    scores = grad_sam._received_scores(ids, None, (mask,), None, None, signed=True)[0]
    _close(scores, torch.where(players, received, torch.zeros_like(received)))


def test_layer_api_scales_one_layer_and_received_axis(setting, monkeypatch):
    """Hao et al.'s set-up: one layer scaled alone (the layer API), and the per-token received axis."""
    model, ids, mask = setting
    steps = 5
    ref = _Reference(model, ids, mask, monkeypatch)
    single = ref.influence([0], steps)  # the last layer's players' rows do not reach BERT's pooler: use layer 0
    single_signed = ref.influence([0], steps, signed=True)
    both = ref.influence([0, 1], steps)
    monkeypatch.undo()
    layer_method = LayerAttnGradShapley(
        model, model.bert.encoder.layer[0], game="mutual", weighting="ig_attention", special_token_ids=SPECIAL_IDS
    )
    _close(
        layer_method.attribute(ids, additional_forward_args=(mask,), n_steps=steps),
        _enumerated(single, ref.players(), "mutual"),
    )
    assert layer_method.variant_name == "Shapley-IG-Att-Mutual"
    layer = model.bert.encoder.layer[0]
    signed_method = LayerAttnGradShapley(
        model, layer, game="mutual", weighting="ig_attention", signed=True, special_token_ids=SPECIAL_IDS
    )
    assert signed_method.variant_name == "Shapley-Signed-IG-Att-Mutual"
    signed_scores = signed_method.attribute(ids, additional_forward_args=(mask,), n_steps=steps)
    _close(signed_scores, _enumerated(single_signed, ref.players(), "mutual"))
    delta = signed_method.compute_convergence_delta(signed_scores, ids, None, (mask,), n_steps=steps)
    assert delta.abs().max() < 1e-6 * signed_scores.abs().max()
    real = mask.bool().double()
    players = ref.players()

    def received(matrix):
        scores = (real[:, :, None] * matrix).sum(dim=1) / real.sum(dim=1, keepdim=True)
        return torch.where(players, scores, torch.zeros_like(scores))

    ours = IGAttentionReceived(model, special_token_ids=SPECIAL_IDS).attribute(
        ids, additional_forward_args=(mask,), n_steps=steps
    )
    _close(ours, received(both))
    per_layer = LayerIGAttentionReceived(
        model, [model.bert.encoder.layer[0]], special_token_ids=SPECIAL_IDS
    ).attribute(ids, additional_forward_args=(mask,), n_steps=steps)
    _close(per_layer[0], received(single))


def test_a_list_of_layers_scales_each_layer_on_its_own_path(setting):
    """Hao et al.'s single-layer attribution per listed layer: each layer's path is its own pass, so the list's
    results are the single-layer calls' to the bit, and differ from one path scaling both layers together."""
    model, ids, mask = setting
    blocks = list(model.bert.encoder.layer)
    options = dict(additional_forward_args=(mask,), n_steps=6)
    listed = LayerIGAttentionReceived(model, blocks, special_token_ids=SPECIAL_IDS).attribute(ids, **options)
    method = IGAttentionReceived(model, special_token_ids=SPECIAL_IDS)
    singles = [method.attribute(ids, layers=[k], **options) for k in range(len(blocks))]
    for scores, single in zip(listed, singles):
        torch.testing.assert_close(scores, single, rtol=0, atol=0)
    shapley = LayerAttnGradShapley(
        model, blocks, game="mutual", weighting="ig_attention", special_token_ids=SPECIAL_IDS
    )
    for k, scores in enumerate(shapley.attribute(ids, **options)):
        expected = AttnGradShapley(model, game="mutual", weighting="ig_attention", special_token_ids=SPECIAL_IDS)
        torch.testing.assert_close(scores, expected.attribute(ids, layers=[k], **options), rtol=0, atol=0)
    together = method.attribute(ids, **options)
    assert not torch.allclose(together, sum(singles) / len(singles), rtol=1e-3, atol=0)


def test_completeness_of_one_scaled_layer(setting, monkeypatch):
    """Hao et al.'s completeness: sum over heads and entries of A * integral dy/dA = y(A) - y(0)."""
    model, ids, mask = setting
    ref = _Reference(model, ids, mask, monkeypatch)
    y0 = ref.target_logit({1: torch.zeros_like(ref.A[1])}).detach()
    monkeypatch.undo()
    gain = (ref.y1 - y0).double()
    assert gain.abs().min() > 1e-3
    capture = AttentionCapture(model)
    totals = {}
    for steps in (8, 64, 512):
        captured = capture.capture(
            ids,
            additional_forward_args=(mask,),
            layers=[1],
            request=InfluenceRequest("raw", "ig_attention", n_steps=steps),
        )
        totals[steps] = (captured.attentions[0] * captured.gradients[0]).double().sum(dim=(1, 2, 3))
    gaps = [(totals[m] - gain).abs().max().item() for m in (8, 64, 512)]
    # the right Riemann sum's error is c / m + O(1/m^2): about 8x smaller per 8x more points ...
    assert 6 < gaps[0] / gaps[1] < 10 and 6 < gaps[1] / gaps[2] < 10, gaps
    # ... so Richardson's extrapolation (8 S(512) - S(64)) / 7 removes it: completeness to O(1/m^2)
    extrapolated = (8 * totals[512] - totals[64]) / 7
    assert (extrapolated - gain).abs().max() < 1e-4 * gain.abs().max(), (extrapolated, gain)


def test_n_steps_convergence_to_a_fine_integral(setting, monkeypatch):
    """The Riemann sum approaches the integral computed by 24-point Gauss-Legendre on the eager path."""
    model, ids, mask = setting
    ref = _Reference(model, ids, mask, monkeypatch)
    x, w = np.polynomial.legendre.leggauss(24)
    alphas, weights = [(float(v) + 1) / 2 for v in x], [float(v) / 2 for v in w]
    grads = ref.mean_gradients([0, 1], alphas, weights)
    fine = torch.stack([ref.A[layer] * g.clamp_min(0) for layer, g in zip((0, 1), grads)]).mean(0).mean(1)
    monkeypatch.undo()
    capture = AttentionCapture(model)
    errors = []
    for steps in (2, 8, 32, 128):
        matrix = capture.capture(
            ids, additional_forward_args=(mask,), request=InfluenceRequest("matrix", "ig_attention", n_steps=steps)
        ).influence
        errors.append((matrix.double() - fine.double()).abs().max().item())
    assert errors == sorted(errors, reverse=True), errors
    assert errors[-1] < errors[0] / 10, errors
    assert errors[-1] < 0.02 * fine.abs().max().item(), errors


def test_internal_batch_size_gives_the_one_pass_values(setting):
    """Chunks of max(1, 5 // 4) = 1 example (3 passes) against one pass of 12 rows; per-example targets."""
    model, ids, mask = setting
    method = AttnGradShapley(model, game="max_mutual", weighting="ig_attention", special_token_ids=SPECIAL_IDS)
    target = torch.tensor([0, 1, 2])
    one, one_delta = method.attribute(
        ids, additional_forward_args=(mask,), n_steps=4, target=target, return_convergence_delta=True
    )
    chunked, delta = method.attribute(
        ids,
        additional_forward_args=(mask,),
        n_steps=4,
        internal_batch_size=5,
        target=target,
        return_convergence_delta=True,
    )
    torch.testing.assert_close(chunked, one, rtol=1e-5, atol=1e-6 * one.abs().max().item())
    torch.testing.assert_close(delta, one_delta, rtol=0, atol=1e-6 * one.abs().max().item())
    received = IGAttentionReceived(model, special_token_ids=SPECIAL_IDS)
    torch.testing.assert_close(
        received.attribute(ids, target, (mask,), n_steps=4, internal_batch_size=5),
        received.attribute(ids, target, (mask,), n_steps=4),
    )


def test_variant_names():
    assert variant_name("cls", "ig_attention") == "Shapley-IG-Att-CLS"
    assert variant_name("max_mutual", "grad_attention", signed=True) == "Shapley-Signed-Grad-Att-Max-Mutual"
    assert variant_name("mutual", "attention") == "Shapley-Att-Mutual"


def test_bad_inputs_raise_clear_errors(setting):
    model, ids, mask = setting
    method = AttnGradShapley(model, weighting="ig_attention")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_steps must be a positive int"):
            method.attribute(ids, additional_forward_args=(mask,), n_steps=bad)
    with pytest.raises(ValueError, match="internal_batch_size must be None"):
        method.attribute(ids, additional_forward_args=(mask,), internal_batch_size=0)
    with pytest.raises(ValueError, match="signed=True .* weighting='attention'"):
        method.attribute(ids, additional_forward_args=(mask,), weighting="attention", signed=True)
    with pytest.raises(ValueError, match="signed=True .* weighting='attention'"):
        AttnGradShapley(model, weighting="attention", signed=True)
    with pytest.raises(ValueError, match="signed=True .* weighting='attention'"):
        AttentionReceived(model)._received_scores(ids, None, (mask,), None, None, signed=True)
    with pytest.raises(ValueError, match="signed must be True or False"):
        method.attribute(ids, additional_forward_args=(mask,), signed="yes")
    with pytest.raises(ValueError, match="n_steps"):
        InfluenceRequest("matrix", "ig_attention", n_steps=0)
    deberta = zoo_model("deberta-v2")  # attention outside transformers' registry: no fused kernel to scale
    with pytest.raises(RuntimeError, match="ig_attention.*registry.*weighting='grad_attention'"):
        AttnGradShapley(deberta, weighting="ig_attention").attribute(ids, additional_forward_args=(mask,))
    training = copy.deepcopy(model).train()  # dropout: the hook engine, which cannot scale the attention
    training_mode = pytest.warns(UserWarning, match="training mode")
    with pytest.raises(RuntimeError, match="ig_attention.*model.eval()"), training_mode:
        AttnGradShapley(training, weighting="ig_attention").attribute(ids, additional_forward_args=(mask,))
    assert math.isfinite(float(method.attribute(ids, additional_forward_args=(mask,), n_steps=1).sum()))


@pytest.mark.parametrize("arch", ("bert", "gpt2", "llama", "vit"))
def test_one_point_on_one_layer_is_the_attention_gradient(arch):
    """With one layer on the path and n_steps=1 the integrand is dy/dA at A with the other layers recomputed,
    i.e. the Grad-Att weighting of that layer (validated against eager attention in test_fused_capture)."""
    if arch == "vit":
        model, inputs, extra = tiny_image_model("vit"), image_batch(), None
        capture = AttentionCapture(model)
    else:
        ids, mask = text_batch(seed=1)
        model, inputs, extra = zoo_model(arch), ids, (mask,)
        capture = AttentionCapture(lambda i, m: model(input_ids=i, attention_mask=m).logits, model=model)
    for layer, signed in ((0, False), (capture.num_layers - 1, True)):
        matrices = [
            capture.capture(
                inputs,
                additional_forward_args=extra,
                layers=[layer],
                request=InfluenceRequest("matrix", weighting, signed=signed, n_steps=1),
            ).influence
            for weighting in ("grad_attention", "ig_attention")
        ]
        scale = matrices[0].abs().max().item()
        torch.testing.assert_close(matrices[1], matrices[0], rtol=0, atol=1e-4 * scale + 1e-12)


def test_an_eager_model_is_switched_to_sdpa_for_the_call(setting):
    """The demo models load with eager attention: ig_attention switches them to sdpa for the call (same values
    as the sdpa model) and restores the implementation; engine="hooks" is refused with a clear error."""
    model, ids, mask = setting
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    expected = AttnGradShapley(model, game="cls", weighting="ig_attention").attribute(
        ids, additional_forward_args=(mask,), n_steps=3
    )
    method = AttnGradShapley(eager, game="cls", weighting="ig_attention")
    ours = method.attribute(ids, additional_forward_args=(mask,), n_steps=3)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())
    assert eager.config._attn_implementation == "eager"
    for weighting in ("ig_attention", "lrp_attention"):  # an explicit engine='hooks' is not overridden
        hooks = AttnGradShapley(eager, game="cls", weighting=weighting, engine="hooks")
        with pytest.raises(ValueError, match=f"weighting='{weighting}' .* engine='hooks'; build it with"):
            hooks.attribute(ids, additional_forward_args=(mask,), n_steps=3)
    grad = AttnGradShapley(eager, game="cls").attribute(ids, additional_forward_args=(mask,))
    assert grad.abs().sum() > 0 and eager.config._attn_implementation == "eager"


@pytest.mark.parametrize("arch", REGISTRY_TEXT_ARCHS + ("vit",))
def test_ig_attention_on_every_architecture_equals_the_eager_path(arch, monkeypatch):
    """Causal masks and last-token classifiers (GPT-2, Llama), grouped-query attention (Llama), sliding windows
    (ModernBERT), a shared module (ALBERT), cross-attention (BART), patches (ViT): the signed IG-Att matrix of
    all layers, 3 points, against the eager path."""
    if arch == "vit":
        model, inputs, mask, extra = _enlarged(tiny_image_model("vit")), image_batch(), None, None
        capture = AttentionCapture(model)
    else:
        inputs, mask = text_batch(seed=1)
        model, extra = _enlarged(zoo_model(arch)), (mask,)
        capture = AttentionCapture(lambda i, m: model(input_ids=i, attention_mask=m).logits, model=model)
    ref = _Reference(model, inputs, mask, monkeypatch)
    # BART: the encoder's self-attention, whose calls come first (the decoder's calls are not discovered)
    expected = ref.influence(list(range(capture.num_layers)), 3, signed=True)
    monkeypatch.undo()
    request = InfluenceRequest("matrix", "ig_attention", signed=True, n_steps=3)
    ours = capture.capture(inputs, additional_forward_args=extra, request=request).influence
    _close(ours, expected)
