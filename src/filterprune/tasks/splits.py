"""Train/val splits that keep every object (e.g. one car's views) on one side."""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence

import torch

from ..errors import ConfigError


def object_key(item: object) -> Hashable:
    """Group key of one id: ``"CARID_VIEW"`` -> ``"CARID"``; other values are their own key.

    Carvana names images ``<car id>_<view 01..16>``; anything after the last ``_`` is the view.
    """
    if isinstance(item, torch.Tensor):
        item = item.item()
    if isinstance(item, str):
        return item.rsplit("_", 1)[0] if "_" in item else item
    return item


def split_by_object_id(
    ids: Sequence[object] | torch.Tensor, val_fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Split sample indices so that no object appears on both sides.

    Whole objects (groups of samples with the same :func:`object_key`) are shuffled with ``seed``
    and moved to validation until it holds about ``val_fraction`` of the samples.

    Args:
        ids: One id per sample: Carvana names ``"CARID_VIEW"`` (grouped by ``CARID``) or plain object
            ids (ints, e.g. ``SyntheticCars.object_ids``).
        val_fraction: Target fraction of samples in validation, in [0, 1).
        seed: Shuffling seed; the same inputs always give the same split.

    Returns:
        ``(train_indices, val_indices)``, each sorted ascending, disjoint, covering ``range(len(ids))``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(
            f"split_by_object_id: val_fraction must be in [0, 1), got {val_fraction!r}; use e.g. 0.2."
        )
    groups: dict[Hashable, list[int]] = {}
    for index, item in enumerate(ids):
        groups.setdefault(object_key(item), []).append(index)
    keys = sorted(groups, key=repr)
    random.Random(seed).shuffle(keys)
    total = sum(len(members) for members in groups.values())
    target = val_fraction * total
    if val_fraction > 0 and len(keys) < 2:
        raise ConfigError(
            f"split_by_object_id: all {total} samples belong to {len(keys)} object(s), so no split "
            "keeps objects apart; pass val_fraction=0 or use data with at least 2 objects."
        )
    val: list[int] = []
    for key in keys[:-1]:  # the last object always stays in training
        if len(val) >= target:
            break
        overshoot = len(val) + len(groups[key]) - target
        if val and overshoot > target - len(val):  # adding this object would land farther away
            break
        val.extend(groups[key])
    val_set = set(val)
    train = [i for i in range(total) if i not in val_set]
    return train, sorted(val)
