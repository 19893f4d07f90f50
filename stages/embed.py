"""Stage `embed`: build the encoders (by name/path or from config) and cache their hidden states for every
context and segment, so training with frozen encoders never runs them again."""

import argparse
import logging

import torch
from common import params, run, write_json

from turnfusion.features import audio_cache, build_audio_encoder, build_text_encoder, text_cache, write_cache
from turnfusion.segments import SegmentStore
from turnfusion.text import PackedTokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--segments", required=True)
    parser.add_argument("--teacher", required=True, help="teacher model directory (for text_encoder: teacher)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    p = params("model")
    torch.manual_seed(p["seed"])  # encoders built from config get the same initial weights every run
    tokens, store = PackedTokens(args.tokens), SegmentStore.open(args.segments)
    text_encoder = build_text_encoder(p["text_encoder"], tokens.tokenizer(), p["text_config"], args.teacher,
                                      params("text")["max_length"] + 1)
    audio_encoder = build_audio_encoder(p["audio_encoder"], p["audio_config"])
    text = text_cache(text_encoder, tokens)
    audio, audio_index = audio_cache(audio_encoder, store)
    write_cache(args.out, text, audio, audio_index, text_encoder, audio_encoder)
    report = {"text_tokens": len(text), "text_dim": text.shape[1], "audio_frames": len(audio),
              "audio_dim": audio.shape[1], "cache_mb": round((text.nbytes + audio.nbytes) / 2**20, 1)}
    write_json(args.report, report)
    logging.getLogger("embed").info("%s", report)


if __name__ == "__main__":
    run(main)
