"""LLMAttnGradShapley: attention-game Shapley values for causal language models.

Ground truth: brute-force enumeration of the games on random causal (lower-triangular) matrices, and a
direct computation on tiny GPT-2 / Llama models (eager attention with ``output_attentions``, one autograd
call per target token of ``log p(y_t)`` w.r.t. the attention, the game solved by enumeration).
"""

import inspect

import matplotlib
import pytest
import torch
from captum.attr import LLMAttributionResult, TextTemplateInput, TextTokenInput
from tiny_models import tiny_causal_lm, tiny_text_model, tiny_word_tokenizer, zoo_model

from captum_attn_shapley import LLMAttnGradShapley
from captum_attn_shapley.shapley import exact_shapley, game_function, shapley_values

matplotlib.use("Agg")

PROMPT = "a = 3 , k = 7 ; k ="
TARGET = "7 , a"
GAMES = ("cls", "mutual", "max_mutual")
WEIGHTINGS = ("attention", "grad_attention")
CAPTUM_09 = "output_probs" in inspect.signature(LLMAttributionResult.__init__).parameters


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_word_tokenizer()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def lm(request):
    return request.param, tiny_causal_lm(request.param)


def _causal(n, seed, zero_diagonal=False):
    gen = torch.Generator().manual_seed(seed)
    m = torch.rand(n, n, generator=gen, dtype=torch.float64).tril()
    return m.fill_diagonal_(0.0) if zero_diagonal else m


# --- the closed forms on causal matrices ---------------------------------------------------------------


@pytest.mark.parametrize("game", ["mutual", "max_mutual"])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_closed_form_equals_enumeration_on_causal_matrices(game, n):
    for seed in range(3):
        m = _causal(n, seed, zero_diagonal=seed == 2)
        exact = exact_shapley(game_function(game), m)
        closed = shapley_values(m.unsqueeze(0), torch.ones(1, n, dtype=torch.bool), game)[0]
        torch.testing.assert_close(closed, exact, rtol=1e-10, atol=1e-12)
        # efficiency: v(N) = the sum of the pair weights = every off-diagonal entry (n >= 2), m_11 (n = 1)
        grand = float(m.sum() - m.diagonal().sum()) if n > 1 else float(m[0, 0])
        assert float(closed.sum()) == pytest.approx(grand, rel=1e-10)


def test_closed_form_with_non_players_on_a_causal_matrix():
    """A causal matrix over 7 tokens, 5 players (BOS and one more excluded): the enumeration over the
    players' sub-matrix."""
    m = _causal(7, 4)
    players = torch.tensor([0, 1, 1, 0, 1, 1, 1], dtype=torch.bool)
    idx = players.nonzero().flatten()
    for game in ("mutual", "max_mutual"):
        phi = shapley_values(m.unsqueeze(0), players.unsqueeze(0), game)[0]
        torch.testing.assert_close(phi[idx], exact_shapley(game_function(game), m[idx][:, idx]))
        assert bool((phi[~players] == 0).all())


def test_max_mutual_equals_mutual_under_causal_attention():
    """``m_ij m_ji = 0`` off the diagonal and ``m >= 0``: ``max(m_ij, m_ji) = m_ij + m_ji``."""
    for seed in range(5):
        m = _causal(6, seed)
        players = torch.ones(1, 6, dtype=torch.bool)
        torch.testing.assert_close(
            shapley_values(m.unsqueeze(0), players, "mutual"),
            shapley_values(m.unsqueeze(0), players, "max_mutual"),
        )
    full = torch.rand(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(  # on a full (bidirectional) matrix the two games differ
        shapley_values(full.unsqueeze(0), players, "mutual"),
        shapley_values(full.unsqueeze(0), players, "max_mutual"),
    )


# --- the attributions against a direct computation ------------------------------------------------------


def _direct(arch, prompt_ids, target_ids, players, game, weighting):
    """Per target token: eager attention with output_attentions, autograd of log p(y_t), enumeration."""
    model = tiny_causal_lm(arch)  # same seed: same weights as the explained model
    model.set_attn_implementation("eager")
    ids = torch.cat([prompt_ids, target_ids[:-1].unsqueeze(0)], dim=1)
    num_prompt = prompt_ids.shape[1]
    out = model(input_ids=ids, output_attentions=True)
    attentions = out.attentions
    idx = players.nonzero().flatten()
    rows = []
    for t, token in enumerate(target_ids.tolist()):
        c = num_prompt - 1 + t
        log_p = out.logits[0, c].log_softmax(-1)[token]
        grads = torch.autograd.grad(log_p, attentions, retain_graph=True)
        if weighting == "attention":
            m = torch.stack([a[0].mean(0) for a in attentions]).mean(0)
        else:
            m = torch.stack([(a[0] * g[0].clamp(min=0)).mean(0) for a, g in zip(attentions, grads)]).mean(0)
        m = m.detach().double()
        value = game_function(game, cls_row=m[c, idx])
        phi = torch.zeros(num_prompt, dtype=torch.float64)
        phi[idx] = exact_shapley(value, m[idx][:, idx])
        rows.append(phi)
    return torch.stack(rows)


@pytest.mark.parametrize("engine", ["fused", "hooks"])
@pytest.mark.parametrize("game", GAMES)
@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_token_attr_equals_direct_computation(lm, tokenizer, game, weighting, engine):
    arch, model = lm
    explainer = LLMAttnGradShapley(model, tokenizer, game=game, weighting=weighting, engine=engine)
    result = explainer.attribute(TextTokenInput(PROMPT, tokenizer), target=TARGET)
    prompt_ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    target_ids = torch.tensor(tokenizer.encode(TARGET, add_special_tokens=False))
    players = prompt_ids[0] != tokenizer.bos_token_id  # BOS never plays
    expected = _direct(arch, prompt_ids, target_ids, players, game, weighting)
    assert result.token_attr.shape == (3, prompt_ids.shape[1])
    assert float(expected.abs().max()) > 0
    torch.testing.assert_close(result.token_attr.double(), expected, rtol=2e-4, atol=1e-7)
    torch.testing.assert_close(result.seq_attr.double(), expected.sum(0), rtol=2e-4, atol=1e-7)
    assert bool((result.token_attr[:, 0] == 0).all())  # BOS
    assert result.input_tokens == tokenizer.convert_ids_to_tokens(prompt_ids[0].tolist())
    assert result.output_tokens == ["7", ",", "a"]


def test_attention_pairwise_games_do_not_depend_on_the_target(tokenizer):
    model = tiny_causal_lm("gpt2")
    att = LLMAttnGradShapley(model, tokenizer, game="mutual", weighting="attention").attribute(
        PROMPT, target=TARGET
    )
    assert torch.equal(att.token_attr[0], att.token_attr[1]) and torch.equal(att.token_attr[0], att.token_attr[2])
    grad = LLMAttnGradShapley(model, tokenizer, game="mutual").attribute(PROMPT, target=TARGET)
    assert not torch.allclose(grad.token_attr[0], grad.token_attr[1])


# --- batching ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("game", GAMES)
def test_batched_backward_equals_separate_computations(lm, tokenizer, game):
    _, model = lm
    explainer = LLMAttnGradShapley(model, tokenizer, game=game)
    target = "7 , a = 3"
    batched = explainer.attribute(PROMPT, target=target)
    one_by_one = LLMAttnGradShapley(model, tokenizer, game=game, targets_per_backward=2).attribute(
        PROMPT, target=target
    )
    torch.testing.assert_close(one_by_one.token_attr, batched.token_attr, rtol=1e-6, atol=1e-9)
    ids = torch.tensor(tokenizer.encode(target, add_special_tokens=False))
    for t in range(ids.numel()):  # token t alone: its own forward pass over prompt + target[:t+1]
        alone = explainer.attribute(PROMPT, target=ids[: t + 1])
        torch.testing.assert_close(alone.token_attr[-1], batched.token_attr[t], rtol=1e-5, atol=1e-9)


def test_one_forward_pass_and_one_batched_backward(tokenizer, monkeypatch):
    model = tiny_causal_lm("gpt2")
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append("forward"))
    grad = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        calls.append("backward" if kwargs.get("is_grads_batched") else "other")
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    LLMAttnGradShapley(model, tokenizer).attribute(PROMPT, target="7 , a = 3 ; k")
    handle.remove()
    assert calls == ["forward", "backward"]


def test_a_backward_that_cannot_be_vectorised_falls_back_to_one_pass_per_token(tokenizer, monkeypatch):
    model = tiny_causal_lm("gpt2")
    explainer = LLMAttnGradShapley(model, tokenizer, game="mutual")
    expected = explainer.attribute(PROMPT, target=TARGET).token_attr
    grad = torch.autograd.grad
    calls = []

    def no_vmap(*args, **kwargs):
        calls.append(bool(kwargs.get("is_grads_batched")))
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("vmap: an operation has no batching rule (simulated)")
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_vmap)
    with pytest.warns(RuntimeWarning, match="one backward pass per target token"):
        looped = explainer.attribute(PROMPT, target=TARGET).token_attr
    assert calls == [True, False, False, False]
    torch.testing.assert_close(looped, expected, rtol=1e-6, atol=1e-9)


def test_a_model_outside_the_attention_registry_falls_back_to_hooks(tokenizer, monkeypatch):
    from captum_attn_shapley.capture import fused
    from captum_attn_shapley.capture.attention import _NOT_FUSED

    model = tiny_causal_lm("gpt2")
    expected = LLMAttnGradShapley(model, tokenizer, game="mutual", engine="hooks").attribute(PROMPT, target=TARGET)
    monkeypatch.setattr(fused.FusedRecorder, "record", lambda *args: None)  # the fused engine sees no call
    explainer = LLMAttnGradShapley(model, tokenizer, game="mutual")
    assert explainer.capturer.engine_for_call() == "fused"
    result = explainer.attribute(PROMPT, target=TARGET)
    torch.testing.assert_close(result.token_attr, expected.token_attr)
    assert model in _NOT_FUSED and explainer.capturer.engine_for_call() == "hooks"


# --- inputs and targets -----------------------------------------------------------------------------------


def test_template_input_sums_the_tokens_of_each_value(tokenizer):
    model = tiny_causal_lm("llama")
    explainer = LLMAttnGradShapley(model, tokenizer, game="mutual")
    values = ["a = 3", "k = 7", "k"]
    template = TextTemplateInput("{} , {} ; {} =", values=values)
    by_value = explainer.attribute(template, target=TARGET)
    by_token = explainer.attribute(TextTokenInput(PROMPT, tokenizer), target=TARGET)
    # tokens: <s> a = 3 , k = 7 ; k =  -> value 0 = tokens 1-3, value 1 = 5-7, value 2 = 9
    expected = torch.stack(
        [by_token.token_attr[:, 1:4].sum(1), by_token.token_attr[:, 5:8].sum(1), by_token.token_attr[:, 9]], dim=1
    )
    assert by_value.input_tokens == values
    torch.testing.assert_close(by_value.token_attr, expected)
    torch.testing.assert_close(by_value.seq_attr, expected.sum(0))
    grouped = explainer.attribute(
        TextTemplateInput("{} , {} ; {} =", values=values, mask=[0, 1, 1]), target=TARGET
    )
    group = expected[:, 1] + expected[:, 2]
    torch.testing.assert_close(grouped.token_attr, torch.stack([expected[:, 0], group, group], dim=1))
    named = TextTemplateInput("{x} , {y} ; {z} =", values={"x": "a = 3", "y": "k = 7", "z": "k"})
    torch.testing.assert_close(explainer.attribute(named, target=TARGET).token_attr, expected)


def test_skip_tokens_are_neither_features_nor_players(tokenizer):
    model = tiny_causal_lm("gpt2")
    explainer = LLMAttnGradShapley(model, tokenizer, game="cls")
    full = explainer.attribute(TextTokenInput(PROMPT, tokenizer), target=TARGET)
    skipped = explainer.attribute(TextTokenInput(PROMPT, tokenizer, skip_tokens=["<s>", ","]), target=TARGET)
    assert skipped.input_tokens == [t for t in full.input_tokens if t not in ("<s>", ",")]
    keep = [i for i, t in enumerate(full.input_tokens) if t not in ("<s>", ",")]
    torch.testing.assert_close(skipped.token_attr, full.token_attr[:, keep])  # the CLS game is additive


def test_target_string_ids_and_generation_agree(tokenizer):
    model = tiny_causal_lm("gpt2")
    explainer = LLMAttnGradShapley(model, tokenizer, game="max_mutual")
    ids = torch.tensor(tokenizer.encode(TARGET, add_special_tokens=False))
    by_text = explainer.attribute(PROMPT, target=TARGET)
    torch.testing.assert_close(explainer.attribute(PROMPT, target=ids).token_attr, by_text.token_attr)
    torch.testing.assert_close(explainer.attribute(PROMPT, target=ids.unsqueeze(0)).token_attr, by_text.token_attr)
    prompt = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    greedy = model.generate(prompt, max_new_tokens=4, do_sample=False, pad_token_id=0)[0, prompt.shape[1] :]
    generated = explainer.attribute(PROMPT, gen_args={"max_new_tokens": 4, "do_sample": False})
    assert generated.token_attr.shape[0] == greedy.numel()
    torch.testing.assert_close(generated.token_attr, explainer.attribute(PROMPT, target=greedy).token_attr)
    default = explainer.attribute(PROMPT)  # default generation: greedy, 10 new tokens
    assert default.token_attr.shape[0] == 10


def test_result_object_plots_and_probabilities(tokenizer):
    model = tiny_causal_lm("gpt2")
    result = LLMAttnGradShapley(model, tokenizer).attribute(PROMPT, target=TARGET)
    assert isinstance(result, LLMAttributionResult)
    assert result.seq_attr.shape == (len(result.input_tokens),)
    assert result.token_attr.shape == (len(result.output_tokens), len(result.input_tokens))
    fig, _ = result.plot_token_attr()
    fig2, _ = result.plot_seq_attr()
    matplotlib.pyplot.close(fig)
    matplotlib.pyplot.close(fig2)
    if CAPTUM_09:
        ids = tokenizer(PROMPT + " " + TARGET, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            probs = model(ids).logits[0].softmax(-1)
        p = len(tokenizer(PROMPT)["input_ids"])
        expected = torch.stack([probs[p - 1 + t, ids[0, p + t]] for t in range(3)])
        torch.testing.assert_close(result.output_probs, expected, rtol=1e-5, atol=1e-7)
        assert result.inp is not None


@pytest.mark.parametrize("engine", ["fused", "hooks"])
def test_model_left_as_found(tokenizer, engine):
    model = tiny_causal_lm("llama")
    for p in model.parameters():
        p.requires_grad_(False)
    seen = []
    handle = model.register_forward_pre_hook(lambda *args: seen.append(model.config._attn_implementation))
    LLMAttnGradShapley(model, tokenizer, game="mutual", engine=engine).attribute(PROMPT, target=TARGET)
    handle.remove()
    assert seen == (["sdpa"] if engine == "fused" else ["eager"])  # the fused engine keeps the kernel
    assert model.config._attn_implementation == "sdpa"
    assert not model.training
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())


def test_layers_select_the_layers(tokenizer):
    model = tiny_causal_lm("gpt2", layers=3)
    explainer = LLMAttnGradShapley(model, tokenizer, game="cls", weighting="attention")
    per_layer = [explainer.attribute(PROMPT, target=TARGET, layers=[k]).token_attr for k in range(3)]
    mean = explainer.attribute(PROMPT, target=TARGET).token_attr
    torch.testing.assert_close(sum(per_layer) / 3, mean)
    torch.testing.assert_close(
        LLMAttnGradShapley(model, tokenizer, layers=[-1], game="cls", weighting="attention")
        .attribute(PROMPT, target=TARGET)
        .token_attr,
        per_layer[2],
    )


# --- bad input --------------------------------------------------------------------------------------------


def test_non_causal_models_are_refused(tokenizer):
    with pytest.raises(ValueError, match="bidirectional"):
        LLMAttnGradShapley(tiny_text_model("bert"), tokenizer)
    with pytest.raises(ValueError, match="no language-modelling head"):
        LLMAttnGradShapley(zoo_model("gpt2"), tokenizer)
    with pytest.raises(TypeError, match="`model`"):
        LLMAttnGradShapley(lambda ids: ids, tokenizer)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(target=""), ValueError, "encodes to no token"),
        (dict(target=torch.tensor([], dtype=torch.long)), ValueError, "non-empty"),
        (dict(target=torch.tensor([1.0, 2.0])), ValueError, "integer token ids"),
        (dict(target=torch.tensor([5, 999])), ValueError, "outside the vocabulary"),
        (dict(target=[5, 6]), TypeError, "`target`"),
        (dict(target="7", gen_args={"max_new_tokens": 2}), ValueError, "`gen_args`"),
        (dict(gen_args=["max_new_tokens"]), TypeError, "`gen_args`"),
        (dict(gen_args={"max_new_tokens": 0}), ValueError, "max_new_tokens"),
        (dict(inp=torch.tensor([[5, 6]])), TypeError, "`inp`"),
        (dict(inp=""), ValueError, "empty"),
        (dict(inp="<s>"), ValueError, "no player"),
        (dict(game="shapley"), ValueError, "game"),
        (dict(weighting="lrp"), ValueError, "weighting"),
        (dict(weighting="ig_attention"), ValueError, "for classifiers"),
        (dict(weighting="lrp_attention"), ValueError, "for classifiers"),
        (dict(layers=[5]), ValueError, "Layer 5"),
        (dict(layers=[0.5]), TypeError, "layers"),
    ],
)
def test_bad_input_raises_before_any_work(tokenizer, kwargs, error, match):
    model = tiny_causal_lm("gpt2")
    explainer = LLMAttnGradShapley(model, tokenizer)
    kwargs = {"inp": PROMPT, "target": TARGET, **kwargs} if "gen_args" not in kwargs else {"inp": PROMPT, **kwargs}
    with pytest.raises(error, match=match):
        explainer.attribute(**kwargs)


def test_bad_construction(tokenizer):
    model = tiny_causal_lm("gpt2")
    for kwargs, match in [
        (dict(game=lambda m, s: s.sum(1)), "game"),
        (dict(weighting="gradient"), "weighting"),
        (dict(targets_per_backward=0), "targets_per_backward"),
        (dict(layers=[7]), "Layer 7"),
        (dict(engine="flash"), "engine"),
    ]:
        with pytest.raises(ValueError, match=match):
            LLMAttnGradShapley(model, tokenizer, **kwargs)
    with pytest.raises(TypeError, match="tokenizer"):
        LLMAttnGradShapley(model, None)


def test_template_that_changes_its_values_is_refused(tokenizer):
    explainer = LLMAttnGradShapley(tiny_causal_lm("gpt2"), tokenizer)
    for template in (lambda x, y: f"{len(x)} = {y}", lambda x, y: f"{x[:1]} = {y}", lambda x, y: f"{x[3:]} = {y}"):
        with pytest.raises(ValueError, match="verbatim"):
            explainer.attribute(TextTemplateInput(template, values=["a", "3"]), target=TARGET)
    upper = TextTemplateInput(lambda x, y: f"{x.upper()} = {y}", values=["a", "3"])  # the text it inserts: located
    assert explainer.attribute(upper, target=TARGET).token_attr.shape == (3, 2)
