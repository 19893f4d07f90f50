import pandas as pd
import pytest
from conftest import utterance_table

from turnfusion.schema import DataError, read_utterances
from turnfusion.splits import add_split_column, assign_splits


def test_unknown_label_names_the_row(tmp_path):
    path = tmp_path / "u.csv"
    utterance_table([("v", "v_0", "a", 0, 0, 1, 0), ("v", "v_1", "b", 7, 1, 2, 0)]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"u.csv: row 3 \(v_1\): label .7. is not"):
        read_utterances(path)


def test_missing_column_and_missing_file(tmp_path):
    path = tmp_path / "u.csv"
    pd.DataFrame({"video_id": ["v"], "text": ["x"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="missing column"):
        read_utterances(path)
    with pytest.raises(DataError, match="not found"):
        read_utterances(tmp_path / "none.csv")


def test_nan_text_and_timestamps_are_kept_for_the_stages_to_count(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("video_id,sentence_id,text,label,start,end,speaker\nv,v_0,,0,,1.0,0\n")
    table = read_utterances(path)
    assert pd.isna(table.text[0]) and pd.isna(table.start[0])


def test_mmf2f_header_and_rows_are_accepted(tmp_path):
    path = tmp_path / "val.csv"  # the exact header and row shape of MM-F2F's val.csv
    path.write_text("video_id,sentence_id,text,label,start,end,speaker\n"
                    "1BIHGw299eI,1BIHGw299eI_0_0,yes i can hear you,0,4.564,6.706,0\n"
                    "1BIHGw299eI,1BIHGw299eI_1_0,can hear you very well,1,6.125,7.467,0\n"
                    "1BIHGw299eI,1BIHGw299eI_2_3,right,2,11.245,12.187,1\n")
    table = read_utterances(path)
    assert table.label.tolist() == [0, 1, 2] and table.start.dtype == float


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
