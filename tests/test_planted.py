"""Tests of the planted-word ground-truth task: data, token masks, recovery metrics, classifier."""

import numpy as np
import pytest
import torch

from captum_attn_shapley.demos import make_planted_dataset, planted_token_mask
from captum_attn_shapley.demos.default_model import fine_tune
from captum_attn_shapley.demos.planted import token_recovery
from captum_attn_shapley.demos.planted_words import FILLER_WORDS, lexicon_split, sentiment_lexicon, vader_entries


def _filler_words(text, spans):
    """The words of ``text`` outside the planted ``spans``."""
    kept, last = [], 0
    for start, end in spans:
        kept.append(text[last:start])
        last = end
    kept.append(text[last:])
    return " ".join(kept).split()


# ----------------------------------------------------------------------------- lexicon and words


def test_filler_words_are_plain_and_absent_from_the_vader_lexicon():
    assert 150 <= len(FILLER_WORDS) <= 250
    assert len(set(FILLER_WORDS)) == len(FILLER_WORDS)
    assert all(word.isascii() and word.isalpha() and word.islower() for word in FILLER_WORDS)
    entries = vader_entries()
    assert len(entries) > 7000 and "adorable" in entries  # the whole lexicon, not a subset
    assert [word for word in FILLER_WORDS if word in entries] == []
    assert not set(FILLER_WORDS) & set(sentiment_lexicon(0.0))


def test_sentiment_lexicon_holds_strong_single_words_of_both_polarities():
    lexicon = sentiment_lexicon()
    assert all(word.isascii() and word.isalpha() and word.islower() for word in lexicon)
    assert all(abs(valence) >= 2.0 for valence in lexicon.values())
    assert lexicon["adorable"] > 2 and lexicon["abhorrent"] < -2
    assert sum(v > 0 for v in lexicon.values()) > 500 and sum(v < 0 for v in lexicon.values()) > 500
    strong = sentiment_lexicon(3.0)
    assert set(strong) < set(lexicon) and all(abs(v) >= 3.0 for v in strong.values())
    assert lexicon == {w: v for w, v in vader_entries().items() if w in lexicon}


def test_lexicon_split_is_disjoint_and_covers_each_polarity():
    words = lexicon_split()
    lexicon = sentiment_lexicon()
    for label in (0, 1):
        train, test = set(words["train"][label]), set(words["test"][label])
        assert not train & test
        assert train | test == {w for w, v in lexicon.items() if (v > 0) == bool(label)}
        assert 0.25 < len(test) / len(train | test) < 0.35
    assert not set(words["train"][0] + words["train"][1]) & set(words["test"][0] + words["test"][1])
    assert lexicon_split() == words  # fixed by its seed
    assert lexicon_split(seed=1) != words
    with pytest.raises(ValueError, match="test_fraction"):
        lexicon_split(test_fraction=1.0)


# ----------------------------------------------------------------------------- datasets


def test_dataset_is_deterministic_for_a_seed():
    first = make_planted_dataset(60, seed=3)
    again = make_planted_dataset(60, seed=3)
    other = make_planted_dataset(60, seed=4)
    assert first == again
    assert first.texts != other.texts
    assert make_planted_dataset(60, seed=3, split="test").texts != first.texts


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_dataset_sentences_are_built_as_specified(split):
    data = make_planted_dataset(300, seed=0, split=split)
    lexicon = sentiment_lexicon()
    allowed = lexicon_split()[split] if split != "all" else None
    assert len(data) == len(data.labels) == len(data.planted_words) == len(data.planted_spans) == 300
    assert sorted(set(data.labels)) == [0, 1] and sum(data.labels) == 150
    assert data.split == split and data.label_names == ("negative", "positive")
    n_planted, n_filler = set(), set()
    for text, label, words, spans in zip(data.texts, data.labels, data.planted_words, data.planted_spans):
        assert len(words) == len(spans) == len(set(words))
        assert [text[start:end] for start, end in spans] == list(words)
        assert list(spans) == sorted(spans)
        for word in words:
            assert (lexicon[word] > 0) == bool(label)  # polarity matches the label
            if allowed is not None:
                assert word in allowed[label]
        fillers = _filler_words(text, spans)
        assert all(word in FILLER_WORDS for word in fillers)
        assert text == " ".join(text.split())
        assert len(text.split()) == len(fillers) + len(words)
        n_planted.add(len(words))
        n_filler.add(len(fillers))
    assert n_planted == {1, 2, 3}
    assert min(n_filler) == 8 and max(n_filler) == 20


def test_train_and_test_sentences_plant_disjoint_words():
    train = make_planted_dataset(400, seed=0, split="train")
    test = make_planted_dataset(400, seed=0, split="test")
    train_words = {w for words in train.planted_words for w in words}
    test_words = {w for words in test.planted_words for w in words}
    assert train_words and test_words and not train_words & test_words


def test_dataset_options_and_errors():
    data = make_planted_dataset(7, seed=1, n_filler=(0, 0), n_planted=(2, 2))
    assert [len(words) for words in data.planted_words] == [2] * 7
    assert all(text == " ".join(words) for text, words in zip(data.texts, data.planted_words))
    assert sum(data.labels) == 3  # odd n: one more negative
    assert len(make_planted_dataset(0, seed=0)) == 0
    with pytest.raises(ValueError, match="non-negative"):
        make_planted_dataset(-1)
    with pytest.raises(ValueError, match="split"):
        make_planted_dataset(4, split="validation")
    with pytest.raises(ValueError, match="n_planted"):
        make_planted_dataset(4, n_planted=(0, 2))
    with pytest.raises(ValueError, match="n_filler"):
        make_planted_dataset(4, n_filler=(5, 3))
    with pytest.raises(ValueError, match="exceeds"):
        make_planted_dataset(4, n_planted=(1, 10_000))


# ----------------------------------------------------------------------------- token masks


def test_planted_mask_marks_exactly_the_word_pieces_of_the_planted_words(tokenizer):
    data = make_planted_dataset(80, seed=5, split="all")
    input_ids, attention_mask, mask = planted_token_mask(tokenizer, data)
    assert input_ids.shape == attention_mask.shape == mask.shape and mask.dtype == torch.bool
    special = torch.isin(input_ids, torch.tensor(tokenizer.all_special_ids))
    assert not (mask & special).any() and not (mask & ~attention_mask.bool()).any()
    multi_piece = 0
    for row in range(len(data)):
        real = attention_mask[row].bool() & ~special[row]
        marked = input_ids[row][mask[row]].tolist()
        unmarked = input_ids[row][real & ~mask[row]].tolist()
        assert tokenizer.decode(marked) == " ".join(data.planted_words[row])
        assert tokenizer.decode(unmarked) == " ".join(_filler_words(data.texts[row], data.planted_spans[row]))
        multi_piece += len(marked) > len(data.planted_words[row])
    assert multi_piece > 10  # word-pieces of split words are all marked, not just the first


def test_planted_mask_handles_truncation_and_rejects_slow_tokenizers(tokenizer):
    data = make_planted_dataset(20, seed=2)
    input_ids, attention_mask, mask = planted_token_mask(tokenizer, data, max_length=6)
    assert input_ids.shape[1] == 6 and mask.shape == (20, 6)
    full_ids, _, full_mask = planted_token_mask(tokenizer, data)
    assert torch.equal(mask[:, 1:5], full_mask[:, 1:5])  # same pieces before the cut
    assert not mask[:, [0, 5]].any()  # [CLS] and the final [SEP]

    class SlowTokenizer:
        is_fast = False

    with pytest.raises(ValueError, match="fast tokenizer"):
        planted_token_mask(SlowTokenizer(), data)
    with pytest.raises(ValueError, match="empty"):
        planted_token_mask(tokenizer, make_planted_dataset(0))


# ----------------------------------------------------------------------------- token recovery


def _brute_force_average_precision(scores, flags):
    """Mean over the positives of the precision among the items scored at least as high."""
    scores, flags = np.asarray(scores, dtype=float), np.asarray(flags, dtype=bool)
    precisions = [flags[scores >= scores[i]].mean() for i in np.flatnonzero(flags)]
    return float(np.mean(precisions))


def _players(batch, seq, lengths):
    players = torch.zeros(batch, seq, dtype=torch.bool)
    for row, n in enumerate(lengths):
        players[row, 1 : 1 + n] = True  # position 0 ([CLS]) and the tail are not players
    return players


def test_token_recovery_of_a_perfect_and_a_reversed_ranking():
    players = _players(2, 7, [5, 5])
    planted_mask = torch.zeros(2, 7, dtype=torch.bool)
    planted_mask[:, [2, 4]] = True  # players 1..5: planted at 2 and 4
    perfect = torch.tensor([[9.0, 0.1, 0.9, 0.2, 0.8, 0.3, 9.0]] * 2)
    reversed_ = torch.tensor([[-9.0, 0.9, 0.1, 0.8, 0.2, 0.7, -9.0]] * 2)
    for name, scores, auprc, p_k, p_1 in (
        ("perfect", perfect, 1.0, 1.0, 1.0),
        ("reversed", reversed_, (1 / 4 + 2 / 5) / 2, 0.0, 0.0),
    ):
        out = token_recovery(scores, planted_mask, players)
        assert set(out) == {"auprc", "precision_at_k", "recall_at_k", "precision_at_1", "n_planted", "n_players"}
        for key in ("auprc", "precision_at_k", "recall_at_k", "precision_at_1"):
            assert out[key].shape == (2,) and out[key].dtype == torch.float64
        torch.testing.assert_close(out["auprc"], torch.full((2,), auprc, dtype=torch.float64))
        torch.testing.assert_close(out["precision_at_k"], torch.full((2,), p_k, dtype=torch.float64))
        torch.testing.assert_close(out["recall_at_k"], out["precision_at_k"])
        torch.testing.assert_close(out["precision_at_1"], torch.full((2,), p_1, dtype=torch.float64))
        assert out["n_planted"].tolist() == [2, 2] and out["n_players"].tolist() == [5, 5], name


def test_token_recovery_hand_computed_mixed_ranking_and_hidden_axis():
    # players 1..5 scored 0.9 0.8 0.7 0.6 0.5; planted: the 1st and the 3rd of the ranking
    scores = torch.tensor([[0.0, 0.9, 0.8, 0.7, 0.6, 0.5]])
    planted_mask = torch.tensor([[False, True, False, True, False, False]])
    players = torch.tensor([[False, True, True, True, True, True]])
    out = token_recovery(scores, planted_mask, players)
    assert out["auprc"].item() == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert out["precision_at_k"].item() == out["recall_at_k"].item() == 0.5
    assert out["precision_at_1"].item() == 1.0
    # (batch, seq, hidden) is summed over the hidden axis: same ranking
    hidden = torch.stack([scores / 2, scores / 4, scores / 4], dim=-1)
    for key, value in token_recovery(hidden, planted_mask, players).items():
        torch.testing.assert_close(value, out[key])


def test_token_recovery_ignores_non_players():
    players = _players(1, 8, [4])  # players 1..4; 5..7 are padding
    planted_mask = torch.zeros(1, 8, dtype=torch.bool)
    planted_mask[0, [1, 6]] = True  # a planted flag outside the players is ignored
    scores = torch.tensor([[100.0, 0.4, 0.3, 0.2, 0.1, 50.0, 60.0, 70.0]])
    out = token_recovery(scores, planted_mask, players)
    assert out["n_planted"].item() == 1 and out["n_players"].item() == 4
    assert out["auprc"].item() == 1.0 and out["precision_at_1"].item() == 1.0


def test_token_recovery_auprc_matches_brute_force_average_precision():
    gen = torch.Generator().manual_seed(0)
    batch, seq = 30, 12
    scores = torch.randn(batch, seq, generator=gen, dtype=torch.float64)
    lengths = torch.randint(2, seq - 1, (batch,), generator=gen).tolist()
    players = _players(batch, seq, lengths)
    planted_mask = (torch.rand(batch, seq, generator=gen) < 0.3) & players
    for row, n in enumerate(lengths):  # at least one planted player per example
        planted_mask[row, 1 + int(torch.randint(0, n, (1,), generator=gen))] = True
    out = token_recovery(scores, planted_mask, players)
    for row in range(batch):
        row_scores, flags = scores[row][players[row]], planted_mask[row][players[row]]
        assert out["auprc"][row].item() == pytest.approx(
            _brute_force_average_precision(row_scores.numpy(), flags.numpy()), abs=1e-12
        )
        k = int(flags.sum())
        top_k = torch.argsort(row_scores, descending=True)[:k]
        assert out["precision_at_k"][row].item() == pytest.approx(float(flags[top_k].float().mean()))
        assert out["precision_at_1"][row].item() == float(flags[int(row_scores.argmax())])
    assert 0.0 < out["auprc"].mean().item() < 1.0


def test_token_recovery_errors():
    players = _players(2, 5, [3, 3])
    planted_mask = torch.zeros(2, 5, dtype=torch.bool)
    planted_mask[:, 1] = True
    scores = torch.rand(2, 5)
    with pytest.raises(ValueError, match="planted_mask"):
        token_recovery(scores, planted_mask[:, :4], players)
    with pytest.raises(ValueError, match="player_mask"):
        token_recovery(scores, planted_mask, players[:1])
    with pytest.raises(ValueError, match="batch, seq_len"):
        token_recovery(scores[0], planted_mask[0], players[0])
    no_planted = planted_mask.clone()
    no_planted[1] = False
    with pytest.raises(ValueError, match=r"examples \[1\] have no planted player"):
        token_recovery(scores, no_planted, players)
    no_players = players.clone()
    no_players[0] = False
    with pytest.raises(ValueError, match=r"examples \[0\] have no players"):
        token_recovery(scores, planted_mask, no_players)
    bad = scores.clone()
    bad[0, 2] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        token_recovery(bad, planted_mask, players)


# ----------------------------------------------------------------------------- classifier


def test_fine_tune_rejects_bad_training_data():
    with pytest.raises(ValueError, match="labels"):
        fine_tune("unused", [], [], ("negative", "positive"))
    with pytest.raises(ValueError, match="labels"):
        fine_tune("unused", ["a", "b"], [0], ("negative", "positive"))
    with pytest.raises(ValueError, match="positive"):
        fine_tune("unused", ["a"], [0], ("negative", "positive"), epochs=0)
