import numpy as np
import torch
from conftest import toy_config
from pipeline import AUDIO_CFG

from turnfusion.models import TurnFusionModel
from turnfusion.models.encoding import encode_padded, encode_segment, pad_sequences, stack_segments


def test_pad_sequences_and_stack_segments_place_each_sequence_with_its_mask():
    a, b = torch.ones(3, 2), 2 * torch.ones(1, 2)
    padded, mask = pad_sequences([a, None, b])
    assert padded.shape == (3, 3, 2) and mask.sum(1).tolist() == [3, 0, 1]
    assert torch.equal(padded[0], a) and (padded[1] == 0).all() and torch.equal(padded[2, :1], b)
    hidden, frame_mask = stack_segments([[a, None], [b, a]])
    assert hidden.shape == (2, 2, 3, 2) and frame_mask.sum(-1).tolist() == [[3, 0], [1, 3]]
    assert torch.equal(hidden[1, 0, :1], b) and torch.equal(hidden[1, 1], a)
    empty, none_mask = stack_segments([[None, None]])
    assert empty.shape == (1, 2, 1, 1) and not none_mask.any()


def test_a_segment_is_encoded_alone_because_padding_changes_its_frames():
    torch.manual_seed(0)
    encoder = TurnFusionModel(toy_config("audio", audio_config=AUDIO_CFG)).audio_encoder.eval()
    rng = np.random.default_rng(0)
    short, long = rng.normal(0, 0.1, 8000).astype(np.float32), rng.normal(0, 0.1, 24000).astype(np.float32)
    with torch.no_grad():
        alone = encode_segment(encoder, short)
        hidden, mask = encode_padded(encoder, [short, long])
    assert len(alone) == int(mask[0].sum())
    # group norm over the padded input: the same segment gets other hidden states in a padded batch
    assert not torch.allclose(hidden[0, : len(alone)], alone, atol=1e-3)


def test_raw_and_cached_batches_give_the_same_logits():
    torch.manual_seed(0)
    text = {"vocab_size": 40, "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 16}
    model = TurnFusionModel(toy_config("fusion", text, AUDIO_CFG, audio_segments=2)).eval()
    rng = np.random.default_rng(1)
    waves = [[rng.normal(0, .1, 6000).astype(np.float32), None],
             [rng.normal(0, .1, 9000).astype(np.float32), rng.normal(0, .1, 4000).astype(np.float32)]]
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    raw = {"input_ids": ids, "attention_mask": mask, "waves": waves, "trp": torch.zeros(2)}
    with torch.no_grad():
        text_hidden = model.encode_text(ids, mask)
        frames = [[None if w is None else model.encode_segment(w) for w in item] for item in waves]
        audio_hidden, audio_mask = stack_segments(frames)
        cached = {"text_hidden": text_hidden, "text_mask": mask.bool(), "audio_hidden": audio_hidden,
                  "audio_mask": audio_mask, "trp": torch.zeros(2)}
        assert torch.allclose(model.batch_logits(raw), model.batch_logits(cached), atol=1e-5)


def test_a_layer_norm_front_end_gives_each_frame_from_its_own_samples_and_a_group_norm_one_does_not():
    from turnfusion.models.encoding import (
        frames_to_hidden,
        front_end_field,
        front_end_frames,
        front_end_hop,
        front_end_is_local,
    )

    wave = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (1, 12000)).astype(np.float32))
    for norm, local in (("layer", True), ("group", False)):
        encoder = TurnFusionModel(toy_config("audio", audio_config={**AUDIO_CFG, "feat_extract_norm": norm})
                                  ).audio_encoder.eval()
        cfg = encoder.config
        assert (front_end_hop(cfg), front_end_field(cfg), front_end_is_local(cfg)) == (320, 400, local)
        with torch.no_grad():
            whole = front_end_frames(encoder, wave)
            assert torch.equal(frames_to_hidden(encoder, whole), encoder(wave).last_hidden_state)
            # frames 0-9 read samples [0, 9 * 320 + 400), frames 10- from sample 3200 on
            pieces = torch.cat([front_end_frames(encoder, wave[:, : 9 * 320 + 400]),
                                front_end_frames(encoder, wave[:, 3200:])], dim=1)
        assert pieces.shape == whole.shape == (1, 37, 8)
        assert torch.allclose(pieces, whole, atol=1e-5) is local
