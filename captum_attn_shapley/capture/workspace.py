#!/usr/bin/env python3
"""Reusable float32 buffers for the capture's block loops.

A block loop that allocated its temporaries afresh at every block would pay the allocator (and, for large
blocks, the operating system's page faults) each time; the loops keep one buffer per temporary and take
views of it instead.
"""

import math
from typing import Optional, Tuple

import torch
from torch import Tensor


def workspace(buffer: Optional[Tensor], shape: Tuple[int, ...], like: Tensor) -> Tuple[Tensor, Tensor]:
    r"""
    A reusable float32 buffer, grown when needed, and a contiguous view of it of ``shape``.

    Args:
        buffer (Tensor, optional): The buffer so far (None at the first block).
        shape (tuple[int, ...]): The shape of the view.
        like (Tensor): Gives the device.

    Returns:
        tuple[Tensor, Tensor]: The buffer (to keep for the next block) and the view.
    """
    size = math.prod(shape)
    if buffer is None or buffer.numel() < size:
        buffer = torch.empty(size, dtype=torch.float32, device=like.device)
    return buffer, buffer[:size].view(shape)
