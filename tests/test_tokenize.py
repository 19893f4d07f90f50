import pytest
from conftest import params_config
from test_text import TABLE
from transformers import AutoTokenizer

from turnfusion.config import TextConfig
from turnfusion.data.stores import PackedTokens
from turnfusion.data.tokenize import tokenize_table, train_tokenizer
from turnfusion.schema import DataError
from turnfusion.text.contexts import build_contexts
from turnfusion.text.words import encode_contexts, pad_right


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
    (full,), n_full = encode_contexts(tok, ["<speaker0> one two three four five six seven eight"], max_length=1000)
    (cut,), n_cut = encode_contexts(tok, ["<speaker0> one two three four five six seven eight"], max_length=4)
    assert cut == full[-4:] and (n_full, n_cut) == (0, 1)
    assert tok.decode(cut).split()[-1] == "eight"


def test_tokenize_table_packs_ids_with_derivable_masks(tmp_path):
    report = tokenize_table(TABLE, tmp_path, params_config(TextConfig, vocab_size=300, max_length=6))
    store = PackedTokens(tmp_path)
    full = [store.tokenizer()(c, add_special_tokens=False)["input_ids"] for c in build_contexts(TABLE).context]
    assert report["utterances"] == 6 and report["truncated"] == sum(len(f) > 6 for f in full) >= 1
    assert len(store.ids) == store.index.tok_length.sum() and store.index.tok_length.max() == 6
    for i, ids in enumerate(full):  # each row's packed ids are the end of its context
        assert store.row(i).tolist() == ids[-6:]
    ids, mask = pad_right([store.row(0), store.row(2)], pad_id=store.tokenizer().pad_token_id)
    assert mask.sum(axis=1).tolist() == store.index.tok_length.iloc[[0, 2]].tolist()
    assert (ids[mask == 0] == store.tokenizer().pad_token_id).all()


def test_the_token_store_holds_the_whole_processor_that_made_it_and_refuses_a_bad_one_before_work(tmp_path):
    from turnfusion.serving.processing import ProcessorConfig

    policy = {"sample_rate": 16000, "max_seconds": 2.0, "channels": "speaker", "trim_vad_threshold": None}
    text = params_config(TextConfig, vocab_size=300, max_length=6, n_previous=1)
    tokenize_table(TABLE, tmp_path / "a", text, policy)
    made = ProcessorConfig.of_token_store(tmp_path / "a")
    assert made == ProcessorConfig(**policy, max_length=6, n_previous=1, punctuation=text.punctuation,
                                   trim_overlap=text.trim_overlap, words=True)
    tokenize_table(TABLE.assign(text=float("nan")), tmp_path / "b", text, policy)  # empty cells read back as NaN
    assert ProcessorConfig.of_token_store(tmp_path / "b").words is False
    with pytest.raises(DataError, match=r"audio_policy.json \+ text params: max_seconds must be"):
        tokenize_table(TABLE, tmp_path / "c", text, {**policy, "max_seconds": 0.01})
    assert not (tmp_path / "c").exists()
    with pytest.raises(DataError, match=r"preprocessor_config.json: missing; a token store holds the processor"):
        ProcessorConfig.of_token_store(tmp_path / "c")
    assert ProcessorConfig.of_token_store(tmp_path / "a", policy) == made  # the segment store it was made from
    with pytest.raises(DataError, match=r"made from another segment store than the one given \(max_seconds: 2.0 != "
                                        r"3.0\); run the tokenize stage again"):
        ProcessorConfig.of_token_store(tmp_path / "a", {**policy, "max_seconds": 3.0})


def test_a_tokenizer_fitted_on_an_empty_training_split_is_an_error(tmp_path):
    with pytest.raises(DataError, match="text.tokenizer: train .* training split, which has no utterance"):
        tokenize_table(TABLE.assign(split="val"), tmp_path, params_config(TextConfig))
