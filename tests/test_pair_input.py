"""The pair input of a BERT-type text encoder (`text.input_form: pair`, `model.text_span`): the history as segment A,
the current utterance as segment B, on every path: the tokenize stage, the embedding cache and training, `predict`,
`predict-csv`, `TurnSession` and the ONNX graph. The encoder is a small BERT saved from config with a WordPiece
tokenizer whose tokenizer.json pads every input (as all-MiniLM-L6-v2's pads to 128)."""

import json
import shutil

import numpy as np
import pandas as pd
import pipeline
import pytest
import torch
import yaml
from conftest import REPO, params_config, run_module, utterance_table
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, BertTokenizerFast

from turnfusion.config import ParamsError, SegmentConfig, TextConfig, validate_params
from turnfusion.data.segment import build_store
from turnfusion.data.stores import PackedTokens, SegmentStore
from turnfusion.data.tokenize import load_tokenizer, tokenize_table, train_tokenizer
from turnfusion.errors import DataError
from turnfusion.models.encoding import segment_ids, text_hidden
from turnfusion.models.pooling import span_mask
from turnfusion.text.history import histories
from turnfusion.text.words import context_string, encode_contexts, normalize, pair_separator_id

WORDS = ["so i went to the market and", "did you", "yeah", "it was nice you know", "what about you", "right"]
PADDED_TO = 40


def bert_folder(directory, words=WORDS):
    """A BERT-type text encoder folder: WordPiece vocabulary of `words` and the marks, BERT's pair template, a
    tokenizer.json that pads every input to PADDED_TO, a 2-layer BertModel."""
    names = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", "you", "them",
             *sorted(set(" ".join(words).split()) - {"you", "them"})]
    core = Tokenizer(models.WordPiece({t: i for i, t in enumerate(names)}, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    BertTokenizerFast(tokenizer_object=core, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                      cls_token="[CLS]", mask_token="[MASK]").save_pretrained(directory)
    core.enable_padding(length=PADDED_TO, pad_id=0, pad_token="[PAD]")
    core.save(str(directory / "tokenizer.json"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(names), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(directory)
    return directory


def tokens_of(tokenizer, ids):
    return tokenizer.convert_ids_to_tokens(list(ids))


def test_a_pair_is_the_history_then_the_current_utterance_and_loses_its_history_first(tmp_path):
    tokenizer = load_tokenizer(str(bert_folder(tmp_path / "bert")))
    context = context_string(["so i went to the market and", "did you", "what about you"], [0, 1, 1], False,
                             form="pair")
    assert context == "them: so i went to the market and you: did you\nwhat about you"  # marks relative to the speaker
    (ids,), truncated = encode_contexts(tokenizer, [context], 64, "pair")
    assert tokens_of(tokenizer, ids) == ["[CLS]", "them", ":", "so", "i", "went", "to", "the", "market", "and", "you",
                                         ":", "did", "you", "[SEP]", "what", "about", "you", "[SEP]"]
    assert truncated == 0  # and no pad: the tokenizer.json's own padding to PADDED_TO is not applied
    (ids,), truncated = encode_contexts(tokenizer, [context], 9, "pair")
    assert tokens_of(tokenizer, ids) == ["[CLS]", ":", "did", "you", "[SEP]", "what", "about", "you", "[SEP]"]
    assert truncated == 1
    (ids,), _ = encode_contexts(tokenizer, [context], 5, "pair")  # no room for the history: B keeps its end
    assert tokens_of(tokenizer, ids) == ["[CLS]", "[SEP]", "about", "you", "[SEP]"]
    with pytest.raises(DataError, match="special tokens"):
        encode_contexts(tokenizer, [context], 3, "pair")


def test_no_input_is_padded_by_a_hub_tokenizer_file(tmp_path):
    folder = bert_folder(tmp_path / "bert")
    as_filed = Tokenizer.from_file(str(folder / "tokenizer.json"))  # as a processor reads a model folder's file
    assert as_filed.padding is not None
    for form, context, want in (("context", "did you", ["did", "you"]),
                                ("pair", "them: yeah\ndid you", ["[CLS]", "them", ":", "yeah", "[SEP]", "did", "you",
                                                                 "[SEP]"])):
        (ids,), _ = encode_contexts(as_filed, [context], 32, form)
        assert [as_filed.id_to_token(i) for i in ids] == want  # with the file's padding: [PAD]s to 40, cut to 32
    assert load_tokenizer(str(folder)).backend_tokenizer.padding is None  # and the token store saves it so


def test_a_tokenizer_without_a_pair_template_is_refused(tmp_path):
    assert pair_separator_id(train_tokenizer(WORDS * 3, 300)) is None
    assert pair_separator_id(load_tokenizer(str(bert_folder(tmp_path / "bert")))) == 3
    table = utterance_table([("v", f"v_{i}", WORDS[i], i % 3, i, i + 0.5, i % 2) for i in range(6)])
    table = table.assign(position=range(6), split="train")
    with pytest.raises(DataError, match="text.input_form: pair needs a tokenizer with a segment-pair template"):
        tokenize_table(table, tmp_path / "tokens", params_config(TextConfig, input_form="pair"))


def test_the_span_a_pooling_reads_and_the_segment_ids_come_from_the_ids():
    ids = torch.tensor([[2, 10, 11, 3, 12, 13, 3, 0, 0], [2, 3, 14, 3, 0, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    assert span_mask(ids, mask, "current", 3).long().tolist() == [[0, 0, 0, 0, 1, 1, 0, 0, 0],
                                                                  [0, 0, 1, 0, 0, 0, 0, 0, 0]]
    assert span_mask(ids, mask, "cls", 3).long().tolist() == [[1] + [0] * 8] * 2
    assert torch.equal(span_mask(ids, mask, "all", 3), mask.bool())
    assert segment_ids(ids, 3).tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1, 1]]


def test_a_bert_encoder_that_knows_its_separator_reads_segment_b_as_b(tmp_path):
    encoder = BertModel.from_pretrained(str(bert_folder(tmp_path / "bert"))).eval()
    ids = torch.tensor([[2, 10, 11, 3, 12, 13, 3]])
    mask = torch.ones_like(ids)
    as_one_segment = text_hidden(encoder, ids, mask)
    encoder.config.sep_token_id = 3
    assert not torch.allclose(text_hidden(encoder, ids, mask), as_one_segment)
    explicit = encoder(input_ids=ids, attention_mask=mask, token_type_ids=torch.tensor([[0, 0, 0, 0, 1, 1, 1]]))
    assert torch.allclose(text_hidden(encoder, ids, mask), explicit.last_hidden_state)


def test_params_refuse_a_span_of_a_pair_without_the_pair_input():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["text_span"] = "current"
    with pytest.raises(ParamsError, match="model.text_span 'current' reads a segment of a pair"):
        validate_params(params)
    params["text"]["input_form"] = "pair"
    validate_params(params)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A text model on the pair input, pooled over the current utterance, its encoder frozen (so evaluation reads
    the embedding cache, cut to the span, and every other path the token ids): the stages as DVC runs them."""
    root = tmp_path_factory.mktemp("pair")
    pipeline.recordings(root / "raw")
    rows = [("s1", f"s1_{i}", WORDS[i % 6], i % 3, 0.5 * i, 0.5 * i + 0.45, i % 2) for i in range(12)]
    rows += [("m1", f"m1_{i}", WORDS[(i + 2) % 6], i % 3, 0.7 * i, 0.7 * i + 0.6, (i // 2) % 2) for i in range(7)]
    table = utterance_table(rows).assign(split=["train"] * 8 + ["val"] * 4 + ["test"] * 7)
    table.drop(columns="split").to_csv(root / "val.csv", index=False)
    bert = bert_folder(root / "bert")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["text"].update(tokenizer=str(bert), input_form="pair", max_length=24)
    params["model"].update(text_encoder=str(bert), audio_encoder="config", audio_config=pipeline.AUDIO_CFG,
                           text_span="current", text_pooling="mean")
    params["train"].update(epochs=2, batch_size=4, device="cpu", encoders="frozen")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    build_store(table, root / "raw", root / "segments", SegmentConfig(16000, 1.5, "mix", False, 0.5, "keep"),
                progress=False)
    store = SegmentStore.open(root / "segments")
    tokenize_table(store.index, root / "tokens", params_config(TextConfig, **params["text"]), store.audio_policy())
    pd.DataFrame({"sentence_id": table.sentence_id, "trp": 0.5}).to_parquet(root / "trp.parquet")
    run_module(root, "stages.embed", "--tokens", "tokens", "--segments", "segments", "--teacher", "unused",
        "--audio-encoder", "unused", "--out", "embeddings", "--report", "embed.json")
    run_module(root, "stages.train", "--mode", "text", "--segments", "segments", "--tokens", "tokens", "--trp",
        "trp.parquet", "--embeddings", "embeddings", "--out", "models/text", "--checkpoints", "ck", "--live", "live")
    return root, table


def test_the_token_store_puts_each_current_utterance_in_segment_b(trained):
    root, table = trained
    tokens = PackedTokens(root / "tokens")
    tokenizer = tokens.tokenizer()
    for k, row in tokens.index.iterrows():
        pieces = tokens_of(tokenizer, tokens.row(k))
        second = pieces.index("[SEP]") + 1
        assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
        assert pieces[second:-1] == tokenizer.tokenize(normalize(row.text))
    config = json.loads((root / "models/text/config.json").read_text())
    assert (config["text_input"], config["text_span"], config["text_config"]["sep_token_id"]) == ("pair", "current", 3)


def test_every_path_reads_the_current_utterance_as_training_did(trained, tmp_path):
    from turnfusion.evaluation.evaluate import model_inputs, own_history, test_inputs
    from turnfusion.serving.export import export
    from turnfusion.serving.onnx_backend import OnnxTurnModel, TurnSession
    from turnfusion.serving.predict import TurnPredictor
    from turnfusion.training.encoders import load_encoders
    from turnfusion.training.loop import predict

    root, table = trained
    loaded, store, token_store, rows = test_inputs({"text": root / "models/text"}, root / "segments", root / "tokens",
                                                   root / "trp.parquet")
    model = loaded["text"][0]
    inputs = model_inputs(model, load_encoders(root / "embeddings"))
    assert inputs.kind == "cached"  # the frozen encoder: the cache, cut to the current utterance's tokens
    cached = predict(model, inputs.examples(own_history(rows, model), root / "embeddings", token_store, store, model),
                     4, torch.device("cpu"), inputs.collate)
    want = pd.DataFrame(cached, index=rows.sentence_id, columns=["keep", "shift", "backchannel"])

    run_module(root, "turnfusion.serving.cli", "predict-csv", "--model", "models/text", "--csv", "val.csv",
               "--audio-dir", "raw", "--out", "predictions.csv")
    csv = pd.read_csv(root / "predictions.csv").set_index("sentence_id")
    csv = csv[["p_keep", "p_shift", "p_backchannel"]].set_axis(want.columns, axis=1)
    assert np.abs(csv.loc[want.index].to_numpy() - want.to_numpy()).max() < 1e-4

    export(root / "models/text", tmp_path / "onnx")
    n_previous = json.loads((root / "tokens/preprocessor_config.json").read_text())["n_previous"]
    ordered = table.sort_values(["video_id", "start"]).reset_index(drop=True)
    history = histories(ordered, n_previous)
    predictor, onnx = TurnPredictor(root / "models/text"), OnnxTurnModel(tmp_path / "onnx", "fp32")
    for name, session in (("predict", TurnSession(predictor)), ("onnx", TurnSession(onnx))):
        for _, conversation in ordered.groupby("video_id", sort=False):
            session.reset()
            for i, row in conversation.iterrows():
                context = [{"text": ordered.text[r], "speaker": int(ordered.speaker[r])} for r in history[i]]
                alone = predictor.predict(row.text, None, int(row.speaker), context)
                got = session.add(row.text, None, int(row.speaker))
                expected = want.loc[row.sentence_id]
                assert max(abs(got[c] - expected[c]) for c in want.columns) < 1e-4, (name, row.sentence_id)
                assert max(abs(alone[c] - expected[c]) for c in want.columns) < 1e-4

    # the span matters: pooled over the whole pair, the same weights answer otherwise (so a path that ignored the
    # span would have failed above)
    whole = shutil.copytree(root / "models/text", tmp_path / "whole")
    config = json.loads((whole / "config.json").read_text())
    (whole / "config.json").write_text(json.dumps({**config, "text_span": "all"}))
    row = ordered.iloc[3]
    context = [{"text": ordered.text[r], "speaker": int(ordered.speaker[r])} for r in history[3]]
    other = TurnPredictor(whole).predict(row.text, None, int(row.speaker), context)
    assert max(abs(other[c] - want.loc[row.sentence_id, c]) for c in want.columns) > 1e-3


@pytest.mark.parametrize("edit, message", [
    (lambda folder: edit_json(folder / "preprocessor_config.json", input_form="context"),
     r"input_form 'context', but the model .* was trained on 'pair' inputs"),
    (lambda folder: edit_json(folder / "config.json", text_input="context"),
     r"text_span 'current' reads a segment of a pair; the text input is 'context'"),
    (lambda folder: edit_json(folder / "config.json", text_span="middle"), r"text_span must be one of"),
    (lambda folder: edit_json(folder / "config.json", text_input="triple"), r"text_input must be one of"),
    (lambda folder: edit_json(folder / "config.json", text_config={"sep_token_id": None}),
     r"a pair input needs a BERT-type text encoder whose text_config gives its segment separator"),
    (lambda folder: edit_json(folder / "config.json", text_config={"vocab_size": None}),
     r"config.json: .*vocab_size|a pair input needs a BERT-type text encoder"),
    (lambda folder: edit_json(folder / "config.json", text_config={"type_vocab_size": 1}),
     r"a pair input needs two segment types \(type_vocab_size >= 2\), got type_vocab_size 1"),
    (lambda folder: edit_json(folder / "config.json", text_config={"sep_token_id": 4}),
     r"tokenizer.json: its pair template's separator is 3, but the text encoder's sep_token_id in config.json is 4"),
    (lambda folder: padded_tokenizer(folder / "tokenizer.json"),
     r"tokenizer.json: pads every input to 40 tokens: a model trained on such padded ids"),
])
def test_a_folder_whose_input_form_and_model_disagree_is_refused(trained, tmp_path, edit, message):
    from turnfusion.serving.predict import TurnPredictor

    folder = shutil.copytree(trained[0] / "models/text", tmp_path / "model")
    edit(folder)
    with pytest.raises(DataError, match=message):
        TurnPredictor(folder)


def edit_json(path, text_config=None, **fields):
    """`fields` set in a JSON file; `text_config`: keys of its text_config set (None: removed)."""
    values = json.loads(path.read_text())
    for key, value in (text_config or {}).items():
        values["text_config"] = {k: v for k, v in values["text_config"].items() if k != key}
        if value is not None:
            values["text_config"][key] = value
    path.write_text(json.dumps({**values, **fields}))


def padded_tokenizer(path):
    """The folder's tokenizer.json as a model trained before hub padding was ignored had it: padding to 40."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_padding(length=PADDED_TO)
    tokenizer.save(str(path))


def test_a_span_of_words_is_refused_for_a_corpus_without_words():
    from turnfusion.config import ModelConfig
    from turnfusion.training.train import build_model

    with pytest.raises(DataError, match="model.text_span: current reads the current utterance's words"):
        build_model("text", params_config(ModelConfig, text_span="current"), "no/embeddings", "pair", words=False)
