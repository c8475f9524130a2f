"""The concepts file of a TokenTCAV dataset job: concepts as lists of texts, and the sets to test."""

import json
import pathlib
from typing import Dict, List, Tuple

#: An example of the file, for the messages.
EXAMPLE = (
    '{"concepts": {"polite": ["thank you", "please"], "rude": ["shut up", "idiot"]}, "sets": [["polite", "rude"]]}'
)


def read_concept_file(path: str) -> Tuple[Dict[str, List[str]], List[List[str]]]:
    r"""
    Reads and checks a concepts file: a JSON object with ``"concepts"`` (name -> list of texts) and
    ``"sets"`` (lists of at least two concept names, each tested against the others of its set).

    Args:
        path (str): The file.

    Returns:
        tuple: ``(concepts, sets)``; concept ids are the positions of the names in ``concepts``.

    Raises:
        ValueError: For a missing file, bad JSON, an empty concept, an unknown name or a set of fewer
            than two concepts.
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise ValueError(f"concepts {path!r} is not a file: give a JSON file such as {EXAMPLE}.")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"concepts {path!r} is not JSON ({err}): give a file such as {EXAMPLE}.") from None
    concepts = data.get("concepts") if isinstance(data, dict) else None
    sets = data.get("sets") if isinstance(data, dict) else None
    if not isinstance(concepts, dict) or not concepts or not isinstance(sets, list) or not sets:
        raise ValueError(f"concepts {path!r} needs a non-empty 'concepts' object and 'sets' list, e.g. {EXAMPLE}.")
    for name, texts in concepts.items():
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError(f"concepts {path!r}: concept {name!r} must be a non-empty list of non-empty texts.")
    for concept_set in sets:
        if not isinstance(concept_set, list) or len(concept_set) < 2:
            raise ValueError(f"concepts {path!r}: the set {concept_set!r} must list at least two concept names.")
        unknown = [n for n in concept_set if n not in concepts]
        if unknown:
            raise ValueError(f"concepts {path!r}: the set {concept_set!r} names unknown concepts {unknown}.")
    return {str(k): list(v) for k, v in concepts.items()}, [[str(n) for n in s] for s in sets]
