"""Closed-form Shapley values of the attention games against brute-force enumeration."""

import itertools
import math

import pytest
import torch

from captum_attn_shapley.shapley import (
    BUILTIN_GAMES,
    game_function,
    grand_coalition_value,
    pair_weights,
    shapley_values,
)


def brute_force_value(matrix, players, game, coalition):
    """v(S) straight from the SPEC's definitions, with Python loops."""
    members = [players[i] for i in range(len(players)) if coalition[i]]
    if not members:
        return 0.0
    if game == "cls":
        return sum(float(matrix[0, i]) for i in members)
    if len(members) == 1:
        i = members[0]
        return float(matrix[i, i])
    total = 0.0
    for a, b in itertools.combinations(members, 2):
        if game == "mutual":
            total += float(matrix[a, b] + matrix[b, a])
        else:
            total += max(float(matrix[a, b]), float(matrix[b, a]))
    return total


def brute_force_shapley(matrix, players, game):
    """Shapley values by the subset formula over all 2^n coalitions."""
    n = len(players)
    values = {}
    for bits in range(1 << n):
        coalition = [(bits >> i) & 1 for i in range(n)]
        values[bits] = brute_force_value(matrix, players, game, coalition)
    phi = [0.0] * n
    for i in range(n):
        for bits in range(1 << n):
            if bits & (1 << i):
                continue
            size = bin(bits).count("1")
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            phi[i] += weight * (values[bits | (1 << i)] - values[bits])
    return phi, values[(1 << n) - 1]


@pytest.mark.parametrize("game", BUILTIN_GAMES)
@pytest.mark.parametrize("n", range(1, 11))
def test_closed_form_equals_enumeration(game, n):
    gen = torch.Generator().manual_seed(1000 * n + len(game))
    tokens = n + 3  # [CLS], a special token and a padding position around the players
    matrix = torch.rand(1, tokens, tokens, generator=gen, dtype=torch.float64)
    matrix = matrix / matrix.sum(dim=2, keepdim=True)
    perm = torch.randperm(tokens - 1, generator=gen)[:n] + 1
    players = torch.zeros(1, tokens, dtype=torch.bool)
    players[0, perm] = True
    order = sorted(perm.tolist())
    expected, grand = brute_force_shapley(matrix[0], order, game)
    phi = shapley_values(matrix, players, game)
    assert phi.dtype == torch.float64
    assert torch.allclose(phi[0, order], torch.tensor(expected, dtype=torch.float64), atol=1e-10, rtol=0)
    assert bool((phi[0, ~players[0]] == 0).all())
    # efficiency: sum of the values equals v(N)
    assert abs(float(phi.sum()) - grand) < 1e-10
    assert abs(float(grand_coalition_value(matrix, players, game)[0]) - grand) < 1e-10


@pytest.mark.parametrize("game", BUILTIN_GAMES)
def test_batch_with_different_player_counts_matches_single_examples(game):
    gen = torch.Generator().manual_seed(7)
    matrix = torch.rand(4, 9, 9, generator=gen, dtype=torch.float64)
    players = torch.zeros(4, 9, dtype=torch.bool)
    players[0, 1:8] = True
    players[1, 2:3] = True  # a single player
    players[3, [1, 4, 6]] = True  # example 2 has no players at all
    batched = shapley_values(matrix, players, game)
    for b in range(4):
        alone = shapley_values(matrix[b : b + 1], players[b : b + 1], game)
        assert torch.equal(batched[b : b + 1], alone)
    assert bool((batched[2] == 0).all())
    assert float(grand_coalition_value(matrix, players, game)[2]) == 0.0


def test_single_player_gets_its_own_value():
    matrix = torch.rand(1, 4, 4, dtype=torch.float64)
    players = torch.tensor([[False, False, True, False]])
    for game in ("mutual", "max_mutual"):
        assert float(shapley_values(matrix, players, game)[0, 2]) == float(matrix[0, 2, 2])
    assert float(shapley_values(matrix, players, "cls")[0, 2]) == float(matrix[0, 0, 2])


def test_hand_computed_two_player_case():
    # m among players {1, 2}: m11 = .5, m12 = .2, m21 = .4, m22 = .1
    matrix = torch.zeros(1, 3, 3, dtype=torch.float64)
    matrix[0, 1, 1], matrix[0, 1, 2], matrix[0, 2, 1], matrix[0, 2, 2] = 0.5, 0.2, 0.4, 0.1
    players = torch.tensor([[False, True, True]])
    # Max-Mutual: v({1}) = .5, v({2}) = .1, v({1,2}) = max(.2, .4) = .4
    # phi_1 = 1/2 (.5 - 0) + 1/2 (.4 - .1) = .4 ; phi_2 = 1/2 (.1) + 1/2 (.4 - .5) = 0
    phi = shapley_values(matrix, players, "max_mutual")[0]
    assert torch.allclose(phi, torch.tensor([0.0, 0.4, 0.0], dtype=torch.float64), atol=1e-15)
    # Mutual: v({1,2}) = .6 -> phi_1 = .25 + .25 = .5, phi_2 = .05 + .05 = .1
    phi = shapley_values(matrix, players, "mutual")[0]
    assert torch.allclose(phi, torch.tensor([0.0, 0.5, 0.1], dtype=torch.float64), atol=1e-15)


@pytest.mark.parametrize("game", BUILTIN_GAMES)
def test_game_function_matches_definition(game):
    gen = torch.Generator().manual_seed(3)
    matrix = torch.rand(6, 6, generator=gen, dtype=torch.float64)
    order = [1, 2, 4, 5]
    m = matrix[order][:, order]
    value = game_function(game, cls_row=matrix[0, order])
    coalitions = torch.tensor(list(itertools.product([False, True], repeat=4)))
    got = value(m, coalitions)
    expected = [brute_force_value(matrix, order, game, c.tolist()) for c in coalitions]
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), atol=1e-12)


def test_pair_weights_are_symmetric_and_reject_cls():
    m = torch.rand(5, 5)
    for game in ("mutual", "max_mutual"):
        w = pair_weights(m, game)
        assert torch.equal(w, w.T)
    with pytest.raises(ValueError, match="not a pairwise game"):
        pair_weights(m, "cls")


@pytest.mark.parametrize("game", ["mutual", "max_mutual"])
@pytest.mark.parametrize("block", [1, 7, 10_000])
def test_blocks_and_float64_sums_of_a_float32_matrix(game, block, monkeypatch):
    """The pairwise sums, a block of rows at a time, equal the whole-matrix computation in float64."""
    import captum_attn_shapley.shapley.games as games

    gen = torch.Generator().manual_seed(3)
    matrix = torch.rand(3, 11, 11, generator=gen)
    players = torch.rand(3, 11, generator=gen) > 0.3
    expected = shapley_values(matrix.double(), players, game)
    expected_total = grand_coalition_value(matrix.double(), players, game)
    monkeypatch.setattr(games, "GAME_BLOCK", block)
    phi = shapley_values(matrix, players, game, dtype=torch.float64)
    assert phi.dtype == torch.float64
    torch.testing.assert_close(phi, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grand_coalition_value(matrix, players, game, dtype=torch.float64), expected_total)
    torch.testing.assert_close(phi.sum(dim=1), expected_total)
