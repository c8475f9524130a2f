"""Class names: from a model's ``config.id2label``, a sequence or a mapping, to one ``index -> name`` map."""

from typing import Any, Dict, Mapping, Optional, Sequence, Union

from torch.nn import Module

#: Class names: a sequence indexed by class, or a mapping from class index to name.
LabelNames = Union[Sequence[str], Mapping[int, str]]


def model_label_names(model: Optional[Module]) -> Dict[int, str]:
    r"""
    A model's class names, from its ``config.id2label`` (Hugging Face models).

    Args:
        model (torch.nn.Module, optional): The model.

    Returns:
        dict[int, str]: Class index to name; empty when the model has none.
    """
    config = getattr(model, "config", None)
    return {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}


def label_names_dict(label_names: Optional[LabelNames]) -> Dict[int, str]:
    r"""
    Class names as one ``index -> name`` dict.

    Args:
        label_names (sequence or mapping, optional): Names indexed by class, or a mapping.

    Returns:
        dict[int, str]: Empty for None.
    """
    if label_names is None:
        return {}
    if isinstance(label_names, Mapping):
        return {int(k): str(v) for k, v in label_names.items()}
    return {i: str(v) for i, v in enumerate(label_names)}


def label_name(index: Any, label_names: Optional[LabelNames]) -> str:
    r"""
    The name of class ``index``, or the index as text when it has none.

    Args:
        index (int): The class.
        label_names (sequence or mapping, optional): The names.

    Returns:
        str: The name.
    """
    return label_names_dict(label_names).get(int(index), str(int(index)))
