"""Tests of the tweet data and of the embedded default classifier (offline)."""

import pytest
import torch
from tiny_models import save_model_dir, vocabulary_bert

from captum_attn_shapley._utils.cache import cache_dir
from captum_attn_shapley.demos import default_model, load_classifier, load_tweets
from captum_attn_shapley.demos.datasets import TEST_PER_CLASS
from captum_attn_shapley.demos.default_model import DEFAULT_MODEL_NAME
from captum_attn_shapley.demos.model_cache import model_path


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_split_is_balanced_binary_and_unique(split):
    tweets = load_tweets(split)
    assert len(tweets.texts) == len(tweets.labels) == len(tweets)
    assert set(tweets.labels) == {0, 1}
    assert 2 * sum(tweets.labels) == len(tweets)
    assert len(set(tweets.texts)) == len(tweets)
    assert all(text.strip() for text in tweets.texts)
    assert tweets.label_names == ("negative", "positive")


def test_split_sizes_and_subsampling():
    assert len(load_tweets("test")) == 2 * TEST_PER_CLASS
    small = load_tweets("train", n_per_class=50, seed=3)
    assert len(small) == 100 and sum(small.labels) == 50
    assert set(small.texts) <= set(load_tweets("train", n_per_class=80, seed=3).texts)
    with pytest.raises(ValueError):
        load_tweets("test", n_per_class=TEST_PER_CLASS + 1)
    with pytest.raises(ValueError):
        load_tweets("validation")


def test_split_is_deterministic_for_a_seed():
    first = load_tweets("train", n_per_class=200, seed=7)
    again = load_tweets("train", n_per_class=200, seed=7)
    other = load_tweets("train", n_per_class=200, seed=8)
    assert (first.texts, first.labels) == (again.texts, again.labels)
    assert first.texts != other.texts


def test_train_and_test_are_disjoint():
    train, test = set(load_tweets("train").texts), set(load_tweets("test").texts)
    assert not train & test
    assert set(load_tweets("test", seed=5).texts) == test  # the test set ignores the seed
    assert train | test == set(load_tweets("all").texts)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTUM_ATTN_SHAPLEY_CACHE", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("CAPTUM_ATTN_SHAPLEY_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "captum_attn_shapley"


def test_load_classifier_from_local_directory(tokenizer, tmp_path):
    model = vocabulary_bert(
        tokenizer,
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=2,
    )
    save_model_dir(model, tokenizer, tmp_path)

    model, tokenizer, info = load_classifier(str(tmp_path))
    assert not model.training
    assert model.config._attn_implementation == "eager"
    assert info["name_or_path"] == str(tmp_path)
    enc = tokenizer(["what a great day", "awful"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    assert out.logits.shape == (2, 2)
    assert len(out.attentions) == 2 and out.attentions[0].shape[1] == 4


def test_load_classifier_none_is_the_default(default_classifier):
    model, _, info = load_classifier(None, progress=False)
    assert info["name_or_path"] == str(model_path(DEFAULT_MODEL_NAME, default_model.training_modules()))
    assert type(model) is type(default_classifier[0])
