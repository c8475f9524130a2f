#!/usr/bin/env python3
"""Array-like inputs (tensors, numpy arrays, nested sequences) as float tensors on the CPU."""

from typing import Any, Sequence, Union

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

#: A tensor, a numpy array or a sequence of numbers.
ArrayLike = Union[Tensor, NDArray[Any], Sequence[float]]


def as_tensor(values: ArrayLike) -> Tensor:
    """``values`` as a detached float32 tensor on the CPU."""
    if isinstance(values, Tensor):
        return values.detach().float().cpu()
    return torch.as_tensor(np.asarray(values, dtype=np.float32))
