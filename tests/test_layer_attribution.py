"""The layer attributions (LayerAttnGradShapley, LayerAttentionReceived, LayerGradSAM) as Captum layer methods.

Ground truth: the attention methods with ``layers=[k]``; Hugging Face's eager ``output_attentions`` (and their
autograd gradients) solved by enumerating every coalition; the order in which forward hooks see the attention
modules called (ALBERT's shared modules); Captum's ``LayerAttribution.interpolate``.
"""

import pytest
import torch
from captum.attr import LayerAttribution
from tiny_models import (
    PATCH,
    SPECIAL_IDS,
    VOCAB,
    grouped_albert,
    image_batch,
    text_batch,
    tiny_image_model,
    tiny_text_model,
    zoo_model,
)

from captum_attn_shapley import AttentionReceived, AttnGradShapley, GradSAM
from captum_attn_shapley.attr import LayerAttentionReceived, LayerAttnGradShapley, LayerGradSAM
from captum_attn_shapley.shapley import exact_shapley, game_function
from captum_attn_shapley.visualization import patch_attributions_to_pixels

GAMES = ("cls", "mutual", "max_mutual")
WEIGHTINGS = ("attention", "grad_attention")
TEXT = dict(special_token_ids=SPECIAL_IDS)


@pytest.fixture(scope="module")
def bert():
    model = tiny_text_model("bert", seed=21, layers=3)
    ids, mask = text_batch(seed=21, length=8)
    return model, ids, mask


@pytest.fixture(scope="module")
def vit():
    return tiny_image_model("vit", seed=22, layers=2), image_batch(seed=22)


def _close(actual, expected):
    """Equal to the bit: the layer classes run the same computation as the methods with ``layers=``."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def _round_off(actual, expected):
    """Equal to float32 round-off relative to the scores' scale: a list of layers is captured in one pass, whose
    backward runs the capture's reducing attention backward in every listed layer (the kernel's own elsewhere)."""
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


class _CountingForwards:
    """Counts the model's forward passes (a forward pre-hook on the whole model)."""

    def __init__(self, model):
        self.count = 0
        self.handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.count += 1


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("game", GAMES)
def test_text_layer_equals_the_method_on_that_layer(bert, game, weighting):
    model, ids, mask = bert
    options = dict(target=1, additional_forward_args=(mask,), return_convergence_delta=True)
    method = AttnGradShapley(model, game=game, weighting=weighting, **TEXT)
    everything = method.attribute(ids, **options)[0]
    # a block, and an attention module itself
    for k, layer in ((0, model.bert.encoder.layer[0]), (2, model.bert.encoder.layer[2].attention.self)):
        layer_method = LayerAttnGradShapley(model, layer, game=game, weighting=weighting, **TEXT)
        assert layer_method.layer_indices == [[k]]
        attributions, delta = layer_method.attribute(ids, **options)
        expected, expected_delta = method.attribute(ids, layers=[k], **options)
        _close(attributions, expected)
        _close(delta, expected_delta)
        assert float(delta.abs().max()) < 1e-5
        assert not torch.allclose(attributions, everything, rtol=1e-3, atol=0)  # one layer's game, not all layers'


def _eager_reference(model, ids, mask, target):
    """Hugging Face's eager attention probabilities of one unpadded example and their gradients."""
    model.set_attn_implementation("eager")
    try:
        out = model(ids, attention_mask=mask, output_attentions=True)
        grads = torch.autograd.grad(out.logits[0, target], out.attentions)
    finally:
        model.set_attn_implementation("sdpa")
    return [a.detach() for a in out.attentions], grads


def _eager_games(model, ids, mask, target, game, weighting):
    """Per layer, ``(batch, T)`` float64: that layer's game (head mean of the eager attention, times the ReLU of
    its autograd gradient for ``grad_attention``) on each unpadded example, solved by enumeration; 0 for
    non-players."""
    per_layer = None
    for b in range(ids.shape[0]):
        n = int(mask[b].sum())
        attentions, grads = _eager_reference(model, ids[b : b + 1, :n], mask[b : b + 1, :n], target)
        if per_layer is None:
            per_layer = [torch.zeros(ids.shape, dtype=torch.float64) for _ in attentions]
        players = [i for i in range(n) if int(ids[b, i]) not in SPECIAL_IDS]
        idx = torch.tensor(players)
        for k, attention in enumerate(attentions):
            weights = attention if weighting == "attention" else attention * grads[k].clamp_min(0)
            m_full = weights[0].double().mean(dim=0)  # mean over heads: (n, n)
            value = game_function(game, cls_row=m_full[0, idx])
            per_layer[k][b, idx] = exact_shapley(value, m_full[idx][:, idx])
    return per_layer


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("game", GAMES)
def test_text_layer_against_enumeration_on_eager_attention(bert, game, weighting):
    model, ids, mask = bert
    k = 1
    attributions = LayerAttnGradShapley(model, model.bert.encoder.layer[k], game=game, weighting=weighting, **TEXT)
    scores = attributions.attribute(ids, target=2, additional_forward_args=(mask,))
    expected = _eager_games(model, ids, mask, target=2, game=game, weighting=weighting)[k]
    torch.testing.assert_close(scores.double(), expected, rtol=1e-4, atol=1e-7)
    players = mask.bool() & ~torch.isin(ids, torch.tensor(SPECIAL_IDS))
    assert bool((scores[~players] == 0).all())  # padding and special tokens are not players


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("game", GAMES)
def test_image_layer_equals_the_method_on_that_layer(vit, game, weighting):
    model, pixels = vit
    method = AttnGradShapley(model, game=game, weighting=weighting)
    layer_method = LayerAttnGradShapley(model, model.vit.layers[1], game=game, weighting=weighting)
    attributions, delta = layer_method.attribute(pixels, target=3, return_convergence_delta=True)
    expected, expected_delta = method.attribute(pixels, target=3, layers=[1], return_convergence_delta=True)
    assert attributions.shape == (2, 16 // PATCH, 16 // PATCH)
    _close(attributions, expected)
    _close(delta, expected_delta)


def test_image_cls_layer_is_the_eager_class_row(vit):
    model, pixels = vit
    scores = LayerAttnGradShapley(model, model.vit.layers[0], game="cls", weighting="attention").attribute(pixels)
    model.set_attn_implementation("eager")
    try:
        attentions = model(pixels, output_attentions=True).attentions
    finally:
        model.set_attn_implementation("sdpa")
    expected = attentions[0][:, :, 0, 1:].mean(dim=1).reshape(scores.shape)  # class row over the patches
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-7)


def test_image_layer_scores_upsample_with_captum_interpolate(vit):
    model, pixels = vit
    layer_method = LayerAttnGradShapley(model, model.vit.layers[0])
    patches = layer_method.attribute(pixels, target=0)
    height, width = pixels.shape[-2:]
    nearest = layer_method.interpolate(patches.unsqueeze(1), (height, width))  # Captum's static method
    assert nearest.shape == (2, 1, height, width)
    torch.testing.assert_close(nearest, patch_attributions_to_pixels(patches, pixels), rtol=0, atol=0)
    bilinear = LayerAttribution.interpolate(patches.unsqueeze(1), (height, width), "bilinear")
    torch.testing.assert_close(bilinear, patch_attributions_to_pixels(patches, pixels, mode="bilinear"))
    rows, cols = patches.shape[1:]
    for r in range(rows):  # nearest: each patch's pixels all carry its score
        for c in range(cols):
            block = nearest[:, 0, r * PATCH : (r + 1) * PATCH, c * PATCH : (c + 1) * PATCH]
            assert bool((block == patches[:, r, c, None, None]).all())
    assert float(bilinear.min()) >= float(patches.min()) - 1e-7  # bilinear stays within the patch scores
    assert float(bilinear.max()) <= float(patches.max()) + 1e-7


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("game", GAMES)
def test_decoder_layer_equals_the_method_on_that_layer(game, weighting):
    model = zoo_model("gpt2", seed=23)
    ids = torch.randint(5, VOCAB, (2, 7), generator=torch.Generator().manual_seed(23))
    options = dict(target=0)  # unpadded: no mask (GPT-2's second positional argument is the cache)
    layer_method = LayerAttnGradShapley(model, model.transformer.h[1], game=game, weighting=weighting, **TEXT)
    expected = AttnGradShapley(model, game=game, weighting=weighting, **TEXT).attribute(ids, layers=[1], **options)
    _close(layer_method.attribute(ids, **options), expected)


def test_a_list_of_layers_gives_the_list_of_single_layer_results(bert):
    model, ids, mask = bert
    options = dict(target=0, additional_forward_args=(mask,))
    blocks = list(model.bert.encoder.layer)
    several = LayerAttnGradShapley(model, blocks, game="mutual", **TEXT)
    assert several.layer == blocks and several.layer_indices == [[0], [1], [2]]
    counter = _CountingForwards(model)
    try:
        attributions, deltas = several.attribute(ids, return_convergence_delta=True, **options)
        assert counter.count == 1  # every listed layer from one forward (and one backward) pass
    finally:
        counter.handle.remove()
    assert isinstance(attributions, list) and isinstance(deltas, list) and len(attributions) == len(deltas) == 3
    for block, scores, delta in zip(blocks, attributions, deltas):
        single, single_delta = LayerAttnGradShapley(model, block, game="mutual", **TEXT).attribute(
            ids, return_convergence_delta=True, **options
        )
        _round_off(scores, single)
        torch.testing.assert_close(delta, single_delta, rtol=0, atol=1e-6)
    recomputed = several.compute_convergence_delta(attributions, ids, **options)
    assert len(recomputed) == 3 and all(float(d.abs().max()) < 1e-5 for d in recomputed)
    with pytest.raises(ValueError, match="`attributions` must be a list of 3 tensors"):
        several.compute_convergence_delta(attributions[0], ids, **options)
    for layer_class in (LayerAttentionReceived, LayerGradSAM):
        received = layer_class(model, blocks[1:], **TEXT).attribute(ids, **options)
        assert isinstance(received, list) and len(received) == 2
        for block, scores in zip(blocks[1:], received):
            _round_off(scores, layer_class(model, block, **TEXT).attribute(ids, **options))


@pytest.mark.parametrize("engine", ["fused", "hooks"])
@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("game", GAMES)
def test_a_list_of_layers_is_one_pass_equal_to_enumeration_per_layer(bert, game, weighting, engine):
    """Each listed layer's scores (repeats and a block given twice included) from one pass, against every layer's
    game solved by enumeration on Hugging Face's eager attention and its autograd gradient."""
    model, ids, mask = bert
    blocks = list(model.bert.encoder.layer)
    listed = [blocks[2], blocks[0], blocks[2]]
    method = LayerAttnGradShapley(model, listed, game=game, weighting=weighting, engine=engine, **TEXT)
    counter = _CountingForwards(model)
    try:
        attributions = method.attribute(ids, target=1, additional_forward_args=(mask,))
    finally:
        counter.handle.remove()
    assert counter.count == 1 and len(attributions) == 3
    expected = _eager_games(model, ids, mask, target=1, game=game, weighting=weighting)
    for k, scores in zip((2, 0, 2), attributions):
        torch.testing.assert_close(
            scores.double(), expected[k], rtol=1e-4, atol=1e-5 * float(expected[k].abs().max())
        )


@pytest.mark.parametrize(
    ("layer_class", "method_class"), [(LayerAttentionReceived, AttentionReceived), (LayerGradSAM, GradSAM)]
)
def test_att_and_grad_sam_layers_equal_the_methods_on_that_layer(bert, vit, layer_class, method_class):
    model, ids, mask = bert
    options = dict(target=1, additional_forward_args=(mask,))
    scores = layer_class(model, model.bert.encoder.layer[2], **TEXT).attribute(ids, **options)
    _close(scores, method_class(model, **TEXT).attribute(ids, layers=[2], **options))
    image_model, pixels = vit
    patches = layer_class(image_model, image_model.vit.layers[0].attention).attribute(pixels, target=1)
    _close(patches, method_class(image_model).attribute(pixels, target=1, layers=[0]))
    assert patches.shape == (2, 16 // PATCH, 16 // PATCH)


def test_layer_att_is_the_attention_each_token_receives_in_that_layer(bert):
    model, ids, mask = bert
    scores = LayerAttentionReceived(model, model.bert.encoder.layer[1], **TEXT).attribute(
        ids, additional_forward_args=(mask,)
    )
    for b in range(ids.shape[0]):
        n = int(mask[b].sum())
        attentions, _ = _eager_reference(model, ids[b : b + 1, :n], mask[b : b + 1, :n], 0)
        received = attentions[1][0].mean(dim=(0, 1))  # mean over heads and query rows of each key's column
        players = [i for i in range(n) if int(ids[b, i]) not in SPECIAL_IDS]
        torch.testing.assert_close(scores[b, players], received[players], rtol=1e-5, atol=1e-7)


def _call_order(model, modules, ids, mask):
    """Which of ``modules`` each attention call of a plain forward pass goes through (forward hooks)."""
    order = []
    handles = [m.register_forward_hook(lambda mod, args, out, j=j: order.append(j)) for j, m in enumerate(modules)]
    try:
        with torch.no_grad():
            model(ids, attention_mask=mask)
    finally:
        for handle in handles:
            handle.remove()
    return order


@pytest.mark.parametrize("engine", ["fused", "hooks"])
def test_a_shared_module_stands_for_all_of_its_calls(engine):
    model = grouped_albert(groups=2, layers=4, seed=24)
    ids, mask = text_batch(seed=24, length=8)
    groups = list(model.albert.encoder.albert_layer_groups)
    attention = [group.albert_layers[0].attention for group in groups]
    order = _call_order(model, attention, ids, mask)
    assert len(order) == 4
    options = dict(target=1, additional_forward_args=(mask,))
    method = AttnGradShapley(model, game="max_mutual", engine=engine, **TEXT)
    results = []
    for j, (group, module) in enumerate(zip(groups, attention)):
        calls = [call for call, which in enumerate(order) if which == j]
        for layer in (group, module):
            layer_method = LayerAttnGradShapley(model, layer, game="max_mutual", engine=engine, **TEXT)
            assert layer_method.layer_indices == [calls]
            scores = layer_method.attribute(ids, **options)
            _close(scores, method.attribute(ids, layers=calls, **options))
        results.append(scores)
    assert not torch.allclose(results[0], results[1], rtol=1e-3, atol=0)
    listed = LayerAttnGradShapley(model, groups, game="max_mutual", engine=engine, **TEXT)  # one pass, both groups
    for scores, single in zip(listed.attribute(ids, **options), results):
        _round_off(scores, single)
    one_shared = zoo_model("albert", seed=24)  # one attention module, called 3 times
    everything = AttnGradShapley(one_shared, **TEXT).attribute(ids, **options)
    layer_group = one_shared.albert.encoder.albert_layer_groups[0]
    _close(LayerAttnGradShapley(one_shared, layer_group, **TEXT).attribute(ids, **options), everything)


@pytest.mark.parametrize("game", GAMES)
def test_the_fused_and_hook_engines_agree(bert, game):
    model, ids, mask = bert
    options = dict(target=2, additional_forward_args=(mask,))
    layer = model.bert.encoder.layer[1]
    fused = LayerAttnGradShapley(model, layer, game=game, engine="fused", **TEXT).attribute(ids, **options)
    hooks = LayerAttnGradShapley(model, layer, game=game, engine="hooks", **TEXT).attribute(ids, **options)
    torch.testing.assert_close(fused, hooks, rtol=1e-4, atol=1e-7)
    fused_sam = LayerGradSAM(model, layer, engine="fused", **TEXT).attribute(ids, **options)
    hooks_sam = LayerGradSAM(model, layer, engine="hooks", **TEXT).attribute(ids, **options)
    torch.testing.assert_close(fused_sam, hooks_sam, rtol=1e-4, atol=1e-8)


def test_tuple_inputs_give_the_first_inputs_scores(bert):
    model, ids, mask = bert
    layer_method = LayerAttnGradShapley(model, model.bert.encoder.layer[0], **TEXT)
    scores = layer_method.attribute((ids, mask), target=0)
    assert isinstance(scores, torch.Tensor)
    expected = AttnGradShapley(model, **TEXT).attribute((ids, mask), target=0, layers=[0])
    _close(scores, expected[0])


def test_a_captum_layer_attribution(bert):
    model, _, _ = bert
    block = model.bert.encoder.layer[0]
    for layer_class in (LayerAttnGradShapley, LayerAttentionReceived, LayerGradSAM):
        layer_method = layer_class(model, block)
        assert isinstance(layer_method, LayerAttribution)
        assert layer_method.layer is block and layer_method.forward_func is model
        assert layer_method.device_ids is None
    assert LayerAttnGradShapley(model, block).has_convergence_delta()
    assert not LayerGradSAM(model, block).has_convergence_delta()
    assert LayerAttnGradShapley(model, block, game="mutual").variant_name == "Shapley-Grad-Att-Mutual"
    names = {c.get_name() for c in (LayerAttnGradShapley, LayerAttentionReceived, LayerGradSAM)}
    assert names == {"Layer AttnGradShapley", "Layer Att", "Layer Grad-SAM"}


def _bad_layers(model):
    bert = model.bert
    return [
        (bert.encoder, ValueError, r"`layer` \(BertEncoder, 'bert.encoder'\) contains 3 self-attention modules"),
        (model, ValueError, r"`layer` \(BertForSequenceClassification, 'the model itself'\) contains 3"),
        (model.classifier, ValueError, r"`layer` \(Linear, 'classifier'\) contains none of the model's"),
        (
            bert.encoder.layer[0].attention.self.query,
            ValueError,
            r"is part of the self-attention module 'bert.encoder.layer.0.attention.self'.*pass that module",
        ),
        (torch.nn.Linear(2, 2), ValueError, r"`layer` \(Linear\) is not part of the model"),
        ("bert.encoder.layer.0", TypeError, r"`layer` must be a torch.nn.Module .*got str"),
        ([], ValueError, r"`layer` is an empty list"),
        ([bert.encoder.layer[0], bert.encoder], ValueError, r"`layer\[1\]` \(BertEncoder"),
    ]


@pytest.mark.parametrize("case", range(8))
@pytest.mark.parametrize("layer_class", [LayerAttnGradShapley, LayerAttentionReceived, LayerGradSAM])
def test_a_layer_that_is_not_one_attention_layer_is_refused_by_name(bert, layer_class, case):
    model, _, _ = bert
    layer, error, message = _bad_layers(model)[case]
    with pytest.raises(error, match=message):
        layer_class(model, layer)


def test_device_ids_and_positional_options_are_refused(bert):
    model, _, _ = bert
    with pytest.raises(ValueError, match=r"device_ids=\[0\] is not supported.*device_ids=None"):
        LayerAttnGradShapley(model, model.bert.encoder.layer[0], [0])
    with pytest.raises(TypeError):
        LayerAttnGradShapley(model, model.bert.encoder.layer[0], None, "cls")  # game is keyword-only
