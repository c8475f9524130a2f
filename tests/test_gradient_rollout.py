"""GradientRollout (Chefer et al. 2021) against a direct eager computation of the paper's recursion."""

import pytest
import torch
from tiny_models import PAD_ID, SPECIAL_IDS, image_batch, text_batch, tiny_image_model, tiny_text_model, zoo_model

from captum_attn_shapley.attr import AttnGradShapley, GradientRollout


def eager_rollout(model, target, layers=None, **model_inputs):
    """The paper's recursion, literally: R = I; per layer Abar = mean_h relu(grad * A); R = R + Abar @ R.

    One unpadded example; the attention and its gradient come from ``output_attentions`` of the eager
    implementation and ``torch.autograd.grad`` of the target logit. Returns the full ``R`` (T x T).
    """
    model.set_attn_implementation("eager")
    try:
        out = model(**model_inputs, output_attentions=True)
        grads = torch.autograd.grad(out.logits[0, target], out.attentions)
    finally:
        model.set_attn_implementation("sdpa")
    chosen = range(len(out.attentions)) if layers is None else layers
    num_tokens = out.attentions[0].shape[-1]
    rollout = torch.eye(num_tokens, dtype=torch.float64)
    for layer in chosen:
        product = (grads[layer][0] * out.attentions[layer][0]).double().clamp_min(0)
        rollout = rollout + product.mean(dim=0) @ rollout
    return rollout


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_text_rollout_matches_the_eager_recursion(arch):
    model = tiny_text_model(arch, seed=3, layers=3)
    ids, mask = text_batch(seed=3, batch=3, length=10)
    scores = GradientRollout(model, special_token_ids=SPECIAL_IDS).attribute(
        ids, target=2, additional_forward_args=(mask,)
    )
    assert scores.shape == ids.shape
    for b in range(ids.shape[0]):
        n = int(mask[b].sum())
        reference = eager_rollout(model, 2, input_ids=ids[b : b + 1, :n], attention_mask=mask[b : b + 1, :n])
        players = [i for i in range(n) if int(ids[b, i]) not in SPECIAL_IDS]
        torch.testing.assert_close(scores[b, players].double(), reference[0, players], rtol=1e-4, atol=1e-7)
        others = [i for i in range(ids.shape[1]) if i not in players]
        assert bool((scores[b, others] == 0).all())


def test_image_rollout_matches_the_eager_recursion_on_the_patch_grid():
    model = tiny_image_model("vit", seed=1, layers=2)
    pixels = image_batch(seed=1, batch=2)
    scores = GradientRollout(model).attribute(pixels, target=3)
    rows, cols = scores.shape[1:]
    for b in range(2):
        reference = eager_rollout(model, 3, pixel_values=pixels[b : b + 1])
        torch.testing.assert_close(scores[b].reshape(-1).double(), reference[0, 1:], rtol=1e-4, atol=1e-7)
    assert (rows, cols) == (4, 4)


def test_decoder_classifier_reads_the_last_real_token_row():
    """GPT-2's classifier pools the last real token: the rollout's row is that position's."""
    model = zoo_model("gpt2", seed=2)
    ids, mask = text_batch(seed=2, batch=2, length=8)
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, PAD_ID))
    forward = lambda input_ids, attention_mask: model(input_ids=input_ids, attention_mask=attention_mask).logits  # noqa: E731
    scores = GradientRollout(forward, model=model, special_token_ids=SPECIAL_IDS).attribute(
        ids, target=0, additional_forward_args=(mask,)
    )
    for b in range(2):
        n = int(mask[b].sum())
        reference = eager_rollout(model, 0, input_ids=ids[b : b + 1, :n], attention_mask=mask[b : b + 1, :n])
        players = [i for i in range(n - 1) if int(ids[b, i]) not in SPECIAL_IDS]
        torch.testing.assert_close(scores[b, players].double(), reference[n - 1, players], rtol=1e-4, atol=1e-7)


def test_layer_subset_rolls_out_only_those_layers():
    model = tiny_text_model("bert", seed=5, layers=3)
    ids, mask = text_batch(seed=5, batch=1, length=9)
    scores = GradientRollout(model, special_token_ids=SPECIAL_IDS).attribute(
        ids, target=0, additional_forward_args=(mask,), layers=[0, -1]
    )
    reference = eager_rollout(model, 0, layers=[0, 2], input_ids=ids, attention_mask=mask)
    players = [i for i in range(ids.shape[1]) if int(ids[0, i]) not in SPECIAL_IDS]
    torch.testing.assert_close(scores[0, players].double(), reference[0, players], rtol=1e-4, atol=1e-7)


def test_one_layer_rollout_is_the_grad_att_cls_game_of_that_layer():
    """R = I + Abar_l: off the classification position, its row is Shapley-Grad-Att-CLS on layer l alone."""
    model = tiny_text_model("roberta", seed=6, layers=2)
    ids, mask = text_batch(seed=6, batch=3, length=9)
    for layer in (0, 1):
        rollout = GradientRollout(model, special_token_ids=SPECIAL_IDS).attribute(
            ids, target=1, additional_forward_args=(mask,), layers=[layer]
        )
        cls_game = AttnGradShapley(model, game="cls", special_token_ids=SPECIAL_IDS).attribute(
            ids, target=1, additional_forward_args=(mask,), layers=[layer]
        )
        torch.testing.assert_close(rollout, cls_game, rtol=1e-5, atol=1e-8)


def test_fused_and_hook_engines_agree_and_the_model_is_left_as_found():
    model = tiny_text_model("bert", seed=7, layers=2)
    ids, mask = text_batch(seed=7)
    fused = GradientRollout(model, special_token_ids=SPECIAL_IDS, engine="fused").attribute(
        ids, additional_forward_args=(mask,)
    )
    hooks = GradientRollout(model, special_token_ids=SPECIAL_IDS, engine="hooks").attribute(
        ids, additional_forward_args=(mask,)
    )
    torch.testing.assert_close(fused, hooks, rtol=1e-4, atol=1e-7)
    assert model.config._attn_implementation == "sdpa"
    assert all(p.grad is None for p in model.parameters())


def test_tuple_inputs_and_a_user_player_mask():
    model = tiny_text_model("bert", seed=8, layers=2)
    ids, mask = text_batch(seed=8, batch=2)
    players = torch.zeros_like(ids, dtype=torch.bool)
    players[:, 1:3] = True
    method = GradientRollout(model, special_token_ids=SPECIAL_IDS)
    scores, rest = method.attribute((ids, mask), target=1, player_mask=players)
    default = method.attribute(ids, target=1, additional_forward_args=(mask,))
    assert bool((scores[~players] == 0).all()) and bool((rest == 0).all())
    torch.testing.assert_close(scores[players], default[players])
    assert GradientRollout.get_name() == "Chefer-Rollout"


def test_bad_arguments_are_refused_before_any_work():
    model = tiny_text_model("bert", seed=9, layers=2)
    ids, mask = text_batch(seed=9, batch=2)
    method = GradientRollout(model, special_token_ids=SPECIAL_IDS)
    with pytest.raises(ValueError, match="Layer 5"):
        method.attribute(ids, additional_forward_args=(mask,), layers=[5])
    with pytest.raises(ValueError, match="player_mask"):
        method.attribute(ids, additional_forward_args=(mask,), player_mask=torch.ones(2, 3, dtype=torch.bool))
