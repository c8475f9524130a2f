"""Attention capture: every architecture, one pass, gradients, model state, wrappers, errors."""

import functools

import pytest
import torch
from captum.attr import NoiseTunnel
from tiny_models import (
    IMAGE_ARCHS,
    IMAGE_SIZE,
    PATCH,
    SPECIAL_IDS,
    TEXT_ARCHS,
    ToyTransformer,
    image_batch,
    text_batch,
    tiny_image_model,
    tiny_text_model,
)

from captum_attn_shapley import AttnGradShapley
from captum_attn_shapley.capture import AttentionCapture, discover_attention_modules, find_model, influence_matrix

VARIANTS = [(g, w) for g in ("cls", "mutual", "max_mutual") for w in ("attention", "grad_attention")]


def model_state(model):
    return {
        "impl": model.config._attn_implementation if hasattr(model, "config") else None,
        "training": [m.training for m in model.modules()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
        "grads": [p.grad for p in model.parameters()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "params": [p.detach().clone() for p in model.parameters()],
    }


def assert_state_unchanged(before, model):
    after = model_state(model)
    assert after["impl"] == before["impl"]
    assert after["training"] == before["training"]
    assert after["hooks"] == before["hooks"]
    assert all(g is None for g in after["grads"])
    assert after["requires_grad"] == before["requires_grad"]
    assert all(torch.equal(a, b) for a, b in zip(after["params"], before["params"]))


@pytest.mark.parametrize("arch", TEXT_ARCHS)
def test_text_architectures_all_variants(arch):
    model = tiny_text_model(arch)
    ids, mask = text_batch()
    before = model_state(model)
    assert before["impl"] == "sdpa"  # HF's default: switched to eager for the call only
    explainer = AttnGradShapley(model, special_token_ids=SPECIAL_IDS)
    for game, weighting in VARIANTS:
        attr, delta = explainer.attribute(
            ids, additional_forward_args=(mask,), game=game, weighting=weighting, return_convergence_delta=True
        )
        assert attr.shape == ids.shape
        special = torch.isin(ids, torch.tensor(SPECIAL_IDS)) | (mask == 0)
        assert bool((attr[special] == 0).all())
        assert bool((attr[~special] != 0).any())
        assert delta.shape == (ids.shape[0],)
        assert float(delta.abs().max()) < 1e-6
    assert_state_unchanged(before, model)


@pytest.mark.parametrize("arch", IMAGE_ARCHS)
def test_image_architectures_all_variants(arch):
    model = tiny_image_model(arch)
    pixels = image_batch()
    before = model_state(model)
    explainer = AttnGradShapley(model)
    grid = (IMAGE_SIZE // PATCH, IMAGE_SIZE // PATCH)
    for game, weighting in VARIANTS:
        attr = explainer.attribute(pixels, game=game, weighting=weighting)
        assert attr.shape == (2, *grid)
        assert bool((attr != 0).any()) and torch.isfinite(attr).all()
        if weighting == "attention":  # attention is positive: every patch (a player) scores
            assert bool((attr != 0).all())
    out = AttentionCapture(model).capture(pixels, with_gradients=False)
    prefix = 2 if arch == "deit" else 1  # DeiT has a distillation token
    assert out.attentions[0].shape[-1] == prefix + grid[0] * grid[1]
    assert_state_unchanged(before, model)


@pytest.mark.parametrize("arch", TEXT_ARCHS + IMAGE_ARCHS)
def test_capture_is_one_forward_one_backward(arch, monkeypatch):
    model = tiny_text_model(arch) if arch in TEXT_ARCHS else tiny_image_model(arch)
    inputs, extra = text_batch() if arch in TEXT_ARCHS else (image_batch(), None)
    calls = {"forward": 0, "backward": 0}
    model.register_forward_pre_hook(lambda *a: calls.__setitem__("forward", calls["forward"] + 1))
    real_grad = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        calls["backward"] += 1
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    out = AttentionCapture(model).capture(inputs, additional_forward_args=extra, with_gradients=True)
    assert calls == {"forward": 1, "backward": 1}
    assert len(out.attentions) == len(out.gradients) == 2
    for attn, grad in zip(out.attentions, out.gradients):
        assert attn.shape == grad.shape and attn.dim() == 4
        rows = attn.sum(dim=-1)
        assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5)


@pytest.mark.parametrize("arch", TEXT_ARCHS)
def test_grad_weighted_matrix_equals_per_example_autograd(arch):
    model = tiny_text_model(arch, seed=1)
    ids, mask = text_batch(seed=1)
    target = torch.tensor([0, 2, 1])
    out = AttentionCapture(model).capture(ids, target=target, additional_forward_args=(mask,))
    batched = influence_matrix(out.attentions, out.gradients)
    model.set_attn_implementation("eager")
    try:
        for b in range(ids.shape[0]):
            n = int(mask[b].sum())
            res = model(ids[b : b + 1, :n], attention_mask=mask[b : b + 1, :n], output_attentions=True)
            grads = torch.autograd.grad(res.logits[0, target[b]], res.attentions)
            reference = torch.stack(
                [(a * g.clamp_min(0)).mean(dim=1)[0] for a, g in zip(res.attentions, grads)]
            ).mean(dim=0)
            assert torch.allclose(batched[b, :n, :n], reference, atol=1e-6, rtol=1e-4)
            # padding columns receive no attention
            assert bool((batched[b, :, n:] == 0).all())
    finally:
        model.set_attn_implementation("sdpa")
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("arch", TEXT_ARCHS)
@pytest.mark.parametrize("game,weighting", VARIANTS)
def test_padded_batch_equals_each_example_alone(arch, game, weighting):
    model = tiny_text_model(arch, seed=2)
    ids, mask = text_batch(seed=2)
    explainer = AttnGradShapley(model, game=game, weighting=weighting, special_token_ids=SPECIAL_IDS)
    batched = explainer.attribute(ids, additional_forward_args=(mask,))
    for b in range(ids.shape[0]):
        n = int(mask[b].sum())
        alone = explainer.attribute(ids[b : b + 1, :n], additional_forward_args=(mask[b : b + 1, :n],))
        assert torch.allclose(batched[b, :n], alone[0], atol=1e-6, rtol=1e-4)
        assert bool((batched[b, n:] == 0).all())


def test_layer_subset_and_negative_indices():
    model = tiny_text_model("bert", layers=3)
    ids, mask = text_batch()
    capture = AttentionCapture(model)
    out = capture.capture(ids, additional_forward_args=(mask,), layers=[-1, 0], with_gradients=False)
    assert out.layer_indices == [0, 2]
    full = capture.capture(ids, additional_forward_args=(mask,), with_gradients=False)
    assert torch.equal(out.attentions[1], full.attentions[2])
    explainer = AttnGradShapley(model, game="cls", weighting="attention", special_token_ids=SPECIAL_IDS)
    only_last = explainer.attribute(ids, additional_forward_args=(mask,), layers=[2])
    expected = full.attentions[2].mean(dim=1)[:, 0, :]  # the [CLS] row of the last layer
    players = only_last != 0
    assert torch.allclose(only_last[players], expected[players])
    with pytest.raises(ValueError, match="Layer 3 does not exist"):
        explainer.attribute(ids, additional_forward_args=(mask,), layers=[3])


def _global_forward(ids, mask):
    return GLOBAL_MODEL(ids, attention_mask=mask).logits


GLOBAL_MODEL = tiny_text_model("bert", seed=3)


def test_wrappers_find_the_model_and_agree():
    model = GLOBAL_MODEL
    ids, mask = text_batch()
    reference = AttnGradShapley(model, special_token_ids=SPECIAL_IDS).attribute(
        ids, additional_forward_args=(mask,)
    )

    def closure_forward(i, m):
        return model(input_ids=i, attention_mask=m).logits

    wrappers = [
        closure_forward,
        _global_forward,
        functools.partial(model.forward),
        model.forward,
        lambda i, m: model(i, m)[0],
    ]
    for forward in wrappers:
        assert find_model(forward) is model
        got = AttnGradShapley(forward, special_token_ids=SPECIAL_IDS).attribute(
            ids, additional_forward_args=(mask,)
        )
        assert torch.allclose(got, reference, atol=1e-7)


def test_special_tokens_default_from_tokenizer_saved_with_the_model(minilm_classifier):
    model, tokenizer = minilm_classifier
    enc = tokenizer(["the crew was rude", "late"], return_tensors="pt", padding=True)
    attr = AttnGradShapley(model).attribute(enc["input_ids"], additional_forward_args=(enc["attention_mask"],))
    special = torch.isin(enc["input_ids"], torch.tensor(tokenizer.all_special_ids))
    assert bool((attr[special] == 0).all())
    assert bool((attr[~special] != 0).all())


def test_real_minilm_works(minilm_classifier):
    model, tokenizer = minilm_classifier
    texts = ["the flight was late and the crew was rude", "what a wonderful, friendly crew"]
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    before = model_state(model)
    assert len(discover_attention_modules(model)) == 6
    explainer = AttnGradShapley(model, special_token_ids=tokenizer.all_special_ids)
    for game, weighting in VARIANTS:
        attr, delta = explainer.attribute(
            enc["input_ids"],
            additional_forward_args=(enc["attention_mask"],),
            game=game,
            weighting=weighting,
            return_convergence_delta=True,
        )
        assert attr.shape == enc["input_ids"].shape
        assert float(delta.abs().max()) < 1e-5
    assert_state_unchanged(before, model)


def test_custom_model_with_named_attention_modules():
    torch.manual_seed(0)
    model = ToyTransformer().eval()
    ids = torch.randint(5, 50, (2, 6))
    with pytest.raises(ValueError, match="attention_modules"):
        AttnGradShapley(model)
    names = [f"blocks.{i}.attn_drop" for i in range(2)]
    explainer = AttnGradShapley(model, game="max_mutual", attention_modules=names, attention_output_index=None)
    attr, delta = explainer.attribute(ids, return_convergence_delta=True)
    assert attr.shape == (2, 7)  # the model's own token sequence: class token + 6 tokens
    assert bool((attr[:, 0] == 0).all()) and bool((attr[:, 1:] != 0).all())
    assert float(delta.abs().max()) < 1e-6
    # modules may be given as objects too, and an unknown name is a clear error
    objects = [block.attn_drop for block in model.blocks]
    again = AttnGradShapley(
        model, game="max_mutual", attention_modules=objects, attention_output_index=None
    ).attribute(ids)
    assert torch.equal(again, attr)
    with pytest.raises(ValueError, match="No module named 'blocks.9.attn_drop'"):
        AttnGradShapley(model, attention_modules=["blocks.9.attn_drop"], attention_output_index=None)
    with pytest.raises(RuntimeError, match="attention_output_index"):
        AttnGradShapley(model, attention_modules=["blocks.0.qkv"], attention_output_index=None).attribute(ids)


def test_frozen_and_training_models_are_left_as_found():
    model = tiny_text_model("bert")
    ids, mask = text_batch()
    for p in model.parameters():
        p.requires_grad_(False)
    before = model_state(model)
    attr = AttnGradShapley(model, special_token_ids=SPECIAL_IDS).attribute(ids, additional_forward_args=(mask,))
    assert bool((attr != 0).any())
    assert_state_unchanged(before, model)
    model.train()
    before = model_state(model)
    AttnGradShapley(model, special_token_ids=SPECIAL_IDS).attribute(ids, additional_forward_args=(mask,))
    assert_state_unchanged(before, model)
    assert model.training


def test_inside_no_grad_still_computes_gradients():
    model = tiny_text_model("bert")
    ids, mask = text_batch()
    explainer = AttnGradShapley(model, special_token_ids=SPECIAL_IDS)
    reference = explainer.attribute(ids, additional_forward_args=(mask,))
    with torch.no_grad():
        assert torch.equal(explainer.attribute(ids, additional_forward_args=(mask,)), reference)


def test_noise_tunnel_wraps_attn_grad_shapley():
    model = tiny_image_model("vit")
    pixels = image_batch()
    explainer = AttnGradShapley(model)
    assert hasattr(explainer.attribute, "__wrapped__")
    smooth = NoiseTunnel(explainer).attribute(pixels, nt_type="smoothgrad", nt_samples=4, stdevs=0.1)
    assert smooth.shape == (2, IMAGE_SIZE // PATCH, IMAGE_SIZE // PATCH)
    assert torch.isfinite(smooth).all()
    attr, delta = NoiseTunnel(explainer).attribute(pixels, nt_samples=3, return_convergence_delta=True)
    assert delta.shape == (6,)


def test_get_name_and_variant_names():
    model = tiny_text_model("bert")
    assert AttnGradShapley.get_name() == "AttnGradShapley"
    assert AttnGradShapley(model).variant_name == "Shapley-Grad-Att-CLS"  # the default (the study's evidence)
    assert AttnGradShapley(model, game="max_mutual").variant_name == "Shapley-Grad-Att-Max-Mutual"
    assert AttnGradShapley(model, game="cls", weighting="attention").variant_name == "Shapley-Att-CLS"
    assert AttnGradShapley(model).has_convergence_delta()


class _Wrapper(torch.nn.Module):
    """A user's nn.Module around a Hugging Face model, with its own argument names."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, token_ids, pad_mask):
        return self.inner(input_ids=token_ids, attention_mask=pad_mask).logits


def test_module_wrapper_reads_inputs_where_the_transformer_receives_them():
    model = tiny_text_model("bert", seed=9)
    ids, mask = text_batch(seed=9)
    wrapper = _Wrapper(model)
    out = AttentionCapture(wrapper).capture(ids, additional_forward_args=(mask,), with_gradients=False)
    assert torch.equal(out.model_inputs["attention_mask"], mask)
    reference = AttnGradShapley(model, special_token_ids=SPECIAL_IDS).attribute(
        ids, additional_forward_args=(mask,)
    )
    got = AttnGradShapley(wrapper, special_token_ids=SPECIAL_IDS).attribute(ids, additional_forward_args=(mask,))
    assert torch.allclose(got, reference, atol=1e-7)
    assert model.config._attn_implementation == "sdpa"
