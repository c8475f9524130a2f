"""The capture's compiled CPU kernel against the Python block loop it replaces (and that stays its fallback)."""

from types import SimpleNamespace

import pytest
import torch
from tiny_models import SPECIAL_IDS, text_batch, zoo_model

import captum_attn_shapley.capture.native as native
from captum_attn_shapley import AttentionReceived, AttnGradShapley, GradSAM
from captum_attn_shapley.capture.fused import AttentionCall
from captum_attn_shapley.capture.fused_backward import attention_backward
from captum_attn_shapley.capture.reductions import InfluenceReducer, InfluenceRequest


def _reference(call: AttentionCall):
    """Output (batch, queries, heads, dim) and head-mean probabilities by the Python loop's own steps."""
    query, key, value = call.operands()
    every = slice(None)
    attention = call.probabilities(query, key, every, every)
    return torch.matmul(attention, value).transpose(1, 2), attention.mean(dim=1)


def _call(batch=2, heads=3, kv_heads=3, tokens=37, dim=8, mask=None, causal=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    # the layout models make: (batch, tokens, heads, dim) viewed as (batch, heads, tokens, dim)
    query = torch.randn(batch, tokens, heads, dim, generator=gen).transpose(1, 2)
    key = torch.randn(batch, tokens, kv_heads, dim, generator=gen).transpose(1, 2)
    value = torch.randn(batch, tokens, kv_heads, dim, generator=gen).transpose(1, 2)
    return AttentionCall(query, key, value, mask, causal, dim**-0.5)


def _positions(batch, tokens, device):
    return torch.ones(batch, tokens, dtype=torch.bool), torch.zeros(batch, dtype=torch.long), None


def _case(case: str) -> AttentionCall:
    tokens = 150 if case == "long_rows" else 37
    mask = None
    if case == "key_padding":  # additive (batch, 1, 1, keys), as BERT-like models pass it
        mask = torch.zeros(2, 1, 1, tokens)
        mask[1, ..., -9:] = torch.finfo(torch.float32).min
    elif case == "bool_full_mask":  # boolean (batch, 1, queries, keys), true = attend
        mask = torch.rand(2, 1, tokens, tokens, generator=torch.Generator().manual_seed(1)) > 0.4
        mask[..., 0] = True
    elif case == "lowest_float_rows":  # a fully masked query row: uniform, as the reference gives it
        mask = torch.zeros(2, 1, tokens, tokens)
        mask[0, :, 3, :] = torch.finfo(torch.float32).min
    elif case == "bool_masked_row":  # the same with a boolean mask (ModernBERT's sliding window is one)
        mask = torch.ones(2, 1, tokens, tokens, dtype=torch.bool)
        mask[1, :, 5, :] = False
    grouped = case == "grouped_query"
    return _call(
        tokens=tokens, mask=mask, causal=case == "causal", heads=4 if grouped else 3, kv_heads=2 if grouped else 3
    )


CASES = [
    "plain",
    "key_padding",
    "bool_full_mask",
    "causal",
    "grouped_query",
    "long_rows",
    "lowest_float_rows",
    "bool_masked_row",
]


def _kernel(call: AttentionCall, rows_per_block: int):
    """Runs :func:`native.attend` with blocks of ``rows_per_block`` rows, collecting the head means it adds."""
    batch, tokens = call.query.shape[0], call.key.shape[2]
    reducer = InfluenceReducer(InfluenceRequest(reduction="matrix"), 1, _positions)
    output = native.attend(call, reducer, 0, rows_per_block * batch * tokens)
    assert output is not None, native.status()
    return output, reducer.result()


def test_the_kernel_is_built_and_used_on_this_machine():
    assert native.kernels() is not None, native.status()
    assert native.status() == "in use"


@pytest.mark.parametrize("rows_per_block", [1, 5, 64, 1000])
@pytest.mark.parametrize("case", CASES)
def test_kernel_equals_the_python_loop(case, rows_per_block):
    """Every mask form the fused capture records, grouped-query heads, query-row tiles with a remainder (the
    kernel's tile is 64 rows: 150 tokens give 64 + 64 + 22), and blocks of rows of any size."""
    call = _case(case)
    expected_output, expected_mean = _reference(call)
    output, mean = _kernel(call, rows_per_block)
    assert torch.allclose(output, expected_output, atol=1e-5), case
    assert torch.allclose(mean, expected_mean, atol=1e-6), case


@pytest.mark.parametrize("want", [(True, True, True), (False, True, False), (True, False, True)])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("rows_per_block", [5, 1000])
@pytest.mark.parametrize("case", CASES)
def test_backward_kernel_equals_the_python_loop(case, rows_per_block, signed, want, monkeypatch):
    """The reducing backward pass: the input gradients (summed per key/value head) and the weighted attention
    ``A * relu(dO V^T)`` (signed: ``A * dO V^T``), against the Python loop (itself tested against autograd
    on Hugging Face's eager attention, tests/test_fused_capture.py)."""
    call = _case(case)
    output, _ = _reference(call)
    grad_output = torch.randn(output.shape, generator=torch.Generator().manual_seed(7))
    if case == "long_rows":  # as in a classifier's last layer: one row with a gradient (tiles of zeros skipped)
        grad_output[:, 1:] = 0
    batch, tokens = call.query.shape[0], call.key.shape[2]
    results = []
    for switch in ("1", "0"):
        monkeypatch.setenv(native.ENV_SWITCH, switch)
        request = InfluenceRequest(reduction="matrix", weighting="grad_attention", signed=signed)
        reducer = InfluenceReducer(request, 1, _positions)
        recorder = SimpleNamespace(reducer=reducer, grad_row_budget=rows_per_block * batch * tokens)
        grads = attention_backward(call, output, grad_output, recorder, 0, want)
        results.append((grads, reducer.result()))
    (grads, weighted), (expected_grads, expected_weighted) = results
    assert torch.allclose(weighted, expected_weighted, atol=1e-6), case
    for grad, expected, wanted in zip(grads, expected_grads, want):
        assert (grad is None) == (not wanted)
        if wanted:
            assert grad.shape == expected.shape
            assert torch.allclose(grad, expected, atol=1e-5), case


@pytest.mark.parametrize("game", ["mutual", "max_mutual"])
@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_attributions_with_and_without_the_kernel_agree(game, arch, monkeypatch):
    """End to end on tiny models (padding inside the batch; Llama: causal, grouped-query attention), both
    kernels (the attention-only pass and the reducing backward pass)."""
    model = zoo_model(arch) if arch == "llama" else zoo_model("bert")
    ids, mask = text_batch(seed=3, batch=3, length=11)
    variants = [
        AttnGradShapley(model, game=game, weighting=weighting, special_token_ids=SPECIAL_IDS)
        for weighting in ("attention", "grad_attention")
    ]
    variants += [
        AttnGradShapley(model, game=game, weighting="grad_attention", signed=True, special_token_ids=SPECIAL_IDS),
        AttentionReceived(model, special_token_ids=SPECIAL_IDS),
        GradSAM(model, special_token_ids=SPECIAL_IDS),
    ]
    for explainer in variants:
        with_kernel = explainer.attribute(ids, additional_forward_args=(mask,))
        monkeypatch.setenv(native.ENV_SWITCH, "0")
        without = explainer.attribute(ids, additional_forward_args=(mask,))
        monkeypatch.delenv(native.ENV_SWITCH)
        assert torch.allclose(with_kernel, without, atol=1e-6), type(explainer).__name__


def test_a_kernel_that_cannot_be_built_leaves_the_python_loop(monkeypatch):
    monkeypatch.setattr(native, "_STATE", {})
    monkeypatch.setattr(native, "_build", lambda: (None, "RuntimeError: no compiler"))
    assert native.kernels() is None
    assert native.status() == "not available: RuntimeError: no compiler"
    model = zoo_model("bert")
    ids, mask = text_batch(seed=3, batch=2, length=9)
    phi = AttnGradShapley(model, game="mutual", special_token_ids=SPECIAL_IDS).attribute(
        ids, additional_forward_args=(mask,)
    )
    monkeypatch.setattr(native, "_STATE", {})
    monkeypatch.undo()
    reference = AttnGradShapley(model, game="mutual", special_token_ids=SPECIAL_IDS).attribute(
        ids, additional_forward_args=(mask,)
    )
    assert torch.allclose(phi, reference, atol=1e-6)


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.kernels() is None
    assert native.status() == f"switched off ({native.ENV_SWITCH}=0)"
    call = _call()
    reducer = InfluenceReducer(InfluenceRequest(reduction="matrix"), 1, lambda b, t, d: (None, None, None))
    assert native.attend(call, reducer, 0, 1 << 20) is None
