"""LayerAttentionWeightedGradient against Hugging Face's own eager attention and autograd, and inside TCAV.

Ground truth: ``a_t * dy/dh_t`` computed directly from ``output_attentions`` (eager attention, the
classification row averaged over heads) and ``torch.autograd.grad`` w.r.t. ``output_hidden_states``; and
Captum's TCAV scores recomputed from those direct attributions and the CAVs Captum trained.
"""

import copy

import pytest
import torch
from captum.attr import GradientAttribution, LayerAttribution
from captum.concept import CAV, TCAV, Concept

from captum_attn_shapley import TokenTCAV, image_concept
from captum_attn_shapley.attr import LayerAttentionWeightedGradient
from tests.tiny_models import text_batch, tiny_image_model, tiny_text_model

IMAGE = 16
TOKENS = 1 + (IMAGE // 4) ** 2  # the ViT's class token and 16 patches


def _images(seed, n, shift=0.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, IMAGE, IMAGE, generator=gen) + shift


def _model_and_inputs(arch):
    if arch == "vit":
        return tiny_image_model("vit", layers=3), (_images(0, 4),)
    ids, mask = text_batch(seed=1, batch=4, length=9)  # padded rows
    return tiny_text_model("bert", layers=3), (ids, mask)


def _direct(model, inputs, blocks, target, weighted=True):
    """a_t * dy/dh_t per block from HF's eager attention probabilities and hidden states (a copy of the model)."""
    model = copy.deepcopy(model)
    model.set_attn_implementation("eager")
    names = ("pixel_values",) if len(inputs) == 1 else ("input_ids", "attention_mask")
    out = model(**dict(zip(names, inputs)), output_hidden_states=True, output_attentions=True)
    target = torch.as_tensor(target).expand(out.logits.shape[0])
    states = [out.hidden_states[k + 1] for k in blocks]  # hidden_states[0] is the embeddings
    grads = torch.autograd.grad(out.logits.gather(1, target[:, None]).sum(), states)
    result = []
    for k, g in zip(blocks, grads):
        a = out.attentions[k][:, :, 0, :].mean(dim=1)  # the classification token's row, mean over heads
        result.append(((a if weighted else torch.ones_like(a))[..., None] * g).detach())
    return result


@pytest.mark.parametrize("arch", ["vit", "bert"])
def test_equals_the_direct_computation_for_one_block_and_a_list(arch):
    model, inputs = _model_and_inputs(arch)
    blocks = model.vit.layers if arch == "vit" else model.bert.encoder.layer
    target = [0, 1, 1, 0]
    expected = _direct(model, inputs, [0, 2], target)
    one = LayerAttentionWeightedGradient(model, blocks[2]).attribute(
        inputs[0], target=target, additional_forward_args=inputs[1:] or None
    )
    assert isinstance(one, torch.Tensor) and one.shape == expected[1].shape
    assert torch.allclose(one, expected[1], atol=1e-6, rtol=1e-4)
    both = LayerAttentionWeightedGradient(model, [blocks[0], blocks[2]]).attribute(inputs, target=target)
    assert isinstance(both, list) and len(both) == 2
    for ours, theirs in zip(both, expected):
        assert torch.allclose(ours, theirs, atol=1e-6, rtol=1e-4)
    if arch == "bert":  # zero at padding (mask 0), where HF's eager attention is exactly 0 too
        assert torch.all(both[0][inputs[1] == 0] == 0) and bool((inputs[1] == 0).any())


def test_without_attention_weighting_it_is_the_block_gradient_zero_at_padding():
    model, (ids, mask) = _model_and_inputs("bert")
    method = LayerAttentionWeightedGradient(model, model.bert.encoder.layer[1], attention_weighting=False)
    ours = method.attribute(ids, target=1, additional_forward_args=(mask,))
    (gradient,) = _direct(model, (ids, mask), [1], 1, weighted=False)
    assert torch.allclose(ours, gradient * mask[..., None], atol=1e-6, rtol=1e-4)


def test_is_a_captum_layer_gradient_attribution_with_a_settable_layer():
    model, (pixels,) = _model_and_inputs("vit")
    method = LayerAttentionWeightedGradient(model, None)
    assert isinstance(method, LayerAttribution) and isinstance(method, GradientAttribution)
    assert method.multiplies_by_inputs is False and method.has_convergence_delta() is False
    with pytest.raises(TypeError, match="`layer` must be a transformer block"):
        method.attribute(pixels, target=0)
    method.layer = model.vit.layers[1]  # as Captum's TCAV does for each of its layers
    (expected,) = _direct(model, (pixels,), [1], 0)
    assert torch.allclose(method.attribute(pixels, target=0), expected, atol=1e-6, rtol=1e-4)


def test_bad_layers_and_layer_input_raise_before_the_forward_pass():
    model, (pixels,) = _model_and_inputs("vit")
    calls = []

    def forward(x):
        calls.append(1)
        return model(pixel_values=x).logits

    with pytest.raises(ValueError, match=r"`layer` \(ViTEmbeddings.*contains none of the model's self-attention"):
        LayerAttentionWeightedGradient(forward, model.vit.embeddings, model=model).attribute(pixels, target=0)
    with pytest.raises(ValueError, match=r"`layer` \(ModuleList.*contains 3 self-attention modules"):
        LayerAttentionWeightedGradient(forward, model.vit.layers, model=model).attribute(pixels, target=0)
    with pytest.raises(ValueError, match="attribute_to_layer_input=True is not supported.*previous block"):
        LayerAttentionWeightedGradient(forward, model.vit.layers[1], model=model).attribute(
            pixels, target=0, attribute_to_layer_input=True
        )
    with pytest.raises(TypeError, match="attention_weighting must be True or False"):
        LayerAttentionWeightedGradient(forward, model.vit.layers[1], model=model, attention_weighting=1)
    assert calls == []


def _concepts():
    # tiny data iterators of pixel batches, concepts 0 and 1 shifted apart
    return [Concept(i, f"c{i}", [_images(10 + i, 5, 0.8 * i), _images(20 + i, 5, 0.8 * i)]) for i in range(2)]


def test_captum_tcav_with_it_is_the_attention_weighted_tcav_of_flattened_states(tmp_path):
    """Captum's TCAV: CAVs on flattened block outputs (T * hidden), scores = flat(a_t g_t) . cav."""
    model = tiny_image_model("vit", layers=3)
    concepts, inputs, target = _concepts(), _images(7, 12), [i % 4 for i in range(12)]
    layers = ["vit.layers.1", "vit.layers.2"]
    method = LayerAttentionWeightedGradient(model, None)
    with pytest.warns(UserWarning, match="default classifier"):  # Captum's own logistic regression
        tcav = TCAV(model, layers, model_id="m", layer_attr_method=method, save_path=str(tmp_path))
    scores = tcav.interpret(inputs, [concepts], target=target)
    direct = _direct(model, (inputs,), [1, 2], target)
    for layer, attributions in zip(layers, direct):
        stats = tcav.cavs["0-1"][layer].stats
        assert stats["weights"].shape == (2, TOKENS * 16)  # Captum's CAV: one weight per token and feature
        rows = [list(stats["classes"]).index(c.id) for c in concepts]
        s = attributions.reshape(len(inputs), -1) @ stats["weights"][rows].float().T  # (examples, concepts)
        assert float(s.abs().min()) > 1e-6  # no score so close to 0 that its sign is a rounding accident
        assert torch.equal(scores["0-1"][layer]["sign_count"], (s > 0).float().mean(dim=0))
        # captum 0.8 and 0.9 both report the mean score as "magnitude"
        assert torch.allclose(scores["0-1"][layer]["magnitude"], s.mean(dim=0), atol=1e-7, rtol=1e-4)
        assert 0.0 < float(scores["0-1"][layer]["sign_count"][0]) < 1.0  # both signs occur: a real test


def test_token_tcav_is_captum_tcav_with_its_layer_method_and_each_token_cav_repeated_per_token(tmp_path):
    """TokenTCAV's layer_attr_method is this class; its T-TCAV = Captum's TCAV with v tiled over the tokens."""
    model = tiny_image_model("vit", layers=3)
    image_concepts = [image_concept(i, f"c{i}", _images(i, 6, 0.7 * i), batch_size=4) for i in range(2)]
    inputs, target = _images(8, 14), [i % 4 for i in range(14)]
    ours_tcav = TokenTCAV(model, layers=[1, 2], save_path=str(tmp_path / "ours"), repeats=2, batch_size=5)
    method = ours_tcav.layer_attr_method
    assert isinstance(method, LayerAttentionWeightedGradient)
    assert method.layer == [model.vit.layers[1], model.vit.layers[2]]
    ours = ours_tcav.interpret(inputs, [image_concepts], target=target)
    for r in range(2):
        path = str(tmp_path / f"captum{r}")
        with pytest.warns(UserWarning, match="default classifier"):  # unused: the CAVs are given
            captum_tcav = TCAV(model, ours_tcav.layers, model_id="m", layer_attr_method=method, save_path=path)
        for layer in ours_tcav.layers:
            v = ours_tcav.cavs["0-1"][layer].stats["weights"][:, r]  # (concepts, hidden), token-level
            CAV(image_concepts, layer, {"weights": v.repeat(1, TOKENS), "classes": [0, 1]}, path, "m").save()
        theirs = captum_tcav.interpret(inputs, [image_concepts], target=target)
        for layer in ours_tcav.layers:
            assert torch.equal(theirs["0-1"][layer]["sign_count"], ours["0-1"][layer]["sign_count_repeats"][:, r])
            magnitude = ours["0-1"][layer]["magnitude_repeats"][:, r]
            assert torch.allclose(theirs["0-1"][layer]["magnitude"], magnitude, atol=1e-7, rtol=1e-4)
