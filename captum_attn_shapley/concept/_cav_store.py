#!/usr/bin/env python3
"""Where TokenTCAV keeps its CAVs: a folder per model and per training settings, guarded by a weights fingerprint.

CAVs are Captum :class:`~captum.concept.CAV` pickles under
``save_path/model_id/token-cavs-<settings digest>/``; ``save_path/model_id/model.json`` records
which weights the folder belongs to, so that CAVs of one model are never reused for another.
"""

import json
import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from captum.concept import CAV, Concept
from captum.concept._utils.common import concepts_to_str

from captum_attn_shapley._utils.cache import cache_dir
from captum_attn_shapley._utils.fingerprint import settings_digest
from captum_attn_shapley._utils.io import atomic_write_text
from captum_attn_shapley.concept._cav_training import CAVSettings, TokenActivations, train_relative_cavs

#: Bumped whenever the way CAVs are trained changes, so that older cached CAVs are not reused.
CAV_FORMAT = 1
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
    """
    if model_id is None:
        model_id = f"{model_name}-{fingerprint}"
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


def load_cav(save_path: str, folder: str, concepts: List[Concept], layer: str, fingerprint: str) -> Optional[CAV]:
    r"""
    Loads the saved CAV of an experimental set at a layer, if there is one.

    Args:
        save_path (str): The root of the CAV cache.
        folder (str): The settings folder (see :func:`cav_folder`).
        concepts (list[Concept]): The experimental set.
        layer (str): The layer name.
        fingerprint (str): The model's weights fingerprint.

    Returns:
        CAV or None: The CAV, or None if none was saved.

    Raises:
        ValueError: If the saved CAV was trained on other weights.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # captum's loader touches numpy.core
        cav = CAV.load(save_path, folder, concepts, layer)
    if cav is None:
        return None
    stats = cav.stats or {}
    if stats.get("model_fingerprint") != fingerprint:
        raise ValueError(
            f"Cached CAVs for concepts {concepts_to_str(concepts)} at {layer!r} were trained on another model "
            f"(fingerprint {stats.get('model_fingerprint')}, this one {fingerprint}); they are not "
            "reused. "
            "Use a different model_id or save_path, or force_train=True to overwrite them."
        )
    return cav


def load_or_train_cavs(
    experimental_sets: Sequence[Sequence[Concept]],
    layers: Sequence[str],
    settings: CAVSettings,
    store: Dict[str, Dict[str, CAV]],
    activations: Dict[Tuple[Any, str], TokenActivations],
    generate_activation: Callable[[List[str], Concept], None],
    force_train: bool = False,
) -> None:
    r"""
    Loads the saved CAVs of every set at every layer, and trains and saves the missing ones.

    Args:
        experimental_sets (sequence of sequence of Concept): The concept sets.
        layers (sequence of str): The layer names.
        settings (CAVSettings): The repeats, probe, seed and storage.
        store (dict): Receives the CAVs, by concepts key and layer.
        activations (dict): The token activations computed so far, by concept id and layer.
        generate_activation (Callable): Fills ``activations`` for a concept at layers
                    (:meth:`TokenTCAV.generate_activation`), called only for what is missing.
        force_train (bool): Train again even if saved CAVs exist. Default: False
    """
    for concepts in experimental_sets:
        concepts = list(concepts)
        key = concepts_to_str(concepts)
        missing = []
        for layer in layers:
            cav = None
            if not force_train:
                cav = load_cav(settings.save_path, settings.folder, concepts, layer, settings.fingerprint)
            if cav is None:
                missing.append(layer)
            else:
                store.setdefault(key, {})[layer] = cav
        if not missing:
            continue
        for concept in concepts:
            absent = [layer for layer in missing if (concept.id, layer) not in activations]
            if absent:
                generate_activation(absent, concept)
        CAV.create_cav_dir_if_missing(settings.save_path, settings.folder)
        for layer in missing:
            cav = train_relative_cavs(concepts, layer, [activations[(c.id, layer)] for c in concepts], settings)
            cav.save()
            store.setdefault(key, {})[layer] = cav
