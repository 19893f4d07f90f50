import numpy as np
import pandas as pd
import pytest

from turnfusion.text.contexts import build_contexts
from turnfusion.text.words import normalize, trim_repeated


def dialogue(rows):
    """Rows one after the other (each ends before the next starts), with their position in the conversation."""
    table = pd.DataFrame(rows, columns=["video_id", "sentence_id", "position", "text", "speaker", "label", "split"])
    return table.assign(start=table.position * 1.0, end=table.position * 1.0 + 0.8)


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


def test_without_words_every_row_stays_and_its_context_is_the_speaker_turns_alone():
    table = TABLE.assign(text="")
    table.loc[1, "text"] = np.nan
    ctx = build_contexts(table, words=False).set_index("sentence_id")
    assert list(ctx.index) == list(TABLE.sentence_id) and ctx.n_empty_text.iat[0] == 0
    assert ctx.loc["a2", "context"] == "<speaker0> <ts> <speaker1> <speaker1>"
    assert ctx.loc["b1", "context"] == "<speaker1> <ts> <speaker0>"
    # words, where a row has them, are not read: the context is the same
    assert build_contexts(TABLE, words=False).context.tolist() == build_contexts(table, words=False).context.tolist()


def test_bad_speaker_value_is_a_clear_error():
    table = TABLE.copy()
    table.loc[0, "speaker"] = 5
    with pytest.raises(ValueError, match="speaker must be 0 or 1, got 5"):
        build_contexts(table)


def test_turn_shift_marks_follow_the_speaker_and_no_label_reaches_a_context():
    table = dialogue([("w", "w0", 0, "so we went", 0, 1, "train"), ("w", "w1", 1, "went home", 0, 0, "train"),
                      ("w", "w2", 2, "yes", 1, 2, "train"), ("w", "w3", 3, "and then", 0, 0, "train")])
    ctx = build_contexts(table, n_previous=3).set_index("sentence_id").context
    assert ctx["w1"] == "<speaker0> so we went <speaker0> went home"  # labelled shift, but the same speaker went on
    assert ctx["w3"] == "<speaker0> so we went <speaker0> went home <ts> <speaker1> yes <ts> <speaker0> and then"
    for labels in ([0, 0, 0, 0], [1, 1, 1, 1], [2, 1, 0, 2]):
        assert build_contexts(table.assign(label=labels), n_previous=3).context.tolist() == ctx.tolist()
    assert build_contexts(table.drop(columns="label"), n_previous=3).context.tolist() == ctx.tolist()


# MM-F2F's first rows (../shared/mmf2f/val.csv): each `k` is a shift row and a keep window cut from the same turn
MMF2F_ROWS = [("1BIHGw299eI", "1BIHGw299eI_0_0", "yes i can hear you", 0, 4.564, 6.706, 0),
              ("1BIHGw299eI", "1BIHGw299eI_1_0", "can hear you very well", 1, 6.125, 7.467, 0),
              ("1BIHGw299eI", "1BIHGw299eI_0_1", "i can hear you well", 0, 11.245, 12.187, 1),
              ("1BIHGw299eI", "1BIHGw299eI_1_1", "i can hear you well as well", 1, 11.245, 12.588, 1),
              ("1BIHGw299eI", "1BIHGw299eI_0_2", "oh very good very good so have we", 0, 12.608, 17.181, 0)]


def mmf2f_table(rows=MMF2F_ROWS):
    return pd.DataFrame(rows, columns=["video_id", "sentence_id", "text", "label", "start", "end", "speaker"])


def test_a_window_never_reads_its_twin_or_anything_that_ended_after_it_started():
    table = mmf2f_table()
    ctx = build_contexts(table).set_index("sentence_id")
    # 1_1's twin 0_1 starts with it: not history. Before the drop-after-trim fix, trim_overlap lost this <ts>.
    assert ctx.context["1BIHGw299eI_1_1"] == ("<speaker0> yes i can hear you <speaker0> can hear you very well "
                                              "<ts> <speaker1> i can hear you well as well")
    trimmed = build_contexts(table, trim_overlap=True).set_index("sentence_id").context
    assert trimmed["1BIHGw299eI_1_1"] == ("<speaker0> yes i <speaker0> can hear you very well <ts> <speaker1> i can "
                                          "hear you well as well")
    assert ctx.context["1BIHGw299eI_1_0"] == "<speaker0> can hear you very well"  # 0_0 ends after 1_0 starts
    for row in ctx.itertuples():  # every piece of every context ended at or before the row started
        earlier = table[table.end <= row.start]
        assert row.n_previous_used == min(2, len(earlier))


def test_rows_that_tie_on_time_are_ordered_by_content_never_by_file_order():
    rows = [*MMF2F_ROWS, ("1BIHGw299eI", "1BIHGw299eI_0_9", "so what do you like", 0, 20.0, 21.0, 1),
            ("1BIHGw299eI", "1BIHGw299eI_1_9", "what do you like", 1, 20.0, 21.0, 1),
            ("1BIHGw299eI", "1BIHGw299eI_0_10", "music", 0, 21.5, 22.0, 0)]
    want = build_contexts(mmf2f_table(rows)).set_index("sentence_id").context
    for order in (rows[::-1], rows[3:] + rows[:3]):
        got = build_contexts(mmf2f_table(order)).set_index("sentence_id").context
        assert got.to_dict() == want.to_dict()
    relabelled = mmf2f_table([(v, s.replace("_0_", "_x_").replace("_1_", "_0_").replace("_x_", "_1_"), t, 1 - lab % 2,
                               a, b, sp) for v, s, t, lab, a, b, sp in rows])
    assert build_contexts(relabelled).context.tolist() == want.tolist()


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
