#!/usr/bin/env python3
"""Training the relative token CAVs of one experimental set at one layer.

See the mathematics page of the documentation, section "Token-level concept sensitivity (T-TCAV)", step 2.
"""

import inspect
import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
from captum.concept import CAV, Classifier, Concept
from captum.concept._utils.common import concepts_to_str
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

#: One concept's token activations at one layer: all tokens' vectors ``(tokens, hidden)`` and the
#: offsets of each example's tokens ``(examples + 1,)``.
TokenActivations = Tuple[Tensor, Tensor]


@dataclass(frozen=True)
class CAVSettings:
    r"""
    How a TokenTCAV trains and stores one kind of CAV (everything but the data).

    Args:
        repeats (int): R, the CAVs per concept.
        classifier (Classifier): The probe; seeded through ``random_state`` if its
                    ``train_and_eval`` takes one.
        classifier_kwargs (dict): Passed to ``classifier.train_and_eval``.
        seed (int): Seed of the negative draws (and of the probes).
        fingerprint (str): The model's weights fingerprint, stored in the CAVs' stats.
        save_path (str): The root of the CAV cache.
        folder (str): The settings folder (see :func:`~captum_attn_shapley.concept._cav_store.cav_folder`).
        show_progress (bool): Show tqdm progress bars.
    """

    repeats: int
    classifier: Classifier
    classifier_kwargs: Dict[str, Any]
    seed: int
    fingerprint: str
    save_path: str
    folder: str
    show_progress: bool = False


def train_relative_cavs(
    concepts: List[Concept], layer: str, acts: Sequence[TokenActivations], settings: CAVSettings
) -> CAV:
    r"""
    Trains R relative CAVs per concept of a set: for each concept and repeat, the classifier
    separates the concept's tokens from those of a seeded random draw of as many examples of the
    set's other concepts; the CAV is the unit-normalised weight vector of the concept's class.

    Args:
        concepts (list[Concept]): The experimental set.
        layer (str): The layer name.
        acts (sequence of TokenActivations): Each concept's token activations at ``layer``.
        settings (CAVSettings): The repeats, probe, seed and storage.

    Returns:
        CAV: Unsaved; ``stats["weights"]`` has shape ``(k, R, hidden)`` and ``stats["accs"]``
        ``(k, R)`` (NaN where the probe reports no accuracy).
    """
    repeats, classifier, seed = settings.repeats, settings.classifier, settings.seed
    key = concepts_to_str(concepts)
    features = acts[0][0].shape[1]
    k = len(concepts)
    weights = torch.zeros(k, repeats, features)
    accs = torch.full((k, repeats), float("nan"))
    kwargs = dict(settings.classifier_kwargs)
    takes_seed = "random_state" in inspect.signature(classifier.train_and_eval).parameters
    progress = tqdm(
        total=k * repeats, desc=f"CAVs {key} @ {layer}", disable=not settings.show_progress, leave=False
    )

    def tokens_of(j: int, e: int) -> Tensor:
        x, offsets = acts[j]
        return x[offsets[e] : offsets[e + 1]]

    for i, concept in enumerate(concepts):
        pos_x, pos_off = acts[i]
        n_pos = len(pos_off) - 1
        others = [(j, e) for j in range(k) if j != i for e in range(len(acts[j][1]) - 1)]
        for r in range(repeats):
            rng = np.random.default_rng([seed, zlib.crc32(key.encode()), i, r])
            picks = rng.choice(len(others), size=min(n_pos, len(others)), replace=False)
            neg_x = torch.cat([tokens_of(*others[p]) for p in np.sort(picks)])
            x = torch.cat([pos_x, neg_x])
            y = torch.cat([torch.ones(len(pos_x), dtype=torch.long), torch.zeros(len(neg_x), dtype=torch.long)])
            if takes_seed:
                kwargs["random_state"] = int(rng.integers(2**31 - 1))
            loader = DataLoader(TensorDataset(x, y), batch_size=len(x))
            stats = classifier.train_and_eval(loader, **kwargs) or {}
            classes = [int(c) for c in np.asarray(classifier.classes()).ravel().tolist()]
            if 1 not in classes:
                raise RuntimeError(f"The classifier's classes {classes} do not include the concept label 1.")
            row = torch.as_tensor(classifier.weights())[classes.index(1)].detach().float().cpu().reshape(-1)
            norm = row.norm()
            if not torch.isfinite(norm) or norm == 0:
                raise RuntimeError(
                    f"The CAV of concept {concept.name!r} at {layer!r} is zero or not finite: its tokens "
                    "cannot be separated from the other concepts' (check the concept examples)."
                )
            weights[i, r] = row / norm
            acc = stats.get("accs")
            if acc is not None:
                accs[i, r] = float(acc)
            progress.update(1)
    progress.close()
    stats_dict = {
        "weights": weights,
        "classes": [c.id for c in concepts],
        "accs": accs,
        "model_fingerprint": settings.fingerprint,
        "repeats": repeats,
        "num_tokens": [int(a[0].shape[0]) for a in acts],
        "num_examples": [int(len(a[1]) - 1) for a in acts],
    }
    return CAV(concepts, layer, stats_dict, settings.save_path, settings.folder)
