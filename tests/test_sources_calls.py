import json

import pandas as pd
import pytest
import yaml
from conftest import REPO
from spoken_call import EXPECTED, spoken_call

from turnfusion.config import CallsConfig, DownloadConfig, LabelConfig, from_params
from turnfusion.data.download import download_all
from turnfusion.data.label import label_source
from turnfusion.data.sources.calls import find_calls, write_calls
from turnfusion.errors import DataError

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def calls_config(folder) -> CallsConfig:
    return CallsConfig(folder=str(folder), speakers=["agent", "caller"])


def test_a_calls_folder_goes_through_source_download_and_label(tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    words, _ = spoken_call(folder)
    (folder / "mono1.flac").unlink()
    words.assign(speaker=words.speaker.map({0: "agent", 1: "caller"})).drop(columns="video_id").to_csv(
        folder / "call1.csv", index=False)
    (folder / "notes.txt").write_text("not a recording")
    source = tmp_path / "source"
    manifest = write_calls(calls_config(folder), source)
    assert manifest.video_id.tolist() == ["call1"]
    assert not (source / "utterances.csv").exists()  # no labels of its own
    download = from_params(DownloadConfig, PARAMS)
    results = download_all(manifest, tmp_path / "raw", download, progress=False)
    assert results.status.tolist() == ["downloaded"]
    table, overlaps, _, report = label_source(source, tmp_path / "raw", from_params(LabelConfig, PARAMS),
                                              progress=False)
    assert report["labels"] == "derived" and report["transcripts"]
    assert table.label.tolist() == EXPECTED
    assert table.text.iloc[0] == "we went to the market yesterday"
    assert overlaps.outcome.tolist() == ["backchannel", "barge_in"]
    assert json.dumps(report)


def test_a_mono_call_with_an_rttm_writes_its_diarization(tmp_path):
    (tmp_path / "c1.wav").write_bytes(b"RIFF")
    (tmp_path / "c1.rttm").write_text("SPEAKER c1 1 0.5 1.0 <NA> <NA> caller <NA> <NA>\n")
    write_calls(calls_config(tmp_path), tmp_path / "source")
    turns = pd.read_csv(tmp_path / "source" / "diarization.csv")
    assert turns.iloc[0, :4].tolist() == ["c1", 1, 0.5, 1.5]  # caller: channel 1
    assert not (tmp_path / "source" / "transcripts.csv").exists()


@pytest.mark.parametrize(("files", "message"), [
    ({"bad name.wav": b""}, r"bad name\.wav: the file's name 'bad name' is a recording's id, so it must be letters"),
    ({"a.wav": b"", "a.flac": b""}, r"a\.wav: a second recording for 'a' \(also a\.flac\)"),
    ({"a.wav": b"", "b.json": b"{}"}, r"b\.json: transcript without a recording b\.\*"),
    ({"a.wav": b"", "b.rttm": b""}, r"b\.rttm: diarization without a recording b\.\*"),
    ({"notes.txt": b""}, r"no recording \(\.wav"),
    ({"a.wav": b"", "a.rttm": b"SPEAKER a 1 0 1 <NA> <NA> bob <NA> <NA>\n"}, r"a\.rttm: speaker 'bob' is neither"),
    ({"a.wav": b"", "a.csv": "speaker,start,end,word\nagent,0,1,caf\xe9\n".encode("latin-1")},
     r"a\.csv: not UTF-8 text"),
])
def test_a_bad_calls_folder_is_one_line_naming_the_file(tmp_path, files, message):
    folder = tmp_path / "calls"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    with pytest.raises(DataError, match=message) as caught:
        write_calls(calls_config(folder), tmp_path / "source")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "source" / "manifest.csv").exists()


def test_a_missing_folder_and_sub_folders(tmp_path):
    with pytest.raises(DataError, match="calls folder not found"):
        find_calls(tmp_path / "nowhere")
    (tmp_path / "sub.wav").mkdir()  # a folder named like a recording is not one
    (tmp_path / "real.flac").write_bytes(b"")
    assert list(find_calls(tmp_path)[0]) == ["real"]


def test_hidden_files_and_links_to_nothing_are_passed_over(tmp_path):
    (tmp_path / "real.flac").write_bytes(b"")
    (tmp_path / "._real.flac").write_bytes(b"")  # macOS's companion of a copied file
    (tmp_path / ".real.json").write_text("{}")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    recordings, transcripts, _ = find_calls(tmp_path)
    assert list(recordings) == ["real"] and not transcripts
