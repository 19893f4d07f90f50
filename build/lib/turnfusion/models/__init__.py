from turnfusion.choices import AUDIO_POOLINGS, FUSION_HEADS, MODES, TEXT_POOLINGS
from turnfusion.models.fusion import make_head
from turnfusion.models.pooling import Pooling
from turnfusion.models.turnfusion_model import TurnFusionConfig, TurnFusionModel

__all__ = ["AUDIO_POOLINGS", "FUSION_HEADS", "MODES", "TEXT_POOLINGS", "Pooling", "TurnFusionConfig",
           "TurnFusionModel", "make_head"]
