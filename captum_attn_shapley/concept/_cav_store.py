#!/usr/bin/env python3
"""Where TokenTCAV keeps its CAVs: a folder per model, per training settings and per concept examples,
guarded by a weights fingerprint.

CAVs are Captum :class:`~captum.concept.CAV` files under
``save_path/model_id/token-cavs-<settings digest>/examples-<examples digest>/<concept ids>-<layer>.pkl``:
the settings digest covers R, the seed and the probe, the examples digest the content of every concept
of the set (:func:`~captum_attn_shapley.concept._digest.examples_digest`), so that a concept whose
examples changed under the same id is trained again. ``save_path/model_id/model.json`` records which
weights the folder belongs to, so that CAVs of one model are never reused for another. Model ids,
concept ids and layer names become file names: anything that could reach outside ``save_path`` (a
``/``, ``..``, an absolute path) raises a ``ValueError``. CAV files are loaded with
``torch.load(weights_only=True)``: a file that holds anything but tensors, numbers, strings, lists and
dicts is refused, never executed.
"""

import dataclasses
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from captum.concept import CAV, Concept
from captum.concept._utils.common import concepts_to_str
from torch import Tensor

from captum_attn_shapley._utils.cache import cache_dir
from captum_attn_shapley._utils.checks import check_file_name
from captum_attn_shapley._utils.fingerprint import settings_digest
from captum_attn_shapley._utils.io import atomic_write_text
from captum_attn_shapley.concept._cav_training import CAVSettings, TokenActivations, train_relative_cavs
from captum_attn_shapley.concept._digest import examples_digest

#: Bumped whenever the way CAVs are trained changes, so that older cached CAVs are not reused.
CAV_FORMAT = 2
#: The file under ``save_path/model_id`` that records the model's weights fingerprint.
MODEL_RECORD = "model.json"


def cav_location(
    model_name: str, fingerprint: str, model_id: Optional[str], save_path: Optional[str]
) -> Tuple[str, str]:
    r"""
    Where a model's CAVs live, by default.

    Args:
        model_name (str): The model's class name.
        fingerprint (str): The model's weights fingerprint.
        model_id (str, optional): The model's folder. Default: ``<model_name>-<fingerprint>``.
        save_path (str, optional): The root of the CAV cache. Default: ``<cache_dir>/cav``.

    Returns:
        tuple[str, str]: ``(model_id, save_path)``.

    Raises:
        ValueError: If ``model_id`` cannot be one folder name inside ``save_path`` (a ``/``, ``\\``,
            ``..``, an absolute path, a leading dot: see
            :func:`~captum_attn_shapley._utils.checks.check_file_name`).
    """
    if model_id is None:
        model_id = f"{model_name}-{fingerprint}"
    model_id = check_file_name(model_id, "model_id", "my-bert-sst2")
    if save_path is None:
        save_path = str(cache_dir() / "cav")
    return model_id, save_path


def check_model_record(save_path: str, model_id: str, fingerprint: str, model_name: str) -> None:
    r"""
    Checks that the CAV folder ``save_path/model_id`` belongs to these weights, and records
    them there if it belongs to no model yet.

    Args:
        save_path (str): The root of the CAV cache.
        model_id (str): The model's folder under ``save_path``.
        fingerprint (str): The model's weights fingerprint.
        model_name (str): The model's class name (for the record and the error).

    Raises:
        ValueError: If the folder belongs to other weights.
    """
    path = os.path.join(save_path, model_id, MODEL_RECORD)
    record = {"fingerprint": fingerprint, "model": model_name}
    if os.path.isfile(path):
        with open(path) as f:
            stored = json.load(f)
        if stored.get("fingerprint") != fingerprint:
            raise ValueError(
                f"The CAV cache {os.path.join(save_path, model_id)!r} belongs to another model "
                f"({stored.get('model')}, weights fingerprint {stored.get('fingerprint')}; this "
                f"{record['model']} has {fingerprint}). Its CAVs must not be reused: leave model_id "
                "unset (it then defaults to the weights' fingerprint) or choose a new model_id or save_path."
            )
        return
    atomic_write_text(path, json.dumps(record))


def cav_folder(model_id: str, repeats: int, seed: int, classifier: Any, classifier_kwargs: Dict[str, Any]) -> str:
    r"""
    The ``model_id``-relative folder of the CAVs trained with these settings.

    Args:
        model_id (str): The model's folder.
        repeats (int): CAVs per concept.
        seed (int): Seed of the negative draws and the probes' splits.
        classifier (Classifier): The probe (its ``repr`` is part of the settings).
        classifier_kwargs (dict): Arguments of the probe's ``train_and_eval``.

    Returns:
        str: ``model_id/token-cavs-<settings digest>``.
    """
    settings = {
        "format": CAV_FORMAT,
        "repeats": repeats,
        "seed": seed,
        "classifier": repr(classifier),
        "classifier_kwargs": classifier_kwargs,
    }
    return os.path.join(model_id, f"token-cavs-{settings_digest(settings)}")


def examples_folder(folder: str, concepts: Sequence[Concept], digests: Sequence[str]) -> str:
    r"""
    The ``model_id``-relative folder of an experimental set's CAVs trained on these examples.

    Args:
        folder (str): The settings folder (see :func:`cav_folder`).
        concepts (sequence of Concept): The experimental set.
        digests (sequence of str): Each concept's :func:`examples_digest`, in the set's order.

    Returns:
        str: ``folder/examples-<digest of the concept ids and their examples' digests>``.
    """
    content = [[str(c.id), d] for c, d in zip(concepts, digests)]
    return os.path.join(folder, f"examples-{settings_digest(content)}")


def load_cav(
    save_path: str, folder: str, concepts: List[Concept], layer: str, fingerprint: str, digests: Sequence[str]
) -> Optional[CAV]:
    r"""
    Loads the saved CAV of an experimental set at a layer, if there is one for these examples.

    The file is read with ``torch.load(weights_only=True)`` (not the default before torch 2.6):
    it may hold tensors, numbers, strings, lists and dicts, nothing that runs code.

    Args:
        save_path (str): The root of the CAV cache.
        folder (str): The examples folder (see :func:`examples_folder`).
        concepts (list[Concept]): The experimental set.
        layer (str): The layer name.
        fingerprint (str): The model's weights fingerprint.
        digests (sequence of str): Each concept's :func:`examples_digest`.

    Returns:
        CAV or None: The CAV, or None if none was saved for these examples.

    Raises:
        ValueError: If the saved CAV was trained on other weights, or the file cannot be loaded
            safely or holds no TokenTCAV CAV.
    """
    path = CAV.assemble_save_path(save_path, folder, concepts, layer)
    if not os.path.isfile(path):
        return None
    fix = "Delete the file, or pass force_train=True to train the CAVs again and overwrite it."
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for a forbidden object, RuntimeError for a damaged file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"The cached CAV file {path!r} cannot be loaded safely (weights only: tensors, numbers, strings, "
            f"lists and dicts): {reason}. {fix}"
        ) from err
    stats = saved.get("stats") if isinstance(saved, dict) else None
    if not isinstance(stats, dict) or not isinstance(stats.get("weights"), Tensor):
        raise ValueError(
            f"The cached CAV file {path!r} holds no TokenTCAV CAV (no stats['weights'] tensor). {fix}"
        )
    if stats.get("model_fingerprint") != fingerprint:
        raise ValueError(
            f"Cached CAVs for concepts {concepts_to_str(concepts)} at {layer!r} were trained on another model "
            f"(fingerprint {stats.get('model_fingerprint')}, this one {fingerprint}); they are not "
            "reused. "
            "Use a different model_id or save_path, or force_train=True to overwrite them."
        )
    if stats.get("concept_digests") != list(digests):
        return None  # another set of examples under this name: trained again
    return CAV(concepts, layer, stats, save_path, folder)


def _forget_stale_activations(
    concept: Concept,
    digest: str,
    activations: Dict[Tuple[Any, str], TokenActivations],
    activation_digests: Dict[Any, str],
) -> None:
    """Drops the activations kept for ``concept``'s id if they were computed from other examples."""
    if activation_digests.get(concept.id) != digest:
        for key in [key for key in activations if key[0] == concept.id]:
            del activations[key]
        activation_digests[concept.id] = digest


def load_or_train_cavs(
    experimental_sets: Sequence[Sequence[Concept]],
    layers: Sequence[str],
    settings: CAVSettings,
    store: Dict[str, Dict[str, CAV]],
    activations: Dict[Tuple[Any, str], TokenActivations],
    generate_activation: Callable[[List[str], Concept], None],
    force_train: bool = False,
    activation_digests: Optional[Dict[Any, str]] = None,
) -> None:
    r"""
    Loads the saved CAVs of every set at every layer, and trains and saves the missing ones.

    Saved CAVs are reused only for the same model, settings, layer and examples: each concept's
    examples are digested (:func:`examples_digest`) on every call, so changing them under the same
    concept id trains the CAVs again.

    Args:
        experimental_sets (sequence of sequence of Concept): The concept sets.
        layers (sequence of str): The layer names.
        settings (CAVSettings): The repeats, probe, seed and storage.
        store (dict): Receives the CAVs, by concepts key and layer.
        activations (dict): The token activations computed so far, by concept id and layer.
        generate_activation (Callable): Fills ``activations`` for a concept at layers
                    (:meth:`TokenTCAV.generate_activation`), called only for what is missing.
        force_train (bool): Train again even if saved CAVs exist. Default: False
        activation_digests (dict, optional): The examples digest each concept id's entries of
                    ``activations`` were computed from (updated); entries of other examples are
                    recomputed. Default: None (the activations are recomputed where unknown).

    Raises:
        ValueError: If a concept id or layer name cannot be a file name in the cache (see
            :func:`~captum_attn_shapley._utils.checks.check_file_name`), or as :func:`load_cav`.
    """
    activation_digests = {} if activation_digests is None else activation_digests
    for layer in layers:
        check_file_name(layer, "layer name", "encoder.layer.3")
    digests: Dict[Any, str] = {}
    for concepts in experimental_sets:
        concepts = list(concepts)
        for concept in concepts:
            check_file_name(concept.id, f"The id of concept {concept.name!r}", "3")
            if concept.id not in digests:
                digests[concept.id] = examples_digest(concept)
        content = [digests[c.id] for c in concepts]
        folder = examples_folder(settings.folder, concepts, content)
        key = concepts_to_str(concepts)
        missing = []
        for layer in layers:
            cav = None
            if not force_train:
                cav = load_cav(settings.save_path, folder, concepts, layer, settings.fingerprint, content)
            if cav is None:
                missing.append(layer)
            else:
                store.setdefault(key, {})[layer] = cav
        if not missing:
            continue
        for concept in concepts:
            _forget_stale_activations(concept, digests[concept.id], activations, activation_digests)
            absent = [layer for layer in missing if (concept.id, layer) not in activations]
            if absent:
                generate_activation(absent, concept)
        CAV.create_cav_dir_if_missing(settings.save_path, folder)
        trained = dataclasses.replace(settings, folder=folder)
        for layer in missing:
            cav = train_relative_cavs(concepts, layer, [activations[(c.id, layer)] for c in concepts], trained)
            cav.stats["concept_digests"] = content
            cav.save()
            store.setdefault(key, {})[layer] = cav
