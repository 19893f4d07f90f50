"""Train/val/test splits by conversation: no conversation ever appears in two splits."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def assign_splits(video_ids: list[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """Map each conversation to a split; sizes are rounded, with at least one conversation in val and test."""
    ids = sorted(set(video_ids))
    if len(ids) < 3:
        raise ValueError(f"need at least 3 conversations to make train/val/test splits, got {len(ids)}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"bad split fractions val={val_fraction} test={test_fraction}")
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test = max(1, round(test_fraction * len(ids)))
    n_val = max(1, round(val_fraction * len(ids)))
    split_of = {}
    for rank, i in enumerate(order):
        split_of[ids[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return split_of


def add_split_column(table: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> pd.DataFrame:
    """Use the table's own `split` column where the source gave one (MM-F2F files), else assign by conversation."""
    table = table.copy()
    if "split" in table.columns and table["split"].notna().all():
        bad = set(table["split"]) - set(SPLITS)
        if bad:
            raise ValueError(f"unknown split name(s) {sorted(bad)}; expected {SPLITS}")
        leaks = table.groupby("video_id")["split"].nunique()
        if (leaks > 1).any():
            raise ValueError(f"conversation {leaks[leaks > 1].index[0]!r} appears in more than one split")
        return table
    split_of = assign_splits(table["video_id"].tolist(), val_fraction, test_fraction, seed)
    table["split"] = table["video_id"].map(split_of)
    return table
