"""Predict what happens after an utterance with a model trained by `make repro`.

    python examples/predict_example.py            # uses models/fusion and the demo corpus' test split

It takes three consecutive test utterances of one demo conversation from the segment store, writes
them as wav files (as a user's recordings would be), and asks the model about the last one.
"""

import tempfile
from pathlib import Path

import soundfile as sf

from turnfusion.data.stores import SegmentStore
from turnfusion.serving.predict import TurnPredictor


def main(model_dir: str = "models/fusion", segments: str = "data/segments") -> None:
    store = SegmentStore.open(segments)
    test = store.index[store.index.split == "test"]
    rows = test.index[test.video_id == test.video_id.iloc[0]][3:6].tolist()
    work = Path(tempfile.mkdtemp())
    utterances = []
    for i in rows:
        path = work / f"{store.index.sentence_id[i]}.wav"
        sf.write(path, store.waveform(i), store.sample_rate)
        utterances.append({"text": store.index.text[i], "speaker": int(store.index.speaker[i]), "audio": path})
    predictor = TurnPredictor(model_dir)
    *context, current = utterances
    probabilities = predictor.predict(current["text"], current["audio"], current["speaker"], context)
    for u in utterances:
        print(f"speaker {u['speaker']}: {u['text']}")
    label = store.index.label[rows[-1]]
    print(f"-> {probabilities}  (annotated: {['keep', 'shift', 'backchannel'][label]})")


if __name__ == "__main__":
    main()
