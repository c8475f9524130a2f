"""Faithfulness metrics against hand-computed cases and a model whose token importance is known."""

import math
import random
from types import SimpleNamespace

import pytest
import torch
from captum.attr import IntegratedGradients, LayerIntegratedGradients
from sklearn.metrics import f1_score
from torch import nn

from captum_attn_shapley import AttnGradShapley
from captum_attn_shapley.metrics import (
    DEFAULT_BINS,
    comprehensiveness,
    f1_of_predictions,
    faithfulness_curves,
    selection_size,
    sufficiency,
    sufficiency_f1,
    sufficiency_predictions,
)
from tests.tiny_models import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_IDS, VOCAB, text_batch, tiny_text_model

UNK_ID = 5


class BagOfWords(nn.Module):
    """logits = [0, sum_t w[id_t]] over real tokens: the importance of each token is w[id]."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.embedding = nn.Embedding(weights.numel(), 1)
        with torch.no_grad():
            self.embedding.weight.copy_(weights.reshape(-1, 1))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        score = (self.embedding(ids).squeeze(-1) * mask).sum(dim=1, keepdim=True)
        return torch.cat([torch.zeros_like(score), score], dim=1)


def _weights(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(VOCAB, generator=gen, dtype=torch.float64).float()
    w[SPECIAL_IDS + [UNK_ID]] = 0.0
    return w


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_hand_computed_case():
    w = torch.zeros(VOCAB)
    w[10], w[11], w[12], w[13] = 2.0, -1.0, 0.5, 0.0
    model = BagOfWords(w)
    ids = torch.tensor([[CLS_ID, 10, 11, 12, 13, SEP_ID]])
    mask = torch.ones_like(ids)
    attr = torch.tensor([[0.0, 2.0, -1.0, 0.5, 0.0, 0.0]])
    bins = (0, 25, 50)  # n = 4 players -> |r_k| = 0, 1, 2: r_25 = {10}, r_50 = {10, 12}
    curves = faithfulness_curves(
        model,
        ids,
        attr,
        additional_forward_args=(mask,),
        bins=bins,
        baselines=MASK_ID,
        special_token_ids=SPECIAL_IDS,
    )
    p = _sigmoid(1.5)  # predicted class 1
    comp_drops = [0.0, p - _sigmoid(-0.5), p - _sigmoid(-1.0)]
    suff_drops = [p - 0.5, p - _sigmoid(2.0), p - _sigmoid(2.5)]
    assert curves.target.tolist() == [1]
    assert curves.num_players.tolist() == [4]
    assert curves.num_selected.tolist() == [[0, 1, 2]]
    assert curves.comprehensiveness_drops[0].tolist() == pytest.approx(comp_drops, abs=1e-7)
    assert curves.sufficiency_drops[0].tolist() == pytest.approx(suff_drops, abs=1e-7)
    assert curves.sufficiency_predictions[0].tolist() == [0, 1, 1]  # k=0: s = 0, a tie; argmax takes class 0
    expected_comp = sum(comp_drops) / 4
    expected_suff = sum(suff_drops) / 4
    common = dict(additional_forward_args=(mask,), bins=bins, baselines=MASK_ID, special_token_ids=SPECIAL_IDS)
    assert float(comprehensiveness(model, ids, attr, **common)) == pytest.approx(expected_comp, abs=1e-7)
    assert float(sufficiency(model, ids, attr, **common)) == pytest.approx(expected_suff, abs=1e-7)


def _reference(weights, ids, mask, scores, bins, replacement, special, target=None):
    """Plain-Python comprehensiveness and sufficiency of one example (independent of the package)."""
    ids, mask, scores = ids.tolist(), mask.tolist(), scores.tolist()
    players = [i for i in range(1, len(ids)) if mask[i] and ids[i] not in special]

    def prob(seq, cls):
        s = sum(float(weights[t]) * m for t, m in zip(seq, mask))
        p1 = _sigmoid(s)
        return p1 if cls == 1 else 1 - p1

    s0 = sum(float(weights[t]) * m for t, m in zip(ids, mask))
    cls = target if target is not None else int(s0 > 0)
    p = prob(ids, cls)
    ranked = sorted(players, key=lambda i: (-scores[i], i))
    comp = suff = 0.0
    for k in bins:
        top = set(ranked[: math.ceil(round(len(players) * k / 100, 9))])
        comp += p - prob([replacement if i in top else t for i, t in enumerate(ids)], cls)
        suff += p - prob([replacement if (i in players and i not in top) else t for i, t in enumerate(ids)], cls)
    return comp / (len(bins) + 1), suff / (len(bins) + 1)


@pytest.mark.parametrize("bins", [DEFAULT_BINS, (5, 33.3, 100), (50,)])
def test_matches_plain_python_reference_on_padded_batches(bins):
    w = _weights(1)
    model = BagOfWords(w)
    ids, mask = text_batch(seed=3, batch=6, length=12)
    gen = torch.Generator().manual_seed(5)
    attr = torch.randn(ids.shape, generator=gen)
    attr[0, 3] = attr[0, 4]  # a tie, broken by position
    curves = faithfulness_curves(
        model,
        ids,
        attr,
        additional_forward_args=(mask,),
        bins=bins,
        baselines=MASK_ID,
        special_token_ids=SPECIAL_IDS,
    )
    for b in range(ids.shape[0]):
        comp, suff = _reference(w, ids[b], mask[b], attr[b], bins, MASK_ID, SPECIAL_IDS)
        assert float(curves.comprehensiveness()[b]) == pytest.approx(comp, abs=1e-6)
        assert float(curves.sufficiency()[b]) == pytest.approx(suff, abs=1e-6)


def test_explicit_target_is_explained():
    w = _weights(2)
    model = BagOfWords(w)
    ids, mask = text_batch(seed=4, batch=4, length=10)
    attr = torch.randn(ids.shape, generator=torch.Generator().manual_seed(0))
    got = comprehensiveness(
        model,
        ids,
        attr,
        target=0,
        additional_forward_args=(mask,),
        baselines=MASK_ID,
        special_token_ids=SPECIAL_IDS,
    )
    for b in range(ids.shape[0]):
        comp, _ = _reference(w, ids[b], mask[b], attr[b], DEFAULT_BINS, MASK_ID, SPECIAL_IDS, target=0)
        assert float(got[b]) == pytest.approx(comp, abs=1e-6)


def test_true_importance_beats_reversed_and_random():
    """On the bag-of-words model the true weights are the ideal ranking for the predicted class."""
    w = _weights(3)
    model = BagOfWords(w)
    ids, mask = text_batch(seed=7, batch=16, length=14)
    sign = torch.where(model(ids, mask).argmax(1) == 1, 1.0, -1.0).unsqueeze(1)
    truth = w[ids] * sign  # importance for the predicted class
    common = dict(additional_forward_args=(mask,), baselines=MASK_ID, special_token_ids=SPECIAL_IDS)
    comp_true = comprehensiveness(model, ids, truth, **common)
    comp_rev = comprehensiveness(model, ids, -truth, **common)
    suff_true = sufficiency(model, ids, truth, **common)
    suff_rev = sufficiency(model, ids, -truth, **common)
    assert bool((comp_true >= comp_rev - 1e-9).all()) and float((comp_true - comp_rev).mean()) > 0.05
    assert bool((suff_true <= suff_rev + 1e-9).all()) and float((suff_rev - suff_true).mean()) > 0.05
    rand = torch.randn(ids.shape, generator=torch.Generator().manual_seed(1))
    assert float(comprehensiveness(model, ids, rand, **common).mean()) < float(comp_true.mean())


def test_captum_attributions_of_any_shape():
    """LayerIntegratedGradients on the embedding (batch, seq, 1) and IG-style (batch, seq)."""
    w = _weights(4)
    model = BagOfWords(w)
    ids, mask = text_batch(seed=1, batch=5, length=9)
    baseline = torch.where(torch.isin(ids, torch.tensor(SPECIAL_IDS)), ids, torch.full_like(ids, MASK_ID))
    lig = LayerIntegratedGradients(model, model.embedding)
    attr3d = lig.attribute(ids, baselines=baseline, target=1, additional_forward_args=(mask,))
    assert attr3d.dim() == 3
    common = dict(target=1, additional_forward_args=(mask,), baselines=MASK_ID, special_token_ids=SPECIAL_IDS)
    got = comprehensiveness(model, ids, attr3d, **common)
    assert torch.allclose(got, comprehensiveness(model, ids, attr3d.sum(-1), **common))
    # for a linear model LIG recovers w[id] * mask exactly, so it is the ideal ranking
    assert torch.allclose(got, comprehensiveness(model, ids, w[ids] * mask, **common), atol=1e-6)
    assert torch.allclose(got, comprehensiveness(model, ids, (attr3d,), **common))  # tuple output of Captum

    embedded = model.embedding(ids).detach()

    def forward_embedded(emb, m):
        return torch.cat([torch.zeros(emb.shape[0], 1), (emb.squeeze(-1) * m).sum(1, keepdim=True)], 1)

    ig = IntegratedGradients(forward_embedded).attribute(embedded, target=1, additional_forward_args=(mask,))
    assert torch.allclose(comprehensiveness(model, ids, ig, **common), got, atol=1e-6)


def test_special_tokens_and_padding_never_replaced():
    w = _weights(5)
    model = BagOfWords(w)
    ids, mask = text_batch(seed=2, batch=4, length=11)
    seen = []

    def forward(x, m):
        seen.append(x.clone())
        return model(x, m)

    attr = torch.randn(ids.shape, generator=torch.Generator().manual_seed(2))
    curves = faithfulness_curves(
        forward,
        ids,
        attr,
        additional_forward_args=(mask,),
        bins=(0, 10, 20, 50, 100),
        baselines=UNK_ID,
        special_token_ids=SPECIAL_IDS,
    )
    fixed = torch.isin(ids, torch.tensor(SPECIAL_IDS))
    fixed[:, 0] = True
    players = ~fixed
    rows = torch.cat(seen)  # one pass: the distinct inputs of all examples and bins
    for row in rows:
        # each input is one example's ids with some of its players (never anything else) replaced
        assert any(
            torch.equal(row[fixed[b]], ids[b, fixed[b]])
            and bool(((row == ids[b]) | (row == UNK_ID))[players[b]].all())
            for b in range(ids.shape[0])
        )
    n = players.sum(1)
    for j, k in enumerate(curves.bins):
        expected = torch.tensor([math.ceil(round(int(v) * k / 100, 9)) for v in n])
        assert torch.equal(curves.num_selected[:, j], expected)
    assert torch.equal(curves.num_players, n)
    assert torch.allclose(curves.sufficiency_drops[:, -1], torch.zeros(4, dtype=torch.float64))  # k=100 keeps all


def test_selection_size_is_exact_ceiling():
    assert selection_size(torch.tensor([10, 10, 3, 7, 0]), 10).tolist() == [1, 1, 1, 1, 0]
    assert selection_size(torch.tensor([10, 11, 15]), 20).tolist() == [2, 3, 3]
    assert selection_size(torch.tensor([9]), 100 / 3).tolist() == [3]


def test_named_replacements_from_tokenizer():
    w = _weights(6)
    w[UNK_ID] = 3.0  # make the replacement visible in the probabilities
    model = BagOfWords(w)
    ids, mask = text_batch(seed=8, batch=3, length=8)
    attr = torch.randn(ids.shape, generator=torch.Generator().manual_seed(3))
    tok = SimpleNamespace(
        mask_token_id=MASK_ID, pad_token_id=PAD_ID, unk_token_id=UNK_ID, all_special_ids=SPECIAL_IDS
    )
    common = dict(additional_forward_args=(mask,), tokenizer=tok)
    by_name = comprehensiveness(model, ids, attr, baselines="unk", **common)
    assert torch.allclose(by_name, comprehensiveness(model, ids, attr, baselines=UNK_ID, **common))
    assert not torch.allclose(by_name, comprehensiveness(model, ids, attr, **common))  # mask is the default
    assert torch.allclose(
        comprehensiveness(model, ids, attr, **common),
        comprehensiveness(model, ids, attr, baselines=MASK_ID, **common),
    )
    assert torch.allclose(
        comprehensiveness(model, ids, attr, baselines="pad", **common),
        comprehensiveness(model, ids, attr, baselines=PAD_ID, **common),
    )


def test_f1_on_sufficiency_inputs_matches_sklearn():
    w = _weights(7)
    model = BagOfWords(w)
    ids, mask = text_batch(seed=9, batch=12, length=10)
    attr = torch.randn(ids.shape, generator=torch.Generator().manual_seed(4))
    labels = [random.Random(b).randint(0, 1) for b in range(12)]
    common = dict(additional_forward_args=(mask,), baselines=MASK_ID, special_token_ids=SPECIAL_IDS)
    preds = sufficiency_predictions(model, ids, attr, k=20, **common)
    # independent: build the k=20 sufficiency inputs by hand
    for b in range(12):
        players = [i for i in range(1, ids.shape[1]) if mask[b, i] and int(ids[b, i]) not in SPECIAL_IDS]
        top = sorted(players, key=lambda i: (-float(attr[b, i]), i))[: math.ceil(round(len(players) * 0.2, 9))]
        x = ids[b].clone()
        for i in players:
            if i not in top:
                x[i] = MASK_ID
        assert int(preds[b]) == int(model(x[None], mask[b][None]).argmax(1))
    expected = f1_score(labels, preds.numpy(), average="macro")
    assert sufficiency_f1(model, ids, attr, labels, k=20, **common) == pytest.approx(expected)
    assert f1_of_predictions(labels, preds, average="binary") == pytest.approx(
        f1_score(labels, preds.numpy(), average="binary")
    )


def test_works_with_hf_model_and_our_attributions():
    model = tiny_text_model("bert", num_labels=3)
    ids, mask = text_batch(seed=0, batch=3, length=9)
    attr = AttnGradShapley(model, special_token_ids=SPECIAL_IDS).attribute(ids, additional_forward_args=(mask,))
    curves = faithfulness_curves(
        model, ids, attr, additional_forward_args=(mask,), baselines=MASK_ID, special_token_ids=SPECIAL_IDS
    )
    with torch.no_grad():
        probs = torch.softmax(model(ids, mask).logits.double(), 1)
    assert torch.equal(curves.target, probs.argmax(1))
    assert torch.allclose(curves.probability, probs.max(1).values)
    assert curves.comprehensiveness().shape == (3,)
    # k = 0: nothing removed for comprehensiveness, everything for sufficiency
    assert torch.allclose(curves.comprehensiveness_drops[:, 0], torch.zeros(3, dtype=torch.float64))
    removed_all = torch.where(
        torch.isin(ids, torch.tensor(SPECIAL_IDS)) | (torch.arange(9) == 0), ids, torch.full_like(ids, MASK_ID)
    )
    with torch.no_grad():
        p_all = torch.softmax(model(removed_all, mask).logits.double(), 1)[torch.arange(3), curves.target]
    assert torch.allclose(curves.sufficiency_drops[:, 0], curves.probability - p_all)


def test_bad_input_raises_clear_errors():
    model = BagOfWords(_weights(8))
    ids, mask = text_batch(seed=0, batch=2, length=6)
    attr = torch.randn(ids.shape)
    common = dict(additional_forward_args=(mask,), baselines=MASK_ID, special_token_ids=SPECIAL_IDS)
    with pytest.raises(ValueError, match="attributions have shape"):
        comprehensiveness(model, ids, attr[:, :4], **common)
    with pytest.raises(ValueError, match="attributions have shape"):
        comprehensiveness(model, ids, attr[0], **common)
    with pytest.raises(ValueError, match="outside 0-100"):
        comprehensiveness(model, ids, attr, bins=(0, 120), **common)
    with pytest.raises(ValueError, match="outside 0-100"):
        sufficiency(model, ids, attr, bins=(-5,), **common)
    with pytest.raises(ValueError, match="empty"):
        comprehensiveness(model, ids, attr, bins=(), **common)
    with pytest.raises(ValueError, match="NaN"):
        comprehensiveness(model, ids, torch.full(ids.shape, float("nan")), **common)
    with pytest.raises(TypeError, match="no logits"):
        comprehensiveness(lambda x, m: {"probs": x}, ids, attr, **common)
    with pytest.raises(ValueError, match="gold labels"):
        sufficiency_f1(model, ids, attr, None, **common)
    with pytest.raises(ValueError, match="labels for"):
        sufficiency_f1(model, ids, attr, [1, 0, 1], **common)
    with pytest.raises(ValueError, match="integer token ids"):
        comprehensiveness(model, ids.float(), attr, **common)
    with pytest.raises(ValueError, match="Unknown replacement"):
        comprehensiveness(
            model, ids, attr, additional_forward_args=(mask,), baselines="blank", special_token_ids=SPECIAL_IDS
        )
    with pytest.raises(ValueError, match="special tokens"):
        comprehensiveness(lambda x, m: model(x, m), ids, attr, additional_forward_args=(mask,), baselines=MASK_ID)
    with pytest.raises(ValueError, match="not one of the bins"):
        faithfulness_curves(model, ids, attr, **common).predictions_at(30)
    with pytest.raises(ValueError, match="out of range"):
        comprehensiveness(model, ids, attr, target=5, **common)


@pytest.mark.parametrize("metric", [comprehensiveness, sufficiency, faithfulness_curves])
def test_replacement_is_a_deprecated_alias_of_baselines(metric):
    model = BagOfWords(_weights(1))
    ids, mask = text_batch(seed=2, batch=3, length=8)
    attr = torch.randn(ids.shape, generator=torch.Generator().manual_seed(1))
    common = dict(additional_forward_args=(mask,), special_token_ids=SPECIAL_IDS)
    expected = comprehensiveness(model, ids, attr, baselines=UNK_ID, **common)
    with pytest.warns(FutureWarning, match="use `baselines=`"):
        old = metric(model, ids, attr, replacement=UNK_ID, **common)
    if metric is comprehensiveness:
        assert torch.equal(old, expected)
    with pytest.raises(TypeError, match="pass only `baselines=`"):
        metric(model, ids, attr, replacement=UNK_ID, baselines=UNK_ID, **common)
