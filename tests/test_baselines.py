"""Att, Grad-SAM and Shapley-Input against independent references (autograd, brute force, Captum)."""

import itertools
import math

import pytest
import torch
from captum.attr import ShapleyValues
from tiny_models import MASK_ID, PATCH, SPECIAL_IDS, image_batch, text_batch, tiny_image_model, tiny_text_model

from captum_attn_shapley import AttentionReceived, AttnGradShapley, GradSAM, ShapleyInput
from captum_attn_shapley.visualization import patch_attributions_to_pixels


def eager_reference(model, ids, mask, target):
    """Per-example attention and gradients from output_attentions, one example at a time."""
    model.set_attn_implementation("eager")
    try:
        res = model(ids, attention_mask=mask, output_attentions=True)
        grads = torch.autograd.grad(res.logits[0, target], res.attentions)
    finally:
        model.set_attn_implementation("sdpa")
    return [a.detach() for a in res.attentions], grads


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_att_and_grad_sam_match_hand_computed_references(arch):
    model = tiny_text_model(arch, seed=4)
    ids, mask = text_batch(seed=4)
    att = AttentionReceived(model, special_token_ids=SPECIAL_IDS).attribute(ids, additional_forward_args=(mask,))
    sam = GradSAM(model, special_token_ids=SPECIAL_IDS).attribute(ids, target=1, additional_forward_args=(mask,))
    for b in range(ids.shape[0]):
        n = int(mask[b].sum())
        attns, grads = eager_reference(model, ids[b : b + 1, :n], mask[b : b + 1, :n], 1)
        players = [i for i in range(1, n) if int(ids[b, i]) not in SPECIAL_IDS]
        for i in players:
            # mean over layers, heads and (real) query rows of the column of token i
            expected_att = sum(float(a[0, :, :, i].mean()) for a in attns) / len(attns)
            expected_sam = sum(float((a * g.clamp_min(0))[0, :, :, i].mean()) for a, g in zip(attns, grads)) / len(
                attns
            )
            assert math.isclose(float(att[b, i]), expected_att, rel_tol=1e-5, abs_tol=1e-7)
            assert math.isclose(float(sam[b, i]), expected_sam, rel_tol=1e-4, abs_tol=1e-12)
        others = [i for i in range(ids.shape[1]) if i not in players]
        assert bool((att[b, others] == 0).all()) and bool((sam[b, others] == 0).all())


def test_att_is_not_constant():
    """The reference code's Att sums rows over keys (always 1); ours varies per token."""
    model = tiny_text_model("bert", seed=5)
    ids, mask = text_batch(seed=5)
    att = AttentionReceived(model, special_token_ids=SPECIAL_IDS).attribute(ids, additional_forward_args=(mask,))
    row = att[0][att[0] != 0]
    assert float(row.max() - row.min()) > 1e-4


def brute_force_model_shapley(model, ids, mask, players, target, replacement):
    """Shapley values over all orderings, one model call per coalition."""
    cache = {}

    def value(coalition):
        key = frozenset(coalition)
        if key not in cache:
            x = ids.clone()
            for p in players:
                if p not in coalition:
                    x[0, p] = replacement
            with torch.no_grad():
                logits = model(x, attention_mask=mask).logits.double()
            cache[key] = float(torch.softmax(logits, dim=1)[0, target])
        return cache[key]

    phi = {p: 0.0 for p in players}
    orders = list(itertools.permutations(players))
    for order in orders:
        seen = []
        for p in order:
            before = value(seen)
            seen = seen + [p]
            phi[p] += (value(seen) - before) / len(orders)
    return phi, value(players) - value([])


def test_shapley_input_equals_brute_force_on_text():
    model = tiny_text_model("bert", seed=6)
    ids, mask = text_batch(seed=6, length=7)
    method = ShapleyInput(model, special_token_ids=SPECIAL_IDS)
    phi, delta = method.attribute(
        ids,
        baselines=MASK_ID,
        additional_forward_args=(mask,),
        perturbations_per_eval=5,
        return_convergence_delta=True,
    )
    predicted = model(ids, attention_mask=mask).logits.argmax(dim=1)
    for b in range(ids.shape[0]):
        n = int(mask[b].sum())
        players = [i for i in range(1, n) if int(ids[b, i]) not in SPECIAL_IDS]
        expected, total = brute_force_model_shapley(
            model, ids[b : b + 1], mask[b : b + 1], players, int(predicted[b]), MASK_ID
        )
        for p in players:
            assert math.isclose(float(phi[b, p]), expected[p], abs_tol=1e-6)
        assert math.isclose(float(phi[b].sum()), total, abs_tol=1e-6)
    assert float(delta.abs().max()) < 1e-6


def test_shapley_input_batch_size_is_a_deprecated_alias_of_perturbations_per_eval():
    model = tiny_text_model("bert", seed=6)
    ids, mask = text_batch(seed=6, length=6)
    method = ShapleyInput(model, special_token_ids=SPECIAL_IDS)
    common = dict(baselines=MASK_ID, additional_forward_args=(mask,))
    expected = method.attribute(ids, perturbations_per_eval=3, **common)
    with pytest.warns(FutureWarning, match="use `perturbations_per_eval=`"):
        assert torch.equal(method.attribute(ids, batch_size=3, **common), expected)


def test_shapley_input_on_images_agrees_with_captum_shapley_values():
    model = tiny_image_model("vit", seed=7, image_size=8)
    pixels = image_batch(seed=7, batch=1)[:, :, :8, :8]  # 2 x 2 patches: 4 players
    ours = ShapleyInput(model).attribute(pixels, baselines=0.0, target=2)

    def probabilities(x):
        return torch.softmax(model(x).logits, dim=1)

    patch_ids = torch.arange(4).reshape(1, 1, 2, 2)
    feature_mask = patch_ids.repeat_interleave(PATCH, dim=2).repeat_interleave(PATCH, dim=3)
    captum_values = ShapleyValues(probabilities).attribute(
        pixels, baselines=0.0, target=2, feature_mask=feature_mask.expand(1, 3, 8, 8).contiguous()
    )
    # Captum spreads each group's value over its pixels; read one pixel per patch
    per_patch = captum_values[0, 0, ::PATCH, ::PATCH]
    assert torch.allclose(ours[0], per_patch.to(ours.dtype), atol=1e-6)
    pixels_map = patch_attributions_to_pixels(ours, pixels)
    assert pixels_map.shape == (1, 1, 8, 8)
    assert torch.allclose(pixels_map[0, 0], captum_values[0, 0].to(ours.dtype), atol=1e-6)


def test_pixel_maps_for_visualize_image_attr():
    from captum.attr import visualization as viz

    model = tiny_image_model("deit")
    pixels = image_batch()
    patches = AttnGradShapley(model).attribute(pixels)
    maps = patch_attributions_to_pixels(patches, pixels)
    assert maps.shape == (2, 1, 16, 16)
    # nearest upsampling: each patch is a uniform block holding its score
    assert torch.equal(maps[:, 0, ::PATCH, ::PATCH], patches)
    image = (pixels[0] - pixels[0].min()) / (pixels[0].max() - pixels[0].min())
    fig, _ = viz.visualize_image_attr(
        maps[0].permute(1, 2, 0).numpy(),
        image.permute(1, 2, 0).numpy(),
        method="blended_heat_map",
        sign="all",
        use_pyplot=False,
    )
    assert fig is not None
