"""What `train.encoders` decides, in one object: which encoders train and from which epoch, and so which inputs
a batch holds (cached hidden states for an encoder that stays the embed stage's, else token ids / waveforms).

    frozen   nothing but the head trains; text and audio from the embedding cache
    text     the text encoder trains from the start on token ids; the audio from the cache
    gradual  both encoders train from `train.unfreeze_epoch`, on token ids and waveforms
    full     both encoders train from the start, on token ids and waveforms
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from turnfusion.choices import ENCODER_SCHEDULES
from turnfusion.training.datasets import Inputs

if TYPE_CHECKING:
    from turnfusion.config import TrainConfig


@dataclass(frozen=True)
class EncoderSchedule:
    name: str  # one of choices.ENCODER_SCHEDULES
    unfreeze_epoch: int  # gradual: the first epoch (0-based) in which the encoders train

    def __post_init__(self):
        if self.name not in ENCODER_SCHEDULES:
            raise ValueError(f"train.encoders must be one of {ENCODER_SCHEDULES}, got {self.name!r}")

    @classmethod
    def of(cls, cfg: TrainConfig) -> EncoderSchedule:
        return cls(cfg.encoders, cfg.unfreeze_epoch)

    @property
    def inputs(self) -> Inputs:
        return Inputs(cached_text=self.name == "frozen", cached_audio=self.name in ("frozen", "text"))

    def encoders(self, model) -> list:
        """The encoders of `model` this schedule ever trains (the text encoder of a model without text: none)."""
        if self.name == "frozen":
            return []
        if self.name == "text":
            return [model.text_encoder] if model.config.uses_text else []
        return model.encoders()

    def trains_at(self, epoch: int) -> bool:
        """Whether the encoders train in `epoch` (0-based)."""
        return self.name in ("text", "full") or (self.name == "gradual" and epoch >= self.unfreeze_epoch)

    def unfreezes_at(self, epoch: int) -> bool:
        return self.name == "gradual" and epoch == self.unfreeze_epoch

    def unfrozen_before(self, epoch: int) -> bool:
        """Whether `gradual` unfroze the encoders in an epoch before `epoch` (a resumed run's optimizer has them)."""
        return self.name == "gradual" and self.unfreeze_epoch < epoch
