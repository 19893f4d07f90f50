import numpy as np
import pipeline
import pytest
import torch

from turnfusion.data.stores import EmbeddingCache
from turnfusion.models import TurnFusionModel
from turnfusion.models.encoding import encode_segment
from turnfusion.schema import DataError
from turnfusion.training.encoders import load_encoders


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return pipeline.build(tmp_path_factory.mktemp("embed"))


def test_cache_holds_each_segment_encoded_alone_and_each_context_token(tiny):
    cache = EmbeddingCache(tiny.cache)
    model = TurnFusionModel.from_pretrained(tiny.model_dir).eval()
    assert len(cache.n_frames) == len(tiny.store.index)
    with torch.no_grad():
        for row in (0, 7, len(tiny.store.index) - 1):
            alone = encode_segment(model.audio_encoder, tiny.store.waveform(row))
            assert torch.allclose(cache.segment_frames(row), alone, atol=2e-3)  # float16 in the cache
        for row in (0, 5):
            ids = torch.from_numpy(tiny.tokens.row(row).astype(np.int64))[None]
            hidden = model.encode_text(ids, torch.ones_like(ids))[0]
            offset, length = tiny.tokens.index.tok_offset[row], tiny.tokens.index.tok_length[row]
            assert torch.allclose(cache.text_hidden(offset, length), hidden, atol=2e-3)


def test_the_cache_keeps_the_encoders_it_was_made_with(tiny):
    text, audio = load_encoders(tiny.cache)
    model = TurnFusionModel.from_pretrained(tiny.model_dir)
    for mine, theirs in ((text, model.text_encoder), (audio, model.audio_encoder)):
        assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), theirs.state_dict().values(),
                                                     strict=True))


def test_missing_cache_file_names_the_file(tiny, tmp_path):
    with pytest.raises(DataError, match="audio_frames.parquet: embedding cache file missing"):
        (tmp_path / "text.npy").write_bytes(b"")
        (tmp_path / "audio.npy").write_bytes(b"")
        EmbeddingCache(tmp_path)
