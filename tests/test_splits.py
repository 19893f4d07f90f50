import pandas as pd
import pytest
from conftest import utterance_table

from turnfusion.splits import add_split_column, assign_splits


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
