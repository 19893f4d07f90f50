"""Train/val/test splits by conversation: no conversation ever appears in two splits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from turnfusion.choices import POOL, SPLITS


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
    """Keep the split a source gave a row (MM-F2F files); rows without one (no `split` column, an empty cell, or
    `pool`) are split by conversation with the given fractions."""
    table = table.copy()
    given = table["split"].where(table["split"] != POOL) if "split" in table.columns else pd.Series(
        np.nan, index=table.index, dtype=object)
    bad = set(given.dropna()) - set(SPLITS)
    if bad:
        raise ValueError(f"unknown split name(s) {sorted(bad)}; expected {SPLITS} or {POOL!r}")
    labelled = table.assign(split=given)
    leaks = labelled.groupby("video_id")["split"].agg(lambda s: s.fillna(POOL).nunique())
    if (leaks > 1).any():
        raise ValueError(f"conversation {leaks[leaks > 1].index[0]!r} appears in more than one split")
    pooled = given.isna()
    if pooled.any():
        split_of = assign_splits(table.loc[pooled, "video_id"].tolist(), val_fraction, test_fraction, seed)
        given = given.where(~pooled, table["video_id"].map(split_of))
    table["split"] = given
    return table
