"""ShapText: shap's partition explainer on text as a Captum attribution (offline, fast)."""

import copy
import itertools
import sys

import numpy as np
import pytest
import shap  # the `shap` extra; both test environments install it
import torch
from captum.attr import Attribution
from tiny_models import vocabulary_bert

from captum_attn_shapley.attr import ShapText

TEXTS = ["the plot was slow but the actors were wonderful", "what a terrible film", "good movie"]
# whole words of the MiniLM vocabulary (each one word-piece), for games computed by hand
WORDS = "the plot was slow but the actors were wonderful and the music was great".split()


@pytest.fixture(scope="module")
def tiny_bert(tokenizer):
    """A random 1-layer BERT over the MiniLM vocabulary: the real tokenizer, fast forwards."""
    return vocabulary_bert(
        tokenizer,
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=2,
        initializer_range=1.0,
    )  # large weights: outputs that depend on the tokens


def encode(tokenizer, texts, **kwargs):
    enc = tokenizer(list(texts), return_tensors="pt", padding=True, **kwargs)
    return enc["input_ids"], enc["attention_mask"]


def probabilities(model, ids, mask):
    with torch.no_grad():
        return torch.softmax(model(input_ids=ids, attention_mask=mask).logits.double(), dim=1)


def non_players(tokenizer, ids, mask):
    special = torch.isin(ids, torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id]))
    return special | (mask == 0)


class AdditiveProbability(torch.nn.Module):
    """p(class 1) = 0.5 + sum of a weight per token id (special tokens weigh 0): additive in the tokens."""

    def __init__(self, vocab: int, special_ids, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        weight = (torch.rand(vocab, generator=gen, dtype=torch.float64) - 0.5) * 0.04
        weight[list(special_ids)] = 0.0
        self.register_buffer("weight", weight)

    def forward(self, input_ids, attention_mask):
        p1 = 0.5 + (self.weight[input_ids] * attention_mask).sum(dim=1)
        return torch.stack([torch.log1p(-p1), torch.log(p1)], dim=1)  # softmax gives exactly (1 - p1, p1)


def test_is_a_captum_attribution(tiny_bert, tokenizer):
    explainer = ShapText(tiny_bert, tokenizer)
    assert isinstance(explainer, Attribution)
    assert explainer.get_name() == "SHAP-Partition"
    assert explainer.mask_token == "[MASK]"
    assert explainer.has_convergence_delta() is False


def test_efficiency_and_alignment_on_minilm(minilm_classifier):
    """Real MiniLM, padded batch, a budget too small to expand the tree: values still sum to
    p(x) - p(all players masked) for the predicted class, and vanish at [CLS], [SEP], padding."""
    model, tokenizer = minilm_classifier
    texts = ["the flight was late and the crew was rude, never again", "lovely staff"]
    ids, mask = encode(tokenizer, texts)
    attr = ShapText(model, tokenizer).attribute(ids, additional_forward_args=(mask,), max_evals=40, texts=texts)
    assert attr.shape == ids.shape and attr.dtype == torch.float32
    off = non_players(tokenizer, ids, mask)
    assert bool((attr[off] == 0).all())
    assert bool((attr[~off] != 0).all())
    p = probabilities(model, ids, mask)
    masked = torch.where(off, ids, torch.full_like(ids, tokenizer.mask_token_id))
    p_masked = probabilities(model, masked, mask)
    predicted = p.argmax(dim=1)
    rows = torch.arange(len(texts))
    gain = p[rows, predicted] - p_masked[rows, predicted]
    torch.testing.assert_close(attr.double().sum(dim=1), gain, atol=2e-6, rtol=0)


def test_equals_shap_own_values_at_full_expansion(tiny_bert, tokenizer):
    """Mapped back onto the input positions, the values are exactly what shap itself returns."""
    texts = TEXTS[:2]
    ids, mask = encode(tokenizer, texts)
    attr = ShapText(tiny_bert, tokenizer).attribute(
        ids, target=1, additional_forward_args=(mask,), max_evals=5000, texts=texts
    )

    def f(strings):
        enc = tokenizer([str(s) for s in strings], return_tensors="pt", padding=True)
        return probabilities(tiny_bert, enc["input_ids"], enc["attention_mask"])[:, 1].numpy()

    explainer = shap.Explainer(f, shap.maskers.Text(tokenizer, collapse_mask_token=False))
    assert isinstance(explainer, shap.explainers.Partition)
    for b, text in enumerate(texts):
        expected = explainer([text], max_evals=5000, silent=True).values[0]
        real = mask[b].bool()
        assert expected.shape[0] == int(real.sum())
        got = attr[b, real].double().numpy()
        np.testing.assert_allclose(got[1:-1], expected[1:-1], atol=1e-6, rtol=0)
        assert abs(expected[0]) < 1e-6 and abs(expected[-1]) < 1e-6  # shap: ~0 at [CLS] / [SEP] too


def test_two_players_equal_brute_force_shapley(tiny_bert, tokenizer):
    ids, mask = encode(tokenizer, ["good movie"])
    mask_id = tokenizer.mask_token_id
    values = {}
    for keep in itertools.product([False, True], repeat=2):
        x = ids.clone()
        for j, kept in enumerate(keep):
            if not kept:
                x[0, j + 1] = mask_id
        values[keep] = probabilities(tiny_bert, x, mask)[0]
    explainer = ShapText(tiny_bert, tokenizer)
    for cls in (0, 1):
        v = {k: float(p[cls]) for k, p in values.items()}
        phi1 = 0.5 * ((v[(True, False)] - v[(False, False)]) + (v[(True, True)] - v[(False, True)]))
        phi2 = 0.5 * ((v[(False, True)] - v[(False, False)]) + (v[(True, True)] - v[(True, False)]))
        attr = explainer.attribute(ids, target=cls, additional_forward_args=(mask,))
        torch.testing.assert_close(
            attr[0].double(), torch.tensor([0.0, phi1, phi2, 0.0], dtype=torch.float64), atol=1e-6, rtol=0
        )
        assert abs(phi1) > 1e-3 and abs(phi2) > 1e-3  # a non-trivial game


def test_additive_probability_is_recovered_exactly(tokenizer):
    """p(class 1) additive in the tokens: Owen = Shapley = w[token] - w[mask] for every player."""
    special = [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]
    model = AdditiveProbability(len(tokenizer), special)
    text = " ".join(WORDS)
    ids, mask = encode(tokenizer, [text])
    assert ids.shape[1] == len(WORDS) + 2  # one word-piece per word
    expected = model.weight[ids[0]] - model.weight[tokenizer.mask_token_id]
    expected[0] = expected[-1] = 0.0
    explainer = ShapText(model, tokenizer)
    attr1 = explainer.attribute(ids, target=1, additional_forward_args=(mask,), max_evals=5000)
    attr0 = explainer.attribute(ids, target=0, additional_forward_args=(mask,), max_evals=5000)
    assert attr1.dtype == torch.float64
    torch.testing.assert_close(attr1[0], expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(attr0[0], -expected, atol=1e-12, rtol=0)


def test_target_conventions(tiny_bert, tokenizer):
    ids, mask = encode(tokenizer, TEXTS)
    explainer = ShapText(tiny_bert, tokenizer)
    kwargs = dict(additional_forward_args=(mask,), max_evals=80)
    predicted = probabilities(tiny_bert, ids, mask).argmax(dim=1)
    assert predicted.unique().numel() == 2  # both classes are predicted in this batch
    default = explainer.attribute(ids, **kwargs)
    torch.testing.assert_close(default, explainer.attribute(ids, target=predicted, **kwargs), atol=0, rtol=0)
    torch.testing.assert_close(
        default, explainer.attribute(ids, target=predicted.tolist(), **kwargs), atol=0, rtol=0
    )
    class0 = explainer.attribute(ids, target=0, **kwargs)
    class1 = explainer.attribute(ids, target=torch.tensor(1), **kwargs)
    torch.testing.assert_close(class0, -class1, atol=1e-6, rtol=0)  # p0 = 1 - p1: opposite games
    assert bool((class1[~non_players(tokenizer, ids, mask)] != 0).all())
    for b, cls in enumerate(predicted.tolist()):
        torch.testing.assert_close(default[b], (class0, class1)[cls][b], atol=0, rtol=0)
    with pytest.raises(ValueError, match="out of range"):
        explainer.attribute(ids, target=2, **kwargs)
    with pytest.raises(ValueError, match="3 examples"):
        explainer.attribute(ids, target=[0, 1], **kwargs)


def test_alignment_with_right_and_left_padding(tiny_bert, tokenizer):
    explainer = ShapText(tiny_bert, tokenizer)
    ids, mask = encode(tokenizer, TEXTS)
    batch = explainer.attribute(ids, target=1, additional_forward_args=(mask,), max_evals=100)
    assert batch.shape == ids.shape
    assert bool((batch[non_players(tokenizer, ids, mask)] == 0).all())
    left = copy.deepcopy(tokenizer)
    left.padding_side = "left"
    lids, lmask = encode(left, TEXTS)
    assert bool((lmask[:, 0] == 0).any())  # really left-padded
    lbatch = explainer.attribute(lids, target=1, additional_forward_args=(lmask,), max_evals=100)
    for b, text in enumerate(TEXTS):
        sids, smask = encode(tokenizer, [text])
        single = explainer.attribute(sids, target=1, additional_forward_args=smask, max_evals=100)[0]
        torch.testing.assert_close(batch[b, mask[b].bool()], single, atol=1e-6, rtol=0)
        torch.testing.assert_close(lbatch[b, lmask[b].bool()], single, atol=1e-6, rtol=0)
    # without an attention mask the real tokens are the non-[PAD] ones
    torch.testing.assert_close(explainer.attribute(ids, target=1, max_evals=100), batch, atol=1e-6, rtol=0)
    # a text without words has no players: a zero row, without calling shap on it
    eids, emask = encode(tokenizer, ["", "good movie"])
    empty = explainer.attribute(eids, target=1, additional_forward_args=(emask,))
    assert bool((empty[0] == 0).all()) and bool((empty[1, 1:3] != 0).all())


def test_hf_model_and_captum_style_function_agree(tiny_bert, tokenizer):
    ids, mask = encode(tokenizer, TEXTS[:2])

    def forward(input_ids, attention_mask):
        return tiny_bert(input_ids=input_ids, attention_mask=attention_mask).logits

    a = ShapText(tiny_bert, tokenizer).attribute(ids, additional_forward_args=(mask,), max_evals=60)
    b = ShapText(forward, tokenizer).attribute(ids, additional_forward_args=(mask,), max_evals=60)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_seeded_and_leaves_numpy_rng_as_found(tokenizer):
    """shap breaks ties between equally promising clusters with numpy's global generator: here
    the repeated "good bad" pairs tie, and a tight budget leaves some of them unexpanded."""
    good, bad = tokenizer.convert_tokens_to_ids(["good", "bad"])

    def counts(input_ids, attention_mask):
        g = ((input_ids == good) & (attention_mask == 1)).sum(dim=1).double()
        b = ((input_ids == bad) & (attention_mask == 1)).sum(dim=1).double()
        logit = 0.3 * g - 0.1 * g * b
        return torch.stack([torch.zeros_like(logit), logit], dim=1)

    ids, mask = encode(tokenizer, ["good bad " * 6])
    explainer = ShapText(counts, tokenizer)
    kwargs = dict(target=1, additional_forward_args=(mask,), max_evals=50)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = explainer.attribute(ids, **kwargs)
    assert np.array_equal(np.random.get_state()[1], before)  # the global generator is left as found
    np.random.seed(7)
    torch.testing.assert_close(explainer.attribute(ids, **kwargs), first, atol=0, rtol=0)  # same seed (0)
    other = [explainer.attribute(ids, seed=s, **kwargs) for s in range(1, 4)]
    assert max(float((o - first).abs().max()) for o in other) > 1e-3  # the seed matters under a tight budget
    for o in other:  # ... but never efficiency
        torch.testing.assert_close(o.sum(), first.sum(), atol=1e-12, rtol=0)


def test_decoded_text_round_trips_unknown_tokens_and_contractions(tiny_bert, tokenizer):
    texts = ["i don't like it \U0001f621 at all", "fine"]
    ids, mask = encode(tokenizer, texts)
    assert tokenizer.unk_token_id in ids[0].tolist()  # the emoji
    explainer = ShapText(tiny_bert, tokenizer)
    decoded = explainer.attribute(ids, target=1, additional_forward_args=(mask,), max_evals=5000)
    given = explainer.attribute(ids, target=1, additional_forward_args=(mask,), max_evals=5000, texts=texts)
    unk = ids[0] == tokenizer.unk_token_id
    assert float(given[0, unk].abs().sum()) > 0  # [UNK] is a player (shap masks it)
    p = probabilities(tiny_bert, ids, mask)[:, 1]
    masked = torch.where(non_players(tokenizer, ids, mask), ids, torch.full_like(ids, tokenizer.mask_token_id))
    gain = p - probabilities(tiny_bert, masked, mask)[:, 1]
    for attr in (decoded, given):
        torch.testing.assert_close(attr.double().sum(dim=1), gain, atol=2e-6, rtol=0)


def test_errors(tiny_bert, tokenizer, monkeypatch):
    explainer = ShapText(tiny_bert, tokenizer)
    # tokens without the tokenizer's [CLS] / [SEP] do not round-trip through text
    ids, mask = encode(tokenizer, ["good movie"], add_special_tokens=False)
    with pytest.raises(ValueError, match="does not round-trip through text"):
        explainer.attribute(ids, additional_forward_args=(mask,))
    # a word-piece that cannot start a word
    ids, mask = encode(tokenizer, ["good movie"])
    bad = ids.clone()
    bad[0, 1] = tokenizer.convert_tokens_to_ids("##ing")
    with pytest.raises(ValueError, match=r"first differing at position 1"):
        explainer.attribute(bad, additional_forward_args=(mask,))
    # given texts that do not tokenise to the rows
    with pytest.raises(ValueError, match="was given"):
        explainer.attribute(ids, additional_forward_args=(mask,), texts=["bad movie"])
    with pytest.raises(ValueError, match="one per row"):
        explainer.attribute(ids, additional_forward_args=(mask,), texts=["good movie", "x"])
    # only the attention mask can follow the re-tokenisation
    with pytest.raises(ValueError, match="token_type_ids"):
        explainer.attribute(ids, additional_forward_args=(mask, torch.zeros_like(ids)))
    with pytest.raises(ValueError, match="attention mask"):
        explainer.attribute(ids, additional_forward_args=(mask[:, :2],))
    with pytest.raises(ValueError, match="2-D tensor"):
        explainer.attribute(ids[0])
    with pytest.raises(ValueError, match="max_evals"):
        explainer.attribute(ids, additional_forward_args=(mask,), max_evals=2)
    # a tokenizer without a mask token, and none given
    no_mask = copy.deepcopy(tokenizer)
    no_mask.mask_token = None
    with pytest.raises(ValueError, match="mask_token"):
        ShapText(tiny_bert, no_mask)
    assert ShapText(tiny_bert, no_mask, mask_token="[UNK]").mask_token == "[UNK]"
    # shap not installed
    monkeypatch.setitem(sys.modules, "shap", None)
    with pytest.raises(ImportError, match=r'pip install "captum-attn-shapley\[shap\]"'):
        explainer.attribute(ids, additional_forward_args=(mask,))


def test_mask_token_and_collapse_change_the_game(tokenizer):
    """The masked texts really use the chosen mask token, one per masked word-piece by default."""
    seen = []
    special = [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]
    additive = AdditiveProbability(len(tokenizer), special)

    def forward(input_ids, attention_mask):
        seen.extend(tokenizer.batch_decode(input_ids, skip_special_tokens=False))
        return additive(input_ids, attention_mask)

    ids, mask = encode(tokenizer, ["the plot was slow"])
    ShapText(forward, tokenizer).attribute(ids, target=1, additional_forward_args=(mask,))
    assert "[CLS] [MASK] [MASK] [MASK] [MASK] [SEP]" in seen
    seen.clear()
    attr = ShapText(forward, tokenizer, mask_token="[UNK]").attribute(
        ids, target=1, additional_forward_args=(mask,), max_evals=5000
    )
    assert "[CLS] [UNK] [UNK] [UNK] [UNK] [SEP]" in seen and not any("[MASK]" in s for s in seen)
    expected = additive.weight[ids[0]] - additive.weight[tokenizer.unk_token_id]
    expected[0] = expected[-1] = 0.0
    torch.testing.assert_close(attr[0], expected, atol=1e-12, rtol=0)
    seen.clear()
    collapsing = ShapText(forward, tokenizer, collapse_mask_token=True)
    collapsing.attribute(ids, target=1, additional_forward_args=(mask,))
    assert "[CLS] [MASK] [SEP]" in seen
