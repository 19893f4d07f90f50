"""Stage `teacher`: a TurnGPT-style causal LM over dialogue contexts that scores transition-relevance places.

TRP of an utterance = P(turn-shift token | its context up to its last word). The LM is trained on the
training split's contexts, each followed by what the source annotates came next: the turn-shift token
where the other person took the turn (label 1), the speaker's own token where they went on (keep, or a
backchannel that did not take the turn). That token is the LM's training target, never an input: the
contexts themselves hold `<ts>` only where the speaker changes (`text.words`, `text.history`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from turnfusion.data.stores import PackedTokens
from turnfusion.schema import KEEP, LABEL_NAMES, SHIFT
from turnfusion.text.words import SPEAKER_TOKENS, TURN_SHIFT, pad_right
from turnfusion.training.loop import GPT2_ACTIVATION, index_batches, optimizer_step, pick_device, seed_everything

if TYPE_CHECKING:
    from turnfusion.config import TeacherConfig


def next_tokens(index: pd.DataFrame, tokenizer) -> list[int]:
    """The token that follows each row's context: the turn-shift token where the source annotates a shift after
    it (label 1), else its speaker's token (the speaker goes on; a backchannel does not take the turn)."""
    ts = tokenizer.convert_tokens_to_ids(TURN_SHIFT)
    speaker_ids = [tokenizer.convert_tokens_to_ids(t) for t in SPEAKER_TOKENS]
    return [ts if label == SHIFT else speaker_ids[int(speaker)]
            for label, speaker in zip(index["label"], index["speaker"], strict=True)]


def lm_sequences(contexts: list[np.ndarray], following: list[int]) -> list[np.ndarray]:
    return [np.append(c, f) for c, f in zip(contexts, following, strict=True)]


def build_teacher(tokenizer, cfg: TeacherConfig, n_positions: int):
    """GPT2LMHeadModel from a hub name / local path (`cfg.base`), or a small one from the config sizes."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if cfg.base:
        model = GPT2LMHeadModel.from_pretrained(cfg.base)
        model.resize_token_embeddings(len(tokenizer))
    else:
        config = GPT2Config(vocab_size=len(tokenizer), n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head,
                            n_positions=n_positions, bos_token_id=tokenizer.eos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                            activation_function=GPT2_ACTIVATION, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
                            attn_pdrop=cfg.attention_dropout)
        model = GPT2LMHeadModel(config)
    return model


def _lm_loss(model, seqs: list[np.ndarray], pad_id: int, device) -> tuple[torch.Tensor, int]:
    ids, mask = (torch.from_numpy(a).to(device) for a in pad_right(seqs, pad_id))
    labels = ids.masked_fill(mask == 0, -100)
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    n_predicted = int((mask[:, 1:] == 1).sum())
    return out.loss, n_predicted


def train_teacher(model, train_seqs: list[np.ndarray], val_seqs: list[np.ndarray], pad_id: int, cfg: TeacherConfig,
                  seed: int, progress: bool = True) -> dict:
    """Train as a language model; returns per-epoch history and the final validation perplexity."""
    generator = seed_everything(seed)
    dev = pick_device(cfg.device)
    model.to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        total, count = 0.0, 0
        batches = list(index_batches(len(train_seqs), cfg.batch_size, generator))
        for rows in tqdm(batches, desc=f"teacher epoch {epoch + 1}/{cfg.epochs}", disable=not progress):
            loss, n = _lm_loss(model, [train_seqs[i] for i in rows], pad_id, dev)
            optimizer_step(optimizer, loss, model.parameters())
            total, count = total + loss.item() * n, count + n
        history.append({"epoch": epoch + 1, "train_loss": total / max(count, 1),
                        "val_perplexity": perplexity(model, val_seqs, pad_id, cfg.batch_size, dev)})
    return {"history": history, "val_perplexity": history[-1]["val_perplexity"] if history else float("nan")}


@torch.no_grad()
def perplexity(model, seqs: list[np.ndarray], pad_id: int, batch_size: int = 64, device=None) -> float:
    model.eval()
    dev = device or next(model.parameters()).device
    total, count = 0.0, 0
    for rows in index_batches(len(seqs), batch_size):
        loss, n = _lm_loss(model, [seqs[i] for i in rows], pad_id, dev)
        total, count = total + loss.item() * n, count + n
    return math.exp(total / count) if count else float("nan")


@torch.no_grad()
def score_trp(model, contexts: list[np.ndarray], tokenizer, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """P(turn-shift token) right after the last token of each context, in [0, 1]."""
    model.eval()
    dev = next(model.parameters()).device
    ts = tokenizer.convert_tokens_to_ids(TURN_SHIFT)
    trp = np.zeros(len(contexts), dtype=np.float64)
    for rows in tqdm(list(index_batches(len(contexts), batch_size)), desc="TRP", disable=not progress):
        ids, mask = (torch.from_numpy(a).to(dev) for a in pad_right([contexts[i] for i in rows],
                                                                    tokenizer.pad_token_id))
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        last = mask.sum(dim=1) - 1
        probs = torch.softmax(logits[torch.arange(len(rows), device=dev), last], dim=-1)
        trp[rows] = probs[:, ts].cpu().numpy()
    return trp


def trp_report(trp: np.ndarray, labels: np.ndarray, names: dict[int, str]) -> dict:
    """ROC-AUC of TRP for shift vs keep, and mean TRP per class."""
    from sklearn.metrics import roc_auc_score

    binary = np.isin(labels, [KEEP, SHIFT])
    report = {}
    if len(set(labels[binary])) == 2:
        report["trp_auc_shift_vs_keep"] = float(roc_auc_score(labels[binary] == SHIFT, trp[binary]))
    for label, name in names.items():
        if (labels == label).any():
            report[f"mean_trp_{name}"] = float(trp[labels == label].mean())
    return report


def save_teacher(model, tokenizer, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


def fold_of_rows(index: pd.DataFrame, n_folds: int, seed: int) -> np.ndarray:
    """Cross-fitting fold of each row: the training split's conversations cut into `n_folds` folds at random,
    -1 for rows of other splits. A conversation never spans two folds."""
    video, split = index.video_id.to_numpy(), index.split.to_numpy()
    train_videos = np.array(sorted(set(video[split == "train"])))
    fold_of = dict(zip(train_videos, np.random.default_rng(seed).permutation(len(train_videos)) % n_folds, strict=True))
    return np.array([fold_of.get(v, -1) for v in video])


def fit_and_score(tokens_dir: Path, model_out: Path, cfg: TeacherConfig, max_length: int,
                  progress: bool = True, train_trp_read: bool = True) -> tuple[pd.DataFrame, dict]:
    """Train the teacher on the train split of a token store, save it, score TRP for every row.

    With `cfg.folds(train_trp_read)` >= 2 the training split's TRP is cross-fitted: its conversations are cut
    into that many folds, and each fold is scored by a teacher trained on the other folds, so a model that
    takes TRP as an input or a distillation target never sees in-sample TRP in training. Val and test
    are always scored by the teacher trained on all of train (the saved one).
    Returns (trp table: sentence_id, video_id, split, label, trp) and metrics (val perplexity,
    per-split TRP report).
    """
    tokens = PackedTokens(tokens_dir)
    tokenizer, index = tokens.tokenizer(), tokens.index
    contexts = [tokens.row(i) for i in range(len(index))]
    seqs = lm_sequences(contexts, next_tokens(index, tokenizer))
    split = index.split.to_numpy()
    seed_everything(cfg.seed)  # the model's initial weights too
    model = build_teacher(tokenizer, cfg, n_positions=max_length + 1)
    result = train_teacher(model, [s for s, sp in zip(seqs, split, strict=True) if sp == "train"],
                           [s for s, sp in zip(seqs, split, strict=True) if sp == "val"], tokenizer.pad_token_id,
                           cfg, cfg.seed, progress)
    save_teacher(model, tokenizer, Path(model_out))
    trp = score_trp(model, contexts, tokenizer, cfg.batch_size, progress)
    folds = cfg.folds(train_trp_read)
    if folds >= 2:
        fold = fold_of_rows(index, folds, cfg.seed)
        for f in range(folds):
            seed_everything(cfg.seed + 1 + f)
            fold_model = build_teacher(tokenizer, cfg, n_positions=max_length + 1)
            fold_train = [s for s, k in zip(seqs, fold, strict=True) if k not in (-1, f)]
            train_teacher(fold_model, fold_train, [], tokenizer.pad_token_id, cfg, cfg.seed + 1 + f, progress)
            rows = np.flatnonzero(fold == f)
            trp[rows] = score_trp(fold_model, [contexts[i] for i in rows], tokenizer, cfg.batch_size, progress)
    table = index[["sentence_id", "video_id", "split", "label"]].assign(trp=trp)
    labels = index.label.to_numpy()
    metrics = {"val_perplexity": round(result["val_perplexity"], 4), "crossfit_folds": folds,
               "train_trp": "cross-fitted" if folds >= 2 else "in-sample"}
    for name in ("train", "val", "test"):
        part = split == name
        if part.any():
            metrics[name] = {k: round(v, 4) for k, v in trp_report(trp[part], labels[part], LABEL_NAMES).items()}
    return table, metrics


def trp_histogram(trp: np.ndarray, labels: np.ndarray, n_bins: int = 20) -> pd.DataFrame:
    """Share of each class's utterances per TRP bin (bin centres in column `trp`)."""
    bins = np.linspace(0, 1, n_bins + 1)
    hist = pd.DataFrame({"trp": np.round((bins[:-1] + bins[1:]) / 2, 4)})
    for label, name in LABEL_NAMES.items():
        counts, _ = np.histogram(trp[labels == label], bins=bins)
        hist[name] = counts / max(counts.sum(), 1)
    return hist
