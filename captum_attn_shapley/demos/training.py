"""The shared mechanics of the embedded models' trainings: fixed threads, determinism, one optimisation step.

:func:`reproducible_training` makes a training give bit-identical weights on every run on the same kind of
machine (:data:`TRAIN_THREADS` torch threads whatever the machine's core count or load, torch's
deterministic algorithms, a seeded torch generator); :func:`optimisation_step` is the step every training
loop of the package takes after its forward pass, and :func:`label_config` names the classes of a freshly built
classifier.
"""

from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Sequence

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.labels import label_names_dict

#: Torch threads of every first-use training (fixed, so the weights depend neither on the machine's
#: core count nor on what else it is doing; 2 is this project's reference machine's core count).
TRAIN_THREADS = 2


@contextmanager
def fixed_threads(threads: int = TRAIN_THREADS) -> Iterator[None]:
    r"""Run a block with ``torch.set_num_threads(threads)``; the caller's thread count is restored on exit.

    Args:
        threads (int, optional): Torch threads inside the block. Default: :data:`TRAIN_THREADS`

    Raises:
        ValueError: If ``threads`` is not positive.
    """
    if threads < 1:
        raise ValueError(f"threads must be positive, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def reproducible_training(seed: int, threads: int = TRAIN_THREADS) -> Iterator[None]:
    r"""Run a training deterministically: fixed threads, deterministic algorithms, seeded torch.

    Runs the block in :func:`fixed_threads` with ``torch.use_deterministic_algorithms(True)`` after
    ``torch.manual_seed(seed)``; the thread count and the deterministic-algorithms setting are
    restored on exit. With a fixed thread count, torch's CPU kernels split their work the same way
    whatever else the machine is doing, so the same training gives bit-identical weights.

    Args:
        seed (int): The torch seed.
        threads (int, optional): Torch threads inside the block. Default: :data:`TRAIN_THREADS`

    Examples::

        >>> import torch
        >>> from captum_attn_shapley.demos.training import reproducible_training
        >>> with reproducible_training(seed=0):
        ...     layer = torch.nn.Linear(4, 2)
    """
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with fixed_threads(threads):
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)


def optimisation_step(
    model: Module,
    loss: Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    bar: Any,
    max_grad_norm: Optional[float] = None,
) -> None:
    r"""Backpropagate ``loss``, clip the gradient norm (if ``max_grad_norm``), step the optimiser and the
    learning-rate scheduler, clear the gradients and advance the progress bar with the loss.

    Args:
        model (Module): The model being trained.
        loss (Tensor): The batch's scalar loss.
        optimizer (torch.optim.Optimizer): Its optimiser.
        scheduler: Its learning-rate scheduler (``step()`` once per batch).
        bar: A tqdm progress bar.
        max_grad_norm (float, optional): Clip the gradient norm to this; ``None`` does not clip.
            Default: ``None``
    """
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    bar.update()
    bar.set_postfix(loss=f"{loss.item():.3f}")


def label_config(label_names: Sequence[str]) -> Dict[str, Any]:
    r"""The class-name arguments of a fresh classifier's configuration: ``num_labels``, ``id2label``, ``label2id``.

    Args:
        label_names (sequence of str): Name of each label index.

    Returns:
        dict: ``{"num_labels": len(label_names), "id2label": {index: name}, "label2id": {name: index}}``,
        keyword arguments of a Hugging Face configuration (or of ``from_pretrained``).

    Examples::

        >>> from captum_attn_shapley.demos.training import label_config
        >>> label_config(("negative", "positive"))["id2label"]
        {0: 'negative', 1: 'positive'}
    """
    return {
        "num_labels": len(label_names),
        "id2label": label_names_dict(label_names),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }
