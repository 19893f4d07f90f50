from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import params_config
from sklearn.metrics import roc_auc_score

import turnfusion.training.teacher as teacher
from turnfusion.config import TeacherConfig, TextConfig
from turnfusion.data.sources.demo import OBJECTS, utterance_text
from turnfusion.data.sources.demo_turns import plan_conversation
from turnfusion.data.tokenize import tokenize_table
from turnfusion.schema import BACKCHANNEL, KEEP, SHIFT
from turnfusion.training.teacher import fit_and_score, trp_histogram

TEACHER = TeacherConfig(base=None, n_layer=2, n_embd=64, n_head=2, dropout=0.1, attention_dropout=0.1, epochs=8,
                        batch_size=32, lr=3e-3, seed=0, device="cpu", crossfit_folds=0)


def tokenize(table, out):
    tokenize_table(table, out, params_config(TextConfig, vocab_size=512, max_length=48))


def demo_dialogues(n_conversations: int, n_utterances: int, seed: int) -> pd.DataFrame:
    """Text-only dialogues from the demo corpus' generative spec (no audio needed)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_conversations):
        split = "train" if c < 0.6 * n_conversations else "val" if c < 0.8 * n_conversations else "test"
        for i, u in enumerate(plan_conversation(n_utterances, rng)):
            rows.append((f"c{c}", f"c{c}_{i}", i, utterance_text(u.cue, rng, OBJECTS[u.topic]), u.speaker, u.label,
                         split))
    table = pd.DataFrame(rows, columns=["video_id", "sentence_id", "position", "text", "speaker", "label", "split"])
    return table.assign(start=table.position * 1.0, end=table.position * 1.0 + 0.8)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("teacher")
    tokenize(demo_dialogues(50, 30, seed=0), work / "tokens")
    return [fit_and_score(work / "tokens", work / f"model{k}", TEACHER, 48, progress=False) for k in range(2)]


def test_trp_is_a_probability_for_every_utterance(teacher_run):
    table, metrics = teacher_run[0]
    assert len(table) == 1500 and table.trp.between(0, 1).all()
    assert set(table.split) == {"train", "val", "test"}
    assert 1 < metrics["val_perplexity"] < 50


def test_same_trp_twice_under_the_same_seed(teacher_run):
    (a, ma), (b, mb) = teacher_run
    assert np.array_equal(a.trp.to_numpy(), b.trp.to_numpy()) and ma == mb


def test_learnt_trp_separates_turn_from_keep(teacher_run):
    table, metrics = teacher_run[0]
    test = table[(table.split == "test") & table.label.isin([KEEP, SHIFT])]
    auc = roc_auc_score(test.label == SHIFT, test.trp)
    assert auc == pytest.approx(metrics["test"]["trp_auc_shift_vs_keep"], abs=1e-4)
    assert auc > 0.7  # a random (untrained) teacher scores about 0.5
    assert metrics["test"]["mean_trp_shift"] > 2 * metrics["test"]["mean_trp_keep"]


def test_untrained_teacher_does_not_separate(tmp_path):
    tokenize(demo_dialogues(20, 30, seed=1), tmp_path / "tokens")
    table, _ = fit_and_score(tmp_path / "tokens", tmp_path / "m", replace(TEACHER, epochs=0), 48, progress=False)
    test = table[table.label.isin([KEEP, SHIFT])]
    assert abs(roc_auc_score(test.label == SHIFT, test.trp) - 0.5) < 0.15


def test_histogram_rows_are_shares_per_class():
    hist = trp_histogram(np.array([0.01, 0.5, 0.99, 0.98]), np.array([KEEP, SHIFT, SHIFT, BACKCHANNEL]))
    assert hist[["keep", "shift", "backchannel"]].sum().tolist() == [1.0, 1.0, 1.0]
    assert hist.keep.iat[0] == 1.0 and hist["shift"].iat[-1] == 0.5


def trained_and_scored(monkeypatch, tokens_dir, out, cfg, train_trp_read=True):
    """Run fit_and_score and record, per teacher model, the rows it trained on and the rows whose TRP it gave."""
    row_of, trained, scored = {}, {}, {}
    real_lm_sequences, real_train, real_score = teacher.lm_sequences, teacher.train_teacher, teacher.score_trp

    def lm_sequences(contexts, following):
        seqs = real_lm_sequences(contexts, following)
        row_of.update({id(x): i for i, x in enumerate(contexts)} | {id(x): i for i, x in enumerate(seqs)})
        return seqs

    def train_teacher(model, train_seqs, *args, **kwargs):
        trained[id(model)] = {row_of[id(x)] for x in train_seqs}
        return real_train(model, train_seqs, *args, **kwargs)

    def score_trp(model, contexts, *args, **kwargs):
        for x in contexts:  # a later score of a row replaces an earlier one
            scored[row_of[id(x)]] = id(model)
        return real_score(model, contexts, *args, **kwargs)

    for name, fn in [("lm_sequences", lm_sequences), ("train_teacher", train_teacher), ("score_trp", score_trp)]:
        monkeypatch.setattr(teacher, name, fn)
    table, _ = fit_and_score(tokens_dir, out, cfg, 48, progress=False, train_trp_read=train_trp_read)
    return table, trained, scored


def rows_scored_by_a_teacher_that_saw_them(table, trained, scored) -> int:
    rows = np.flatnonzero((table.split == "train").to_numpy())
    return sum(r in trained[scored[r]] for r in rows)


def test_crossfitted_train_trp_never_comes_from_a_teacher_that_trained_on_the_row(monkeypatch, tmp_path):
    tokenize(demo_dialogues(12, 10, seed=2), tmp_path / "tokens")
    cfg = replace(TEACHER, epochs=1, crossfit_folds=2)
    table, trained, scored = trained_and_scored(monkeypatch, tmp_path / "tokens", tmp_path / "cf", cfg)
    assert len(trained) == 3 and set(scored) == set(range(len(table)))  # full teacher + two fold teachers
    assert rows_scored_by_a_teacher_that_saw_them(table, trained, scored) == 0
    full = next(m for m, rows in trained.items() if len(rows) == max(map(len, trained.values())))
    held_out = (table.split != "train").to_numpy()
    assert all(scored[r] == full for r in np.flatnonzero(held_out))  # val/test: the teacher trained on all of train
    # the same check catches a leaky variant: in-sample TRP (every train row scored by a teacher that saw it)
    leaky, trained, scored = trained_and_scored(monkeypatch, tmp_path / "tokens", tmp_path / "is",
                                                replace(cfg, crossfit_folds=0))
    assert rows_scored_by_a_teacher_that_saw_them(leaky, trained, scored) == (leaky.split == "train").sum()


def test_auto_crossfits_only_when_a_model_reads_the_train_trp_and_the_rest_does_not_change(monkeypatch, tmp_path):
    tokenize(demo_dialogues(12, 10, seed=2), tmp_path / "tokens")
    cfg = replace(TEACHER, epochs=1, crossfit_folds="auto")
    read, trained, scored = trained_and_scored(monkeypatch, tmp_path / "tokens", tmp_path / "read", cfg)
    assert len(trained) == 3 and rows_scored_by_a_teacher_that_saw_them(read, trained, scored) == 0
    unread, trained, _ = trained_and_scored(monkeypatch, tmp_path / "tokens", tmp_path / "unread", cfg,
                                            train_trp_read=False)
    assert len(trained) == 1  # the saved teacher only
    held_out = (read.split != "train").to_numpy()
    np.testing.assert_array_equal(read.trp[held_out], unread.trp[held_out])  # val / test: the same teacher
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "read" / name).read_bytes() == (tmp_path / "unread" / name).read_bytes()
    assert cfg.folds(True) == 2 and cfg.folds(False) == 0 and replace(cfg, crossfit_folds=3).folds(False) == 3


def test_crossfit_folds_split_by_conversation():
    index = pd.DataFrame({"video_id": ["a", "a", "b", "c", "c", "d", "e"],
                          "split": ["train", "train", "train", "train", "train", "train", "test"]})
    fold = teacher.fold_of_rows(index, 2, seed=0)
    assert fold[0] == fold[1] and fold[3] == fold[4] and fold[6] == -1
    assert set(fold[:6]) == {0, 1}


def test_the_lm_target_is_the_annotated_label_not_the_next_rows_speaker():
    class Tokens:
        def convert_tokens_to_ids(self, token):
            return {"<ts>": 7, "<speaker0>": 8, "<speaker1>": 9}[token]

    index = pd.DataFrame({"video_id": ["v"] * 4, "label": [SHIFT, KEEP, BACKCHANNEL, SHIFT],
                          "speaker": [0, 0, 1, 1]})
    # row 0 is a shift although the next row is the same speaker's (overlapping windows); the last row has one too
    assert teacher.next_tokens(index, Tokens()) == [7, 8, 9, 7]


class Vocab:  # what build_teacher reads of a tokenizer
    eos_token_id, pad_token_id = 1, 0

    def __len__(self):
        return 50


def test_a_teacher_from_config_trains_with_the_dropout_its_config_names_and_evaluates_without():
    import dataclasses

    import torch

    ids = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(0))
    for dropout, attention in ((0.0, 0.0), (0.3, 0.0), (0.0, 0.3)):
        cfg = dataclasses.replace(TEACHER, dropout=dropout, attention_dropout=attention)
        model = teacher.build_teacher(Vocab(), cfg, n_positions=16)
        assert (model.config.resid_pdrop, model.config.embd_pdrop, model.config.attn_pdrop) == (dropout, dropout,
                                                                                                attention)
        model.train()
        a, b = (model(input_ids=ids).logits for _ in range(2))
        assert torch.equal(a, b) == (dropout == attention == 0)  # training passes differ when something is dropped
        model.eval()
        assert torch.equal(*(model(input_ids=ids).logits for _ in range(2)))


def test_a_teacher_from_config_computes_gpt2s_gelu_with_the_fused_kernel_and_the_same_outputs():
    """The fused activation is a speed choice only: swapping it into gelu_new's model with the same weights keeps the
    hidden states (a different activation, e.g. exact GELU, moves them by ~1e-3)."""
    import torch
    from transformers import GPT2LMHeadModel

    fused = teacher.build_teacher(Vocab(), TEACHER, n_positions=16)
    assert fused.config.activation_function == "gelu_pytorch_tanh"
    twin = GPT2LMHeadModel(fused.config.__class__(**{**fused.config.to_dict(), "activation_function": "gelu_new"}))
    twin.load_state_dict(fused.state_dict())
    ids = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = (m.eval()(input_ids=ids, output_hidden_states=True).hidden_states[-1] for m in (fused, twin))
    assert torch.allclose(a, b, atol=1e-5)
