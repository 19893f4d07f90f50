import json

import pytest

from turnfusion.data.transcripts import read_rttm, read_transcript, transcript_table
from turnfusion.errors import DataError

SPEAKERS = ["SPEAKER_00", "SPEAKER_01"]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_whisperx_json_gives_its_timed_words_with_each_word_s_speaker(tmp_path):
    segments = [{"start": 0.5, "end": 2.0, "text": " We went there.", "speaker": "SPEAKER_00",
                 "words": [{"word": "We", "start": 0.5, "end": 0.7, "speaker": "SPEAKER_00"},
                           {"word": "went", "start": 0.8, "end": 1.1},
                           {"word": "there.", "start": 1.6, "end": 2.0}]},
                {"start": 2.1, "end": 2.4, "text": " Mm-hmm.", "speaker": "SPEAKER_01"}]
    pieces = read_transcript(write(tmp_path / "c.json", json.dumps({"segments": segments})), SPEAKERS)
    assert pieces.values.tolist() == [[0, 0.5, 0.7, "We"], [0, 0.8, 1.1, "went"], [0, 1.6, 2.0, "there."],
                                      [1, 2.1, 2.4, "Mm-hmm."]]


def test_whisper_segments_without_words_are_the_pieces(tmp_path):
    segments = [{"start": 3.0, "end": 4.0, "text": "yes", "speaker": "1"},
                {"start": 0.0, "end": 2.5, "text": "hello there", "speaker": "0"}]
    pieces = read_transcript(write(tmp_path / "c.json", json.dumps({"segments": segments})), SPEAKERS)
    assert pieces.values.tolist() == [[0, 0.0, 2.5, "hello there"], [1, 3.0, 4.0, "yes"]]  # sorted by start


@pytest.mark.parametrize("column", ["word", "text"])
def test_a_csv_of_words_or_segments(tmp_path, column):
    path = write(tmp_path / "c.csv", f"recording,speaker,start,end,{column}\nc,SPEAKER_01,1.0,1.5,yeah\n"
                                     "c,SPEAKER_00,0,0.9,hello\n")
    assert read_transcript(path, SPEAKERS).values.tolist() == [[0, 0.0, 0.9, "hello"], [1, 1.0, 1.5, "yeah"]]


def test_rttm_turns_and_many_recordings_in_one_table(tmp_path):
    rttm = write(tmp_path / "c.rttm", "SPEAKER c 1 0.50 1.25 <NA> <NA> caller <NA> <NA>\n"
                                      "SPKR-INFO c 1 <NA> <NA> <NA> unknown agent <NA> <NA>\n"
                                      "SPEAKER c 1 2.00 0.40 <NA> <NA> agent <NA> <NA>\n")
    table = transcript_table({"c": rttm}, ["agent", "caller"], read_rttm)
    assert table.values.tolist() == [["c", 1, 0.5, 1.75, ""], ["c", 0, 2.0, 2.4, ""]]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("c.json", '{"segments": [{"start": 0, "end": 1, "text": "hi"}]}', r"c\.json: segments\[0\] has no speaker"),
    ("c.json", '{"segments": [{"start": 0, "end": 1, "text": "hi", "speaker": "SPEAKER_07"}]}',
     r"c\.json: speaker 'SPEAKER_07' is neither of the channels' speakers"),
    ("c.json", '{"segments": [{"start": 2, "end": 1, "text": "hi", "speaker": "0"}]}', r"c\.json: piece 1 .* start 2"),
    ("c.json", '{"segments": [{"start": "soon", "end": 1, "text": "hi", "speaker": "0"}]}',
     r"c\.json: segments\[0\]: time 'soon' is not a number"),
    ("c.json", '{"text": "hi"}', r"c\.json: no 'segments' list"),
    ("c.json", "[" * 100 + "]" * 100, r"c\.json: nested deeper than 32 levels; not a transcript"),
    ("c.csv", "speaker,start,end\n0,0,1\n", r"c\.csv: missing column\(s\) \['text'\]"),
    ("c.csv", "speaker,start,end,word\n0,0,1,hi\n\n0,1,oops,there\n", r"c\.csv: row 4: time 'oops' is not a number"),
    ("c.csv", "recording,speaker,start,end,word\nother,0,0,1,hi\n", r"c\.csv: row 2 names recording 'other'"),
    ("c.csv", "speaker,start,end,word\n0,0,nan,hi\n", r"c\.csv: row 2: time 'nan' is not a number"),
    ("c.rttm", "SPEAKER c 1 0.5 1.0 <NA> <NA> nobody <NA> <NA>\n", r"c\.rttm: speaker 'nobody' is neither"),
    ("c.rttm", "SPEAKER c 1 0.5\n", r"c\.rttm: line 1: an RTTM SPEAKER line has 10 fields"),
    ("c.txt", "hello", r"c\.txt: a transcript is \.json \(Whisper-style\) or \.csv"),
    ("c.rttm", "speaker c 1 0.5 1.0 <NA> <NA> 0 <NA> <NA>\n", r"c\.rttm: no SPEAKER line for recording 'c'"),
    ("c.rttm", "SPEAKER c 1 1e308 1e308 <NA> <NA> 0 <NA> <NA>\n", r"c\.rttm: line 1: a turn of 1e\+308 s"),
    ("c.rttm", "SPEAKER c 1 2.0 -1.0 <NA> <NA> 0 <NA> <NA>\n", r"c\.rttm: line 1: a turn of -1\.0 s"),
    ("c.csv", "speaker,start,end,text\n0,0,1,hi,extra\n", r"c\.csv: row 2 has 5 fields, the header 4"),
    ("c.csv", "speaker,start,end,word,text\n0,0,1,,hi\n", r"c\.csv: both a word and a text column"),
    ("c.json", '{"segments": [{"start": true, "end": true, "text": "hi", "speaker": "0"}]}',
     r"c\.json: segments\[0\]: time True is not a number"),
    ("c.json", '{"segments": [{"start": "0.5", "end": 1, "text": "hi", "speaker": "0"}]}',
     r"c\.json: segments\[0\]: time '0\.5' is not a number"),
    ("c.json", '{"segments": [{"start": ' + "9" * 5000 + ', "end": 1, "text": "hi", "speaker": "0"}]}',
     r"c\.json: not JSON"),
])
def test_a_bad_transcript_is_one_line_naming_the_file(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    reader = read_rttm if name.endswith(".rttm") else read_transcript
    with pytest.raises(DataError, match=message) as caught:
        reader(path, SPEAKERS)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["c.csv", "c.rttm", "c.json"])
def test_text_that_is_not_utf8_is_refused_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes("speaker,start,end,word\n0,0,1,caf\xe9\n".encode("latin-1"))
    reader = read_rttm if name.endswith(".rttm") else read_transcript
    with pytest.raises(DataError, match=rf"{name}: not (UTF-8|JSON)"):
        reader(path, SPEAKERS)


def test_rttm_with_a_byte_order_mark_and_other_recordings_lines(tmp_path):
    path = tmp_path / "c.rttm"
    path.write_text("\ufeffSPEAKER c 1 0.5 1.0 <NA> <NA> 0 <NA> <NA>\nSPEAKER other 1 50 1 <NA> <NA> 1 <NA> <NA>\n"
                    "SPEAKER c 1 2.0 1.0 <NA> <NA> 1 <NA> <NA>\n", encoding="utf-8")
    assert read_rttm(path, SPEAKERS).values.tolist() == [[0, 0.5, 1.5, ""], [1, 2.0, 3.0, ""]]


def test_an_upper_case_suffix_and_a_word_without_its_own_speaker(tmp_path):
    segments = [{"start": 0.0, "end": 1.0, "text": "hi there", "speaker": "SPEAKER_01",
                 "words": [{"word": "hi", "start": 0.0, "end": 0.4, "speaker": None},
                           {"word": "there", "start": 0.5, "end": 1.0}]}]
    pieces = read_transcript(write(tmp_path / "c.JSON", json.dumps({"segments": segments})), SPEAKERS)
    assert pieces.speaker.tolist() == [1, 1]  # a word's null speaker is its segment's
