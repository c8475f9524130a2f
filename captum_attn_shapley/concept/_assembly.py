#!/usr/bin/env python3
"""From CAVs to one score matrix per layer, and from its columns to :class:`TokenTCAVScores` with their tests.

All CAVs of one :meth:`TokenTCAV.interpret` call are scored in one pass: per layer, the rows of a
matrix are the R CAVs of each concept of each experimental set (set by set, concept by concept),
followed by the single CAV of each random-concept pair; the example scores have one column per row.
"""

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from captum.concept import CAV, Concept
from captum.concept._utils.common import concepts_to_str
from numpy.typing import NDArray
from torch import Tensor

from captum_attn_shapley.concept.scores import TokenTCAVScores
from captum_attn_shapley.concept.stats import correct_pvalues, random_concept_test, ttest_against_half


def random_pairs(
    experimental_sets: Sequence[Sequence[Concept]], random_concepts: Sequence[Concept]
) -> List[List[Concept]]:
    r"""
    The concept pairs of Captum's random-concept test: each tested concept (once, by id) and
    the reference ``r_0``, each paired with every random partner ``r_1..r_m``.

    Args:
        experimental_sets (sequence of sequence of Concept): The tested concept sets.
        random_concepts (sequence of Concept): ``r_0`` and the partners.

    Returns:
        list[list[Concept]]: The pairs, in column order.
    """
    reference, partners = random_concepts[0], random_concepts[1:]
    tested = {c.id: c for concepts in experimental_sets for c in concepts}
    return [[c, p] for c in list(tested.values()) + [reference] for p in partners]


def stack_cavs(
    experimental_sets: Sequence[Sequence[Concept]],
    cavs: Dict[str, Dict[str, CAV]],
    pair_keys: Sequence[str],
    random_cavs: Dict[str, Dict[str, CAV]],
    layers: Sequence[str],
) -> Dict[str, Tensor]:
    r"""
    The CAVs of every set and random pair as one matrix per layer, in column order.

    Args:
        experimental_sets (sequence of sequence of Concept): The concept sets.
        cavs (dict): The sets' CAVs, by concepts key and layer.
        pair_keys (sequence of str): The random-concept pairs' keys.
        random_cavs (dict): The pairs' CAVs, by concepts key and layer.
        layers (sequence of str): The layer names.

    Returns:
        dict[str, Tensor]: By layer, the unit CAVs ``(n_cavs, hidden)``.
    """
    stacked: Dict[str, List[Tensor]] = {layer: [] for layer in layers}
    for concepts in experimental_sets:
        key = concepts_to_str(concepts)
        for layer in layers:
            w = cavs[key][layer].stats["weights"]
            stacked[layer].append(w.reshape(-1, w.shape[-1]))
    for pair_key in pair_keys:
        for layer in layers:
            stacked[layer].append(random_cavs[pair_key][layer].stats["weights"][0].reshape(1, -1))
    return {layer: torch.cat(parts) for layer, parts in stacked.items()}


def assemble_scores(
    result: TokenTCAVScores,
    experimental_sets: Sequence[Sequence[Concept]],
    cavs: Dict[str, Dict[str, CAV]],
    scores: Dict[str, Tensor],
    layers: Sequence[str],
    repeats: int,
) -> int:
    r"""
    Fills ``result`` with the T-TCAV scores, magnitudes, CAV accuracies and t-test p-values
    of every set at every layer.

    Args:
        result (TokenTCAVScores): The results to fill.
        experimental_sets (sequence of sequence of Concept): The concept sets.
        cavs (dict): The sets' CAVs, by concepts key and layer.
        scores (dict[str, Tensor]): By layer, the example scores ``(n_examples, n_cavs)``.
        layers (sequence of str): The layer names.
        repeats (int): R, the CAVs per concept.

    Returns:
        int: The first column after the sets' (that of the first random pair).
    """
    column = 0
    for concepts in experimental_sets:
        key = concepts_to_str(concepts)
        result.concept_names[key] = [c.name for c in concepts]
        result.concept_ids[key] = [c.id for c in concepts]
        result[key] = {}
        k = len(concepts)
        for layer in layers:
            stats = cavs[key][layer].stats
            s = scores[layer][:, column : column + k * repeats].reshape(-1, k, repeats)
            sign = (s > 0).float().mean(dim=0)
            magnitude = s.mean(dim=0)
            result[key][layer] = {
                "sign_count": sign.mean(dim=1),
                "magnitude": magnitude.mean(dim=1),
                "sign_count_repeats": sign,
                "magnitude_repeats": magnitude,
                "cav_accuracy": torch.nanmean(stats["accs"].float(), dim=1),
                "p_value": torch.as_tensor(ttest_against_half(sign.numpy()), dtype=torch.float64),
            }
        column += k * repeats
    return column


def add_random_test(
    result: TokenTCAVScores,
    experimental_sets: Sequence[Sequence[Concept]],
    random_concepts: Sequence[Concept],
    pair_keys: List[str],
    scores: Dict[str, Tensor],
    first_column: int,
    layers: Sequence[str],
) -> None:
    r"""
    Adds ``"p_value_random"``: Captum's test of each concept's T-TCAV against random partners
    ``r_1..r_m`` versus the reference ``r_0``'s against the same partners.

    Args:
        result (TokenTCAVScores): The results (filled by :func:`assemble_scores`).
        experimental_sets (sequence of sequence of Concept): The concept sets.
        random_concepts (sequence of Concept): ``r_0`` and the partners.
        pair_keys (list[str]): The random pairs' keys, in column order.
        scores (dict[str, Tensor]): By layer, the example scores.
        first_column (int): The first random pair's column.
        layers (sequence of str): The layer names.
    """
    columns = {key: first_column + i for i, key in enumerate(pair_keys)}
    reference, partners = random_concepts[0], list(random_concepts[1:])
    for layer in layers:

        def t_tcav(concept: Concept) -> NDArray[Any]:
            cols = [columns[concepts_to_str([concept, p])] for p in partners]
            return (scores[layer][:, cols] > 0).float().mean(dim=0).numpy()

        reference_scores = t_tcav(reference)
        for concepts in experimental_sets:
            key = concepts_to_str(concepts)
            p = [random_concept_test(t_tcav(c), reference_scores) for c in concepts]
            result[key][layer]["p_value_random"] = torch.tensor(p, dtype=torch.float64)


def apply_correction(result: TokenTCAVScores, correction: Optional[str]) -> None:
    r"""
    Adds the ``"_corrected"`` p-values: one multiple-testing correction over all concepts and
    layers of ``result``, per test.

    Args:
        result (TokenTCAVScores): The results.
        correction (str, optional): See :func:`~captum_attn_shapley.concept.correct_pvalues`;
                    None adds nothing.
    """
    if correction is None:
        return
    for name in ("p_value", "p_value_random"):
        cells = [(key, layer) for key in result for layer in result[key] if name in result[key][layer]]
        if not cells:
            continue
        flat = np.concatenate([result[key][layer][name].numpy() for key, layer in cells])
        adjusted = correct_pvalues(flat, correction)
        start = 0
        for key, layer in cells:
            n = result[key][layer][name].numel()
            result[key][layer][name + "_corrected"] = torch.as_tensor(adjusted[start : start + n])
            start += n
