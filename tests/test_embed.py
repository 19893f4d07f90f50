import numpy as np
import pipeline
import pytest
import torch

from turnfusion.data.stores import EmbeddingCache
from turnfusion.models import TurnFusionModel
from turnfusion.models.encoding import encode_segment
from turnfusion.schema import DataError
from turnfusion.training.embed import write_audio_cache
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


def test_the_audio_cache_is_the_same_bits_whatever_the_number_of_processes(tiny, tmp_path):
    _, encoder = load_encoders(tiny.cache)
    rows = range(1, len(tiny.store.index), 2)  # a range with a step: each process a share of its rows
    caches, threads = {}, torch.get_num_threads()
    for workers in (1, 2, 3):
        counts = write_audio_cache(encoder, tiny.store, tmp_path / f"{workers}.npy", False, rows, workers=workers)
        caches[workers] = (counts, np.load(tmp_path / f"{workers}.npy"))
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{w}.npy" for w in caches]  # no part left
    assert caches[1][0] == caches[2][0] == caches[3][0] and sum(caches[1][0]) == len(caches[1][1])
    assert caches[1][1].tobytes() == caches[2][1].tobytes() == caches[3][1].tobytes()
    # in row order: the last rows' frames end the cache
    with torch.no_grad():
        last = encode_segment(encoder, tiny.store.waveform(rows[-1])).numpy().astype(np.float16)
    np.testing.assert_allclose(caches[3][1][-len(last):], last, atol=2e-3)
    assert torch.get_num_threads() == threads  # the caller's thread count is given back


def test_a_failing_audio_cache_worker_is_one_line_and_leaves_no_part(tiny, tmp_path):
    _, encoder = load_encoders(tiny.cache)

    class Broken:
        index, sample_rate = tiny.store.index, tiny.store.sample_rate

        def waveform(self, row):
            if row == 5:
                raise DataError("row 5 is not audio")
            return tiny.store.waveform(row)

    with pytest.raises(DataError, match=r"^cache.npy: row 5 is not audio$"):
        write_audio_cache(encoder, Broken(), tmp_path / "cache.npy", False, range(8), workers=2)
    assert not list(tmp_path.iterdir())
