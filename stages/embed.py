"""Stage `embed`: build the encoders (by name/path or from config) and cache their hidden states for every
context and segment, so training with frozen encoders never runs them again."""

import argparse
import logging

from stages.common import config, run, write_json
from turnfusion.config import ComputeConfig, EmbedConfig, ModelConfig, TextConfig
from turnfusion.data.stores import PackedTokens, SegmentStore
from turnfusion.training.embed import embed
from turnfusion.training.encoders import check_sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--segments", required=True)
    parser.add_argument("--teacher", required=True, help="teacher model directory (for text_encoder: teacher)")
    parser.add_argument("--audio-encoder", required=True,
                        help="pretrain_audio's encoder directory (for audio_encoder: pretrain_audio)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    model = config(ModelConfig)
    check_sizes(model, "text_config", "audio_config")
    tokens = PackedTokens(args.tokens)
    report = embed(tokens, SegmentStore.open(args.segments), args.out, model, config(TextConfig).max_length,
                   args.teacher, args.audio_encoder, config(EmbedConfig), config(ComputeConfig).precision,
                   tokens.input_form())
    if report is not None:  # the main process (launched as several, the others return None)
        write_json(args.report, report)
        logging.getLogger("embed").info("%s", report)


if __name__ == "__main__":
    run(main)
