import numpy as np
import pandas as pd
import pytest

from turnfusion.text import build_contexts, normalize, trim_repeated


def dialogue(rows):
    return pd.DataFrame(rows, columns=["video_id", "sentence_id", "position", "text", "speaker", "label", "split"])


TABLE = dialogue([
    ("a", "a0", 0, "Hello there!", 0, 1, "train"),
    ("a", "a1", 1, "hi how are you", 1, 0, "train"),
    ("a", "a2", 2, "fine and", 1, 0, "train"),
    ("a", "a3", 3, "you know", 1, 1, "train"),
    ("b", "b0", 0, "another talk", 1, 1, "train"),
    ("b", "b1", 1, "yes", 0, 1, "train"),
])


def test_normalize_lower_cases_and_applies_the_punctuation_policy():
    assert normalize("  Well, I DON'T know -- do you?  ") == "well i don't know do you"
    assert normalize("Well, OK?", punctuation="keep") == "well, ok?"
    with pytest.raises(ValueError):
        normalize("x", punctuation="drop")


def test_context_has_speaker_marks_order_and_turn_shifts():
    ctx = build_contexts(TABLE).set_index("sentence_id")
    assert ctx.loc["a2", "context"] == "<speaker0> hello there <ts> <speaker1> hi how are you <speaker1> fine and"
    # exactly two predecessors, in order: a0 drops out of a3's context
    assert ctx.loc["a3", "context"] == "<speaker1> hi how are you <speaker1> fine and <speaker1> you know"


def test_context_never_crosses_conversations_and_first_utterances_have_less():
    ctx = build_contexts(TABLE).set_index("sentence_id")
    assert ctx.loc["a0", "context"] == "<speaker0> hello there"
    assert ctx.loc["b0", "context"] == "<speaker1> another talk"
    assert ctx.loc["b1", "context"] == "<speaker1> another talk <ts> <speaker0> yes"
    assert ctx.loc[["a0", "a1", "a2", "b0", "b1"], "n_previous_used"].tolist() == [0, 1, 2, 0, 1]


def test_empty_and_nan_text_are_counted_skips():
    table = TABLE.copy()
    table.loc[1, "text"] = np.nan
    table.loc[4, "text"] = "  ?! "
    ctx = build_contexts(table)
    assert "a1" not in set(ctx.sentence_id) and "b0" not in set(ctx.sentence_id)
    assert ctx.n_empty_text.iat[0] == 2
    assert ctx.set_index("sentence_id").loc["a2", "context"] == "<speaker0> hello there <ts> <speaker1> fine and"


def test_bad_speaker_value_is_a_clear_error():
    table = TABLE.copy()
    table.loc[0, "speaker"] = 5
    with pytest.raises(ValueError, match="speaker must be 0 or 1, got 5"):
        build_contexts(table)


def test_turn_shift_marks_follow_the_label_not_the_speaker_column():
    # MM-F2F: rows are windows; a shift is what the label says, whoever the next row's speaker is
    table = dialogue([("w", "w0", 0, "so we went", 0, 1, "train"), ("w", "w1", 1, "went home", 0, 0, "train"),
                      ("w", "w2", 2, "yes", 1, 2, "train"), ("w", "w3", 3, "and then", 0, 0, "train")])
    ctx = build_contexts(table, n_previous=3).set_index("sentence_id").context
    assert ctx["w1"] == "<speaker0> so we went <ts> <speaker0> went home"
    assert ctx["w3"] == "<speaker0> so we went <ts> <speaker0> went home <speaker1> yes <speaker0> and then"


@pytest.mark.parametrize("previous, following, kept", [
    ("and then we went to the park", "went to the park with", "and then we"),  # suffix = prefix
    ("i think so", "well i think so too", ""),  # contained in its successor
    ("well i think so too", "i think so", "well"),  # contains its successor
    ("so i said", "i was there", "so i said"),  # one word in common: chance, not a repeated window
    ("yeah", "yeah right", "yeah"),  # a one-word utterance is not dropped for a one-word repeat
    ("we went there", "nothing in common", "we went there"),
])
def test_trim_repeated(previous, following, kept):
    assert trim_repeated(previous, following) == kept


def test_trim_overlap_takes_repeated_words_out_of_previous_utterances_only():
    table = dialogue([("w", "w0", 0, "and then we went to the park", 0, 0, "train"),
                      ("w", "w1", 1, "went to the park with", 0, 0, "train"),
                      ("w", "w2", 2, "with my friend", 0, 1, "train")])
    trimmed = build_contexts(table, trim_overlap=True).set_index("sentence_id").context
    # w1 loses nothing: "with" is one word; w0 loses what w1 repeats; the current utterance stays whole
    assert trimmed["w2"] == "<speaker0> and then we <speaker0> went to the park with <speaker0> with my friend"
    assert trimmed["w1"] == "<speaker0> and then we <speaker0> went to the park with"
    assert build_contexts(table).set_index("sentence_id").context["w1"] == (
        "<speaker0> and then we went to the park <speaker0> went to the park with")
    table.loc[0, "text"] = "went to the park"  # wholly repeated: gone, and the context has one fewer piece
    assert build_contexts(table, trim_overlap=True).set_index("sentence_id").context["w1"] == (
        "<speaker0> went to the park with")
