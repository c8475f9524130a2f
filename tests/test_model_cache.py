"""The embedded models' cache: reproducible training, keyed reuse, recorded weight digests, the locks."""

import json
import logging
import pathlib
import subprocess
import sys

import pytest
import torch

from captum_attn_shapley._utils.fingerprint import model_fingerprint, state_digest
from captum_attn_shapley.demos import datasets as data
from captum_attn_shapley.demos import default_model, model_cache, planted, planted_model, vision_model
from captum_attn_shapley.demos.model_cache import (
    KEY_PACKAGES,
    build_cached,
    key_digest,
    model_path,
    training_key,
    weights_digest,
    write_metrics,
)
from captum_attn_shapley.demos.training import TRAIN_THREADS, reproducible_training
from tests.tiny_models import tiny_text_model

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _tiny_train(seed, calls):
    """A stand-in training: a tiny BERT, a tokenizer file and metrics, as the real ones write them."""

    def train(out_dir):
        calls.append(out_dir)
        with reproducible_training(seed):
            model = tiny_text_model("bert", seed=seed)
        model.save_pretrained(out_dir)
        (out_dir / "tokenizer_config.json").write_text("{}")
        write_metrics(out_dir, {"accuracy": 1.0, "threads_inside": torch.get_num_threads()})

    return train


def test_reproducible_training_fixes_threads_and_restores_the_callers_settings():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with reproducible_training(seed=3, threads=2):
            assert torch.get_num_threads() == 2
            assert torch.are_deterministic_algorithms_enabled()
            first = torch.rand(3)
        assert torch.get_num_threads() == 1
        assert not torch.are_deterministic_algorithms_enabled()
        with reproducible_training(seed=3):
            assert torch.get_num_threads() == TRAIN_THREADS
            assert torch.equal(torch.rand(3), first)  # seeded
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be positive, got 0"):
        with reproducible_training(seed=0, threads=0):
            pass


def test_fine_tuning_gives_identical_weights_whatever_the_callers_thread_count():
    base = default_model._base_model_path()
    tweets = data.load_tweets("train", n_per_class=6, seed=0)
    digests = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            model, _ = default_model.fine_tune(
                base, tweets.texts, tweets.labels, data.LABEL_NAMES, batch_size=4, max_length=24, progress=False
            )
            digests.append(state_digest(model.state_dict()))
    finally:
        torch.set_num_threads(before)
    assert digests[0] == digests[1] == digests[2]
    # and the training did change the weights (a different seed gives other ones)
    other, _ = default_model.fine_tune(
        base, tweets.texts, tweets.labels, data.LABEL_NAMES, batch_size=4, max_length=24, progress=False, seed=1
    )
    assert state_digest(other.state_dict()) != digests[0]


def test_texture_vit_training_is_reproducible():
    from captum_attn_shapley.demos import make_texture_dataset

    images = make_texture_dataset(24, seed=5)
    first = vision_model.train_texture_vit(images, epochs=1, batch_size=8, progress=False)
    torch.set_num_threads(1)
    try:
        second = vision_model.train_texture_vit(images, epochs=1, batch_size=8, progress=False)
    finally:
        torch.set_num_threads(TRAIN_THREADS)
    assert model_fingerprint(first) == model_fingerprint(second)


def test_cached_model_records_its_key_and_weights_and_is_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTUM_ATTN_SHAPLEY_CACHE", str(tmp_path))
    calls = []
    path = build_cached("tiny", _tiny_train(0, calls), [data])
    assert path == model_path("tiny", [data]) == tmp_path / "tiny" / key_digest(training_key([data]))
    record = json.loads((path / "metrics.json").read_text())
    assert record["accuracy"] == 1.0 and record["threads_inside"] == TRAIN_THREADS
    training = record["training"]
    assert training["key"] == training_key([data])
    assert training["key"]["packages"]["torch"] == torch.__version__
    assert set(training["key"]["packages"]) == set(KEY_PACKAGES)
    assert training["weights_sha256"] == state_digest(tiny_text_model("bert", seed=0).state_dict())
    assert training["weights_sha256"] == weights_digest(path)
    assert build_cached("tiny", _tiny_train(0, calls), [data]) == path
    assert len(calls) == 1  # reused, not trained again
    assert not [p for p in (tmp_path / "tiny").iterdir() if p.name.startswith(".")]


def test_other_versions_or_code_train_their_own_model(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("CAPTUM_ATTN_SHAPLEY_CACHE", str(tmp_path))
    calls = []
    first = build_cached("tiny", _tiny_train(0, calls), [data])
    other_code = build_cached("tiny", _tiny_train(0, calls), [data, planted])
    assert other_code != first and len(calls) == 2

    real_versions = model_cache.package_versions

    def newer_transformers(packages=KEY_PACKAGES):
        return {**real_versions(packages), "transformers": "99.0.0"}

    monkeypatch.setattr(model_cache, "package_versions", newer_transformers)
    newer = build_cached("tiny", _tiny_train(0, calls), [data])
    assert newer not in (first, other_code) and len(calls) == 3
    assert (
        json.loads((newer / "metrics.json").read_text())["training"]["key"]["packages"]["transformers"] == "99.0.0"
    )
    assert first.is_dir()  # the other environment's model is kept for it

    # a record that claims this key but was made by other versions is not trusted
    monkeypatch.setattr(model_cache, "package_versions", real_versions)
    record = json.loads((first / "metrics.json").read_text())
    record["training"]["key"]["packages"]["numpy"] = "0.0.1"
    write_metrics(first, record)
    with caplog.at_level(logging.WARNING, logger="captum_attn_shapley.demos.model_cache"):
        assert build_cached("tiny", _tiny_train(0, calls), [data]) == first
    assert len(calls) == 4 and "other code or versions" in caplog.text


def test_weights_that_do_not_match_their_digest_are_trained_again(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("CAPTUM_ATTN_SHAPLEY_CACHE", str(tmp_path))
    calls = []
    path = build_cached("tiny", _tiny_train(0, calls), [data])
    tiny_text_model("bert", seed=1).save_pretrained(path)  # corrupted / replaced weights
    with caplog.at_level(logging.WARNING, logger="captum_attn_shapley.demos.model_cache"):
        assert build_cached("tiny", _tiny_train(0, calls), [data]) == path
    assert len(calls) == 2 and "do not match their recorded digest" in caplog.text
    assert weights_digest(path) == state_digest(tiny_text_model("bert", seed=0).state_dict())


def test_retrain_replaces_the_model(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTUM_ATTN_SHAPLEY_CACHE", str(tmp_path))
    calls = []
    path = build_cached("tiny", _tiny_train(0, calls), [data])
    assert build_cached("tiny", _tiny_train(0, calls), [data], retrain=True) == path
    assert len(calls) == 2 and sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [path.name]


def test_each_embedded_model_is_keyed_by_its_own_code():
    keys = [training_key(m.training_modules())["code"] for m in (default_model, planted_model, vision_model)]
    assert len(set(keys)) == 3
    assert default_model.training_modules() == [data, default_model]


def _lock(name):
    versions = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        if line and not line.startswith("#"):
            package, version = line.split("==")
            versions[package.lower().replace("_", "-")] = version
    return versions


def test_both_locks_train_the_same_models():
    """One model cache serves both test environments: every key package has one locked version."""
    lock08, lock09 = _lock("captum08.lock"), _lock("captum09.lock")
    assert lock08["captum"] == "0.8.0" and lock09["captum"].startswith("0.9")
    for package in KEY_PACKAGES:
        assert lock08[package] == lock09[package], package


def test_check_lock_lists_every_difference(tmp_path):
    lock = tmp_path / "test.lock"
    # listed by a fresh interpreter, as check_lock.py sees the environment: this process's sys.path may hold
    # more (Ray, once imported by another test, puts its vendored packages on it)
    listing = (
        "import importlib.metadata\n"
        "for dist in importlib.metadata.distributions():\n"
        "    if dist.metadata['Name'].lower() not in ('pip', 'setuptools', 'wheel', 'captum-attn-shapley'):\n"
        "        print(f\"{dist.metadata['Name']}=={dist.version}\")\n"
    )
    listed = subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True, check=True)
    lines = listed.stdout.split()
    lock.write_text("# header\n" + "\n".join(lines) + "\n")
    script = [sys.executable, str(ROOT / "scripts" / "check_lock.py"), str(lock)]
    assert subprocess.run(script, capture_output=True, text=True).returncode == 0
    torch_line = next(line for line in lines if line.lower().startswith("torch=="))
    kept = [line for line in lines if line != torch_line]
    lock.write_text("\n".join(kept).replace("numpy==", "numpy==0.0.") + "\n")
    result = subprocess.run(script, capture_output=True, text=True)
    assert result.returncode == 1
    assert "torch: installed" in result.stderr and "not in the lock" in result.stderr
    assert "numpy: installed" in result.stderr and "locked 0.0." in result.stderr


@pytest.mark.parametrize(
    "module, load",
    [
        (default_model, default_model.load_default_classifier),
        (planted_model, planted_model.load_planted_classifier),
        (vision_model, vision_model.load_texture_classifier),
    ],
)
def test_interrupted_training_leaves_no_partial_cache(module, load, monkeypatch, tmp_path):
    def interrupted(out_dir, progress):
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setenv("CAPTUM_ATTN_SHAPLEY_CACHE", str(tmp_path))
    monkeypatch.setattr(module, "_train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load(progress=False)
    assert [p for p in tmp_path.rglob("*") if not p.is_dir()] == []
    assert not model_cache.is_complete(model_path("x", module.training_modules()))
