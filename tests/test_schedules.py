import numpy as np
import pytest
import torch
from toy import ToyCached, toy_model

from turnfusion.training.datasets import Inputs
from turnfusion.training.schedules import EncoderSchedule


@pytest.mark.parametrize("name,inputs,from_epoch", [
    ("frozen", Inputs(cached_text=True, cached_audio=True), None),
    ("text", Inputs(cached_text=False, cached_audio=True), 0),
    ("gradual", Inputs(cached_text=False, cached_audio=False), 2),
    ("full", Inputs(cached_text=False, cached_audio=False), 0),
])
def test_one_object_says_what_a_schedule_feeds_and_when_the_encoders_train(name, inputs, from_epoch):
    schedule = EncoderSchedule(name, unfreeze_epoch=2)
    assert schedule.inputs == inputs
    assert [schedule.trains_at(e) for e in range(4)] == [from_epoch is not None and e >= from_epoch for e in range(4)]
    assert [schedule.unfreezes_at(e) for e in range(4)] == [name == "gradual" and e == 2 for e in range(4)]
    assert [schedule.unfrozen_before(e) for e in range(4)] == [name == "gradual" and e > 2 for e in range(4)]


def test_the_encoders_each_schedule_trains():
    fusion, audio = toy_model("fusion"), toy_model("audio")
    assert EncoderSchedule("frozen", 0).encoders(fusion) == []
    assert EncoderSchedule("text", 0).encoders(fusion) == [fusion.text_encoder]
    assert EncoderSchedule("text", 0).encoders(audio) == []  # an audio model has no text encoder to train
    assert EncoderSchedule("full", 0).encoders(fusion) == fusion.encoders()
    with pytest.raises(ValueError, match="train.encoders must be one of"):
        EncoderSchedule("half", 0)


def test_inputs_collate_the_batch_kind_their_datasets_make():
    frames = [torch.zeros(4, 8), None]
    text_items = [{"ids": np.array([5, 6, 7]), "audio": frames, "trp": 0.0, "label": 1}] * 2
    raw_items = [{"ids": np.array([5, 6]), "audio": [np.zeros(1600, np.float32), None], "trp": 0.0, "label": 0}] * 2
    assert set(Inputs(True, True).collate([ToyCached(2, 0)[0]] * 2)) >= {"text_hidden", "audio_hidden"}
    assert set(Inputs(False, True).collate(text_items)) >= {"input_ids", "audio_hidden"}
    batch = Inputs(False, False).collate(raw_items)
    assert "waves" in batch and "audio_hidden" not in batch and batch["input_ids"].shape == (2, 2)
