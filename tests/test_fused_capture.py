"""The fused capture engine against the eager attention, on every supported architecture.

Ground truth: the eager hook engine (hooks on the attention modules of the model switched to eager) and the
probabilities Hugging Face's eager attention returns with ``output_attentions=True``.
"""

import threading

import pytest
import torch
from tiny_models import (
    CLS_ID,
    HOOK_TEXT_ARCHS,
    REGISTRY_TEXT_ARCHS,
    SEP_ID,
    SPECIAL_IDS,
    image_batch,
    text_batch,
    tiny_image_model,
    zoo_model,
)
from tiny_models import VOCAB as VOCAB_SIZE

from captum_attn_shapley import AttentionReceived, AttnGradShapley, GradSAM
from captum_attn_shapley.attr.attn_grad_shapley import PAPER_VARIANTS
from captum_attn_shapley.capture import REDUCTIONS, AttentionCapture, InfluenceRequest


def _eager_attentions(model, ids, mask):
    """Hugging Face's own eager probabilities (the encoder's for encoder-decoders)."""
    impl = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    finally:
        model.set_attn_implementation(impl)
    return out.encoder_attentions if getattr(out, "encoder_attentions", None) is not None else out.attentions


def _forward(model):
    """A Captum-style forward by keyword: GPT-2's second positional argument is not the mask."""
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits


def _close(a, b, what):
    scale = b.abs().max().clamp_min(1e-30)
    assert (a - b).abs().max() <= 1e-5 * scale + 1e-7, f"{what}: {(a - b).abs().max()} vs scale {scale}"


@pytest.mark.parametrize("arch", REGISTRY_TEXT_ARCHS)
def test_fused_equals_eager_on_every_registry_architecture(arch):
    model = zoo_model(arch)
    ids, mask = text_batch()
    fused, hooks = (
        AttentionCapture(_forward(model), engine="fused"),
        AttentionCapture(_forward(model), engine="hooks"),
    )
    assert fused.engine_for_call() == "fused" and AttentionCapture(_forward(model)).engine_for_call() == "fused"
    a = fused.capture(ids, additional_forward_args=(mask,), with_gradients=True)
    b = hooks.capture(ids, additional_forward_args=(mask,), with_gradients=True)
    assert a.engine == "fused" and b.engine == "hooks"
    eager = _eager_attentions(model, ids, mask)
    assert len(a.attentions) == len(eager) == fused.num_layers
    real = mask.bool()[:, None, :, None]  # padding query rows may differ (fully masked for causal models)
    for layer, (x, y, e) in enumerate(zip(a.attentions, b.attentions, eager)):
        _close(x * real, e * real, f"{arch} layer {layer} A vs transformers' eager")
        _close(x * real, y * real, f"{arch} layer {layer} A")
    for layer, (x, y) in enumerate(zip(a.gradients, b.gradients)):
        _close(x * real, y * real, f"{arch} layer {layer} dy/dA")
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-6)
    for reduction in ("matrix", "cls_row", "received"):
        for weighting in ("attention", "grad_attention"):
            request = InfluenceRequest(reduction, weighting)
            x = fused.capture(ids, additional_forward_args=(mask,), request=request).influence
            y = hooks.capture(ids, additional_forward_args=(mask,), request=request).influence
            _close(x, y, f"{arch} {reduction} {weighting}")


@pytest.mark.parametrize("budget", [1, 50, 700, 10_000])
def test_blocks_of_any_size_give_the_same_reductions(budget, monkeypatch):
    import captum_attn_shapley.capture.one_pass as one_pass

    model = zoo_model("llama")  # causal with padding, grouped-query attention
    ids, mask = text_batch(batch=5)
    hooks = AttentionCapture(_forward(model), engine="hooks")
    expected = {
        (r, w): hooks.capture(ids, additional_forward_args=(mask,), request=InfluenceRequest(r, w)).influence
        for r in ("matrix", "cls_row", "received")
        for w in ("attention", "grad_attention")
    }
    monkeypatch.setattr(one_pass, "ROW_BUDGET", budget)
    fused = AttentionCapture(_forward(model), engine="fused")
    for (reduction, weighting), value in expected.items():
        request = InfluenceRequest(reduction, weighting)
        _close(fused.capture(ids, additional_forward_args=(mask,), request=request).influence, value, str(request))


@pytest.mark.parametrize("engine", ["fused", "hooks"])
def test_layer_groups_are_each_groups_own_reduction_from_one_pass(engine):
    """``InfluenceRequest.groups``: the result stacks each group's reduction (its own mean over its layers), as
    captured group by group; a layer may sit in several groups; groups are refused where they cannot hold."""
    model = zoo_model("llama")  # causal with padding, grouped-query attention
    ids, mask = text_batch(batch=3)
    capture = AttentionCapture(_forward(model), engine=engine)
    groups = ((1,), (0, 1), (1,))
    for reduction in ("matrix", "cls_row", "received"):
        for weighting in ("attention", "grad_attention"):
            request = InfluenceRequest(reduction, weighting, groups=groups)
            stacked = capture.capture(ids, additional_forward_args=(mask,), request=request).influence
            assert stacked.shape[0] == len(groups)
            for group, value in zip(groups, stacked):
                alone = InfluenceRequest(reduction, weighting)
                expected = capture.capture(ids, additional_forward_args=(mask,), layers=list(group), request=alone)
                torch.testing.assert_close(
                    value, expected.influence, rtol=1e-4, atol=1e-6 * float(value.abs().max())
                )
    with pytest.raises(ValueError, match=r"holds layers \[1\] that `layers` \(\[0\]\) does not select"):
        capture.capture(ids, additional_forward_args=(mask,), layers=[0], request=request)
    with pytest.raises(ValueError, match="Layer groups need"):
        InfluenceRequest("raw", groups=((0,),))
    with pytest.raises(ValueError, match="Layer groups need"):
        InfluenceRequest("matrix", "ig_attention", groups=((0,),))
    with pytest.raises(ValueError, match="non-empty groups"):
        InfluenceRequest("matrix", groups=((0,), ()))


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama", "albert", "bart"])
def test_every_variant_and_baseline_agrees_between_engines(arch):
    model = zoo_model(arch)
    ids, mask = text_batch()
    for name, (game, weighting) in PAPER_VARIANTS.items():
        results = [
            AttnGradShapley(
                _forward(model), game=game, weighting=weighting, special_token_ids=SPECIAL_IDS, engine=engine
            ).attribute(ids, additional_forward_args=(mask,), return_convergence_delta=True)
            for engine in ("fused", "hooks")
        ]
        _close(results[0][0], results[1][0], f"{arch} {name}")
        assert results[0][1].abs().max() < 1e-6
    for cls in (AttentionReceived, GradSAM):
        x, y = (
            cls(_forward(model), special_token_ids=SPECIAL_IDS, engine=engine).attribute(
                ids, additional_forward_args=(mask,)
            )
            for engine in ("fused", "hooks")
        )
        _close(x, y, f"{arch} {cls.__name__}")


@pytest.mark.parametrize("arch", ["vit", "deit"])
def test_fused_equals_eager_on_vision_transformers(arch):
    model = tiny_image_model(arch)
    pixels = image_batch()
    for game, weighting in PAPER_VARIANTS.values():
        x, y = (
            AttnGradShapley(model, game=game, weighting=weighting, engine=engine).attribute(pixels)
            for engine in ("fused", "hooks")
        )
        _close(x, y, f"{arch} {game} {weighting}")


def test_shared_module_counts_once_per_call():
    model = zoo_model("albert")  # 3 layers, one attention module
    ids, mask = text_batch()
    capture = AttentionCapture(_forward(model))
    assert len(capture.modules) == 1 and capture.num_layers == 3
    out = capture.capture(ids, additional_forward_args=(mask,), with_gradients=False)
    eager = _eager_attentions(model, ids, mask)
    assert len(out.attentions) == 3
    assert not torch.allclose(out.attentions[0], out.attentions[2])  # three different calls
    attributions = AttnGradShapley(_forward(model), special_token_ids=SPECIAL_IDS).attribute(
        ids, additional_forward_args=(mask,)
    )
    assert (attributions != 0).any()
    for engine in ("fused", "hooks"):
        last = AttentionCapture(_forward(model), engine=engine).capture(
            ids, additional_forward_args=(mask,), layers=[-1]
        )
        _close(
            last.attentions[0] * mask.bool()[:, None, :, None], eager[2] * mask.bool()[:, None, :, None], engine
        )


def test_encoder_decoder_uses_the_encoder_self_attention():
    model = zoo_model("bart")
    capture = AttentionCapture(_forward(model))
    encoder = {id(m) for m in model.get_encoder().modules()}
    assert capture.num_layers == model.config.encoder_layers
    assert all(id(module) in encoder and name.endswith("self_attn") for name, module, _ in capture.modules)
    # the documented option for the decoder's self-attention: name its modules (hook engine)
    names = [f"model.decoder.layers.{i}.self_attn" for i in range(model.config.decoder_layers)]
    decoder = AttentionCapture(_forward(model), attention_modules=names)
    assert decoder.engine_for_call() == "hooks"
    ids, mask = text_batch()
    out = decoder.capture(ids, additional_forward_args=(mask,), with_gradients=False)
    assert len(out.attentions) == 2 and out.attentions[0].shape[-1] == ids.shape[1]


@pytest.mark.parametrize("arch", HOOK_TEXT_ARCHS)
def test_models_outside_the_registry_are_discovered(arch):
    model = zoo_model(arch)
    ids, mask = text_batch()
    capture = AttentionCapture(_forward(model))
    assert capture.engine_for_call() == "hooks" and capture.num_layers == 2
    out = capture.capture(ids, additional_forward_args=(mask,), with_gradients=True)
    eager = _eager_attentions(model, ids, mask)
    for x, e in zip(out.attentions, eager):
        _close(x, e, arch)
    for game, weighting in PAPER_VARIANTS.values():
        attr = AttnGradShapley(
            _forward(model), game=game, weighting=weighting, special_token_ids=SPECIAL_IDS
        ).attribute(ids, additional_forward_args=(mask,))
        assert torch.isfinite(attr).all() and (attr != 0).any()
    # following the discovery error's advice (naming the modules) works too
    named = AttentionCapture(_forward(model), attention_modules=[name for name, _, _ in capture.modules])
    again = named.capture(ids, additional_forward_args=(mask,), with_gradients=False)
    for x, y in zip(again.attentions, out.attentions):
        torch.testing.assert_close(x, y)


def test_fused_calls_from_threads_give_the_serial_results():
    model = zoo_model("bert")
    explainer = AttnGradShapley(_forward(model), special_token_ids=SPECIAL_IDS)
    batches = [text_batch(seed=s) for s in range(6)]
    serial = [explainer.attribute(ids, additional_forward_args=(mask,)) for ids, mask in batches]
    results = {}

    def work(i):
        ids, mask = batches[i % len(batches)]
        results[i] = explainer.attribute(ids, additional_forward_args=(mask,))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(18)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 18
    for i, value in results.items():
        assert torch.equal(value, serial[i % len(batches)]), i


def test_the_model_and_the_registry_are_left_as_found():
    from transformers import AttentionInterface

    model = zoo_model("bert")
    ids, mask = text_batch()
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
    AttnGradShapley(_forward(model), special_token_ids=SPECIAL_IDS).attribute(ids, additional_forward_args=(mask,))
    assert model.config._attn_implementation == "sdpa"
    assert all(p.grad is None for p in model.parameters())
    assert not model._forward_hooks and not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    wrapper = AttentionInterface._global_mapping["sdpa"]
    assert getattr(wrapper, "_captum_attn_shapley", False)  # passes through outside a capture
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, before)


def test_engine_errors_name_the_fix():
    model = zoo_model("deberta-v2")
    with pytest.raises(ValueError, match="engine='fused'.*engine='hooks'"):
        AttentionCapture(_forward(model), engine="fused")
    with pytest.raises(ValueError, match="engine"):
        AttentionCapture(_forward(model), engine="flash")
    bert = zoo_model("bert").train()
    assert AttentionCapture(bert).engine_for_call() == "hooks"  # dropout: only the eager pass shows it
    ids, mask = text_batch()
    with pytest.raises(RuntimeError, match=r"model.eval\(\)"):
        AttentionCapture(bert, engine="fused").capture(ids, additional_forward_args=(mask,))
    with pytest.raises(ValueError, match="reduction"):
        InfluenceRequest("rows")
    assert set(REDUCTIONS) >= {"matrix", "cls_row", "received"}


@pytest.mark.parametrize("merged", [False, True])
def test_peft_lora_models_work_for_every_gradient_variant(merged):
    from peft import LoraConfig, get_peft_model

    base = zoo_model("bert")
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False))
    model = lora.merge_and_unload() if merged else lora
    model.eval()
    ids, mask = text_batch()
    for game, weighting in PAPER_VARIANTS.values():
        if weighting != "grad_attention":
            continue
        x, y = (
            AttnGradShapley(
                model, game=game, weighting=weighting, special_token_ids=SPECIAL_IDS, engine=engine
            ).attribute(ids, additional_forward_args=(mask,))
            for engine in ("fused", "hooks")
        )
        assert (x != 0).any()
        _close(x, y, f"lora merged={merged} {game}")
    flags = [p.requires_grad for p in model.parameters()]
    GradSAM(_forward(model), special_token_ids=SPECIAL_IDS).attribute(ids, additional_forward_args=(mask,))
    assert [p.requires_grad for p in model.parameters()] == flags


def test_real_minilm_fused_equals_eager(minilm_classifier):
    model, tokenizer = minilm_classifier
    texts = ["The crew was friendly and the flight landed early.", "Lost my bag again, thanks a lot."]
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    for name, (game, weighting) in PAPER_VARIANTS.items():
        x, y = (
            AttnGradShapley(model, game=game, weighting=weighting, engine=engine).attribute(
                ids, additional_forward_args=(mask,)
            )
            for engine in ("fused", "hooks")
        )
        _close(x, y, f"MiniLM {name}")


def test_all_six_variants_at_4096_tokens_on_a_modernbert_style_encoder():
    """A narrow random ModernBERT (alternating local and global attention) at 4,096 tokens: the fused
    engine's attributions equal the eager hook engine's (which holds every layer's 4096 x 4096 attention)."""
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    torch.manual_seed(0)
    config = ModernBertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=4096,
        local_attention=128,
        global_attn_every_n_layers=2,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=3,
        cls_token_id=2,
        sep_token_id=3,
        num_labels=2,
    )
    model = ModernBertForSequenceClassification(config).eval()
    ids = torch.randint(5, VOCAB_SIZE, (1, 4096))
    ids[0, 0], ids[0, -1] = 2, 3
    mask = torch.ones_like(ids)
    for game, weighting in PAPER_VARIANTS.values():
        x, y = (
            AttnGradShapley(
                _forward(model), game=game, weighting=weighting, special_token_ids=SPECIAL_IDS, engine=engine
            ).attribute(ids, additional_forward_args=(mask,))
            for engine in ("fused", "hooks")
        )
        _close(x, y, f"4096 tokens {game} {weighting}")


@pytest.mark.parametrize("layers", [[0], [1], [-1, 0]])
def test_layer_subsets_agree_between_engines(layers):
    """Only some layers reduced: the others run the kernel's own backward, the selected ones reduce in theirs."""
    model = zoo_model("llama", seed=1)
    ids, mask = text_batch()
    for game, weighting in PAPER_VARIANTS.values():
        x, y = (
            AttnGradShapley(
                _forward(model), game=game, weighting=weighting, special_token_ids=SPECIAL_IDS, engine=e
            ).attribute(ids, additional_forward_args=(mask,), layers=layers)
            for e in ("fused", "hooks")
        )
        _close(x, y, f"layers {layers} {game} {weighting}")


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_unpadded_decoder_batches_use_the_kernels_causal_flag(arch):
    """Without padding transformers passes no mask to sdpa, only ``is_causal``: the capture applies the
    causal mask itself, on blocks of rows and on the classification rows, and equals the eager engine."""
    model = zoo_model(arch)
    ids = torch.tensor([[CLS_ID, 7, 8, 9, 10, SEP_ID], [CLS_ID, 11, 12, 13, 14, SEP_ID]])
    mask = torch.ones_like(ids)
    for game, weighting in PAPER_VARIANTS.values():
        results = [
            AttnGradShapley(
                _forward(model), game=game, weighting=weighting, special_token_ids=SPECIAL_IDS, engine=engine
            ).attribute(ids, additional_forward_args=(mask,))
            for engine in ("fused", "hooks")
        ]
        assert torch.allclose(results[0], results[1], atol=1e-6), (game, weighting)
        assert float(results[0].abs().sum()) > 0
