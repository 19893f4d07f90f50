import numpy as np
from conftest import rms_db, utterance_table

from turnfusion.data.sources.rehearsal import GAP_S, SAMPLE_RATE, render_video
from turnfusion.data.sources.rendering import map_in_fresh_processes
from turnfusion.schema import conversation_order

ROWS = [
    ("v", "v_0_0", "so we went to the market yesterday", 0, 0.5, 3.0, 0),
    ("v", "v_1_0", "went to the market yesterday and it was nice", 1, 2.0, 4.5, 0),  # overlaps the row before
    ("v", "v_2_0", "yeah", 2, 4.3, 5.0, 1),  # the listener, overlapping the end
    ("v", "v_0_1", "it was nice", 0, 4.0, 4.4, 0),  # wholly said by an earlier row
    ("v", "v_1_1", " ".join(["word"] * 30), 1, 6.0, 7.0, 1),  # far too long for its window
    ("v", "v_0_2", "", 0, 8.0, 8.5, 1),  # no words: not renderable
]


def level(audio, channel, start, end):
    return rms_db(audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE), channel])


def test_each_row_is_its_own_full_clip_on_its_speakers_channel_whatever_the_windows():
    rows = conversation_order(utterance_table(ROWS))
    audio, spans, counts = render_video(rows, seed=1)
    assert counts == {"rows": 6, "spoken": 5, "not_renderable": 1}
    assert audio.shape[1] == 2 and "v_0_2" not in set(spans.sentence_id)
    spans = spans.set_index("sentence_id")
    starts, ends = spans.audio_start.to_numpy(), spans.audio_end.to_numpy()
    assert np.all(starts[1:] - ends[:-1] > GAP_S - 0.01)  # one clip after another, never overlapping
    assert abs(len(audio) / SAMPLE_RATE - (ends[-1] + GAP_S)) < 0.01
    noise = level(audio, 0, 0.0, GAP_S - 0.05)
    for sentence_id, (start, end) in spans.iterrows():
        speaker = int(rows.set_index("sentence_id").speaker[sentence_id])
        assert level(audio, speaker, start, end) > noise + 20, sentence_id  # spoken, even if "already said"
        assert level(audio, 1 - speaker, start, end) < noise + 3, sentence_id  # the listener's channel: no speech
    # no row is sped up or cut to its window: 30 words take about 30 times as long as one word, at one rate
    seconds = spans.audio_end - spans.audio_start
    assert seconds["v_1_1"] > 5.0 and seconds["v_2_0"] < 0.8


def test_a_rows_audio_never_depends_on_its_label_or_its_window():
    rows = conversation_order(utterance_table(ROWS))
    relabelled = rows.assign(label=(rows.label + 1) % 3, end=rows.end + np.arange(len(rows)) * 0.3,
                             sentence_id=rows.sentence_id + "x")
    # each in a fresh process, as the source stage renders a video (eSpeak NG keeps state between utterances)
    (first, first_spans, _), (second, second_spans, _) = map_in_fresh_processes(
        render_video, [(rows, 7), (relabelled, 7)], workers=1)
    assert np.array_equal(first, second)
    assert np.array_equal(first_spans[["audio_start", "audio_end"]], second_spans[["audio_start", "audio_end"]])


def test_the_rehearsals_recordings_never_depend_on_labels_even_inside_the_ids(tmp_path):
    """MM-F2F's sentence ids are `{video}_{label}_{k}`: a mutant that rendered rows in sentence_id order survived the
    test above (it changes the label but keeps the label digit in the id). Here the ids change with the labels."""
    import soundfile as sf
    from conftest import params_config

    from turnfusion.config import Mmf2fConfig
    from turnfusion.data.sources.mmf2f import import_mmf2f

    rows = [("v", 1, "so we went to the market", 0.5, 2.0, 0), ("v", 0, "did you like it", 2.5, 3.5, 1),
            ("v", 2, "yeah", 3.6, 4.0, 0), ("v", 0, "it was nice", 4.5, 5.5, 1)]
    rendered = []
    for shift in (0, 1):
        table = utterance_table([(v, f"{v}_{(label + shift) % 3}_{k}", text, (label + shift) % 3, start, end, speaker)
                                 for k, (v, label, text, start, end, speaker) in enumerate(rows)])
        folder = tmp_path / f"labels+{shift}"
        folder.mkdir()
        table.to_csv(folder / "pool.csv", index=False)
        spoken = import_mmf2f(params_config(Mmf2fConfig, annotations={"pool": str(folder / "pool.csv")},
                                            recordings="rehearsal"), folder / "source", seed=3)
        audio, _ = sf.read(folder / "source" / "remote" / "v.flac")
        rendered.append((audio, spoken.sort_values("start")[["audio_start", "audio_end"]].to_numpy()))
    assert np.array_equal(rendered[0][0], rendered[1][0]) and np.array_equal(rendered[0][1], rendered[1][1])
