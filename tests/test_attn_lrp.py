"""AttnLRP: agreement with the authors' library, the attention rules against autograd, reduction to gradient x
input, conservation, the model left as found; the ``"lrp_attention"`` weighting against an eager computation fed
into enumerated games."""

import itertools
import math
import pathlib
import warnings

import pytest
import torch
from captum.attr import LayerGradientXActivation
from tiny_models import SPECIAL_IDS, text_batch, tiny_image_model, tiny_text_model, zoo_model
from torch import nn
from transformers.models.bert import modeling_bert

from captum_attn_shapley import AttnGradShapley
from captum_attn_shapley.attr import AttnLRP, InputWarning
from captum_attn_shapley.capture import AttentionCapture, InfluenceRequest
from captum_attn_shapley.capture import lrp_rules as rules_module
from captum_attn_shapley.capture.lrp_rules import lrp_rules

_EAGER_ATTENTION = modeling_bert.eager_attention_forward
REFERENCE = pathlib.Path(__file__).parent / "reference" / "attnlrp_reference.pt"
BUILDERS = {
    "bert": lambda: tiny_text_model("bert", seed=3),
    "gpt2": lambda: zoo_model("gpt2", seed=3),
    "llama": lambda: zoo_model("llama", seed=3),
    "vit": lambda: tiny_image_model("vit", seed=3),
}


def _text_forward(model):
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits


@pytest.fixture(scope="module")
def reference():
    return torch.load(REFERENCE, weights_only=True)


@pytest.mark.parametrize("arch", list(BUILDERS))
def test_matches_the_authors_library(reference, arch):
    """lxt 2.1's own rule functions (tests/reference/make_attnlrp_reference.py, a separate environment) on the
    same weights and inputs: the relevances agree to float32 round-off."""
    ref = reference[arch]
    model = BUILDERS[arch]()
    model.load_state_dict(ref["state_dict"])
    if arch == "vit":
        ours = AttnLRP(model).attribute(ref["inputs"]["pixel_values"], target=ref["target"]).flatten(1)
    else:
        inputs = ref["inputs"]
        ours = AttnLRP(_text_forward(model), model=model).attribute(
            inputs["input_ids"], target=ref["target"], additional_forward_args=(inputs["attention_mask"],)
        )
    expected = ref["relevance"]
    scale = float(expected.abs().max())
    assert float((ours - expected).abs().max()) <= 1e-5 * scale, (ours, expected)
    # the rules matter: plain gradient x input differs by the order of the relevances themselves
    if arch != "vit":
        plain = LayerGradientXActivation(_text_forward(model), model.get_input_embeddings()).attribute(
            inputs["input_ids"], target=ref["target"], additional_forward_args=(inputs["attention_mask"],)
        )
        assert float((plain.detach().sum(-1) - expected).abs().max()) > 0.3 * scale


def _eager_attention(query, key, value, mask, scaling):
    scores = query @ key.transpose(-1, -2) * scaling + mask
    attention = scores.softmax(dim=-1)
    return attention, attention @ value


def test_attention_rules_are_the_uniform_rule_on_autograd():
    """One attention call's rule gradients against autograd of an eager attention: dQ and dK a quarter of
    the true gradients (uniform rule on A V, then on Q K^T), dV half; the relevance of A is 1/2 A dA."""
    from captum_attn_shapley.capture.fused import AttentionCall, FusedRecorder
    from captum_attn_shapley.capture.fused_backward import ReducingAttention
    from captum_attn_shapley.capture.lrp_attention import LRPAttentionCall
    from captum_attn_shapley.capture.reductions import InfluenceReducer

    gen = torch.Generator().manual_seed(0)
    b, h, t, d = 2, 3, 5, 4
    q, k, v = (torch.randn(b, h, t, d, generator=gen) for _ in range(3))
    mask = torch.zeros(b, 1, t, t)
    mask[1, :, :, -2:] = torch.finfo(torch.float32).min  # padding keys of example 1
    d_out = torch.randn(b, t, h, d, generator=gen)
    scaling = 0.5
    leaves = [x.clone().requires_grad_(True) for x in (q, k, v)]
    attention, out = _eager_attention(*leaves, mask, scaling)
    attention.retain_grad()
    (out.transpose(1, 2) * d_out).sum().backward()

    request = InfluenceRequest("raw", "lrp_attention")
    reducer = InfluenceReducer(
        request,
        1,
        lambda n, tokens, dev: (torch.ones(n, tokens, dtype=torch.bool), torch.zeros(n, dtype=torch.long), None),
    )
    recorder = FusedRecorder({0}, {0}, reducer, True, True, 1 << 20)
    call = LRPAttentionCall(AttentionCall(q, k, v, mask, False, scaling))
    lrp_leaves = [x.clone().requires_grad_(True) for x in (q, k, v)]

    def kernel():
        return _eager_attention(q, k, v, mask, scaling)[1].transpose(1, 2)

    output = ReducingAttention.apply(*lrp_leaves, kernel, call, 0, recorder, True, False)
    torch.testing.assert_close(output, out.detach().transpose(1, 2))
    (output * d_out).sum().backward()
    for ours, true, factor in zip(lrp_leaves, leaves, (0.25, 0.25, 0.5)):
        torch.testing.assert_close(ours.grad, factor * true.grad, rtol=1e-5, atol=1e-6)
    # the capture's reduction reads dA = dO (V/2)^T: the uniform rule's share of A
    recorder.reduce(0, call, d_out.transpose(1, 2))
    torch.testing.assert_close(reducer.raw_gradients[0], 0.5 * attention.grad, rtol=1e-5, atol=1e-6)


def _linearised_bert(seed=4):
    """A tiny BERT whose rules all equal the gradient: LayerNorms removed, ReLU activations (identity rule =
    gradient), and no relevance through the attention (its output projections zero)."""
    torch.manual_seed(seed)
    model = tiny_text_model("bert", seed=seed)
    model.config.hidden_act = "relu"
    for layer in model.bert.encoder.layer:
        layer.intermediate.intermediate_act_fn = nn.ReLU()
        layer.attention.output.dense.weight.data.zero_()
        layer.attention.output.LayerNorm = nn.Identity()
        layer.output.LayerNorm = nn.Identity()
    model.bert.embeddings.LayerNorm = nn.Identity()
    model.bert.pooler.activation = nn.ReLU()
    return model.eval()


def test_reduces_to_gradient_times_input_without_nonlinear_parts():
    model = _linearised_bert()
    ids, mask = text_batch(seed=4)
    ours = AttnLRP(model).attribute(ids, target=1, additional_forward_args=(mask,))
    captum = LayerGradientXActivation(_text_forward(model), model.get_input_embeddings()).attribute(
        ids, target=1, additional_forward_args=(mask,)
    )
    torch.testing.assert_close(ours, captum.sum(-1), rtol=1e-5, atol=1e-8)


def _conservative_bert(seed=6):
    """A tiny BERT with nothing to absorb relevance but the attention probabilities: no biases, no position or
    token-type embeddings, and zero query/key weights (uniform attention: the softmax passes nothing on)."""
    model = tiny_text_model("bert", seed=seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "position_embeddings" in name or "token_type" in name:
                parameter.zero_()
            if ".query." in name or ".key." in name:
                parameter.zero_()
        model.classifier.weight.mul_(50)  # logits of order one
    return model


def test_conservation_exact_up_to_the_attention_share():
    """With no biases, position embeddings or attention scores, every rule conserves relevance except the A V
    product's share of A (which the softmax of constant scores passes to nobody): sum_t R_t equals the target
    logit minus sum A * dA over the layers, dA from the 'lrp_attention' raw capture."""
    model = _conservative_bert()
    ids, mask = text_batch(seed=6)
    relevance, delta = AttnLRP(model).attribute(
        ids, additional_forward_args=(mask,), return_convergence_delta=True
    )
    raw = AttentionCapture(model).capture(
        ids, additional_forward_args=(mask,), request=InfluenceRequest("raw", "lrp_attention")
    )
    absorbed = sum((a * g).sum(dim=(1, 2, 3)) for a, g in zip(raw.attentions, raw.gradients))
    logits = model(ids, mask).logits.gather(1, raw.target[:, None])[:, 0].detach()
    torch.testing.assert_close(relevance.sum(1), logits - absorbed, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(delta, -absorbed, rtol=1e-4, atol=1e-7)
    assert float(absorbed.abs().min()) > 1e-3 * float(logits.abs().max())  # the share is really there


def test_conservation_on_the_reference_models(reference):
    """Measured conservation (docs/attnlrp.md): sum of relevances vs the target logit on the random tiny
    models; what the biases, positions, norms' shifts and the softmax absorb stays below the logit's size."""
    model = BUILDERS["llama"]()
    model.load_state_dict(reference["llama"]["state_dict"])
    inputs = reference["llama"]["inputs"]
    _, delta = AttnLRP(_text_forward(model), model=model).attribute(
        inputs["input_ids"], additional_forward_args=(inputs["attention_mask"],), return_convergence_delta=True
    )
    logit = reference["llama"]["logits"].max(dim=1).values
    assert float((delta.abs() / logit.abs()).max()) < 0.2


def test_model_left_as_found_and_logits_unchanged():
    model = tiny_text_model("bert", seed=7)
    ids, mask = text_batch(seed=7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = {name: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for name, m in model.named_modules()}
    logits = model(ids, mask).logits
    _, delta = AttnLRP(model).attribute(ids, additional_forward_args=(mask,), return_convergence_delta=True)
    relevance = AttnLRP(model).attribute(ids, additional_forward_args=(mask,))
    torch.testing.assert_close(delta + logits.max(1).values, relevance.sum(1), rtol=1e-5, atol=1e-7)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert hooks == {n: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for n, m in model.named_modules()}
    assert rules_module._USERS == 0 and not rules_module._HANDLES and not rules_module.rules_active()
    assert not any(p.grad is not None for p in model.parameters())
    torch.testing.assert_close(model(ids, mask).logits, logits)


def test_rules_change_the_backward_only_inside_their_context():
    model = tiny_text_model("bert", seed=8)
    ids, mask = text_batch(seed=8)
    embeds = model.get_input_embeddings()(ids).detach()

    def grad_x_input():
        x = embeds.clone().requires_grad_(True)
        out = model(inputs_embeds=x, attention_mask=mask).logits
        out[:, 0].sum().backward()
        return out.detach(), x.grad

    plain_logits, plain = grad_x_input()
    with lrp_rules():
        lrp_logits, lrp_grad = grad_x_input()
    again_logits, again = grad_x_input()
    assert torch.equal(plain_logits, lrp_logits) and torch.equal(plain_logits, again_logits)
    assert not torch.allclose(plain, lrp_grad) and torch.equal(plain, again)


def test_errors_before_any_work():
    model = tiny_text_model("bert", seed=9)
    with pytest.raises(ValueError, match="engine='hooks'.*fused capture"):
        AttnLRP(model, engine="hooks")
    ids, mask = text_batch(seed=9)
    outside = zoo_model("deberta-v2", seed=9)  # attention outside transformers' registry
    with pytest.raises((RuntimeError, ValueError), match="lrp_attention.*(outside|fused capture)"):
        AttnLRP(outside).attribute(ids, additional_forward_args=(mask,))
    explainer = AttnGradShapley(model, weighting="lrp_attention")
    model.train()  # attention dropout: the hook engine's case, which has no AttnLRP backward
    with warnings.catch_warnings(), pytest.raises(ValueError, match="lrp_attention.*fused capture.*training mode"):
        warnings.simplefilter("ignore", InputWarning)  # "in training mode", warned before the error
        explainer.attribute(ids, additional_forward_args=(mask,))
    model.eval()
    assert AttnLRP.get_name() == "AttnLRP" and AttnLRP(model).has_convergence_delta()


# ---------------------------------------------------------------- the "lrp_attention" weighting


def _eager_lrp_layers(model, ids, mask, target, monkeypatch):
    """Per layer ``(A, dA)``, dA = 1/2 of the gradient eager attention gets for A when q, k, v carry the uniform
    rule's factors 1/4, 1/4, 1/2 (the authors' library's form)."""
    original = _EAGER_ATTENTION  # not a wrapper left by an earlier call of this test

    def scaled(x, factor):
        return x.detach() + factor * (x - x.detach())

    def attention(module, query, key, value, *args, **kwargs):
        return original(module, scaled(query, 0.25), scaled(key, 0.25), scaled(value, 0.5), *args, **kwargs)

    monkeypatch.setattr(modeling_bert, "eager_attention_forward", attention)
    model.set_attn_implementation("eager")
    with lrp_rules():
        out = model(ids, attention_mask=mask, output_attentions=True)
        for a in out.attentions:
            a.retain_grad()
        out.logits.gather(1, target[:, None]).sum().backward()
    model.set_attn_implementation("sdpa")
    return [(a.detach(), 0.5 * a.grad) for a in out.attentions]


def _eager_lrp_matrix(model, ids, mask, target, monkeypatch, layers=None, signed=False):
    """M = mean over the layers and heads of A * relu(dA) (A * dA if signed)."""
    pairs = _eager_lrp_layers(model, ids, mask, target, monkeypatch)
    pairs = [pairs[i] for i in (layers if layers is not None else range(len(pairs)))]
    weighted = [a * (g if signed else g.clamp_min(0)) for a, g in pairs]
    return torch.stack(weighted).mean(dim=(0, 2))


def _value(game, m, coalition):
    idx = [i for i, inside in enumerate(coalition) if inside]
    if game == "cls":
        return sum(m[0, i] for i in idx)  # m: the classification row on the diagonal's stead (see caller)
    if len(idx) == 1:
        return m[idx[0], idx[0]]
    pair = torch.maximum if game == "max_mutual" else torch.add
    return sum(pair(m[i, j], m[j, i]) for i, j in itertools.combinations(idx, 2)) if idx else 0.0


def _brute_force_shapley(game, m):
    n = m.shape[0] if game != "cls" else m.shape[1]
    phi = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                without = [j in subset for j in range(n)]
                with_i = [j in subset or j == i for j in range(n)]
                phi[i] += weight * (_value(game, m, with_i) - _value(game, m, without))
    return phi


@pytest.mark.parametrize("game", ["cls", "mutual", "max_mutual"])
def test_lrp_attention_games_equal_enumeration_on_the_eager_matrix(game, monkeypatch):
    model = tiny_text_model("bert", seed=10)
    ids, mask = text_batch(seed=10, length=7)
    players = mask.bool() & ~torch.isin(ids, torch.tensor(SPECIAL_IDS))
    explainer = AttnGradShapley(model, game=game, weighting="lrp_attention", special_token_ids=SPECIAL_IDS)
    target = model(ids, mask).logits.argmax(1)
    phi, delta = explainer.attribute(ids, additional_forward_args=(mask,), return_convergence_delta=True)
    matrix = _eager_lrp_matrix(model, ids, mask, target, monkeypatch).double()
    for b in range(ids.shape[0]):
        idx = players[b].nonzero()[:, 0]
        m = matrix[b][0:1, idx] if game == "cls" else matrix[b][idx][:, idx]
        expected = _brute_force_shapley(game, m)
        torch.testing.assert_close(phi[b, idx].double(), expected, rtol=1e-4, atol=1e-12)
        assert bool((phi[b][~players[b]] == 0).all())
    assert float(delta.abs().max()) < 1e-9


def test_received_axis_layer_api_and_signed_equal_the_eager_computation(monkeypatch):
    from captum_attn_shapley.attr import (
        LayerAttnGradShapley,
        LayerLRPAttentionReceived,
        LRPAttentionReceived,
        variant_name,
    )

    model = tiny_text_model("bert", seed=11)
    ids, mask = text_batch(seed=11)
    players = mask.bool() & ~torch.isin(ids, torch.tensor(SPECIAL_IDS))
    target = model(ids, mask).logits.argmax(1)
    real = mask.float() / mask.float().sum(1, keepdim=True)

    def received(matrix):  # mean over the real query rows, zero for non-players
        return torch.where(players, torch.einsum("bq,bqk->bk", real, matrix), torch.zeros(()))

    method = LRPAttentionReceived(model, special_token_ids=SPECIAL_IDS)
    for signed in (False, True):
        matrix = _eager_lrp_matrix(model, ids, mask, target, monkeypatch, signed=signed)
        ours = method.attribute(ids, additional_forward_args=(mask,), signed=signed)
        torch.testing.assert_close(ours, received(matrix), rtol=1e-4, atol=1e-12)
    layer = model.bert.encoder.layer[1]
    per_layer = LayerLRPAttentionReceived(model, layer, special_token_ids=SPECIAL_IDS)
    matrix = _eager_lrp_matrix(model, ids, mask, target, monkeypatch, layers=[1])
    torch.testing.assert_close(
        per_layer.attribute(ids, additional_forward_args=(mask,)), received(matrix), rtol=1e-4, atol=1e-12
    )
    blocks = list(model.bert.encoder.layer)
    listed = LayerLRPAttentionReceived(model, blocks, special_token_ids=SPECIAL_IDS)
    for k, scores in enumerate(listed.attribute(ids, additional_forward_args=(mask,))):  # one pass, every layer
        one = received(_eager_lrp_matrix(model, ids, mask, target, monkeypatch, layers=[k]))
        torch.testing.assert_close(scores, one, rtol=1e-4, atol=1e-12)
    cls = LayerAttnGradShapley(model, layer, game="cls", weighting="lrp_attention", special_token_ids=SPECIAL_IDS)
    expected = torch.where(players, matrix[:, 0], torch.zeros(()))
    torch.testing.assert_close(
        cls.attribute(ids, additional_forward_args=(mask,)), expected, rtol=1e-4, atol=1e-12
    )
    assert method.get_name() == "LRP-Att" and variant_name("cls", "lrp_attention") == "Shapley-LRP-Att-CLS"
    assert variant_name("max_mutual", "lrp_attention", signed=True) == "Shapley-Signed-LRP-Att-Max-Mutual"


def test_eager_model_switched_to_sdpa_for_the_call():
    """The demo models run eager attention: AttnLRP switches them to sdpa for the call (same relevances)."""
    model = tiny_text_model("bert", seed=12)
    ids, mask = text_batch(seed=12)
    sdpa = AttnLRP(model).attribute(ids, additional_forward_args=(mask,))
    model.set_attn_implementation("eager")
    eager = AttnLRP(model).attribute(ids, additional_forward_args=(mask,))
    assert model.config._attn_implementation == "eager"
    torch.testing.assert_close(eager, sdpa, rtol=1e-5, atol=1e-9)


def test_other_threads_run_unchanged_while_the_rules_are_active():
    """The module hooks are process-wide while a call holds the rules; another thread's backward is plain."""
    import threading

    model = tiny_text_model("bert", seed=13)
    ids, mask = text_batch(seed=13)
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)

    def gradient():
        (grad,) = torch.autograd.grad(model(inputs_embeds=embeds, attention_mask=mask).logits[:, 0].sum(), embeds)
        return grad

    plain = gradient()
    entered, release = threading.Event(), threading.Event()

    def hold_the_rules():
        with lrp_rules():
            entered.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold_the_rules)
    holder.start()
    try:
        assert entered.wait(timeout=30) and rules_module._USERS == 1  # the hooks are registered now
        meanwhile = gradient()
    finally:
        release.set()
        holder.join()
    assert torch.equal(plain, meanwhile) and rules_module._USERS == 0
    with lrp_rules():
        assert not torch.allclose(gradient(), plain)  # the same call inside the rules does change
