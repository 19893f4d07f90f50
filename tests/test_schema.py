import numpy as np
import pandas as pd
import pytest
from conftest import utterance_table

from turnfusion.schema import DataError, read_utterances, row_problem


def test_unknown_label_names_the_row(tmp_path):
    path = tmp_path / "u.csv"
    utterance_table([("v", "v_0", "a", 0, 0, 1, 0), ("v", "v_1", "b", 7, 1, 2, 0)]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"u.csv: row 3 \('v_1'\): label .7. is not"):
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


def test_rows_that_cannot_be_used_are_named_when_read_and_given_their_reason(tmp_path, caplog):
    path = tmp_path / "u.csv"
    path.write_text("video_id,sentence_id,text,label,start,end,speaker\n"
                    "v,a,hello there,0,0,1,0\n,b,no video,0,1,2,1\nv,c,?!,1,2,3,0\nv,d,speaker five,2,3,4,5\n"
                    "v,e,speaker text,2,3,4,left\n")
    table = read_utterances(path)
    assert [row_problem(r) for r in table.itertuples(index=False)] == [
        "", "empty_video_id", "empty_text", "bad_speaker", "bad_speaker"]
    assert "u.csv: 2 row(s) with bad_speaker, skipped where used, e.g. row 5 (d)" in caplog.text
    assert "u.csv: 1 row(s) with empty_video_id, skipped where used, e.g. row 3 (b)" in caplog.text


def test_a_binary_file_is_a_one_line_error(tmp_path):
    (tmp_path / "u.csv").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DataError, match="u.csv: not a readable CSV"):
        read_utterances(tmp_path / "u.csv")


def test_an_audio_span_needs_both_of_its_columns(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("video_id,sentence_id,text,label,start,end,speaker,audio_start\nv,v_0_0,hi,0,1,2,0,0.5\n")
    with pytest.raises(DataError, match="t.csv: column 'audio_start' without 'audio_end'; give both"):
        read_utterances(csv)
    csv.write_text("video_id,sentence_id,text,label,start,end,speaker,audio_start,audio_end\nv,v_0_0,hi,0,1,2,0,0.5,x\n")
    table = read_utterances(csv)
    assert table.audio_start[0] == 0.5 and np.isnan(table.audio_end[0])  # counted as nan_timestamp where cut
