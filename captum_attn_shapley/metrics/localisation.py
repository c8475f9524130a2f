#!/usr/bin/env python3
"""Localisation of a map in a known region: the mass inside it and the pointing game."""

import torch
from torch import Tensor

from captum_attn_shapley._utils.arrays import ArrayLike, as_tensor


def mass_inside(scores: ArrayLike, inside: ArrayLike) -> Tensor:
    r"""
    The fraction of each map's positive mass that lies inside a region.

    Args:
        scores (Tensor or array): ``(batch, ...)`` maps (patch grids or token rows).
        inside (Tensor or array): Same shape: 1 inside the region, 0 outside, or the
                    fraction of each patch covered by it (then the result equals the
                    pixel-level fraction of the nearest-upsampled map).

    Returns:
        Tensor: ``(batch,)``; NaN for a map without positive values.
    """
    s = as_tensor(scores)
    region = as_tensor(inside)
    if s.shape != region.shape:
        raise ValueError(f"scores {tuple(s.shape)} and inside {tuple(region.shape)} must have the same shape.")
    positive = s.clamp_min(0).reshape(s.shape[0], -1)
    total = positive.sum(dim=1)
    inner = (positive * region.reshape(s.shape[0], -1)).sum(dim=1)
    return torch.where(total > 0, inner / total.clamp_min(1e-30), torch.full_like(total, float("nan")))


def pointing_game(scores: ArrayLike, inside: ArrayLike, min_coverage: float = 0.5) -> Tensor:
    r"""
    Pointing game: whether each map's highest-scoring cell lies in the region.

    Args:
        scores (Tensor or array): ``(batch, ...)`` maps.
        inside (Tensor or array): Same shape, region membership or coverage in [0, 1].
        min_coverage (float): A cell is a hit when its coverage is at least this.
                    Default: 0.5

    Returns:
        Tensor: Bool, ``(batch,)``.
    """
    s = as_tensor(scores)
    region = as_tensor(inside)
    if s.shape != region.shape:
        raise ValueError(f"scores {tuple(s.shape)} and inside {tuple(region.shape)} must have the same shape.")
    top = s.reshape(s.shape[0], -1).argmax(dim=1)
    return region.reshape(s.shape[0], -1).gather(1, top.unsqueeze(1)).squeeze(1) >= min_coverage
