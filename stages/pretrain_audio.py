"""Stage `pretrain_audio`: prosody pretraining of the audio encoder built from config (on the training
split's audio, no labels), saved alone as a Hugging Face HubertModel directory that the embed stage
loads by local path, exactly as it would load `ntu-spml/distilhubert`."""

import argparse
import logging

from stages.common import config, run, write_json
from turnfusion.config import ModelConfig, PretrainAudioConfig
from turnfusion.data.stores import SegmentStore
from turnfusion.training.encoders import check_sizes
from turnfusion.training.pretrain_audio import pretrain_audio_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    model = config(ModelConfig)
    check_sizes(model, "audio_config")
    encoder, report, history = pretrain_audio_encoder(SegmentStore.open(args.segments), model.audio_config,
                                                      config(PretrainAudioConfig), model.last_k)
    encoder.save_pretrained(args.out)
    write_json(args.report, report)
    logging.getLogger("pretrain_audio").info("%s", history)


if __name__ == "__main__":
    run(main)
