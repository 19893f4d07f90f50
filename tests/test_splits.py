import pandas as pd
import pytest
from conftest import utterance_table

from turnfusion.data.splits import add_split_column, assign_splits


def test_splits_are_by_conversation_and_deterministic():
    ids = [f"c{i}" for i in range(50)]
    a, b = assign_splits(ids, 0.2, 0.2, seed=3), assign_splits(ids[::-1], 0.2, 0.2, seed=3)
    assert a == b
    assert sorted(pd.Series(a).value_counts().to_dict().items()) == [("test", 10), ("train", 30), ("val", 10)]
    assert assign_splits(ids, 0.2, 0.2, seed=4) != a


def test_given_split_column_is_used_and_leaks_are_refused():
    table = utterance_table([("a", "a0", "x", 0, 0, 1, 0), ("b", "b0", "y", 0, 0, 1, 0)])
    table["split"] = ["train", "test"]
    assert add_split_column(table, 0.2, 0.2, 0).split.tolist() == ["train", "test"]
    table2 = pd.concat([table, table.assign(sentence_id="a1", split="val").iloc[:1]])
    with pytest.raises(ValueError, match="more than one split"):
        add_split_column(table2, 0.2, 0.2, 0)


def test_pool_rows_are_split_by_conversation_beside_given_splits():
    rows = [(f"p{i}", f"p{i}_{k}", "x", 0, k, k + 1, 0) for i in range(10) for k in range(3)]
    rows += [("t0", "t0_0", "x", 0, 0, 1, 0), ("t0", "t0_1", "x", 1, 1, 2, 1)]
    table = utterance_table(rows)
    table["split"] = ["pool"] * 30 + ["test", "test"]
    out = add_split_column(table, 0.2, 0.2, seed=0)
    assert out.loc[out.video_id == "t0", "split"].tolist() == ["test", "test"]
    pooled = out[out.video_id != "t0"]
    assert pooled.groupby("video_id").split.nunique().max() == 1
    assert sorted(pooled.drop_duplicates("video_id").split.value_counts().items()) == [
        ("test", 2), ("train", 6), ("val", 2)]
    assert len(out) == len(table)
    table.loc[0, "split"] = "train"  # p0 now given as train and pooled at once
    with pytest.raises(ValueError, match="'p0' appears in more than one split"):
        add_split_column(table, 0.2, 0.2, 0)
