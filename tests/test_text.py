import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from turnfusion.text import (PackedTokens, build_contexts, encode_contexts, normalize, tokenize_table,
                             train_tokenizer)


def dialogue(rows):
    return pd.DataFrame(rows, columns=["video_id", "sentence_id", "position", "text", "speaker", "label", "split"])


TABLE = dialogue([
    ("a", "a0", 0, "Hello there!", 0, 1, "train"),
    ("a", "a1", 1, "hi how are you", 1, 0, "train"),
    ("a", "a2", 2, "fine and", 1, 0, "train"),
    ("a", "a3", 3, "you know", 1, 1, "train"),
    ("b", "b0", 0, "another talk", 1, 0, "train"),
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


def test_tokenizer_is_fitted_on_train_only_and_loads_with_autotokenizer(tmp_path):
    train = ["the cat sat on the mat"] * 50 + ["the dog sat"] * 50
    tok = train_tokenizer(train, vocab_size=400, out_dir=tmp_path / "tok")
    vocab = tok.get_vocab()
    assert "Ġcat" in vocab and "Ġsat" in vocab
    assert not any("zebra" in t for t in vocab)  # a word seen only in test: bytes and pieces only
    ids = tok("<speaker0> the zebra <ts>", add_special_tokens=False)["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    assert pieces[0] == "<speaker0>" and pieces[-1] == "<ts>" and len(pieces) > 4
    loaded = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert loaded("<speaker1> the cat <ts>", add_special_tokens=False)["input_ids"] == \
        tok("<speaker1> the cat <ts>", add_special_tokens=False)["input_ids"]
    assert loaded.truncation_side == "left"


def test_left_truncation_keeps_the_last_tokens(tmp_path):
    tok = train_tokenizer(["one two three four five six seven eight"] * 20, 300)
    full = encode_contexts(tok, ["<speaker0> one two three four five six seven eight"], max_length=1000)[0]
    cut = encode_contexts(tok, ["<speaker0> one two three four five six seven eight"], max_length=4)[0]
    assert cut == full[-4:]
    assert tok.decode(cut).split()[-1] == "eight"


def test_tokenize_table_packs_ids_with_derivable_masks(tmp_path):
    report = tokenize_table(TABLE, tmp_path, "train", vocab_size=300, max_length=6)
    store = PackedTokens(tmp_path)
    assert report["utterances"] == 6 and report["truncated"] >= 1
    assert len(store.ids) == store.index.tok_length.sum() and store.index.tok_length.max() == 6
    ids, mask = store.batch([0, 2], pad_id=store.tokenizer().pad_token_id)
    assert mask.sum(axis=1).tolist() == store.index.tok_length.iloc[[0, 2]].tolist()
    assert (ids[mask == 0] == store.tokenizer().pad_token_id).all()
