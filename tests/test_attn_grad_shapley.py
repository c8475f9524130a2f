"""AttnGradShapley end to end: user games, sampling estimators, convergence delta."""

import pytest
import torch
from tiny_models import SPECIAL_IDS, text_batch, tiny_text_model

from captum_attn_shapley import AttnGradShapley
from captum_attn_shapley.shapley import game_function


@pytest.fixture(scope="module")
def setup():
    model = tiny_text_model("bert", seed=8)
    ids, mask = text_batch(seed=8, length=10)
    return AttnGradShapley(model, weighting="attention", special_token_ids=SPECIAL_IDS), ids, mask


def user_max_mutual(m, coalitions):
    """The Max-Mutual game written as a user would, to be solved by enumeration."""
    s = coalitions.to(m.dtype)
    w = torch.maximum(m, m.T)
    w = w - torch.diag(torch.diag(w))
    size = s.sum(dim=1)
    pairs = 0.5 * ((s @ w) * s).sum(dim=1)
    return torch.where(size == 1, s @ torch.diag(m), torch.where(size >= 2, pairs, 0 * pairs))


def test_user_game_by_enumeration_equals_closed_form(setup):
    explainer, ids, mask = setup
    closed, closed_delta = explainer.attribute(
        ids, additional_forward_args=(mask,), game="max_mutual", return_convergence_delta=True
    )
    enumerated, delta = explainer.attribute(
        ids, additional_forward_args=(mask,), game=user_max_mutual, return_convergence_delta=True
    )
    assert torch.allclose(enumerated, closed, atol=1e-7)
    assert float(delta.abs().max()) < 1e-6 and float(closed_delta.abs().max()) < 1e-6


@pytest.mark.parametrize("estimator", ["permutation", "kernel"])
@pytest.mark.parametrize("game", ["cls", "max_mutual"])
def test_sampling_estimators_converge_to_exact(setup, estimator, game):
    explainer, ids, mask = setup
    exact = explainer.attribute(ids, additional_forward_args=(mask,), game=game)
    errors = []
    for n_samples in (20, 2000, 20000):
        approx = explainer.attribute(
            ids, additional_forward_args=(mask,), game=game, estimator=estimator, n_samples=n_samples, seed=1
        )
        assert bool((approx[exact == 0] == 0).all())
        errors.append(float((approx - exact).abs().max()))
    # Monte-Carlo error shrinks like 1/sqrt(n_samples): about 30x from 20 to 20000 samples.
    # (Antithetic permutation pairs are exact for these at-most-pairwise games: error ~ 0.)
    assert errors[-1] <= errors[0] / 5 + 1e-7
    assert errors[-1] < 0.1 * float(exact.abs().max())
    again = explainer.attribute(
        ids, additional_forward_args=(mask,), game=game, estimator=estimator, n_samples=20000, seed=1
    )
    assert torch.equal(
        again,
        explainer.attribute(
            ids, additional_forward_args=(mask,), game=game, estimator=estimator, n_samples=20000, seed=1
        ),
    )


def test_non_pairwise_user_game_sampling_is_unbiased(setup):
    """A game with a 3-way interaction: the mean of many small estimates hits the exact value."""
    explainer, ids, mask = setup

    def triples(m, coalitions):
        s = coalitions.to(m.dtype)
        size = s.sum(dim=1)
        return (size >= 3).to(m.dtype) * (s @ m.diagonal()) + 0.1 * (s @ m[:, 0])

    exact = explainer.attribute(ids[:1], additional_forward_args=(mask[:1],), game=triples)
    runs = torch.stack(
        [
            explainer.attribute(
                ids[:1],
                additional_forward_args=(mask[:1],),
                game=triples,
                estimator="kernel",
                n_samples=64,
                seed=s,
            )
            for s in range(300)
        ]
    )
    mean, sem = runs.mean(dim=0), runs.std(dim=0) / 300**0.5
    players = exact != 0
    assert bool(((mean - exact).abs()[players] <= 5 * sem[players] + 1e-9).all())


def test_compute_convergence_delta_matches_attribute(setup):
    explainer, ids, mask = setup
    attr, delta = explainer.attribute(
        ids, additional_forward_args=(mask,), game="mutual", return_convergence_delta=True
    )
    again = explainer.compute_convergence_delta(attr, ids, additional_forward_args=(mask,), game="mutual")
    assert torch.allclose(again.float(), delta, atol=1e-6)
    shifted = explainer.compute_convergence_delta(
        attr + 0.01 * (attr != 0), ids, additional_forward_args=(mask,), game="mutual"
    )
    counts = (attr != 0).sum(dim=1)
    assert torch.allclose(shifted.float(), 0.01 * counts.float(), atol=1e-5)


def test_builtin_game_functions_power_the_estimators(setup):
    explainer, ids, mask = setup
    value = game_function("max_mutual")
    m = torch.rand(4, 4, dtype=torch.float64)
    full = torch.ones(1, 4, dtype=torch.bool)
    w = torch.maximum(m, m.T)
    assert torch.allclose(value(m, full), (w.sum() - w.diag().sum()).reshape(1) / 2)


def test_tuple_inputs_follow_captum_convention(setup):
    explainer, ids, mask = setup
    model = explainer.model
    tupled = AttnGradShapley(
        lambda i, m: model(i, attention_mask=m).logits,
        model=model,
        weighting="attention",
        special_token_ids=SPECIAL_IDS,
    )
    attr = tupled.attribute((ids, mask))
    assert isinstance(attr, tuple) and len(attr) == 2
    assert torch.allclose(attr[0], explainer.attribute(ids, additional_forward_args=(mask,)))
    assert bool((attr[1] == 0).all())
