"""TokenTCAV at scale: many concept sets, layers and target classes scored over a dataset, sharded as
the attribution jobs are (:class:`~captum_attn_shapley.jobs.JobSpec` with ``concepts``).

The CAVs are trained once, before the shards (:func:`prepare_tcav`), into TokenTCAV's CAV cache
(``cav_dir``), from which every worker loads them. Each shard stores, per example, target and layer,
the example scores ``s(x)`` of every CAV (one column of :meth:`TokenTCAV.example_scores` per CAV);
:func:`summarize_tcav` reads all shards back and computes the T-TCAV scores and tests as
:meth:`TokenTCAV.interpret` does on the whole dataset at once.
"""

import functools
import json
import pathlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from captum.concept import Concept

from captum_attn_shapley.concept import TokenTCAV, text_concept
from captum_attn_shapley.concept._assembly import assemble_scores, stack_cavs
from captum_attn_shapley.concept.scores import TokenTCAVScores
from captum_attn_shapley.jobs._concept_file import read_concept_file
from captum_attn_shapley.jobs._inputs import require_pyarrow
from captum_attn_shapley.jobs._model import load_model
from captum_attn_shapley.jobs.spec import JobSpec

__all__ = ["prepare_tcav", "read_concept_file", "summarize_tcav", "tcav_for"]

#: The ``target`` column of rows scored for the predicted class.
PREDICTED = -1


@functools.lru_cache(maxsize=2)
def _tcav(spec_json: str) -> Tuple[TokenTCAV, List[List[Concept]]]:
    spec = JobSpec.from_json(spec_json)
    model, tokenizer = load_model(spec.model)
    texts, sets = read_concept_file(str(spec.concepts))
    ids = {name: i for i, name in enumerate(texts)}
    concepts = {
        name: text_concept(
            ids[name], name, texts[name], tokenizer, batch_size=spec.batch_size, max_length=spec.max_length
        )
        for name in texts
    }
    tcav = TokenTCAV(
        model,
        layers=list(spec.layers),
        save_path=spec.cav_dir,
        repeats=spec.repeats,
        batch_size=spec.batch_size,
        seed=spec.seed,
        special_token_ids=tokenizer.all_special_ids,
    )
    return tcav, [[concepts[name] for name in names] for names in sets]


def tcav_for(spec: JobSpec) -> Tuple[TokenTCAV, List[List[Concept]]]:
    r"""
    The job's :class:`~captum_attn_shapley.TokenTCAV` and concept sets (made once per process).

    Args:
        spec (JobSpec): A TokenTCAV job.

    Returns:
        tuple: ``(tcav, experimental_sets)``.
    """
    return _tcav(spec.to_json())


def prepare_tcav(spec: JobSpec) -> int:
    r"""
    Trains the job's CAVs (or finds them in the cache), once, before any shard.

    Args:
        spec (JobSpec): A TokenTCAV job.

    Returns:
        int: The number of CAVs per layer (columns of the shards' ``scores``).
    """
    tcav, sets = tcav_for(spec)
    tcav.compute_cavs(sets)
    matrices = stack_cavs(sets, tcav.cavs, [], {}, tcav.layers)
    return int(next(iter(matrices.values())).shape[0])


def compute_tcav_shard(
    spec: JobSpec, model: Any, tokenizer: Any, texts: Sequence[str], labels: Any, first: int
) -> Dict[str, Dict[str, List[Any]]]:
    r"""
    The example scores of every CAV, target and layer on a shard's examples.

    Args:
        spec (JobSpec): A TokenTCAV job.
        model (Module): The classifier.
        tokenizer: Its tokenizer.
        texts (sequence of str): The shard's texts.
        labels (sequence of int, optional): Their labels.
        first (int): The example id of ``texts[0]``.

    Returns:
        dict: ``{"tokens": rows (example, target, class, layer, scores), "examples": rows}``.
    """
    from captum_attn_shapley.jobs._compute import encoded_batches

    tcav, sets = tcav_for(spec)
    tcav.compute_cavs(sets)  # loads what prepare_tcav trained
    matrices = stack_cavs(sets, tcav.cavs, [], {}, tcav.layers)
    rows: Dict[int, List[Tuple[int, int, str, List[float]]]] = {}
    info: Dict[int, Dict[str, Any]] = {}
    for batch, enc in encoded_batches(tokenizer, texts, spec.batch_size, spec.max_length):
        ids, mask = enc["input_ids"], enc["attention_mask"]
        with torch.no_grad():
            probs = model(input_ids=ids, attention_mask=mask).logits.softmax(dim=-1)
        for target in list(spec.targets) or [PREDICTED]:
            scores, used = tcav.example_scores(
                ids, matrices, None if target == PREDICTED else target, additional_forward_args=(mask,)
            )
            for row, position in enumerate(batch):
                for layer in tcav.layers:
                    rows.setdefault(first + position, []).append(
                        (target, int(used[row]), layer, scores[layer][row].float().tolist())
                    )
        for row, position in enumerate(batch):
            predicted = int(probs[row].argmax())
            info[first + position] = {
                "example": first + position,
                "n_tokens": int(mask[row].sum()),
                **({"label": int(labels[position])} if labels is not None else {}),
                "predicted": predicted,
                "probability": float(probs[row, predicted]),
            }
    tokens: Dict[str, List[Any]] = {"example": [], "target": [], "class": [], "layer": [], "scores": []}
    for example in sorted(rows):
        for target, used_class, layer, values in rows[example]:
            for key, value in zip(tokens, (example, target, used_class, layer, values)):
                tokens[key].append(value)
    examples = {key: [info[e][key] for e in sorted(info)] for key in info[first]}
    return {"tokens": tokens, "examples": examples}


def summarize_tcav(spec: JobSpec, out_dir: Any, alpha: float = 0.05) -> Dict[int, TokenTCAVScores]:
    r"""
    The T-TCAV scores and t-tests of every set, layer and target over all shards, written to
    ``tcav.json`` (rows with a ``target`` column) and ``tcav.md`` in the job's folder.

    Args:
        spec (JobSpec): A TokenTCAV job whose shards are all done.
        out_dir (str or Path): The job's folder.
        alpha (float): Significance level of the ``significant`` column. Default: 0.05

    Returns:
        dict[int, TokenTCAVScores]: By target (``-1``: the predicted class).
    """
    pq = require_pyarrow()
    import pyarrow as pa

    out = pathlib.Path(out_dir)
    table = pa.concat_tables([pq.read_table(str(p)) for p in sorted(out.glob("shard-*.parquet"))]).to_pydict()
    tcav, sets = tcav_for(spec)
    tcav.compute_cavs(sets)
    results: Dict[int, TokenTCAVScores] = {}
    rows: List[Dict[str, Any]] = []
    markdown: List[str] = []
    for target in list(spec.targets) or [PREDICTED]:
        by_layer: Dict[str, List[Tuple[int, List[float]]]] = {layer: [] for layer in tcav.layers}
        for example, row_target, layer, values in zip(
            table["example"], table["target"], table["layer"], table["scores"]
        ):
            if row_target == target:
                by_layer[layer].append((example, values))
        scores = {layer: torch.tensor([v for _, v in sorted(pairs)]) for layer, pairs in by_layer.items()}
        result = TokenTCAVScores(alpha=alpha, num_examples=len(by_layer[tcav.layers[0]]))
        assemble_scores(result, sets, tcav.cavs, scores, tcav.layers, spec.repeats)
        results[target] = result
        rows += [{"target": target, **row} for row in result.rows()]
        name = "the predicted class" if target == PREDICTED else f"class {target}"
        markdown += [f"## Target: {name}", "", result.to_markdown(), ""]
    (out / "tcav.json").write_text(json.dumps(rows, indent=2, default=_json_default))
    (out / "tcav.md").write_text("\n".join(markdown))
    return results


def _json_default(value: Any) -> Optional[Any]:
    return value.item() if hasattr(value, "item") else str(value)
