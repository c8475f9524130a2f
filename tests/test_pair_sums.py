"""The pairwise games' sums accumulated by the capture (no T x T matrix) against the matrix route."""

import pytest
import torch
from tiny_models import SPECIAL_IDS, text_batch, zoo_model

import captum_attn_shapley.capture.pair_sums as pair_sums_module
from captum_attn_shapley import AttnGradShapley
from captum_attn_shapley.capture import AttentionCapture
from captum_attn_shapley.capture.pair_sums import PairSums
from captum_attn_shapley.capture.players import text_player_mask
from captum_attn_shapley.capture.reductions import InfluenceRequest
from captum_attn_shapley.shapley import shapley_values


def sums_by_loops(matrix, players, game):
    """``sum_{j != i, j player} w_ij`` with Python loops, straight from the games' definitions."""
    batch, n, _ = matrix.shape
    out = torch.zeros(batch, n, dtype=torch.float64)
    for b in range(batch):
        for i in range(n):
            for j in range(n):
                if j == i or not players[b, j]:
                    continue
                a, c = float(matrix[b, i, j]), float(matrix[b, j, i])
                out[b, i] += a + c if game == "mutual" else max(a, c)
    return out


@pytest.mark.parametrize("game,dense", [("mutual", False), ("max_mutual", False), ("max_mutual", True)])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 11])
@pytest.mark.parametrize("rows_per_add", [1, 3, None])
def test_pair_sums_equal_the_definition_for_any_blocks(game, dense, n, rows_per_add, monkeypatch):
    """Odd and even lengths (pairs at distance T/2 are held twice), any row blocks, examples added
    separately, and inner blocks smaller than a row; Max-Mutual packed (half the matrix) and dense (the
    whole matrix, for small batches)."""
    monkeypatch.setattr(pair_sums_module, "PAIR_BLOCK", 7)
    monkeypatch.setattr(pair_sums_module, "DENSE_MAX_MUTUAL", 1 << 30 if dense else 0)
    gen = torch.Generator().manual_seed(n)
    matrix = torch.rand(3, n, n, generator=gen)
    players = torch.rand(3, n, generator=gen) > 0.3
    sums = PairSums(game, players)
    assert (sums.dense is not None) == dense
    step = rows_per_add or n
    for examples in (slice(0, 1), slice(1, 3)):
        for start in reversed(range(0, n, step)):  # any order of the blocks
            rows = slice(start, min(start + step, n))
            sums.add(matrix[examples, rows], rows, examples)
    expected = sums_by_loops(matrix, players, game)
    assert torch.allclose(sums.pair_weight_sums()[players], expected[players], atol=1e-5)
    assert torch.allclose(sums.diagonal, torch.diagonal(matrix, dim1=-2, dim2=-1).double())


def test_max_mutual_holds_half_the_matrix_unless_it_is_small():
    players = torch.ones(2, 2048, dtype=torch.bool)
    sums = PairSums("max_mutual", players)
    assert sums.packed is not None and sums.packed.numel() == 2 * 2048 * 1024 and sums.dense is None
    assert PairSums("mutual", players).packed is None
    small = PairSums("max_mutual", torch.ones(16, 512, dtype=torch.bool))  # 16 x 512 x 512: 16 MiB
    assert small.dense is not None and small.packed is None
    shared = PairSums("max_mutual", torch.ones(16, 512, dtype=torch.bool), sharing=6)  # six layer groups at once
    assert shared.dense is None and shared.packed is not None


def test_layer_groups_share_the_dense_budget(monkeypatch):
    """A capture of several layer groups holds one accumulator per group at once: Max-Mutual's dense route is
    taken only when all of them fit the budget together."""
    from captum_attn_shapley.capture.reductions import InfluenceReducer

    batch, n = 2, 8
    monkeypatch.setattr(pair_sums_module, "DENSE_MAX_MUTUAL", 2 * batch * n * n)

    def positions(b, t, device):
        return (
            torch.ones(b, t, dtype=torch.bool),
            torch.zeros(b, dtype=torch.long),
            torch.ones(b, t, dtype=torch.bool),
        )

    for groups, dense in ((((0,), (1,)), True), (((0,), (1,), (0, 1)), False)):
        request = InfluenceRequest("pair_sums", "attention", "max_mutual", groups=groups)
        reducer = InfluenceReducer(request, 2, positions)
        reducer.resolve(batch, n, torch.device("cpu"))
        assert all((group.pairs.dense is not None) == dense for group in reducer.groups)


@pytest.mark.parametrize("dense_limit", [0, 1 << 22])
@pytest.mark.parametrize("engine", ["fused", "hooks"])
@pytest.mark.parametrize("arch,padding_side", [("bert", "right"), ("gpt2", "left")])
def test_attributions_equal_the_matrix_route(engine, arch, padding_side, dense_limit, monkeypatch):
    """The exact pairwise games (read from the capture's sums) equal the closed form on the whole
    influence matrix, for right-padded encoders and left-padded decoder classifiers (the last token is
    the classification position, not a player), both weightings."""
    monkeypatch.setattr(pair_sums_module, "DENSE_MAX_MUTUAL", dense_limit)  # Max-Mutual packed / dense
    model = zoo_model(arch)
    ids, mask = text_batch(seed=3, batch=4, length=11)
    if padding_side == "left":
        ids = torch.stack([torch.cat([row[m == 0], row[m == 1]]) for row, m in zip(ids, mask)])
        mask = torch.stack([torch.cat([m[m == 0], m[m == 1]]) for m in mask])

    def forward(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    capture = AttentionCapture(forward, model=model, engine=engine)
    for weighting in ("attention", "grad_attention"):
        captured = capture.capture(
            ids, additional_forward_args=(mask,), request=InfluenceRequest("matrix", weighting)
        )
        players = text_player_mask(ids, mask, SPECIAL_IDS, captured.cls_positions)
        explainer = AttnGradShapley(
            forward, model=model, weighting=weighting, special_token_ids=SPECIAL_IDS, engine=engine
        )
        for game in ("mutual", "max_mutual"):
            expected = shapley_values(captured.influence, players, game, dtype=torch.float64)
            got, delta = explainer.attribute(
                ids, additional_forward_args=(mask,), game=game, return_convergence_delta=True
            )
            assert torch.allclose(got.double(), expected, atol=1e-6, rtol=1e-5), (weighting, game)
            assert float(delta.abs().max()) < 1e-5
