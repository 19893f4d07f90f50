"""Stage `pretrain_audio`: prosody pretraining of the audio encoder built from config (on the training
split's audio, no labels), saved alone as a Hugging Face HubertModel directory that the embed stage
loads by local path, exactly as it would load `ntu-spml/distilhubert`."""

import argparse
import logging

from common import params, run, write_json

from turnfusion.device import seed_everything
from turnfusion.features import build_audio_encoder
from turnfusion.prosody_pretraining import pretrain_prosody
from turnfusion.segments import SegmentStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    m, p = params("model"), params("pretrain_audio")
    seed_everything(p["seed"])
    encoder = build_audio_encoder("config", m["audio_config"])
    store = SegmentStore.open(args.segments)
    rows = store.index.index[store.index.split == "train"]
    history = pretrain_prosody(encoder, [store.waveform(i) for i in rows], store.sample_rate, p["epochs"],
                               p["batch_size"], p["lr"], p["crop_s"], p["seed"], p["device"])
    encoder.save_pretrained(args.out)
    write_json(args.report, {"segments": len(rows), "final_loss": round(history[-1]["loss"], 4)})
    logging.getLogger("pretrain_audio").info("%s", history)


if __name__ == "__main__":
    run(main)
