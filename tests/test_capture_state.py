"""The capture's state belongs to one call: partly frozen models and concurrent calls on one model."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from tiny_models import SPECIAL_IDS, text_batch, tiny_text_model

from captum_attn_shapley import AttentionReceived, AttnGradShapley, GradSAM
from captum_attn_shapley.capture import model_lock

GRADIENT_METHODS = [
    lambda m, e: AttnGradShapley(m, special_token_ids=SPECIAL_IDS, engine=e),  # Grad-Att Max-Mutual
    lambda m, e: AttnGradShapley(m, game="cls", special_token_ids=SPECIAL_IDS, engine=e),
    lambda m, e: GradSAM(m, special_token_ids=SPECIAL_IDS, engine=e),
]
ENGINES = ["fused", "hooks"]


def _freeze_all_but_the_head(model):
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("classifier"))
    return {name: p.requires_grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("make", GRADIENT_METHODS)
def test_a_frozen_encoder_with_a_trainable_head_gives_the_trainable_models_attributions(make, engine):
    ids, mask = text_batch(seed=3, length=10)
    model = tiny_text_model("bert", seed=3)
    reference = make(model, engine).attribute(ids, target=1, additional_forward_args=(mask,))
    flags = _freeze_all_but_the_head(model)
    frozen = make(model, engine).attribute(ids, target=1, additional_forward_args=(mask,))
    assert torch.equal(frozen, reference)
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags  # left as found
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient was accumulated


@pytest.mark.parametrize("engine", ENGINES)
def test_a_wholly_frozen_model_still_works_and_stays_frozen(engine):
    ids, mask = text_batch(seed=4)
    model = tiny_text_model("bert", seed=4)
    reference = GradSAM(model, special_token_ids=SPECIAL_IDS, engine=engine).attribute(
        ids, target=0, additional_forward_args=(mask,)
    )
    model.requires_grad_(False)
    frozen = GradSAM(model, special_token_ids=SPECIAL_IDS, engine=engine).attribute(
        ids, target=0, additional_forward_args=(mask,)
    )
    assert torch.equal(frozen, reference)
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("method", ["grad_shapley", "att"])
def test_concurrent_calls_on_one_model_give_the_serial_results(method, engine):
    model = tiny_text_model("bert", seed=5, layers=3)
    explainer = (
        AttnGradShapley(model, special_token_ids=SPECIAL_IDS, engine=engine)
        if method == "grad_shapley"
        else AttentionReceived(model, special_token_ids=SPECIAL_IDS, engine=engine)
    )
    batches = [text_batch(seed=s, batch=2 + s % 3, length=8 + s) for s in range(8)]
    targets = [s % 3 for s in range(8)]

    def run(i):
        ids, mask = batches[i]
        return explainer.attribute(ids, target=targets[i], additional_forward_args=(mask,))

    serial = [run(i) for i in range(len(batches))]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            concurrent = list(pool.map(run, range(len(batches))))
            assert all(torch.equal(a, b) for a, b in zip(concurrent, serial))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())  # no hook left behind


def test_the_model_lock_is_one_reentrant_lock_per_model():
    a, b = tiny_text_model("bert", seed=6), tiny_text_model("bert", seed=6)
    assert model_lock(a) is model_lock(a) and model_lock(a) is not model_lock(b)
    with model_lock(a):
        with model_lock(a):  # re-entrant: a method may capture inside another capture's call
            pass
        other = threading.Thread(target=lambda: model_lock(b).acquire() and model_lock(b).release())
        other.start()
        other.join(timeout=10)
        assert not other.is_alive()  # another model is not blocked
