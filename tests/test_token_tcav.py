"""TokenTCAV against independent computations: brute force per example, Captum's TCAV, scipy."""

import math
import os

import numpy as np
import pytest
import torch
from captum.concept import CAV, TCAV, Concept
from scipy import stats
from torch import nn

from captum_attn_shapley import TokenTCAV, image_concept, text_concept
from captum_attn_shapley.concept import (
    TABLE_COLUMNS,
    TokenLogisticClassifier,
    TokenTCAVScores,
    correct_pvalues,
    random_concept_test,
    tcav_table,
    ttest_against_half,
)
from tests.tiny_models import CLS_ID, PAD_ID, SEP_ID, SPECIAL_IDS, VOCAB, tiny_image_model, tiny_text_model

IMAGE = 16


def _images(seed, n, shift=0.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, IMAGE, IMAGE, generator=gen) + shift


def _image_concepts(k=3, n=6, seed=0):
    return [image_concept(i, f"c{i}", _images(seed + i, n, 0.7 * i), batch_size=4) for i in range(k)]


def _padded_texts(seed, n, lo=3, hi=9, offset=5):
    """input_ids / attention_mask with varying lengths; words drawn from a concept-specific range."""
    gen = torch.Generator().manual_seed(seed)
    length = hi + 2
    ids = torch.full((n, length), PAD_ID)
    mask = torch.zeros(n, length, dtype=torch.long)
    for b in range(n):
        real = int(torch.randint(lo, hi + 1, (1,), generator=gen))
        ids[b, 0] = CLS_ID
        ids[b, 1 : real + 1] = torch.randint(offset, min(offset + 18, VOCAB), (real,), generator=gen)
        ids[b, real + 1] = SEP_ID
        mask[b, : real + 2] = 1
    return ids, mask


def _text_concept(i, seed, n=6):
    ids, mask = _padded_texts(seed, n, offset=5 + 18 * i)
    return Concept(i, f"t{i}", [(ids[:3], mask[:3]), (ids[3:], mask[3:])])


class _Logits(nn.Module):
    """A Captum-style wrapper: pixels -> logits."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, pixel_values):
        return self.m(pixel_values=pixel_values).logits


def _brute_force_scores(model, layer_index, cav, ids, mask, target, weighted=True):
    """s(x) one example at a time, padding stripped, from HF's own hidden states and attentions."""
    model.set_attn_implementation("eager")
    out = []
    for b in range(ids.shape[0]):
        real = int(mask[b].sum())
        o = model(input_ids=ids[b : b + 1, :real], output_hidden_states=True, output_attentions=True)
        h = o.hidden_states[layer_index + 1]
        g = torch.autograd.grad(o.logits[0, target], h)[0][0]
        a = o.attentions[layer_index][0, :, 0, :].mean(dim=0) if weighted else torch.ones(real)
        out.append(float((a * (g @ cav)).sum().detach()))
    return torch.tensor(out)


@pytest.mark.parametrize("weighted", [True, False])
def test_text_scores_equal_per_example_brute_force(tmp_path, weighted):
    model = tiny_text_model("bert", num_labels=3, layers=3)
    concepts = [_text_concept(i, seed=10 + i) for i in range(2)]
    tcav = TokenTCAV(
        model, layers=[0, 2], save_path=str(tmp_path), repeats=3, batch_size=4, attention_weighting=weighted
    )
    ids, mask = _padded_texts(99, 9)
    scores = tcav.interpret(ids, [concepts], target=2, additional_forward_args=(mask,))
    for layer_index, layer in zip([0, 2], tcav.layers):
        weights = tcav.cavs["0-1"][layer].stats["weights"]
        for i in range(2):
            for r in range(3):
                s = _brute_force_scores(model, layer_index, weights[i, r], ids, mask, 2, weighted)
                got = scores["0-1"][layer]
                assert float(got["sign_count_repeats"][i, r]) == pytest.approx(float((s > 0).float().mean()))
                assert float(got["magnitude_repeats"][i, r]) == pytest.approx(float(s.mean()), rel=1e-4, abs=1e-7)
    # scores are the mean over the R CAVs; the p-value is scipy's t-test of the R scores
    got = scores["0-1"][tcav.layers[0]]
    assert torch.allclose(got["sign_count"], got["sign_count_repeats"].mean(dim=1))
    assert np.allclose(got["p_value"].numpy(), ttest_against_half(got["sign_count_repeats"].numpy()))


def test_token_activations_exclude_padding_and_cavs_are_unit_vectors(tmp_path):
    model = tiny_text_model("bert", num_labels=2, layers=2)
    concepts = [_text_concept(i, seed=20 + i) for i in range(3)]
    tcav = TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=4)
    tcav.compute_cavs([concepts])
    stats_ = tcav.cavs["0-1-2"][tcav.layers[0]].stats
    expected_tokens = []
    for c in concepts:
        expected_tokens.append(sum(int(m.sum()) for _, m in c.data_iter))
    assert stats_["num_tokens"] == expected_tokens
    assert stats_["num_examples"] == [6, 6, 6]
    weights = stats_["weights"]
    assert weights.shape == (3, 4, 16)
    assert torch.allclose(weights.norm(dim=-1), torch.ones(3, 4), atol=1e-5)
    # each repeat draws a different half of the 12 other examples, so the CAVs differ
    assert not torch.allclose(weights[0, 0], weights[0, 1])


def test_relative_cav_is_logistic_regression_on_the_drawn_tokens(tmp_path):
    """Repeat r of concept i: sklearn on i's tokens vs the drawn examples' tokens, nothing else."""
    from sklearn.linear_model import LogisticRegression

    model = tiny_image_model("vit", layers=2)
    concepts = _image_concepts(k=2, n=5)
    clf = TokenLogisticClassifier(test_split_ratio=0.0)
    tcav = TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2, classifier=clf)
    tcav.compute_cavs([concepts])
    layer = tcav.layers[0]
    pos = tcav._activations[(0, layer)][0]
    neg = tcav._activations[(1, layer)][0]  # 2 concepts, 5 examples each: the draw takes all of c1
    x = torch.cat([pos, neg]).numpy()
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    lm = LogisticRegression(C=clf.C, max_iter=1000, class_weight="balanced").fit(x, y)
    w = torch.tensor(lm.coef_[0], dtype=torch.float32)
    cav = tcav.cavs["0-1"][layer].stats["weights"][0, 0]
    assert torch.allclose(cav, w / w.norm(), atol=1e-4)
    assert len(pos) == 5 * (1 + (IMAGE // 4) ** 2)  # every patch token and the CLS token


def test_agrees_with_captum_tcav_on_the_same_cavs_without_attention_weighting(tmp_path):
    """Unweighted T-TCAV = Captum's TCAV with each token CAV shared by all tokens (sum pooling)."""
    wrapper = _Logits(tiny_image_model("vit", layers=3))
    concepts = _image_concepts(k=2, n=6)
    inputs = _images(7, 30)
    tcav = TokenTCAV(
        wrapper,
        layers=[1, 2],
        save_path=str(tmp_path / "ours"),
        repeats=3,
        attention_weighting=False,
        batch_size=7,
    )
    ours = tcav.interpret(inputs, [concepts], target=[i % 4 for i in range(30)])
    tokens = 1 + (IMAGE // 4) ** 2
    for r in range(3):
        path = str(tmp_path / f"captum{r}")
        with pytest.warns(UserWarning):
            captum_tcav = TCAV(wrapper, layers=tcav.layers, model_id="m", save_path=path)
        for layer in tcav.layers:
            v = tcav.cavs["0-1"][layer].stats["weights"][:, r]
            CAV(concepts, layer, {"weights": v.repeat(1, tokens), "classes": [0, 1]}, path, "m").save()
        theirs = captum_tcav.interpret(inputs, [concepts], target=[i % 4 for i in range(30)])
        for layer in tcav.layers:
            assert torch.equal(theirs["0-1"][layer]["sign_count"], ours["0-1"][layer]["sign_count_repeats"][:, r])
            assert torch.allclose(
                theirs["0-1"][layer]["magnitude"],
                ours["0-1"][layer]["magnitude_repeats"][:, r],
                rtol=1e-4,
                atol=1e-7,
            )


def test_batching_does_not_change_scores(tmp_path):
    model = tiny_image_model("deit", layers=2)
    concepts = _image_concepts(k=2, n=4)
    inputs = _images(3, 11)
    a = TokenTCAV(model, layers=[0, 1], save_path=str(tmp_path), repeats=2, batch_size=11)
    b = TokenTCAV(model, layers=[0, 1], save_path=str(tmp_path), repeats=2, batch_size=3)
    sa = a.interpret(inputs, [concepts])
    sb = b.interpret(inputs, [concepts])
    for layer in a.layers:
        assert torch.allclose(
            sa["0-1"][layer]["magnitude_repeats"], sb["0-1"][layer]["magnitude_repeats"], rtol=1e-4, atol=1e-7
        )


def test_gradients_come_from_one_backward_per_batch(tmp_path, monkeypatch):
    model = tiny_image_model("vit", layers=3)
    concepts = _image_concepts(k=2, n=4)
    tcav = TokenTCAV(model, layers=[0, 1, 2], save_path=str(tmp_path), repeats=2, batch_size=8)
    tcav.compute_cavs([concepts])
    calls = []
    original = torch.autograd.grad

    def counting(outputs, inputs, *args, **kwargs):
        calls.append(len(inputs))
        return original(outputs, inputs, *args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    tcav.interpret(_images(5, 20), [concepts])
    assert calls == [3, 3, 3]  # ceil(20 / 8) batches, each one backward w.r.t. all 3 layers


def test_random_concept_test_and_correction(tmp_path):
    model = tiny_image_model("vit", layers=2)
    concepts = _image_concepts(k=2, n=5)
    randoms = [image_concept(10 + i, f"random{i}", _images(50 + i, 5)) for i in range(4)]
    tcav = TokenTCAV(model, layers=[0, 1], save_path=str(tmp_path), repeats=3)
    inputs = _images(8, 12)
    scores = tcav.interpret(inputs, [concepts], target=0, random_concepts=randoms, correction="bonferroni")
    layer = tcav.layers[1]
    # recompute Captum's test from the single-CAV pair scores
    partners = randoms[1:]

    def t_tcav(concept):
        vectors = torch.stack(
            [tcav.random_cavs[f"{concept.id}-{p.id}"][layer].stats["weights"][0, 0] for p in partners]
        )
        s, _ = tcav.example_scores(inputs, {layer: vectors}, target=0)
        return (s[layer] > 0).float().mean(dim=0).numpy()

    reference = t_tcav(randoms[0])
    for i, c in enumerate(concepts):
        expected = random_concept_test(t_tcav(c), reference)
        assert float(scores["0-1"][layer]["p_value_random"][i]) == pytest.approx(expected)
    # Bonferroni over the 2 concepts x 2 layers of this call
    raw = np.concatenate([scores["0-1"][name]["p_value"].numpy() for name in tcav.layers])
    corrected = np.concatenate([scores["0-1"][name]["p_value_corrected"].numpy() for name in tcav.layers])
    assert np.allclose(corrected, np.minimum(raw * 4, 1))
    rows = tcav_table(scores)
    assert len(rows) == 4 and set(rows[0]) == set(TABLE_COLUMNS)
    for row in rows:
        expected_sig = row["p_value_corrected"] < 0.05 and row["p_value_random_corrected"] < 0.05
        assert row["significant"] == expected_sig
    md = tcav_table(scores, markdown=True)
    assert md.count("\n") == 2 + 4 and "p_value_random_corrected" in md


def test_significance_helpers_against_hand_computed_values():
    scores = np.array([[0.6, 0.7, 0.8], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5]])
    p = ttest_against_half(scores)
    assert p[0] == pytest.approx(stats.ttest_1samp([0.6, 0.7, 0.8], 0.5).pvalue)
    t = (0.7 - 0.5) / (0.1 / math.sqrt(3))  # mean 0.7, sd 0.1
    assert p[0] == pytest.approx(2 * stats.t.sf(t, df=2))
    assert p[1] == 0.0 and p[2] == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        ttest_against_half(np.array([0.7]))
    assert random_concept_test([0.9, 0.8, 0.85], [0.5, 0.4, 0.45]) == pytest.approx(
        stats.ttest_ind([0.9, 0.8, 0.85], [0.5, 0.4, 0.45]).pvalue
    )
    raw = np.array([0.01, 0.04, 0.03, 0.2])
    assert np.allclose(correct_pvalues(raw, "bonferroni"), [0.04, 0.16, 0.12, 0.8])
    # Holm: sorted 0.01*4, 0.03*3, 0.04*2, 0.2*1 -> running max 0.04, 0.09, 0.09, 0.2
    assert np.allclose(correct_pvalues(raw, "holm"), [0.04, 0.09, 0.09, 0.2])
    # Benjamini-Hochberg: p_(i) * m / i from the top, running min: 0.2, 0.053, 0.053, 0.04
    assert np.allclose(correct_pvalues(raw, "bh"), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2])
    assert np.allclose(correct_pvalues(raw, None), raw)
    with pytest.raises(ValueError, match="Unknown correction"):
        correct_pvalues(raw, "fdr")


def test_cavs_are_cached_per_model_and_never_reused_for_another(tmp_path):
    model = tiny_image_model("vit", layers=2, seed=0)
    concepts = _image_concepts(k=2, n=4)
    first = TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2)
    first.compute_cavs([concepts])
    weights = first.cavs["0-1"][first.layers[0]].stats["weights"]

    def no_activations(tcav):
        def recompute(layers, concept):
            raise AssertionError("activations recomputed although the CAVs are cached")

        tcav.generate_activation = recompute
        return tcav

    # the same examples in new Concept objects (cached CAVs are keyed by their content)
    cached = [Concept(c.id, c.name, [batch.clone() for batch in c.data_iter]) for c in concepts]
    again = no_activations(TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2))
    again.compute_cavs([cached])
    assert torch.equal(again.cavs["0-1"][again.layers[0]].stats["weights"], weights)
    # another model gets its own folder by default ...
    other = tiny_image_model("vit", layers=2, seed=1)
    fresh = no_activations(TokenTCAV(other, layers=[1], save_path=str(tmp_path), repeats=2))
    assert fresh.model_id != first.model_id
    with pytest.raises(AssertionError, match="recomputed"):
        fresh.compute_cavs([cached])
    # ... and an explicit model_id already used for other weights is refused
    with pytest.raises(ValueError, match="belongs to another model"):
        TokenTCAV(other, layers=[1], save_path=str(tmp_path), repeats=2, model_id=first.model_id)
    # other settings (repeats) never pick up CAVs trained with different ones
    with pytest.raises(AssertionError, match="recomputed"):
        no_activations(TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=3)).compute_cavs([cached])
    # a CAV file planted under the right name but from another model is refused too
    cav = again.cavs["0-1"][again.layers[0]]
    path = CAV.assemble_save_path(cav.save_path, cav.model_id, concepts, cav.layer)
    saved = torch.load(path, weights_only=False)
    saved["stats"]["model_fingerprint"] = "0" * 16
    torch.save(saved, path)
    with pytest.raises(ValueError, match="another model"):
        TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2).compute_cavs([concepts])
    assert os.path.isfile(os.path.join(str(tmp_path), first.model_id, "model.json"))


def test_token_sensitivity_maps_sum_to_the_example_scores(tmp_path):
    model = tiny_image_model("vit", layers=2)
    concepts = _image_concepts(k=2, n=4)
    tcav = TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=3)
    inputs = _images(4, 5)
    maps = tcav.token_sensitivity(inputs, concepts, concepts[0], layer=1, target=2)
    assert maps.shape == (5, IMAGE // 4, IMAGE // 4)
    mean_cav = tcav.cavs["0-1"][tcav.layers[0]].stats["weights"][0].mean(dim=0)
    s, _ = tcav.example_scores(inputs, {tcav.layers[0]: mean_cav[None]}, target=2)
    # the map leaves out the CLS token: add its term back
    captured = tcav._capture((inputs,), 2, ())
    grad, weight, _ = tcav._token_terms(captured)[tcav.layers[0]]
    cls_term = weight[:, 0] * (grad[:, 0] @ mean_cav)
    assert torch.allclose(maps.sum(dim=(1, 2)) + cls_term, s[tcav.layers[0]][:, 0], atol=1e-6)
    rescaled = tcav.token_sensitivity(inputs, concepts, concepts[0], layer=tcav.layers[0], target=2, rescale=True)
    assert torch.equal(torch.sign(rescaled), torch.sign(maps))


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert"])
def test_text_sensitivity_is_zero_at_padding_and_special_tokens(tmp_path, arch):
    model = tiny_text_model(arch, num_labels=2, layers=3)  # the last block reaches the logits via CLS only
    concepts = [_text_concept(i, seed=30 + i) for i in range(2)]
    tcav = TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2, special_token_ids=SPECIAL_IDS)
    ids, mask = _padded_texts(5, 4)
    maps = tcav.token_sensitivity(ids, concepts, concepts[1], 1, additional_forward_args=(mask,))
    assert maps.shape == ids.shape
    special = (ids == CLS_ID) | (ids == SEP_ID)
    assert torch.all(maps[mask == 0] == 0) and torch.all(maps[special] == 0)
    assert torch.all(maps[(mask == 1) & ~special] != 0)


def test_scores_are_a_captum_style_dict_and_a_table(tmp_path):
    model = tiny_image_model("vit", layers=2)
    concepts = _image_concepts(k=3, n=4)
    tcav = TokenTCAV(model, layers=["vit.layers.0", 1], save_path=str(tmp_path), repeats=2)
    scores = tcav.interpret(_images(2, 6), [concepts, concepts[:2]])
    assert isinstance(scores, dict) and isinstance(scores, TokenTCAVScores)
    assert set(scores) == {"0-1-2", "0-1"}
    assert set(scores["0-1-2"]) == {"vit.layers.0", "vit.layers.1"}
    assert scores["0-1-2"]["vit.layers.0"]["sign_count"].shape == (3,)
    rows = scores.rows()
    assert len(rows) == (3 + 2) * 2
    assert rows[0]["concept_set"] == "c0 / c1 / c2" and rows[0]["repeats"] == 2


# ---------------------------------------------------------------------------- bad input


def test_bad_input_gets_clear_errors(tmp_path):
    model = tiny_image_model("vit", layers=2)
    concepts = _image_concepts(k=2, n=3)
    save = str(tmp_path)
    with pytest.raises(ValueError, match="No module named 'vit.layers.7'"):
        TokenTCAV(model, layers=["vit.layers.7"], save_path=save)
    with pytest.raises(ValueError, match="Layer 5 does not exist"):
        TokenTCAV(model, layers=[5], save_path=save)
    with pytest.raises(ValueError, match="contains no attention module"):
        TokenTCAV(model, layers=["classifier"], save_path=save)
    with pytest.raises(ValueError, match="contains 2 attention modules"):
        TokenTCAV(model, layers=["vit"], save_path=save)
    with pytest.raises(ValueError, match="repeats must be an int >= 2"):
        TokenTCAV(model, layers=[1], save_path=save, repeats=1)
    tcav = TokenTCAV(model, layers=[1], save_path=save, repeats=2)
    empty = image_concept(5, "empty", _images(0, 1))
    empty.data_iter = []
    with pytest.raises(ValueError, match="has no examples"):
        tcav.compute_cavs([[concepts[0], empty]])
    with pytest.raises(ValueError, match="has no examples"):
        image_concept(6, "none", torch.zeros(0, 3, IMAGE, IMAGE))
    with pytest.raises(ValueError, match="at least two concepts"):
        tcav.interpret(_images(1, 2), [[concepts[0]]])
    with pytest.raises(ValueError, match="out of range"):
        tcav.interpret(_images(1, 2), [concepts], target=9)
    with pytest.raises(ValueError, match=r"expects \(3, 16, 16\)"):
        tcav.interpret(torch.randn(2, 3, 32, 32), [concepts])
    with pytest.raises(ValueError, match="at least 3 random concepts"):
        tcav.interpret(_images(1, 2), [concepts], random_concepts=[image_concept(9, "r", _images(2, 2))])
    with pytest.raises(ValueError, match="Unknown correction"):
        tcav.interpret(_images(1, 2), [concepts], correction="fdr")
    with pytest.raises(TypeError, match="Unexpected arguments"):
        tcav.interpret(_images(1, 2), [concepts], n_steps=5)
    twin = image_concept(0, "impostor", _images(3, 3))
    with pytest.raises(ValueError, match="share id 0"):
        tcav.compute_cavs([[twin, concepts[1]]])
    with pytest.raises(ValueError, match="no examples"):
        tcav.interpret(torch.zeros(0, 3, IMAGE, IMAGE), [concepts])
    with pytest.raises(ValueError, match="not one of this TokenTCAV's layers"):
        tcav.token_sensitivity(_images(1, 1), concepts, concepts[0], layer=0)


def test_text_concepts_from_word_lists(tmp_path, minilm_classifier):
    model, tokenizer = minilm_classifier
    good = text_concept(0, "good", ["great", "lovely day", "wonderful"], tokenizer, batch_size=2)
    bad = text_concept(1, "bad", ["awful", "terrible news", "sad", "horrible"], tokenizer)
    batches = list(good.data_iter)
    assert len(batches) == 2 and batches[0][0].shape[0] == 2
    tcav = TokenTCAV(model, layers=[2], save_path=str(tmp_path), repeats=2)
    tcav.compute_cavs([[good, bad]])
    stats_ = tcav.cavs["0-1"][tcav.layers[0]].stats
    expected = [
        int(tokenizer(t, return_tensors="pt")["attention_mask"].sum())
        for t in ["great", "lovely day", "wonderful"]
    ]
    assert stats_["num_tokens"][0] == sum(expected)
    # the model was loaded with the default (sdpa) attention: interpret switches to eager for the call
    assert model.config._attn_implementation != "eager"
    enc = tokenizer(["what a great day", "this is awful", "fine"], return_tensors="pt", padding=True)
    scores = tcav.interpret(
        enc["input_ids"], [[good, bad]], target=1, additional_forward_args=(enc["attention_mask"],)
    )
    assert scores.num_examples == 3 and scores["0-1"][tcav.layers[0]]["sign_count"].shape == (2,)
    assert model.config._attn_implementation != "eager"
    with pytest.raises(ValueError, match="no examples"):
        text_concept(2, "none", [], tokenizer)
