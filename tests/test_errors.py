"""Bad input raises a clear error that names the problem and the fix."""

import pytest
import torch
from tiny_models import SPECIAL_IDS, image_batch, text_batch, tiny_image_model, tiny_text_model
from torch import nn

from captum_attn_shapley import AttentionReceived, AttnGradShapley, ShapleyInput


@pytest.fixture(scope="module")
def bert():
    return tiny_text_model("bert")


@pytest.fixture(scope="module")
def explainer(bert):
    return AttnGradShapley(bert, special_token_ids=SPECIAL_IDS)


def test_sdpa_model_that_may_not_be_switched(bert):
    ids, mask = text_batch()
    strict = AttnGradShapley(bert, switch_to_eager=False, engine="hooks")
    with pytest.raises(RuntimeError, match="attn_implementation='eager'"):
        strict.attribute(ids, additional_forward_args=(mask,))
    assert bert.config._attn_implementation == "sdpa"
    # The fused engine needs no switch: same attributions as the eager hooks.
    fused = AttnGradShapley(bert, switch_to_eager=False).attribute(ids, additional_forward_args=(mask,))
    hooks = AttnGradShapley(bert, engine="hooks").attribute(ids, additional_forward_args=(mask,))
    assert torch.allclose(fused, hooks, rtol=1e-4, atol=1e-9)
    bert.set_attn_implementation("eager")  # an eager model is fine without switching
    try:
        assert strict.attribute(ids, additional_forward_args=(mask,)).shape == ids.shape
    finally:
        bert.set_attn_implementation("sdpa")


def test_model_without_discoverable_attention():
    with pytest.raises(ValueError, match="Could not discover the attention modules of Sequential"):
        AttnGradShapley(nn.Sequential(nn.Linear(4, 2)))


def test_forward_func_without_a_model():
    with pytest.raises(ValueError, match="model=model"):
        AttnGradShapley(lambda x: x * 2)


def test_target_out_of_range_and_wrong_length(explainer):
    ids, mask = text_batch()
    with pytest.raises(ValueError, match=r"out of range: the model has 3 classes"):
        explainer.attribute(ids, target=3, additional_forward_args=(mask,))
    with pytest.raises(ValueError, match="out of range"):
        explainer.attribute(ids, target=[0, -1, 1], additional_forward_args=(mask,))
    with pytest.raises(ValueError, match="2 entries but the batch has 3 examples"):
        explainer.attribute(ids, target=torch.tensor([0, 1]), additional_forward_args=(mask,))
    with pytest.raises(TypeError, match="integer class indices"):
        explainer.attribute(ids, target=torch.tensor([0.0, 1.0, 1.0]), additional_forward_args=(mask,))


def test_mismatched_shapes(explainer):
    ids, mask = text_batch()
    with pytest.raises(ValueError, match="batch size 2, but inputs have batch size 3"):
        explainer.attribute(ids, additional_forward_args=(mask[:2],))
    with pytest.raises(ValueError, match=r"player_mask has shape \(3, 4\)"):
        explainer.attribute(ids, additional_forward_args=(mask,), player_mask=torch.ones(3, 4, dtype=torch.bool))


def test_empty_input(explainer):
    ids, mask = text_batch()
    with pytest.raises(ValueError, match="Empty input"):
        explainer.attribute(ids[:0], additional_forward_args=(mask[:0],))
    with pytest.raises(ValueError, match="Empty input"):
        explainer.attribute(ids[:, :0], additional_forward_args=(mask[:, :0],))


def test_over_long_input(explainer):
    ids = torch.full((1, 80), 7)
    ids[0, 0] = 2
    with pytest.raises(ValueError, match="80 tokens but BertForSequenceClassification accepts at most 64"):
        explainer.attribute(ids)


def test_too_many_players_for_enumeration(explainer):
    ids = torch.randint(5, 60, (1, 24))

    def triple_game(m, coalitions):
        s = coalitions.to(m.dtype)
        return (s.sum(dim=1) >= 3).to(m.dtype) * (s @ m.diagonal())

    with pytest.raises(ValueError, match="max_players"):
        explainer.attribute(ids, game=triple_game)  # 23 players > 16
    with pytest.raises(ValueError, match="max_players=14"):
        ShapleyInput(explainer.model, special_token_ids=SPECIAL_IDS).attribute(ids, baselines=4)


def test_unknown_options(explainer):
    ids, mask = text_batch()
    with pytest.raises(ValueError, match="Unknown game 'foo'"):
        explainer.attribute(ids, additional_forward_args=(mask,), game="foo")
    with pytest.raises(ValueError, match="Unknown weighting 'bar'"):
        explainer.attribute(ids, additional_forward_args=(mask,), weighting="bar")
    with pytest.raises(ValueError, match="Unknown estimator 'baz'"):
        explainer.attribute(ids, additional_forward_args=(mask,), estimator="baz")
    with pytest.raises(ValueError, match="Unknown game"):
        AttnGradShapley(explainer.model, game="max-mutual")


def test_forward_without_logits(bert):
    ids, mask = text_batch()
    explainer = AttnGradShapley(lambda i, m: {"scores": bert(i, m).logits}, model=bert)
    with pytest.raises(TypeError, match="holds no logits"):
        explainer.attribute(ids, additional_forward_args=(mask,))


def test_shapley_input_needs_a_replacement_token(bert):
    ids, mask = text_batch()
    with pytest.raises(ValueError, match="mask_token_id"):
        ShapleyInput(bert, special_token_ids=SPECIAL_IDS).attribute(ids, additional_forward_args=(mask,))


def test_image_of_the_wrong_size():
    vit = tiny_image_model("vit")
    with pytest.raises(ValueError, match=r"shape \(3, 32, 32\) do not fit .* expects \(3, 16, 16\). Resize"):
        AttentionReceived(vit).attribute(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"expects \(3, 16, 16\)"):
        AttentionReceived(vit).attribute(torch.randn(1, 1, 16, 16))  # wrong channels
    with pytest.raises(ValueError, match="unsqueeze"):
        AttentionReceived(vit).attribute(torch.randn(3, 16, 16))  # no batch dimension
    assert image_batch().shape[-1] == 16


def test_integer_pixel_values():
    vit = tiny_image_model("vit")
    pixels = (image_batch() * 100).to(torch.uint8)
    with pytest.raises(ValueError, match=r"`inputs` must be floating-point pixel values .*image processor"):
        AttentionReceived(vit).attribute(pixels)


def test_errors_name_the_argument_and_the_fix(explainer):
    ids, mask = text_batch()
    with pytest.raises(ValueError, match=r"`inputs` must be a 2-D tensor .*unsqueeze\(0\)"):
        explainer.compute_convergence_delta(torch.zeros(9), ids[0], additional_forward_args=(mask[0],))
    with pytest.raises(TypeError, match=r"`inputs` must be a tensor of token ids .*return_tensors='pt'"):
        explainer.attribute(ids.tolist(), additional_forward_args=(mask,))
