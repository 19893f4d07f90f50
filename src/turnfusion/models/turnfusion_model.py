"""TurnFusionModel: text encoder (GPT-2) + audio encoder (HuBERT) + pooling + fusion head.

A Hugging Face style model: `TurnFusionConfig` describes everything (encoder configs included), so a
trained model is one directory that `TurnFusionModel.from_pretrained(dir)` loads.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GPT2Config, GPT2Model, HubertConfig, HubertModel, PretrainedConfig, PreTrainedModel

from turnfusion.models.fusion import make_head
from turnfusion.models.pooling import Pooling

MODES = ("text", "audio", "fusion")


class TurnFusionConfig(PretrainedConfig):
    model_type = "turnfusion"

    def __init__(self, mode: str = "fusion", text_config: dict | None = None, audio_config: dict | None = None,
                 text_pooling: str = "last", audio_pooling: str = "attention", last_k: int = 10,
                 audio_segments: int = 3, fusion_head: str = "concat", hidden_size: int = 128,
                 dropout: float = 0.1, tensor_rank: int = 4, modality_dropout: float = 0.0, use_trp: bool = False,
                 preprocessing: dict | None = None, num_labels: int = 3, **kwargs):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.text_config = text_config or {}
        self.audio_config = audio_config or {}
        self.text_pooling, self.audio_pooling, self.last_k = text_pooling, audio_pooling, last_k
        self.audio_segments = audio_segments
        self.fusion_head, self.hidden_size, self.dropout = fusion_head, hidden_size, dropout
        self.tensor_rank, self.modality_dropout, self.use_trp = tensor_rank, modality_dropout, use_trp
        # how inputs were prepared in training, so prediction prepares them the same way
        self.preprocessing = {"sample_rate": 16000, "max_seconds": 3.0, "max_length": 64, "n_previous": 2,
                              "punctuation": "strip", **(preprocessing or {})}
        super().__init__(num_labels=num_labels, **kwargs)

    @property
    def uses_text(self) -> bool:
        return self.mode in ("text", "fusion")

    @property
    def uses_audio(self) -> bool:
        return self.mode in ("audio", "fusion")


class TurnFusionModel(PreTrainedModel):
    config_class = TurnFusionConfig
    base_model_prefix = "turnfusion"
    main_input_name = "text_hidden"

    def __init__(self, config: TurnFusionConfig):
        super().__init__(config)
        dims = []
        if config.uses_text:
            self.text_encoder = GPT2Model(GPT2Config(**config.text_config))
            self.text_pool = Pooling(config.text_pooling, self.text_encoder.config.n_embd)
            dims.append(self.text_pool.out_dim)
        if config.uses_audio:
            self.audio_encoder = HubertModel(HubertConfig(**config.audio_config))
            self.audio_pool = Pooling(config.audio_pooling, self.audio_encoder.config.hidden_size, config.last_k)
            dims.append(self.audio_pool.out_dim * config.audio_segments)
        if config.use_trp:
            dims[-1] += 1
        self.head = make_head(config.fusion_head, dims, config.hidden_size, config.num_labels, config.dropout,
                              config.tensor_rank)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (GPT2Model, HubertModel)):
            return  # encoders initialise themselves (or come pretrained)
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def encoders(self) -> list[nn.Module]:
        return [m for m in (getattr(self, "text_encoder", None), getattr(self, "audio_encoder", None)) if m is not None]

    # --- encoders: raw inputs to hidden states -------------------------------------------------
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def encode_audio(self, waveforms: list) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden states, frame mask) for a list of 1-D waveforms of any lengths."""
        from turnfusion.features import encode_waveforms

        return encode_waveforms(self.audio_encoder, waveforms)

    # --- from hidden states to logits ----------------------------------------------------------
    def forward(self, text_hidden: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                audio_hidden: torch.Tensor | None = None, audio_mask: torch.Tensor | None = None,
                trp: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from encoder outputs.

        text_hidden (B, T, Dt) with text_mask (B, T); audio_hidden (B, S, F, Da) with audio_mask (B, S, F),
        S = the current utterance's segment and its predecessors (all-zero mask where there is none).
        """
        parts = []
        if self.config.uses_text:
            parts.append(self.text_pool(text_hidden, text_mask))
        if self.config.uses_audio:
            b, s, f, d = audio_hidden.shape
            pooled = self.audio_pool(audio_hidden.reshape(b * s, f, d), audio_mask.reshape(b * s, f))
            parts.append(pooled.reshape(b, -1))
        if self.training and self.config.modality_dropout > 0 and len(parts) == 2:
            parts = self._modality_dropout(parts)
        if self.config.use_trp:
            parts[-1] = torch.cat([parts[-1], trp.to(parts[-1].dtype).unsqueeze(-1)], dim=-1)
        return self.head(parts)

    def _modality_dropout(self, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        """Drop one whole modality for a share of the samples, never both."""
        b = parts[0].shape[0]
        drop = torch.rand(b, device=parts[0].device) < self.config.modality_dropout
        which = torch.randint(0, 2, (b,), device=parts[0].device)
        return [p * ~(drop & (which == k)).unsqueeze(-1) for k, p in enumerate(parts)]
