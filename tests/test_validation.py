"""Validation at the public boundary (captum_attn_shapley._utils.validation) and the InputWarnings: every
known input that used to fail deep inside torch / transformers now gets an error that names the argument and
the fix, and every silent setting that changes the numbers gets a warning."""

import warnings

import numpy as np
import pytest
import torch
from captum.attr import NoiseTunnel
from captum.concept import Concept
from tiny_models import MASK_ID, PAD_ID, SPECIAL_IDS, VOCAB, text_batch, tiny_image_model, tiny_text_model
from transformers import RobertaConfig, RobertaForSequenceClassification, SwinConfig, SwinForImageClassification

from captum_attn_shapley import (
    AttentionReceived,
    AttnGradShapley,
    GradSAM,
    ShapleyInput,
    ShapText,
    TokenTCAV,
    comprehensiveness,
    faithfulness_curves,
)
from captum_attn_shapley.attr import InputWarning
from captum_attn_shapley.evaluation import run_comparison
from captum_attn_shapley.metrics import check_bins
from captum_attn_shapley.shapley import exact_shapley, kernel_shapley, permutation_shapley

METHODS = (AttnGradShapley, AttentionReceived, GradSAM)


@pytest.fixture(scope="module")
def bert():
    return tiny_text_model("bert")


@pytest.fixture(scope="module")
def batch():
    return text_batch()


@pytest.fixture(scope="module")
def reference(bert, batch):
    ids, mask = batch
    return AttnGradShapley(bert, special_token_ids=SPECIAL_IDS).attribute(ids, additional_forward_args=(mask,))


def _explainer(bert):
    return AttnGradShapley(bert, special_token_ids=SPECIAL_IDS)


@pytest.fixture
def no_input_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        yield


# --- token ids: dtype, rank, vocabulary, length -------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_float_token_ids(bert, batch, method):
    ids, mask = batch
    with pytest.raises(ValueError, match=r"`inputs` must hold integer token ids .*inputs\.long\(\)"):
        method(bert).attribute(ids.float(), additional_forward_args=(mask,))


def test_token_ids_without_batch_dimension(bert, batch):
    ids, mask = batch
    with pytest.raises(ValueError, match=r"`inputs` must be a 2-D tensor .* got shape \(9,\).*unsqueeze\(0\)"):
        _explainer(bert).attribute(ids[0], additional_forward_args=(mask[0],))


def test_token_ids_outside_the_vocabulary(bert, batch):
    ids, mask = batch
    bad = ids.clone()
    bad[1, 2] = VOCAB + 5
    with pytest.raises(ValueError, match=rf"`inputs` holds token id {VOCAB + 5}, outside .*0\.\.{VOCAB - 1}"):
        _explainer(bert).attribute(bad, additional_forward_args=(mask,))
    bad[1, 2] = -1
    with pytest.raises(ValueError, match="holds token id -1, outside the vocabulary"):
        AttentionReceived(bert).attribute(bad, additional_forward_args=(mask,))


def test_shapley_input_baseline_outside_the_vocabulary(bert, batch):
    ids, mask = batch
    shapley_input = ShapleyInput(bert, special_token_ids=SPECIAL_IDS)
    with pytest.raises(ValueError, match=rf"`baselines`={VOCAB} is not a token id: ids are 0\.\.{VOCAB - 1}"):
        shapley_input.attribute(ids[:1, :5], baselines=VOCAB, additional_forward_args=(mask[:1, :5],))
    with pytest.raises(TypeError, match=r"`baselines` must be a token id \(an int\), got 4\.0"):
        shapley_input.attribute(ids[:1, :5], baselines=4.0, additional_forward_args=(mask[:1, :5],))


def test_metric_replacement_id_outside_the_vocabulary(bert, batch, reference):
    ids, mask = batch
    with pytest.raises(ValueError, match=rf"`baselines`={VOCAB + 1} is not a token id.*mask_token_id"):
        comprehensiveness(
            bert,
            ids,
            reference,
            additional_forward_args=(mask,),
            baselines=VOCAB + 1,
            special_token_ids=SPECIAL_IDS,
        )
    with pytest.raises(ValueError, match="outside the vocabulary"):
        comprehensiveness(bert, ids + VOCAB, reference, additional_forward_args=(mask,), baselines=MASK_ID)


def test_roberta_length_limit_counts_the_offset_positions():
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=66,  # positions start at padding_idx + 1 = 2: 64 usable
        pad_token_id=PAD_ID,
        num_labels=2,
    )
    roberta = RobertaForSequenceClassification(config).eval()
    explainer = AttnGradShapley(roberta, special_token_ids=SPECIAL_IDS)
    assert explainer.attribute(torch.full((1, 64), 7)).shape == (1, 64)
    with pytest.raises(ValueError, match=r"65 tokens but RobertaForSequenceClassification accepts at most 64 \("):
        explainer.attribute(torch.full((1, 65), 7))
    # the capture's own check (the pre-hook inside the model) uses the same limit
    from captum_attn_shapley.capture.eager import check_input_length

    with pytest.raises(ValueError, match="max_length=64"):
        check_input_length(roberta, torch.full((1, 65), 7))


# --- the attention mask -------------------------------------------------------------------------------------


def test_attention_mask_of_another_length(bert, batch):
    ids, mask = batch
    with pytest.raises(ValueError, match=r"attention mask \(additional_forward_args\[0\]\) has 5 columns .* 9"):
        _explainer(bert).attribute(ids, additional_forward_args=(mask[:, :5],))
    with pytest.raises(ValueError, match=r"attention mask .* has 5 columns"):
        comprehensiveness(bert, ids, torch.rand(ids.shape), additional_forward_args=(mask[:, :5],), baselines=4)
    with pytest.raises(ValueError, match=r"`attention mask` must be bool \(or hold only 0 and 1\)"):
        _explainer(bert).attribute(ids, additional_forward_args=(mask * 2,))


# --- options ------------------------------------------------------------------------------------------------


def test_layers_as_tensor_or_array_are_converted(bert, batch):
    ids, mask = batch
    explainer = _explainer(bert)
    expected = explainer.attribute(ids, additional_forward_args=(mask,), layers=[0])
    for layers in (torch.tensor([0]), np.array([0]), torch.tensor(0), np.int64(0)):
        assert torch.equal(explainer.attribute(ids, additional_forward_args=(mask,), layers=layers), expected)


@pytest.mark.parametrize(
    "layers", [[True], True, [0.0], torch.tensor([0.5]), np.array([True]), "0", [torch.tensor(0)]]
)
def test_layers_of_the_wrong_type(bert, batch, layers):
    ids, mask = batch
    with pytest.raises(TypeError, match=r"`layers` must be an int, a sequence of ints .*"):
        _explainer(bert).attribute(ids, additional_forward_args=(mask,), layers=layers)


def test_player_masks_are_bool_or_zero_one(bert, batch, reference):
    ids, mask = batch
    explainer = _explainer(bert)
    players = reference != 0
    as_ints = explainer.attribute(ids, additional_forward_args=(mask,), player_mask=players.long())
    assert torch.equal(as_ints, explainer.attribute(ids, additional_forward_args=(mask,), player_mask=players))
    half = players.float() * 0.5
    with pytest.raises(ValueError, match=r"`player_mask` must be bool .* value 0\.5\. It is not cast"):
        explainer.attribute(ids, additional_forward_args=(mask,), player_mask=half)
    with pytest.raises(ValueError, match="`player_mask` must be bool"):
        comprehensiveness(bert, ids, reference, additional_forward_args=(mask,), baselines=4, player_mask=half)


def test_bins_accept_arrays_and_refuse_text():
    assert check_bins(torch.tensor([20, 0, 10])) == (0.0, 10.0, 20.0)
    assert check_bins(np.array([50.0, 10.0])) == (10.0, 50.0)
    with pytest.raises(TypeError, match=r"`bins` must hold numbers .*e\.g\. bins="):
        check_bins(["10"])


# --- wrappers and models ------------------------------------------------------------------------------------


def test_noise_tunnel_on_token_ids(bert, batch):
    ids, mask = batch
    tunnel = NoiseTunnel(_explainer(bert))
    with pytest.raises(
        ValueError, match=r"non-integer values .*Noise on integer token ids is meaningless.*inputs_embeds"
    ):
        tunnel.attribute(ids, nt_samples=2, stdevs=0.5, additional_forward_args=(mask,))


def test_detached_logits_name_the_forward_function(bert, batch):
    ids, mask = batch

    def detached_forward(i, m):
        return bert(i, m).logits.detach()

    explainer = AttnGradShapley(detached_forward, model=bert, special_token_ids=SPECIAL_IDS)
    with pytest.raises(RuntimeError, match=r"forward function .*detached_forward returned logits that are not"):
        explainer.attribute(ids, additional_forward_args=(mask,))
    # no gradient needed: the same forward function is fine
    attention = explainer.attribute(ids, additional_forward_args=(mask,), weighting="attention")
    expected = _explainer(bert).attribute(ids, additional_forward_args=(mask,), weighting="attention")
    assert torch.equal(attention, expected)


def test_meta_device_model(bert, batch, tmp_path):
    ids, mask = batch
    with torch.device("meta"):
        meta = type(bert)(bert.config)
    with pytest.raises(ValueError, match=r"parameters on the meta device .*Load the weights first"):
        AttnGradShapley(meta).attribute(ids, additional_forward_args=(mask,))
    with pytest.raises(ValueError, match="meta device"):
        TokenTCAV(meta, layers=[0], save_path=str(tmp_path))
    with pytest.raises(ValueError, match="meta device"):
        run_comparison(meta, None, ["a text"], [0], {"att": AttentionReceived(bert)}, progress=False)


def test_compiled_model_is_unwrapped(bert, batch, reference):
    ids, mask = batch
    compiled = torch.compile(bert)
    explainer = AttnGradShapley(compiled, special_token_ids=SPECIAL_IDS)
    assert explainer.model is bert
    assert torch.equal(explainer.attribute(ids, additional_forward_args=(mask,)), reference)
    with pytest.raises(ValueError, match=r"torch\.compile'd BertForSequenceClassification.*_orig_mod"):
        AttnGradShapley(lambda i, m: compiled(i, m).logits)


def test_windowed_attention_is_an_unsupported_architecture(tmp_path):
    config = SwinConfig(
        image_size=16, patch_size=4, embed_dim=8, depths=[1], num_heads=[1], window_size=2, num_labels=2
    )
    swin = SwinForImageClassification(config).eval()
    for build in (AttnGradShapley, GradSAM, lambda m: TokenTCAV(m, layers=[0], save_path=str(tmp_path))):
        with pytest.raises(
            ValueError, match=r"Unsupported architecture: SwinForImageClassification \(model_type 'swin'\)"
        ):
            build(swin)
    vit = tiny_image_model("vit")
    vit.config.window_size = 4  # any vision config with windows (ViTDet-style)
    try:
        with pytest.raises(ValueError, match="windowed"):
            AttnGradShapley(vit)
    finally:
        del vit.config.window_size


def test_token_tcav_validates_its_examples_before_training(bert, batch, tmp_path):
    ids, mask = batch
    tcav = TokenTCAV(bert, layers=[0], save_path=str(tmp_path), repeats=2)
    concepts = [Concept(0, "a", None), Concept(1, "b", None)]  # never read: the check comes first
    with pytest.raises(ValueError, match="must hold integer token ids"):
        tcav.interpret(ids.float(), [concepts], additional_forward_args=(mask,))
    with pytest.raises(ValueError, match="attention mask"):
        tcav.interpret(ids, [concepts], additional_forward_args=(mask[:, :4],))


def test_shap_text_validates_before_shap_runs(bert, batch):
    class Tokenizer:
        mask_token, pad_token_id = "[MASK]", PAD_ID

    ids, mask = batch
    explainer = ShapText(bert, Tokenizer())
    with pytest.raises(ValueError, match="must hold integer token ids"):
        explainer.attribute(ids.float(), additional_forward_args=(mask,))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        explainer.attribute(ids + VOCAB, additional_forward_args=(mask,))


def test_runner_labels_within_the_classes(bert):
    methods = {"att": AttentionReceived(bert)}
    with pytest.raises(ValueError, match=r"`labels` holds 7, but BertForSequenceClassification has 3 classes"):
        run_comparison(bert, None, ["a text"], [7], methods, progress=False)
    with pytest.raises(TypeError, match=r"`labels` must hold class indices \(ints\), got 0\.5"):
        run_comparison(bert, None, ["a text"], [0.5], methods, progress=False)


# --- user games returning NaN or inf ------------------------------------------------------------------------


def _broken_game(m, coalitions):
    s = coalitions.to(m.dtype)
    values = s.sum(dim=1)
    return torch.where(values == 2, torch.full_like(values, float("inf")), values)


@pytest.mark.parametrize("estimator", ["exact", "permutation", "kernel"])
def test_user_game_returning_inf_names_the_coalition(bert, batch, estimator):
    ids, mask = batch
    with pytest.raises(ValueError, match=r"game returned inf for the coalition of players \[\d+, \d+\]"):
        _explainer(bert).attribute(
            ids, additional_forward_args=(mask,), game=_broken_game, estimator=estimator, n_samples=8
        )


def test_estimators_refuse_nan_values():
    m = torch.eye(4)

    def nan_game(m, coalitions):
        return torch.where(coalitions.all(dim=1), float("nan"), coalitions.sum(dim=1).to(m.dtype))

    for estimate in (
        exact_shapley,
        lambda g, m: permutation_shapley(g, m, 4),
        lambda g, m: kernel_shapley(g, m, 4),
    ):
        with pytest.raises(ValueError, match=r"game returned nan for the coalition of players \[0, 1, 2, 3\]"):
            estimate(nan_game, m)


# --- warnings -----------------------------------------------------------------------------------------------


def test_no_warning_for_a_well_formed_call(bert, batch, reference, no_input_warnings):
    ids, mask = batch
    _explainer(bert).attribute(ids, additional_forward_args=(mask,))
    comprehensiveness(bert, ids, reference, additional_forward_args=(mask,), baselines=MASK_ID)


def test_padded_batch_without_attention_mask(bert, batch):
    ids, _ = batch
    with pytest.warns(
        InputWarning, match=rf"2 of 3 examples start or end with the pad token id {PAD_ID}.*attention_mask"
    ):
        _explainer(bert).attribute(ids)
    with pytest.warns(InputWarning, match="no attention mask was given"):
        comprehensiveness(bert, ids, torch.rand(ids.shape), baselines=MASK_ID, special_token_ids=SPECIAL_IDS)


def test_model_in_training_mode(bert, batch):
    ids, mask = batch
    bert.train()
    try:
        with pytest.warns(
            InputWarning, match=r"training mode: dropout \(or batch normalisation\) is active.*model\.eval\(\)"
        ):
            AttentionReceived(bert).attribute(ids, additional_forward_args=(mask,))
    finally:
        bert.eval()


def test_training_mode_without_randomness_is_not_warned_about(batch, no_input_warnings):
    ids, mask = batch

    class MeanEmbedding(torch.nn.Module):  # a fresh module is in training mode, but has nothing random
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, 2)

        def forward(self, ids, mask):
            return (self.embed(ids) * mask.unsqueeze(-1)).sum(dim=1)

    model = MeanEmbedding()
    assert model.training
    common = dict(additional_forward_args=(mask,), baselines=MASK_ID, special_token_ids=SPECIAL_IDS)
    comprehensiveness(model, ids, torch.rand(ids.shape), **common)


def test_probabilities_where_logits_are_expected(bert, batch, reference, no_input_warnings):
    ids, mask = batch

    def probabilities(i, m):
        return torch.softmax(bert(i, m).logits, dim=-1)

    common = dict(additional_forward_args=(mask,), baselines=MASK_ID, special_token_ids=SPECIAL_IDS)
    with pytest.warns(InputWarning, match=r"seems to return probabilities.*apply_softmax=False"):
        comprehensiveness(probabilities, ids, reference, **common)
    faithfulness_curves(probabilities, ids, reference, apply_softmax=False, **common)  # no warning
    with pytest.warns(InputWarning, match="ShapleyInput"):
        ShapleyInput(probabilities, model=bert, special_token_ids=SPECIAL_IDS).attribute(
            ids[:1, :5], baselines=MASK_ID, additional_forward_args=(mask[:1, :5],)
        )


def test_half_precision_models_get_float32_attributions():
    half = tiny_text_model("bert").half()  # CPU float16 matmul
    ids, mask = text_batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)  # the tiny model's small values: checked below
        for weighting in ("attention", "grad_attention"):
            result = AttnGradShapley(half, special_token_ids=SPECIAL_IDS).attribute(
                ids, additional_forward_args=(mask,), weighting=weighting
            )
            assert result.dtype == torch.float32 and bool(torch.isfinite(result).all())
        received = GradSAM(half).attribute(ids, additional_forward_args=(mask,))
        assert received.dtype == torch.float32

    def tiny_game(m, coalitions):  # every player is worth 1e-6, below float16's smallest normal number
        return coalitions.to(m.dtype).sum(dim=1) * 1e-6

    with pytest.warns(InputWarning, match=r"below the smallest normal float16 number .* returned in float32"):
        phi = AttnGradShapley(half, special_token_ids=SPECIAL_IDS).attribute(
            ids, additional_forward_args=(mask,), game=tiny_game
        )
    players = phi != 0
    assert torch.allclose(phi[players], torch.full_like(phi[players], 1e-6))
