"""Stage `embed`: run the frozen encoders once and cache their hidden states for every context token and
every audio segment (float16), with the encoders themselves, so training with frozen encoders never runs
them again. `stores.EmbeddingCache` reads what it writes, a row range at a time (`arrays.NpyRows`).

What is stored, and why: every token's and every frame's hidden state, not a pooled vector, because the
pooling (attention, last_k, mean ...) is part of the trained model and learns from all of them. At distil
size (768-dim) that is 1.5 KB per token and 77 KB per second of audio (50 frames/s): ~85k MM-F2F-train
utterances of 3 s and ~60 tokens make ~20 GB of frames and ~8 GB of tokens (docs/scaling.md). Both caches
are written batch by batch to disk, so memory stays flat with corpus size.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from npy_append_array import NpyAppendArray
from tqdm import tqdm
from transformers import HubertModel, PreTrainedModel

from turnfusion.arrays import NpyRows, concatenate_npy
from turnfusion.data.stores import AUDIO_CACHE, AUDIO_INDEX, ENCODERS_DIR, TEXT_CACHE, PackedTokens, SegmentStore
from turnfusion.errors import DataError
from turnfusion.models.encoding import encode_segment, text_hidden
from turnfusion.text.words import pad_right
from turnfusion.threads import thread_count
from turnfusion.training.distributed import processes
from turnfusion.training.encoders import build_audio_encoder, build_text_encoder
from turnfusion.training.forked import run_forked
from turnfusion.training.loop import autocast

if TYPE_CHECKING:
    from turnfusion.config import EmbedConfig, ModelConfig



@torch.no_grad()
def write_text_cache(encoder: PreTrainedModel, tokens: PackedTokens, path: Path, batch_size: int,
                     progress: bool = True, rows: range | None = None, precision: str = "fp32") -> int:
    """Write the hidden state of every token of the contexts `rows` (default: all) to `path` (float16, aligned
    with `tokens.ids`), a batch at a time. Returns the number of tokens."""
    encoder.eval()
    device = next(encoder.parameters()).device
    offsets, lengths = tokens.index.tok_offset.to_numpy(), tokens.index.tok_length.to_numpy()
    if len(offsets) and (offsets[0] != 0 or (offsets[1:] != (offsets + lengths)[:-1]).any()):
        raise DataError(f"{tokens.directory}: token spans are not back to back in row order (rerun tokenize)")
    rows = range(len(tokens.index)) if rows is None else rows
    with NpyAppendArray(str(path), delete_if_exists=True) as out:
        out.append(np.zeros((0, encoder.config.hidden_size), np.float16))  # a valid file, even for no rows
        for start in tqdm(range(rows.start, rows.stop, batch_size), desc="text cache", disable=not progress):
            batch = list(range(start, min(rows.stop, start + batch_size)))
            ids, mask = (torch.from_numpy(a).to(device) for a in pad_right([tokens.row(i) for i in batch], 0))
            with autocast(device, precision):
                hidden = text_hidden(encoder, ids, mask).float().cpu()
            out.append(np.concatenate([hidden[k, : lengths[i]].numpy() for k, i in enumerate(batch)])
                       .astype(np.float16))
    return int(lengths[rows.start: rows.stop].sum())


@torch.no_grad()
def write_audio_cache(encoder: HubertModel, store: SegmentStore, path: Path, progress: bool = True,
                      rows: range | None = None, precision: str = "fp32", workers: int = 1) -> list[int]:
    """Write the hidden frames of the segments `rows` (default: all) to `path` (float16, back to back), each
    segment encoded alone; returns their frame counts.

    On the CPU each segment is encoded by one thread, `workers` processes at a time, each a contiguous share of
    `rows`: one segment gives no work to a second thread (as fast with one as with two), and with one thread the
    cache is the same bits whatever the number of cores or processes (with two, 0.16 % of its values differed)."""
    encoder.eval()
    device = next(encoder.parameters()).device
    rows = range(len(store.index)) if rows is None else rows
    if device.type == "cpu" and workers > 1 and len(rows) > 1:
        return _audio_cache_in_processes(encoder, store, Path(path), progress, rows, precision, workers)
    counts = []
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        with NpyAppendArray(str(path), delete_if_exists=True) as out:
            out.append(np.zeros((0, encoder.config.hidden_size), np.float16))
            for i in tqdm(rows, desc="audio cache", disable=not progress):
                with autocast(device, precision):
                    frames = encode_segment(encoder, store.waveform(i)).float().cpu().numpy().astype(np.float16)
                out.append(frames)
                counts.append(len(frames))
    finally:
        torch.set_num_threads(threads)
    return counts


def _audio_cache_in_processes(encoder: HubertModel, store: SegmentStore, path: Path, progress: bool, rows: range,
                              precision: str, workers: int) -> list[int]:
    """`write_audio_cache` of `rows` in `workers` forked processes of one thread (`forked.run_forked`), each writing
    a contiguous share to a part file; the parts are joined in order into `path` (and removed, whatever happens)."""
    workers = min(workers, len(rows))
    shares = [rows[len(rows) * k // workers: len(rows) * (k + 1) // workers] for k in range(workers)]
    parts = [path.with_name(f"{path.name}.worker{k}") for k in range(workers)]
    tasks = [functools.partial(write_audio_cache, encoder, store, part, progress and k == 0, share, precision)
             for k, (share, part) in enumerate(zip(shares, parts, strict=True))]
    try:
        counts = run_forked(tasks)
        concatenate_npy(parts, path)
    except DataError as error:
        raise DataError(f"{path.name}: {error}") from None
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return sum(counts, [])


def embed(tokens: PackedTokens, store: SegmentStore, out_dir: Path, cfg: ModelConfig, max_length: int,
          teacher_dir: Path, audio_encoder_dir: Path, run: EmbedConfig, precision: str = "fp32",
          input_form: str = "context") -> dict | None:
    """The embed stage: build the encoders as `cfg` says (the text encoder for the token store's `input_form`), run
    them where and in batches as `run` says, cache their hidden states in `out_dir`; returns a report.

    Launched as several processes, each encodes a contiguous share (whole text batches, so that every batch is
    the one a single process makes) into a part file; the main process joins the parts into the same layout and
    returns the report (the others return None)."""
    procs = processes(run.device, "embed.device")
    torch.manual_seed(cfg.seed)  # encoders built from config get the same initial weights every run
    text_encoder = build_text_encoder(cfg.text_encoder, tokens.tokenizer(), cfg.text_config, teacher_dir,
                                      max_length + 1, input_form)
    audio_encoder = build_audio_encoder(cfg.audio_encoder, cfg.audio_config, audio_encoder_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # written under temporary names, then renamed: an interrupted run never leaves a torn cache
    part = {name: out_dir / f".{name}.part{procs.rank}" for name in (TEXT_CACHE, AUDIO_CACHE)}
    progress = procs.main
    n_tokens = write_text_cache(text_encoder.to(procs.device), tokens, part[TEXT_CACHE], run.batch_size, progress,
                                procs.share(len(tokens.index), unit=run.batch_size), precision)
    counts = write_audio_cache(audio_encoder.to(procs.device), store, part[AUDIO_CACHE], progress,
                               procs.share(len(store.index)), precision, workers=thread_count())
    n_tokens, counts = sum(procs.gather(n_tokens)), sum(procs.gather(counts), [])
    procs.barrier()  # every part written
    if not procs.main:
        return None
    for name in (TEXT_CACHE, AUDIO_CACHE):
        concatenate_npy([out_dir / f".{name}.part{r}" for r in range(procs.world)], out_dir / f".{name}.partial")
        os.replace(out_dir / f".{name}.partial", out_dir / name)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if counts else np.zeros(0, np.int64)
    pd.DataFrame({"sentence_id": store.index.sentence_id, "frame_offset": offsets, "n_frames": counts}
                 ).to_parquet(out_dir / AUDIO_INDEX, index=False)
    text_encoder.cpu().save_pretrained(str(out_dir / ENCODERS_DIR / "text"))
    audio_encoder.cpu().save_pretrained(str(out_dir / ENCODERS_DIR / "audio"))
    text, audio = (NpyRows(out_dir / name) for name in (TEXT_CACHE, AUDIO_CACHE))
    return {"text_tokens": n_tokens, "text_dim": text.shape[1], "audio_frames": len(audio),
            "audio_dim": audio.shape[1], "cache_mb": round((text.nbytes + audio.nbytes) / 2**20, 1),
            "processes": procs.world}
