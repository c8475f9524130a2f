"""What the commands share: class indices from the command line."""

from typing import Dict, Optional


def target_index(target: Optional[str], id2label: Dict[int, str], what: str = "target") -> Optional[int]:
    r"""
    A class given on the command line, as an index or a label name (case ignored).

    Args:
        target (str, optional): The index (``"1"``) or the name (``"positive"``).
        id2label (dict[int, str]): The model's class names.
        what (str): What the class is, for the error message.

    Returns:
        int or None: The index; None for None.

    Raises:
        SystemExit: For an unknown name.
    """
    if target is None:
        return None
    if target.lstrip("-").isdigit():
        return int(target)
    by_name = {str(v).lower(): int(k) for k, v in id2label.items()}
    if target.lower() not in by_name:
        raise SystemExit(f"error: unknown {what} {target!r}; the labels are {sorted(by_name)}")
    return by_name[target.lower()]
