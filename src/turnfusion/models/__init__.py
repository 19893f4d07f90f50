from turnfusion.models.fusion import FUSION_HEADS, make_head
from turnfusion.models.pooling import AUDIO_POOLINGS, TEXT_POOLINGS, Pooling
from turnfusion.models.turnfusion_model import MODES, TurnFusionConfig, TurnFusionModel

__all__ = ["AUDIO_POOLINGS", "FUSION_HEADS", "MODES", "TEXT_POOLINGS", "Pooling", "TurnFusionConfig",
           "TurnFusionModel", "make_head"]
