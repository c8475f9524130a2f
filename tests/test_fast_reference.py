"""The batched exact Shapley-Input and the one-pass faithfulness metrics against direct computations.

Shapley-Input packs the coalitions of several examples into each forward pass and drops trailing
padding; the metrics run all bins' masked inputs as one pass. Both are checked against references
computed one input at a time on the full padded rows (the previous implementations' inputs): the
Shapley values by the subset formula, the metrics by the definitions of docs/mathematics.md.
"""

import math
from itertools import combinations

import pytest
import torch
from tiny_models import MASK_ID, PAD_ID, SPECIAL_IDS, text_batch, tiny_text_model

from captum_attn_shapley import ShapleyInput
from captum_attn_shapley.metrics import faithfulness_curves, sufficiency

BINS = (0, 10, 20, 50)


def _probability(model, ids, mask, target):
    with torch.no_grad():
        logits = model(ids.unsqueeze(0), attention_mask=mask.unsqueeze(0)).logits.double()
    return float(torch.softmax(logits, dim=1)[0, target])


def _subset_formula(model, ids, mask, players, target):
    """phi_i = sum_S |S|!(n-|S|-1)!/n! [v(S + i) - v(S)], every v a separate full-length forward."""
    n = len(players)

    def value(coalition):
        x = ids.clone()
        for p in players:
            if p not in coalition:
                x[p] = MASK_ID
        return _probability(model, x, mask, target)

    values = {s: value(s) for r in range(n + 1) for s in combinations(players, r)}
    phi = {}
    for i in players:
        others = [p for p in players if p != i]
        total = 0.0
        for r in range(n):
            weight = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for s in combinations(others, r):
                total += weight * (values[tuple(sorted(s + (i,)))] - values[s])
        phi[i] = total
    return phi


class _Recorder:
    """The model as a forward function that records the shape of every pass."""

    def __init__(self, model):
        self.model, self.shapes, self.longest = model, [], []

    def __call__(self, ids, mask):
        self.shapes.append(tuple(ids.shape))
        self.longest.append(int(mask.sum(1).max()))  # the longest real length among the pass's rows
        return self.model(ids, attention_mask=mask).logits


@pytest.fixture(scope="module")
def bert():
    return tiny_text_model("bert", seed=11)


@pytest.fixture(scope="module")
def batch():
    ids, mask = text_batch(seed=11, batch=3, length=9)  # real lengths 9, 7, 5
    return ids, mask


def _players(ids, mask, b):
    return [i for i in range(int(mask[b].sum())) if int(ids[b, i]) not in SPECIAL_IDS]


@pytest.mark.parametrize("rows", [3, 40, 512])
def test_shapley_input_equals_the_subset_formula_on_full_padded_rows(bert, batch, rows):
    ids, mask = batch
    forward = _Recorder(bert)
    phi, delta = ShapleyInput(forward, model=bert, special_token_ids=SPECIAL_IDS).attribute(
        ids,
        baselines=MASK_ID,
        additional_forward_args=(mask,),
        perturbations_per_eval=rows,
        return_convergence_delta=True,
    )
    predicted = bert(ids, attention_mask=mask).logits.argmax(dim=1)
    for b in range(ids.shape[0]):
        players = _players(ids, mask, b)
        expected = _subset_formula(bert, ids[b], mask[b], players, int(predicted[b]))
        for p in players:
            assert math.isclose(float(phi[b, p]), expected[p], abs_tol=1e-6)
        others = [i for i in range(ids.shape[1]) if i not in players]
        assert bool((phi[b, others] == 0).all())
        # efficiency against two direct forwards: the unmasked input and all players masked
        empty = ids[b].clone()
        empty[players] = MASK_ID
        gain = _probability(bert, ids[b], mask[b], int(predicted[b])) - _probability(
            bert, empty, mask[b], int(predicted[b])
        )
        assert math.isclose(float(phi[b].sum()), gain, abs_tol=1e-6)
    assert float(delta.abs().max()) < 1e-9
    coalition_passes = forward.shapes[1:]  # the first call is the capture pass
    total = sum(2 ** len(_players(ids, mask, b)) for b in range(ids.shape[0]))
    assert sum(s[0] for s in coalition_passes) == total and all(s[0] <= rows for s in coalition_passes)
    # every pass is padded only to the longest real length among its rows
    assert [s[1] for s in coalition_passes] == forward.longest[1:]
    if rows == 512:
        assert len(coalition_passes) == 1  # the three examples share one pass
    if rows == 3:  # passes of the shortest example alone, at its real length
        assert min(s[1] for s in coalition_passes) == int(mask.sum(1).min())


def test_shapley_input_keeps_full_length_when_an_argument_has_another_sequence_axis(bert, batch):
    ids, mask = batch
    widths = []
    pair_bias = torch.zeros(ids.shape[0], ids.shape[1], ids.shape[1])

    def forward(x, m, bias):
        widths.append(x.shape[1])
        assert bias.shape[1:] == (ids.shape[1], ids.shape[1]) and m.shape == x.shape
        return bert(x, attention_mask=m).logits

    ShapleyInput(forward, model=bert, special_token_ids=SPECIAL_IDS).attribute(
        ids, baselines=MASK_ID, additional_forward_args=(mask, pair_bias), perturbations_per_eval=8
    )
    assert set(widths) == {ids.shape[1]}


def _top(scores, players, k):
    """r_k by the definition: the ceil(n k / 100) highest scores, ties to the earlier position."""
    count = math.ceil(round(len(players) * k / 100, 9))
    return sorted(players, key=lambda p: (-float(scores[p]), p))[:count]


def _direct_curves(model, ids, mask, scores, bins):
    """Per example, per bin and per metric one forward on the full padded row (docs/mathematics.md)."""
    comp, suff, preds = [], [], []
    for b in range(ids.shape[0]):
        players = _players(ids, mask, b)
        with torch.no_grad():
            logits = model(ids[b : b + 1], attention_mask=mask[b : b + 1]).logits.double()
        target = int(logits.argmax())
        p_x = float(torch.softmax(logits, dim=1)[0, target])
        rows_c, rows_s, rows_p = [], [], []
        for k in bins:
            top = _top(scores[b], players, k)
            for removed, out in ((top, rows_c), ([p for p in players if p not in top], rows_s)):
                x = ids[b].clone()
                x[removed] = MASK_ID
                with torch.no_grad():
                    probs = torch.softmax(model(x[None], attention_mask=mask[b : b + 1]).logits.double(), dim=1)
                out.append(p_x - float(probs[0, target]))
                if out is rows_s:
                    rows_p.append(int(probs.argmax()))
        comp.append(rows_c)
        suff.append(rows_s)
        preds.append(rows_p)
    return torch.tensor(comp, dtype=torch.float64), torch.tensor(suff, dtype=torch.float64), torch.tensor(preds)


@pytest.mark.parametrize("internal_batch_size", [None, 5])
def test_metrics_equal_the_direct_computation_in_one_pass(bert, internal_batch_size):
    ids, mask = text_batch(seed=12, batch=4, length=11)
    scores = torch.randn(ids.shape, generator=torch.Generator().manual_seed(12))
    forward = _Recorder(bert)
    curves = faithfulness_curves(
        forward,
        ids,
        scores,
        additional_forward_args=(mask,),
        bins=BINS,
        baselines=MASK_ID,
        special_token_ids=SPECIAL_IDS,
        internal_batch_size=internal_batch_size,
    )
    comp, suff, preds = _direct_curves(bert, ids, mask, scores, BINS)
    assert torch.allclose(curves.comprehensiveness_drops, comp, atol=1e-6)
    assert torch.allclose(curves.sufficiency_drops, suff, atol=1e-6)
    assert torch.equal(curves.sufficiency_predictions, preds)
    assert torch.allclose(curves.comprehensiveness(), comp.sum(1) / (len(BINS) + 1), atol=1e-6)
    common = dict(additional_forward_args=(mask,), bins=BINS, baselines=MASK_ID, special_token_ids=SPECIAL_IDS)
    kept = sufficiency(bert, ids, scores, internal_batch_size=internal_batch_size, **common)
    assert torch.allclose(kept, suff.sum(1) / (len(BINS) + 1), atol=1e-6)
    # every distinct input once: the originals plus the distinct masked inputs of every example
    distinct = 0
    for b in range(ids.shape[0]):
        players = _players(ids, mask, b)
        seen = {tuple(players)}  # the original replaces nothing
        for k in BINS:
            top = _top(scores[b], players, k)
            seen |= {tuple(p for p in players if p not in top), tuple(top)}  # the players kept
        distinct += len(seen)
    assert sum(s[0] for s in forward.shapes) == distinct < ids.shape[0] * (1 + 2 * len(BINS))
    if internal_batch_size is None:
        assert len(forward.shapes) == 1
    else:
        assert len(forward.shapes) == math.ceil(distinct / internal_batch_size)


def test_metrics_internal_batch_size_is_validated(bert):
    ids, mask = text_batch(seed=12, batch=2, length=7)
    with pytest.raises(ValueError, match="internal_batch_size must be a positive integer"):
        faithfulness_curves(
            bert,
            ids,
            torch.rand(ids.shape),
            additional_forward_args=(mask,),
            baselines=MASK_ID,
            special_token_ids=SPECIAL_IDS,
            internal_batch_size=0,
        )


def test_metrics_padding_rows_stay_padding(bert):
    ids, mask = text_batch(seed=13, batch=3, length=9)
    seen = []

    def forward(x, m):
        seen.append((x.clone(), m.clone()))
        return bert(x, attention_mask=m).logits

    faithfulness_curves(
        forward,
        ids,
        torch.rand(ids.shape),
        additional_forward_args=(mask,),
        baselines=MASK_ID,
        special_token_ids=SPECIAL_IDS,
    )
    ((x, m),) = seen
    assert bool((x[m == 0] == PAD_ID).all())  # each row got its own example's attention mask
