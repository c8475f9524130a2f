"""The classification position belongs to the model: left padding, decoder-only classifiers, overrides."""

import pytest
import torch
from tiny_models import PAD_ID, SPECIAL_IDS, VOCAB, text_batch, tiny_text_model
from transformers import GPT2Config, GPT2ForSequenceClassification

from captum_attn_shapley import AttnGradShapley
from captum_attn_shapley.capture.players import classification_positions


def test_left_padding_keeps_the_row_the_head_reads():
    # Hugging Face's encoder heads read position 0 whatever the padding, so the CLS game keeps row 0; a head
    # that pools the first real token is explained with classification_position="first"
    model = tiny_text_model("roberta", seed=11)
    ids, mask = text_batch(seed=11, batch=3, length=10)
    left_ids = torch.stack([torch.roll(row, int((m == 0).sum())) for row, m in zip(ids, mask)])
    left_mask = torch.stack([torch.roll(m, int((m == 0).sum())) for m in mask])
    matrix_cls = AttnGradShapley(model, game="cls", weighting="attention", special_token_ids=[])
    first = AttnGradShapley(
        model, game="cls", weighting="attention", special_token_ids=[], classification_position="first"
    )
    by_default = matrix_cls.attribute(left_ids, additional_forward_args=(left_mask,))
    by_first = first.attribute(left_ids, additional_forward_args=(left_mask,))
    padded = mask.sum(dim=1) < mask.shape[1]
    assert torch.equal(by_default[~padded], by_first[~padded])  # unpadded rows: the same position
    assert not torch.allclose(by_default[padded], by_first[padded])
    for b in range(ids.shape[0]):  # the classification position is never a player
        start = int((left_mask[b] == 0).sum())
        assert by_default[b, 0] == 0 and by_first[b, start] == 0


def _tiny_gpt2(seed=12):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_positions=32, num_labels=3)
    config.pad_token_id = PAD_ID
    return GPT2ForSequenceClassification(config).eval()


def _forward(model):
    """GPT-2's second positional argument is the cache: pass the mask by name (Captum passes it positionally)."""
    return lambda input_ids, attention_mask: model(input_ids=input_ids, attention_mask=attention_mask).logits


def test_a_decoder_classifier_plays_the_cls_game_on_its_last_real_token():
    model = _tiny_gpt2()
    ids, mask = text_batch(seed=12, batch=3, length=9)
    ids = torch.where(mask.bool(), ids.clamp_min(5), torch.full_like(ids, PAD_ID))  # no special token inside
    phi = AttnGradShapley(
        _forward(model), model=model, game="cls", weighting="attention", special_token_ids=[PAD_ID]
    ).attribute(ids, additional_forward_args=(mask,))
    # independent reference: Hugging Face's own eager attention, averaged over layers and heads
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = model(ids, attention_mask=mask, output_attentions=True).attentions
    matrix = torch.stack(attentions).mean(dim=(0, 2))
    for b in range(ids.shape[0]):
        last = int(mask[b].sum()) - 1
        expected = matrix[b, last].clone()
        expected[last:] = 0  # the classification token and the padding are not players
        torch.testing.assert_close(phi[b], expected.to(phi.dtype), rtol=1e-5, atol=1e-7)
        assert phi[b, :last].abs().sum() > 0  # not the all-zero game of row 0


def test_the_gradient_variants_run_on_a_decoder_classifier_and_are_efficient():
    model = _tiny_gpt2(seed=13)
    ids, mask = text_batch(seed=13, batch=2, length=8)
    ids = torch.where(mask.bool(), ids.clamp_min(5), torch.full_like(ids, PAD_ID))
    for game in ("cls", "max_mutual"):
        explainer = AttnGradShapley(_forward(model), model=model, game=game, special_token_ids=[PAD_ID])
        _, delta = explainer.attribute(ids, additional_forward_args=(mask,), return_convergence_delta=True)
        assert float(delta.abs().max()) < 1e-5


def test_the_position_can_be_overridden():
    model = tiny_text_model("bert", seed=14)
    ids, mask = text_batch(seed=14, batch=2, length=8)
    default = AttnGradShapley(model, game="cls", special_token_ids=SPECIAL_IDS).attribute(
        ids, additional_forward_args=(mask,)
    )
    first = AttnGradShapley(model, game="cls", special_token_ids=SPECIAL_IDS, classification_position="first")
    zero = AttnGradShapley(model, game="cls", special_token_ids=SPECIAL_IDS, classification_position=0)
    assert torch.equal(first.attribute(ids, additional_forward_args=(mask,)), default)
    assert torch.equal(zero.attribute(ids, additional_forward_args=(mask,)), default)
    last = AttnGradShapley(model, game="cls", special_token_ids=SPECIAL_IDS, classification_position="last")
    assert not torch.equal(last.attribute(ids, additional_forward_args=(mask,)), default)


def test_classification_positions_rules_and_errors():
    real = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert classification_positions(None, real).tolist() == [0, 0, 0]  # an encoder's head reads position 0
    assert classification_positions(None, real, position="first").tolist() == [2, 0, 0]
    assert classification_positions(None, real, position="last").tolist() == [4, 2, 4]
    assert classification_positions(_tiny_gpt2(), real).tolist() == [4, 2, 4]  # GPT-2 pools the last token
    assert classification_positions(None, real, kind="image").tolist() == [0, 0, 0]
    assert classification_positions(None, real, position=-1).tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match="classification_position must be None, 'first', 'last' or an int"):
        classification_positions(None, real, position="middle")
    with pytest.raises(ValueError, match="outside the 5 tokens"):
        classification_positions(None, real, position=7)
    with pytest.raises(ValueError, match="classification_position must be"):
        AttnGradShapley(tiny_text_model("bert"), classification_position="middle")


def test_player_masks_follow_the_model_in_the_metrics_runner_and_cli():
    from captum_attn_shapley.capture import text_player_mask
    from captum_attn_shapley.metrics import faithfulness_curves

    gpt2, bert = _tiny_gpt2(seed=15), tiny_text_model("bert", seed=15)
    ids, mask = text_batch(seed=15, batch=3, length=8)
    ids = torch.where(mask.bool(), ids.clamp_min(5), torch.full_like(ids, PAD_ID))
    lengths = mask.sum(dim=1)
    for attention_mask in (mask, None):  # without a mask the real tokens come from the pad token id
        decoder = text_player_mask(ids, attention_mask, [PAD_ID], model=gpt2)
        encoder = text_player_mask(ids, attention_mask, [PAD_ID], model=bert)
        for b, n in enumerate(lengths.tolist()):
            assert decoder[b].tolist() == [True] * (n - 1) + [False] * (8 - n + 1)
            assert encoder[b].tolist() == [False] + [True] * (n - 1) + [False] * (8 - n)
    # the metrics count the players of the model's rule: every real token but the last one
    forward = _forward(gpt2)
    curves = faithfulness_curves(
        forward,
        ids,
        torch.rand(ids.shape),
        additional_forward_args=(mask,),
        baselines=0,
        special_token_ids=[PAD_ID],
    )
    assert curves.num_players.tolist() == (lengths - 1).tolist()


def test_an_index_position_is_accepted_whatever_its_value_and_is_never_a_player():
    model = tiny_text_model("bert", seed=16)
    ids, mask = text_batch(seed=16, batch=2, length=8)
    explainer = AttnGradShapley(model, game="cls", special_token_ids=SPECIAL_IDS, classification_position=3)
    phi = explainer.attribute(ids, additional_forward_args=(mask,))
    assert torch.all(phi[:, 3] == 0) and phi.abs().sum() > 0
    with pytest.raises(ValueError, match="outside the 8 tokens"):
        AttnGradShapley(model, classification_position=9).attribute(ids, additional_forward_args=(mask,))
