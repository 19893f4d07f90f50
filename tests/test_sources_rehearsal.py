import pytest
from conftest import rms_db, utterance_table

from turnfusion.schema import conversation_order
from turnfusion.sources.rehearsal import SAMPLE_RATE, render_video, unspoken_words


@pytest.mark.parametrize("previous, words, unspoken", [
    ("", "so we went there", "so we went there"),
    ("so we went there", "went there and came back", "and came back"),  # a repeated prefix
    ("so we went there and came back", "went there", ""),  # wholly said already
    ("went there", "so we went there and came back", "and came back"),  # the row contains its predecessor
    ("i said", "i was there", "i was there"),  # one shared word is chance
])
def test_unspoken_words(previous, words, unspoken):
    assert unspoken_words(previous.split(), words.split()) == unspoken.split()


def level(audio, channel, start, end):
    return rms_db(audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE), channel])


def test_each_row_is_spoken_in_its_window_on_its_speakers_channel():
    rows = conversation_order(utterance_table([
        ("v", "v_0_0", "so we went to the market yesterday", 0, 0.5, 3.0, 0),
        ("v", "v_1_0", "went to the market yesterday and it was nice", 1, 2.0, 4.5, 0),  # overlaps: only new words
        ("v", "v_2_0", "yeah", 2, 4.3, 5.0, 1),  # the listener, on the other channel, overlapping the end
        ("v", "v_0_1", "it was nice", 0, 4.0, 4.4, 0),  # wholly repeated: silent
        ("v", "v_1_1", " ".join(["word"] * 60), 1, 6.0, 7.0, 1),  # far too long for its window
        ("v", "v_0_2", "bad", 0, 8.0, 7.5, 1),  # end before start: not renderable
    ]))
    audio, counts = render_video(rows, seed=1)
    assert audio.shape[1] == 2 and abs(len(audio) - 8.0 * SAMPLE_RATE) < 50  # the last row ends at 7 s, + 1 s
    assert counts == {"rows": 6, "spoken": 4, "repeated": 1, "no_window": 0, "faster": 1, "cut": 1,
                      "not_renderable": 1}
    noise = level(audio, 1, 0.0, 0.4)
    assert level(audio, 0, 2.5, 3.0) > noise + 20  # speaker 0 speaks up to the end of each row
    assert level(audio, 0, 4.0, 4.5) > noise + 20
    assert level(audio, 1, 0.5, 4.2) < noise + 3  # the listener's channel is silent until the backchannel
    assert level(audio, 1, 4.5, 5.0) > noise + 20
    assert level(audio, 0, 5.2, 5.9) < noise + 3 and level(audio, 1, 5.2, 5.9) < noise + 3  # a gap
    assert level(audio, 1, 6.0, 7.0) > noise + 20 and level(audio, 1, 7.1, 8.0) < noise + 3  # cut to its window
