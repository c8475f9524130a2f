"""TokenTCAV's CAV cache: keyed by the concepts' examples (never by the id alone), ids that cannot leave the
cache directory, and CAV files loaded with weights_only=True (nothing in them runs)."""

import os

import pytest
import torch
from captum.concept import CAV, Concept
from tiny_models import tiny_image_model

from captum_attn_shapley import TokenTCAV, image_concept
from captum_attn_shapley.concept._digest import examples_digest

IMAGE = 16
#: What the planted pickle's payload appends to when it runs.
EXECUTED = []


def _images(seed, n, shift=0.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, IMAGE, IMAGE, generator=gen) + shift


def _concepts(seed=0):
    return [image_concept(i, f"c{i}", _images(seed + i, 4, 0.7 * i), batch_size=2) for i in range(2)]


def _same_examples(concept):
    """A new Concept object with the same id, name and (copied) examples."""
    return Concept(concept.id, concept.name, [batch.clone() for batch in concept.data_iter])


def _tracked(tcav, forbid=False):
    """Records the concept ids whose activations ``tcav`` computes (or fails if any are)."""
    computed = []
    original = tcav.generate_activation

    def generate(layers, concept):
        if forbid:
            raise AssertionError(f"activations of concept {concept.id} recomputed although its CAVs are cached")
        computed.append(concept.id)
        original(layers, concept)

    tcav.generate_activation = generate
    return tcav, computed


def _weights(tcav, key="0-1"):
    return tcav.cavs[key][tcav.layers[0]].stats["weights"]


@pytest.fixture(scope="module")
def model():
    return tiny_image_model("vit", layers=2, seed=0)


def test_changed_examples_under_the_same_id_are_trained_again(model, tmp_path):
    save = str(tmp_path)
    original = _concepts()
    first = TokenTCAV(model, layers=[1], save_path=save, repeats=2)
    inputs = _images(99, 6)
    before = first.interpret(inputs, [original], target=0)
    # concept 0 gets other examples under the same id (and name): its CAVs are trained again
    changed = [image_concept(0, "c0", _images(50, 4, -1.0), batch_size=2), _same_examples(original[1])]
    second, computed = _tracked(TokenTCAV(model, layers=[1], save_path=save, repeats=2))
    after = second.interpret(inputs, [changed], target=0)
    assert computed == [0, 1]
    assert not torch.allclose(_weights(second), _weights(first))
    assert _weights(second).shape == _weights(first).shape
    layer = first.layers[0]
    assert after["0-1"][layer]["magnitude"].tolist() != before["0-1"][layer]["magnitude"].tolist()
    first_cav, second_cav = first.cavs["0-1"][layer], second.cavs["0-1"][layer]
    assert first_cav.model_id != second_cav.model_id  # another examples folder
    assert first_cav.stats["concept_digests"][0] != second_cav.stats["concept_digests"][0]
    assert first_cav.stats["concept_digests"][1] == second_cav.stats["concept_digests"][1]
    # the same examples, in new objects, reuse the cache: for the original ones and for the changed ones
    for concepts, expected in (([_same_examples(c) for c in original], first), (changed, second)):
        again, _ = _tracked(TokenTCAV(model, layers=[1], save_path=save, repeats=2), forbid=True)
        again.compute_cavs([[_same_examples(c) for c in concepts]])
        assert torch.equal(_weights(again), _weights(expected))


def test_examples_changed_in_place_are_trained_again_in_the_same_instance(model, tmp_path):
    concepts = _concepts()
    tcav, computed = _tracked(TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2))
    tcav.compute_cavs([concepts])
    weights = _weights(tcav).clone()
    assert computed == [0, 1]
    tcav.compute_cavs([concepts])  # unchanged: nothing is recomputed
    assert computed == [0, 1] and torch.equal(_weights(tcav), weights)
    concepts[1].data_iter[0] = _images(7, 2, 3.0)  # one batch of concept 1 replaced in place
    tcav.compute_cavs([concepts])
    assert computed == [0, 1, 1]  # concept 1's activations only
    assert not torch.allclose(_weights(tcav), weights)


def test_the_examples_digest_follows_the_content():
    pixels = _images(0, 4)
    digest = examples_digest(image_concept(0, "a", pixels, batch_size=2))
    assert examples_digest(image_concept(5, "b", pixels.clone(), batch_size=2)) == digest  # id and name aside
    changed = pixels.clone()
    changed[3, 2, 7, 7] += 1e-3
    assert examples_digest(image_concept(0, "a", changed, batch_size=2)) != digest
    assert examples_digest(image_concept(0, "a", pixels, batch_size=4)) != digest  # other batches
    assert examples_digest(image_concept(0, "a", pixels.double(), batch_size=2)) != digest  # other dtype
    ids = torch.tensor([[101, 7, 102]])
    assert examples_digest(Concept(0, "t", [(ids, torch.ones_like(ids))])) != examples_digest(
        Concept(0, "t", [ids])
    )
    # a one-pass iterator is read once and kept, so that the activations can still be computed
    batches = list(torch.split(pixels, 2))
    once = Concept(0, "a", iter(batches))
    assert examples_digest(once) == digest
    assert isinstance(once.data_iter, list) and all(a is b for a, b in zip(once.data_iter, batches))
    assert examples_digest(once) == digest
    with pytest.raises(ValueError, match="has no data_iter"):
        examples_digest(Concept(0, "empty", None))


@pytest.mark.parametrize("model_id", ["../../x", "/tmp/absolute", "a/b", "..", ".hidden", "", "a\\b"])
def test_an_unsafe_model_id_is_refused_before_anything_is_written(model, tmp_path, model_id):
    save = tmp_path / "cache" / "cav"
    with pytest.raises(ValueError, match="model_id .* cannot name a file in the cache"):
        TokenTCAV(model, layers=[1], save_path=str(save), model_id=model_id, repeats=2)
    assert list(tmp_path.iterdir()) == []
    assert not os.path.exists("/tmp/absolute")


@pytest.mark.parametrize("concept_id", ["../evil", "/tmp/evil", "sub/dir", "..", ".hidden"])
def test_an_unsafe_concept_id_is_refused_before_anything_is_written(model, tmp_path, concept_id):
    tcav = TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2)
    written = sorted(str(p) for p in tmp_path.rglob("*"))  # the model's folder and record
    bad = Concept(concept_id, "bad", [_images(3, 2)])
    with pytest.raises(ValueError, match="The id of concept 'bad' .* cannot name a file in the cache"):
        tcav.compute_cavs([[bad, _concepts()[1]]])
    assert sorted(str(p) for p in tmp_path.rglob("*")) == written
    assert not os.path.exists(tmp_path.parent / "evil") and not os.path.exists("/tmp/evil")


def test_a_string_concept_id_that_is_a_plain_name_works(model, tmp_path):
    concepts = [
        image_concept("striped-v2", "striped", _images(0, 4)),
        image_concept("dotted", "dotted", _images(1, 4)),
    ]
    tcav = TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2)
    tcav.compute_cavs([concepts])
    cav = tcav.cavs["striped-v2-dotted"][tcav.layers[0]]
    path = CAV.assemble_save_path(cav.save_path, cav.model_id, concepts, cav.layer)
    assert os.path.isfile(path) and os.path.realpath(path).startswith(os.path.realpath(tmp_path) + os.sep)


class _Payload:
    """Runs ``_executed`` when unpickled without weights_only."""

    def __reduce__(self):
        return (_executed, ("the pickle ran",))


def _executed(marker):
    EXECUTED.append(marker)
    return {}


def test_cav_files_are_loaded_with_weights_only(model, tmp_path, monkeypatch):
    concepts = _concepts()
    tcav = TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2)
    tcav.compute_cavs([concepts])
    cav = tcav.cavs["0-1"][tcav.layers[0]]
    path = CAV.assemble_save_path(cav.save_path, cav.model_id, concepts, cav.layer)
    # the loader asks for weights_only=True itself (torch < 2.6 defaults to False)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2).compute_cavs([concepts])
    assert calls == [True]
    monkeypatch.setattr(torch, "load", real_load)
    # a file planted under the CAV's name that would run code when unpickled is refused, and does not run
    torch.save({"concept_ids": [0, 1], "layer": cav.layer, "stats": _Payload()}, path)
    torch.load(path, weights_only=False)  # the payload is live ...
    assert EXECUTED == ["the pickle ran"]
    EXECUTED.clear()
    with pytest.raises(ValueError, match="cannot be loaded safely .* force_train=True"):
        TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2).compute_cavs([concepts])
    assert EXECUTED == []  # ... but TokenTCAV never runs it
    # force_train=True overwrites it with trained CAVs, which load again
    TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2).compute_cavs([concepts], force_train=True)
    again = TokenTCAV(model, layers=[1], save_path=str(tmp_path), repeats=2)
    again.compute_cavs([concepts])
    assert torch.equal(_weights(again), _weights(tcav))
