"""Tests of the Shapley value estimators in ``captum_attn_shapley.shapley`` (exact, permutation, kernel).

The statistical tests use fixed seeds (so they are deterministic), but their thresholds are
derived from the sampling distribution rather than tuned to the seeds: replicate-based
standard errors, one-sample t-tests with a Bonferroni correction over players, and
``5 sigma / sqrt(n_samples)`` bounds (two-sided normal tail ~5.7e-7 per player).
"""

import itertools
import math

import pytest
import torch
from scipy import stats

from captum_attn_shapley.shapley import exact_shapley, kernel_shapley, permutation_shapley, shapley_kernel_matrix
from captum_attn_shapley.shapley.kernel import _kernel_size_probabilities, _kernel_solve, _sample_kernel_coalitions

F64 = torch.float64
SAMPLERS = {"permutation": permutation_shapley, "kernel": kernel_shapley}
# (estimator name, value of its variance-reduction flag: antithetic / paired)
SAMPLER_CASES = [("permutation", True), ("permutation", False), ("kernel", True), ("kernel", False)]


def run_sampler(name, game, m, n_samples, seed, flag):
    option = "antithetic" if name == "permutation" else "paired"
    return SAMPLERS[name](game, m, n_samples, seed=seed, **{option: flag})


# --------------------------------------------------------------------------------------------
# Games and an independent brute force
# --------------------------------------------------------------------------------------------


def masks_of(coalitions):
    n = coalitions.shape[1]
    weights = 2 ** torch.arange(n, dtype=torch.int64, device=coalitions.device)
    return (coalitions.long() * weights).sum(dim=1)


def lookup_game(table):
    """v(S) = table[bitmask(S)]: an arbitrary (non-additive, v(empty) != 0) game."""

    def game(m, coalitions):
        return table[masks_of(coalitions)]

    return game


def quadratic_game(m, coalitions):
    """v(S) = s^T m s."""
    s = coalitions.to(m.dtype)
    return torch.einsum("ki,ij,kj->k", s, m, s)


def pairwise_game(m, coalitions):
    """v(S) = sum_{i<j in S} m_ij for a symmetric m with zero diagonal."""
    s = coalitions.to(m.dtype)
    return 0.5 * ((s @ m) * s).sum(dim=1)


def random_table(n, seed):
    return torch.rand(2**n, generator=torch.Generator().manual_seed(seed), dtype=F64)


def random_matrix(n, seed, dtype=F64):
    return torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)


def brute_force_shapley(value, n):
    """Average marginal contributions over all n! orderings; value maps a frozenset to float."""
    phi = [0.0] * n
    orderings = list(itertools.permutations(range(n)))
    for order in orderings:
        before = frozenset()
        v_before = value(before)
        for player in order:
            after = before | {player}
            v_after = value(after)
            phi[player] += v_after - v_before
            before, v_before = after, v_after
    return torch.tensor([p / len(orderings) for p in phi], dtype=F64)


def set_function(game, m):
    n = m.shape[0]

    def value(subset):
        row = torch.zeros(1, n, dtype=torch.bool)
        row[0, list(subset)] = True
        return float(game(m, row)[0])

    return value


def lookup_instance(n, seed):
    table = random_table(n, seed)
    return lookup_game(table), torch.zeros(n, n, dtype=F64)


# --------------------------------------------------------------------------------------------
# exact_shapley
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_exact_matches_brute_force_lookup_game(n):
    game, m = lookup_instance(n, seed=n)
    expected = brute_force_shapley(set_function(game, m), n)
    torch.testing.assert_close(exact_shapley(game, m), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_exact_matches_brute_force_quadratic_game(n):
    m = random_matrix(n, seed=100 + n)
    expected = brute_force_shapley(set_function(quadratic_game, m), n)
    phi = exact_shapley(quadratic_game, m)
    torch.testing.assert_close(phi, expected, rtol=0, atol=1e-10)
    # closed form for v(S) = s^T m s: phi_i = m_ii + (sum_{j != i} m_ij + m_ji) / 2
    closed = torch.diagonal(m) + 0.5 * (m.sum(0) + m.sum(1) - 2 * torch.diagonal(m))
    torch.testing.assert_close(phi, closed, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [3, 10, 13])
def test_exact_efficiency_with_nonzero_empty_value(n):
    table = random_table(n, seed=7) + 1000.0  # large v(empty) offset
    phi = exact_shapley(lookup_game(table), torch.zeros(n, n, dtype=F64))
    assert phi.shape == (n,) and phi.dtype == F64
    assert abs(phi.sum().item() - (table[-1] - table[0]).item()) < 1e-9


def test_exact_symmetry_dummy_and_constant():
    # Players 0 and 1 are symmetric, player 3 is a dummy, v(empty) = 5.
    def game(m, coalitions):
        s = coalitions.to(F64)
        return 5.0 + (s[:, 0] + s[:, 1]) ** 2 + 3.0 * s[:, 0] * s[:, 1] * s[:, 2] + s[:, 2]

    phi = exact_shapley(game, torch.zeros(4, 4))
    assert phi[0].item() == pytest.approx(phi[1].item(), abs=1e-12)
    assert phi[3].item() == pytest.approx(0.0, abs=1e-12)
    assert phi.sum().item() == pytest.approx(4.0 + 3.0 + 1.0, abs=1e-12)


def test_exact_additive_and_unanimity_games():
    n = 7
    a = torch.randn(n, generator=torch.Generator().manual_seed(3), dtype=F64)

    def additive(m, coalitions):
        return 2.5 + coalitions.to(F64) @ a

    torch.testing.assert_close(exact_shapley(additive, torch.zeros(n, n)).double(), a)

    carrier = [1, 4, 5]

    def unanimity(m, coalitions):  # v(S) = 1 iff carrier is a subset of S
        return coalitions[:, carrier].all(dim=1).to(F64)

    expected = torch.zeros(n, dtype=F64)
    expected[carrier] = 1.0 / len(carrier)
    torch.testing.assert_close(
        exact_shapley(unanimity, torch.zeros(n, n, dtype=F64)), expected, rtol=0, atol=1e-14
    )


def test_exact_zero_and_one_player():
    def never_called(m, coalitions):
        raise AssertionError("game must not be called for n = 0")

    empty = exact_shapley(never_called, torch.zeros(0, 0))
    assert empty.shape == (0,) and empty.dtype == torch.float32

    table = torch.tensor([2.0, 7.5], dtype=F64)
    torch.testing.assert_close(
        exact_shapley(lookup_game(table), torch.zeros(1, 1, dtype=F64)), torch.tensor([5.5], dtype=F64)
    )


def test_exact_too_many_players_error():
    def never_called(m, coalitions):
        raise AssertionError("game must not be called")

    with pytest.raises(ValueError) as info:
        exact_shapley(never_called, torch.zeros(17, 17))
    message = str(info.value)
    for fragment in ("n=17", "max_players=16", "permutation_shapley", "kernel_shapley"):
        assert fragment in message
    with pytest.raises(ValueError, match="max_players=4"):
        exact_shapley(never_called, torch.zeros(5, 5), max_players=4)


def test_exact_batching_and_dtype():
    n = 9
    game, m = lookup_instance(n, seed=11)
    reference = exact_shapley(game, m)
    calls = []

    def counting_game(m, coalitions):
        calls.append(coalitions.shape[0])
        assert coalitions.dtype == torch.bool and coalitions.shape[1] == n
        return game(m, coalitions)

    torch.testing.assert_close(
        exact_shapley(counting_game, m, perturbations_per_eval=100), reference, rtol=0, atol=1e-12
    )
    assert max(calls) <= 100 and sum(calls) == 2**n

    m32 = random_matrix(5, seed=1, dtype=torch.float32)
    phi32 = exact_shapley(quadratic_game, m32)
    assert phi32.dtype == torch.float32
    torch.testing.assert_close(phi32.double(), exact_shapley(quadratic_game, m32.double()), rtol=0, atol=1e-4)


# --------------------------------------------------------------------------------------------
# Validation shared by the estimators
# --------------------------------------------------------------------------------------------


ALL_ESTIMATORS = [
    lambda game, m: exact_shapley(game, m),
    lambda game, m: permutation_shapley(game, m, 4),
    lambda game, m: kernel_shapley(game, m, 4),
]


@pytest.mark.parametrize("estimator", ALL_ESTIMATORS, ids=["exact", "permutation", "kernel"])
def test_game_output_is_validated(estimator):
    m = torch.zeros(4, 4)
    with pytest.raises(ValueError, match=r"shape \(\d+,\)"):
        estimator(lambda m, c: torch.zeros(c.shape[0], 1), m)
    with pytest.raises(ValueError, match=r"shape \(\d+,\)"):
        estimator(lambda m, c: torch.zeros(c.shape[0] + 1), m)
    with pytest.raises(TypeError, match="torch.Tensor"):
        estimator(lambda m, c: [0.0] * c.shape[0], m)
    with pytest.raises(ValueError, match="square"):
        estimator(quadratic_game, torch.zeros(3, 4))


@pytest.mark.parametrize("name", ["permutation", "kernel"])
@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_n_samples_is_validated(name, bad):
    with pytest.raises(ValueError, match="n_samples"):
        SAMPLERS[name](quadratic_game, torch.eye(4), bad)


# --------------------------------------------------------------------------------------------
# Sampling estimators: basic properties
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, flag", SAMPLER_CASES)
def test_sampling_reproducible_and_independent_of_global_rng(name, flag):
    game, m = lookup_instance(8, seed=5)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = run_sampler(name, game, m, 37, seed=123, flag=flag)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    torch.manual_seed(999)
    torch.rand(10)
    second = run_sampler(name, game, m, 37, seed=123, flag=flag)
    assert torch.equal(first, second)
    other = run_sampler(name, game, m, 37, seed=124, flag=flag)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name, flag", SAMPLER_CASES)
@pytest.mark.parametrize("n_samples", [1, 2, 7, 50])
def test_sampling_efficiency_and_batching(name, flag, n_samples):
    n = 9
    table = random_table(n, seed=2) - 3.0
    game, m = lookup_game(table), torch.zeros(n, n, dtype=F64)
    calls = []

    def counting_game(m, coalitions):
        calls.append(coalitions.shape[0])
        return game(m, coalitions)

    phi = run_sampler(name, counting_game, m, n_samples, seed=1, flag=flag)
    assert phi.shape == (n,) and phi.dtype == F64 and torch.isfinite(phi).all()
    assert abs(phi.sum().item() - (table[-1] - table[0]).item()) < 1e-10
    per_sample = n - 1 if name == "permutation" else 1
    assert sum(calls) == 2 + n_samples * per_sample  # v(empty), v(N) once, then the samples
    # the batch size changes how samples are grouped, not the statistical properties
    small = SAMPLERS[name](game, m, n_samples, seed=1, perturbations_per_eval=10)
    assert abs(small.sum().item() - (table[-1] - table[0]).item()) < 1e-10


@pytest.mark.parametrize("name, flag", SAMPLER_CASES)
def test_sampling_few_players_is_exact(name, flag):
    def never_called(m, coalitions):
        raise AssertionError("game must not be called for n = 0")

    assert run_sampler(name, never_called, torch.zeros(0, 0), 3, seed=0, flag=flag).shape == (0,)
    # kernel: nothing to sample for n <= 2.  permutation: every ordering gives the same
    # marginal for n = 1, and for n = 2 every game is quadratic in the indicators, so one
    # antithetic pair (both orderings) is exact.
    cases = [(1, 1), (2, 1)] if name == "kernel" else [(1, 1)] + [(2, 2)] * flag
    for n, n_samples in cases:
        game, m = lookup_instance(n, seed=40 + n)
        torch.testing.assert_close(
            run_sampler(name, game, m, n_samples, seed=0, flag=flag), exact_shapley(game, m), rtol=0, atol=1e-12
        )


@pytest.mark.parametrize("n", [2, 5, 9])
def test_antithetic_permutations_are_exact_for_quadratic_games(n):
    # For v(S) = s^T m s the marginal of i is m_ii + sum_{j before i} (m_ij + m_ji); in the pair
    # (pi, reversed pi) every j precedes i exactly once, so each pair gives phi_i exactly.
    m = random_matrix(n, seed=n)
    phi = permutation_shapley(quadratic_game, m, n_samples=6, seed=3)
    torch.testing.assert_close(phi, exact_shapley(quadratic_game, m), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Sampling estimators: convergence and unbiasedness
# --------------------------------------------------------------------------------------------


def replicates(name, game, m, n_samples, flag, count, first_seed=1000):
    return torch.stack(
        [run_sampler(name, game, m, n_samples, seed=first_seed + r, flag=flag) for r in range(count)]
    )


@pytest.mark.parametrize("name, flag", SAMPLER_CASES)
def test_sampling_converges_to_exact(name, flag):
    n = 8
    game, m = lookup_instance(n, seed=21)
    exact = exact_shapley(game, m)
    small, large = 16, 16 * 256
    # Per-sample standard deviation sigma_i from replicates at the small size: every estimate is
    # (an affine function of) a mean of i.i.d. terms (single samples, or the pairs when
    # antithetic/paired), so its standard deviation is sigma_i / sqrt(n_samples).
    sigma = replicates(name, game, m, small, flag, count=60).std(dim=0) * math.sqrt(small)
    errors = []
    for n_samples in (small, 16 * small, large):
        errors.append((run_sampler(name, game, m, n_samples, seed=7, flag=flag) - exact).abs())
    max_errors = [e.max().item() for e in errors]
    # expected error ratio is sqrt(256) = 16 between the smallest and largest size
    assert max_errors[2] < max_errors[0] / 4, max_errors
    assert max_errors[2] < max_errors[1] * 1.5, max_errors
    # 5 standard errors per player (normal tail 5.7e-7; sigma itself is estimated from 60
    # replicates, to within ~20 %, which the margin of 5 covers).
    assert (errors[2] <= 5 * sigma / math.sqrt(large) + 1e-12).all(), (errors[2], sigma)


def assert_unbiased(estimates, exact, alpha=1e-3):
    """One-sample t-test per player, Bonferroni corrected: every p-value > alpha / n."""
    estimates, exact = estimates.double(), exact.double()
    n = exact.numel()
    spread = estimates.std(dim=0)
    random_players = spread > 1e-12 * (1 + exact.abs())
    # players whose estimate does not vary (e.g. exact by construction) must be exact
    torch.testing.assert_close(estimates.mean(dim=0)[~random_players], exact[~random_players], rtol=0, atol=1e-9)
    if random_players.any():
        result = stats.ttest_1samp(estimates[:, random_players].numpy(), exact[random_players].numpy(), axis=0)
        assert result.pvalue.min() > alpha / n, (result.pvalue, estimates.mean(0), exact)


@pytest.mark.parametrize("name, flag", SAMPLER_CASES)
@pytest.mark.parametrize("n, n_samples", [(3, 1), (6, 4), (6, 3), (10, 5)])
def test_sampling_is_unbiased(name, flag, n, n_samples):
    # Tiny sample sizes, where any bias of the estimator (e.g. from estimating A in KernelSHAP,
    # or from truncated pairs with odd n_samples) would be largest.
    game, m = lookup_instance(n, seed=300 + n)
    estimates = replicates(name, game, m, n_samples, flag, count=400)
    assert_unbiased(estimates, exact_shapley(game, m))


@pytest.mark.parametrize("name, flag", SAMPLER_CASES)
def test_unbiasedness_test_has_power(name, flag):
    # Sanity check of the test itself: shifting the target by 10 % of its spread is detected.
    game, m = lookup_instance(6, seed=306)
    estimates = replicates(name, game, m, 4, flag, count=400)
    shifted = exact_shapley(game, m) + 0.1 * estimates.std(dim=0) * torch.tensor([0, 0, 4.0, 0, 0, 0], dtype=F64)
    with pytest.raises(AssertionError):
        assert_unbiased(estimates, shifted)


# --------------------------------------------------------------------------------------------
# KernelSHAP internals: the exact matrix A and the constrained solve
# --------------------------------------------------------------------------------------------


def enumerated_kernel_moments(n):
    """A = E[z z^T] and P(z) under the Shapley kernel distribution, by enumeration."""
    masks = torch.arange(1, 2**n - 1)
    z = ((masks.unsqueeze(1) >> torch.arange(n)) & 1).to(F64)
    sizes = z.sum(dim=1).long()
    size_weight = torch.tensor([(n - 1) / (k * (n - k)) if 0 < k < n else 0.0 for k in range(n + 1)], dtype=F64)
    binomial = torch.tensor([math.comb(n, k) for k in range(n + 1)], dtype=F64)
    prob = size_weight[sizes] / binomial[sizes]
    prob = prob / prob.sum()
    return z, prob, z.T @ (prob.unsqueeze(1) * z)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 11])
def test_kernel_matrix_closed_form_matches_enumeration(n):
    _, _, a_enumerated = enumerated_kernel_moments(n)
    a = shapley_kernel_matrix(n)
    torch.testing.assert_close(a, a_enumerated, rtol=0, atol=1e-14)
    harmonic = sum(1.0 / k for k in range(1, n))
    assert a[0, 0].item() == 0.5
    if n > 1:
        assert a[0, 1].item() == pytest.approx(0.5 - 0.5 / harmonic, abs=1e-15)


@pytest.mark.parametrize("paired", [True, False])
def test_kernel_sampler_matches_kernel_distribution(paired):
    n, count = 6, 200_000
    z = _sample_kernel_coalitions(count, n, torch.Generator().manual_seed(0), paired).to(F64)
    sizes = z.sum(dim=1).long()
    assert sizes.min() >= 1 and sizes.max() <= n - 1
    if paired:  # rows alternate between a coalition and its complement
        assert torch.equal(z[0::2] + z[1::2], torch.ones(count // 2, n, dtype=F64))
    # Chi-square goodness of fit over all 2^n - 2 coalitions against the independently
    # enumerated kernel distribution (only the first row of each pair when paired, so that
    # the counted draws are independent).
    independent = z[0::2] if paired else z
    enumerated_z, prob, a_enumerated = enumerated_kernel_moments(n)
    observed = torch.bincount(masks_of(independent.bool()), minlength=2**n)
    observed = observed[masks_of(enumerated_z.bool())].numpy()
    assert observed.sum() == independent.shape[0]
    assert stats.chisquare(observed, prob.numpy() * observed.sum()).pvalue > 1e-3
    # Monte-Carlo E[z z^T] against the closed form: entries are means of Bernoulli variables
    # (standard deviation <= 0.5 per sample), 5 standard errors of the independent draws.
    a_mc = z.T @ z / count
    tolerance = 5 * 0.5 / math.sqrt(independent.shape[0])
    assert (a_mc - shapley_kernel_matrix(n)).abs().max() < tolerance
    torch.testing.assert_close(shapley_kernel_matrix(n), a_enumerated, rtol=0, atol=1e-14)


def test_kernel_size_probabilities_closed_form():
    # p(k) = n / (2 H_{n-1} k (n - k)): the normaliser of (n - 1) / (k (n - k)) in closed form
    for n in (2, 3, 10, 200, 5000):
        harmonic = math.fsum(1.0 / k for k in range(1, n))
        k = torch.arange(1, n, dtype=F64)
        closed = n / (2 * harmonic * k * (n - k))
        torch.testing.assert_close(_kernel_size_probabilities(n), closed, rtol=1e-12, atol=0)
        assert abs(closed.sum().item() - 1.0) < 1e-12


@pytest.mark.parametrize("n", [3, 4, 9, 40])
def test_kernel_solve_matches_explicit_constrained_least_squares(n):
    generator = torch.Generator().manual_seed(n)
    b = torch.randn(n, generator=generator, dtype=F64)
    total = torch.randn((), generator=generator, dtype=F64)
    a = shapley_kernel_matrix(n)
    ones = torch.ones(n, dtype=F64)
    a_inv_b = torch.linalg.solve(a, b)
    a_inv_1 = torch.linalg.solve(a, ones)
    explicit = torch.linalg.solve(a, b - ones * (ones @ a_inv_b - total) / (ones @ a_inv_1))
    torch.testing.assert_close(_kernel_solve(b, total, n), explicit, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_kernel_solve_with_exact_b_gives_exact_shapley(n):
    # With b = E[z (v(z) - v(empty))] computed exactly the constrained least squares solution
    # is the Shapley value (Charnes et al. 1988; Lundberg & Lee 2017).
    table = random_table(n, seed=50 + n) * 10 - 2
    z, prob, _ = enumerated_kernel_moments(n)
    masks = masks_of(z.bool())
    b = z.T @ (prob * (table[masks] - table[0]))
    phi = _kernel_solve(b, table[-1] - table[0], n)
    exact = exact_shapley(lookup_game(table), torch.zeros(n, n, dtype=F64))
    torch.testing.assert_close(phi, exact, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------------------------
# Many players: n = 200 pairwise game in float32 with closed-form Shapley values
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pairwise_200():
    n = 200
    w = torch.rand(n, n, generator=torch.Generator().manual_seed(2024), dtype=F64)
    w = (w + w.T) / 2
    w.fill_diagonal_(0.0)
    exact = 0.5 * w.sum(dim=1)  # phi_i = 1/2 sum_{j != i} w_ij
    return w.to(torch.float32), w, exact


def check_float32_result(phi, exact, w64):
    assert phi.dtype == torch.float32 and phi.shape == exact.shape
    assert torch.isfinite(phi).all()
    total = w64.sum().item() / 2  # v(N) - v(empty)
    assert abs(phi.double().sum().item() - total) < 1e-5 * total


def test_many_players_permutation_antithetic(pairwise_200):
    w32, w64, exact = pairwise_200
    phi = permutation_shapley(pairwise_game, w32, n_samples=64, seed=0)
    check_float32_result(phi, exact, w64)
    # antithetic pairs are exact for pairwise games: only float32 rounding of v (|v| <= 1e4,
    # relative precision ~6e-8, accumulated over 200 terms) remains
    torch.testing.assert_close(phi.double(), exact, rtol=1e-4, atol=0)


def test_many_players_permutation_plain(pairwise_200):
    w32, w64, exact = pairwise_200
    n_samples = 1000
    phi = permutation_shapley(pairwise_game, w32, n_samples=n_samples, seed=0, antithetic=False)
    check_float32_result(phi, exact, w64)
    # Analytic variance of one marginal X_i = sum_{j before i} w_ij: with N = n - 1 others,
    # the position t of i uniform on 0..N and the predecessors a uniform t-subset,
    # Var X_i = E[Var(X|t)] + Var(E[X|t]) = N sigma_i^2 / 6 + S_i^2 (N + 2) / (12 N),
    # where S_i = sum_j w_ij and sigma_i^2 the population variance of (w_ij)_{j != i}.
    n = w64.shape[0]
    big_n = n - 1
    off_diagonal = w64[~torch.eye(n, dtype=torch.bool)].view(n, big_n)
    variance = big_n * off_diagonal.var(dim=1, unbiased=False) / 6 + off_diagonal.sum(dim=1) ** 2 * (big_n + 2) / (
        12 * big_n
    )
    standard_error = (variance / n_samples).sqrt()
    # 5 standard errors: two-sided normal tail 5.7e-7 per player, 1.1e-4 for all 200
    assert ((phi.double() - exact).abs() < 5 * standard_error).all()


def test_many_players_kernel_unbiased(pairwise_200):
    w32, w64, exact = pairwise_200
    estimates = torch.stack([kernel_shapley(pairwise_game, w32, n_samples=400, seed=s) for s in range(40)])
    for phi in estimates:
        check_float32_result(phi, exact, w64)
    assert_unbiased(estimates, exact)
    # and a single larger run is close to the closed form: here the per-sample standard
    # deviation (from the replicates) sets the 5-standard-error tolerance
    sigma = estimates.double().std(dim=0) * math.sqrt(400)
    phi = kernel_shapley(pairwise_game, w32, n_samples=8000, seed=99)
    check_float32_result(phi, exact, w64)
    assert ((phi.double() - exact).abs() < 5 * sigma / math.sqrt(8000)).all()


@pytest.mark.parametrize("estimator", [exact_shapley, permutation_shapley, kernel_shapley])
def test_batch_size_is_a_deprecated_alias_of_perturbations_per_eval(estimator):
    m = random_matrix(5, seed=2)
    args = () if estimator is exact_shapley else (64,)
    expected = estimator(quadratic_game, m, *args, perturbations_per_eval=7)
    with pytest.warns(FutureWarning, match="use `perturbations_per_eval=`"):
        torch.testing.assert_close(estimator(quadratic_game, m, *args, batch_size=7), expected, rtol=0, atol=0)
    with pytest.raises(TypeError, match="pass only `perturbations_per_eval=`"):
        estimator(quadratic_game, m, *args, batch_size=7, perturbations_per_eval=7)
