"""How inputs go through the encoders and are padded into batches: one policy for the embedding cache,
training with trainable encoders and prediction, so the three cannot drift apart.

Audio is encoded one segment at a time: HuBERT's group-norm front end normalises over the whole
(padded) input, so a segment encoded in a padded batch gets other hidden states than alone. A layer-norm front end
(`feat_extract_norm: layer`) normalises each frame alone: each of its frames depends on its own samples only, so a
live system can encode it in pieces while the user speaks (`front_end_frames`, `frames_to_hidden`).
"""

from __future__ import annotations

import numpy as np
import torch


def encode_padded(encoder, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden (n, frames, dim), frame mask (n, frames)) of waveforms right-padded into one batch.

    Only for pretraining the encoder itself, where throughput matters more than padding effects.
    """
    lengths = torch.tensor([len(w) for w in waves])
    padded = torch.zeros(len(waves), int(lengths.max()))
    for k, w in enumerate(waves):
        padded[k, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    sample_mask = (torch.arange(padded.shape[1])[None] < lengths[:, None]).long()
    device = next(encoder.parameters()).device
    hidden = encoder(input_values=padded.to(device), attention_mask=sample_mask.to(device)).last_hidden_state
    frames = encoder._get_feat_extract_output_lengths(lengths).to(device)
    return hidden, torch.arange(hidden.shape[1], device=device)[None] < frames[:, None]


def encode_segment(encoder, wave: np.ndarray) -> torch.Tensor:
    """Hidden frames (frames, dim) of one waveform encoded alone: no padding enters the encoder."""
    hidden, mask = encode_padded(encoder, [wave])
    return hidden[0, : int(mask[0].sum())]


def front_end_is_local(audio_config) -> bool:
    """Whether each frame of the convolutional front end depends on its own samples only (`front_end_field`
    samples, `front_end_hop` apart): HuBERT's layer-norm front end; the group-norm one (the default) normalises its
    first layer over the whole input."""
    return getattr(audio_config, "feat_extract_norm", None) == "layer"


def front_end_hop(audio_config) -> int:
    """Samples between two frames of the front end (the product of its strides: 320 for HuBERT's)."""
    return int(np.prod(audio_config.conv_stride))


def front_end_field(audio_config) -> int:
    """Samples one frame of the front end reads (its receptive field: 400 for HuBERT's)."""
    field = 1
    for kernel, stride in zip(reversed(audio_config.conv_kernel), reversed(audio_config.conv_stride), strict=True):
        field = (field - 1) * stride + kernel
    return field


def front_end_frames(encoder, waveform: torch.Tensor) -> torch.Tensor:
    """(batch, frames, conv_dim) of the convolutional front end: the first half of `encoder(waveform)`."""
    return encoder.feature_extractor(waveform).transpose(1, 2)


def frames_to_hidden(encoder, frames: torch.Tensor) -> torch.Tensor:
    """Hidden states (batch, frames, dim) from the front end's frames: the rest of `encoder(waveform)` (in eval
    mode: no time masking), for one segment (no padding)."""
    return encoder.encoder(encoder.feature_projection(frames)).last_hidden_state


def segment_ids(input_ids: torch.Tensor, sep_token_id: int) -> torch.Tensor:
    """BERT's token_type_ids of a segment pair ([CLS] A [SEP] B [SEP]): 1 after the first separator."""
    seps = (input_ids == sep_token_id).long()
    return (seps.cumsum(1) - seps > 0).long()


def text_hidden(encoder, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden states (batch, tokens, dim) of token ids: a BERT-type encoder that knows its segment separator
    (`sep_token_id` in its config: trained on pairs) gets the pair's segment ids; without a separator in the ids
    they are all 0, as BERT's default."""
    sep = getattr(encoder.config, "sep_token_id", None)
    if encoder.config.model_type == "bert" and sep is not None:
        return encoder(input_ids=input_ids, attention_mask=attention_mask,
                       token_type_ids=segment_ids(input_ids, sep)).last_hidden_state
    return encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def pad_sequences(seqs: list[torch.Tensor | None], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(padded (n, longest, dim), mask (n, longest)) of sequences (length, dim); None is an empty row."""
    real = [s for s in seqs if s is not None]
    dim = real[0].shape[1] if real else 1
    width = width or max([len(s) for s in real] or [1])
    device, dtype = (real[0].device, real[0].dtype) if real else (torch.device("cpu"), torch.float32)
    padded = torch.zeros(len(seqs), width, dim, device=device, dtype=dtype)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool, device=device)
    for k, s in enumerate(seqs):
        if s is not None:
            padded[k, : len(s)], mask[k, : len(s)] = s, True
    return padded, mask


def stack_segments(frames: list[list[torch.Tensor | None]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio batch (B, S, F, D) with its frame mask (B, S, F) from B items of S segments' frames (None: none)."""
    b, s = len(frames), len(frames[0])
    hidden, mask = pad_sequences([f for item in frames for f in item])
    return hidden.reshape(b, s, *hidden.shape[1:]), mask.reshape(b, s, -1)
