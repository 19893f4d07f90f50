import pytest
import torch

from turnfusion.models.pooling import AUDIO_POOLINGS, TEXT_POOLINGS, Pooling


@pytest.mark.parametrize("kind", sorted(set(AUDIO_POOLINGS) | set(TEXT_POOLINGS)))
def test_padding_never_reaches_the_result(kind):
    torch.manual_seed(0)
    pool = Pooling(kind, dim=8, last_k=3).eval()
    x = torch.randn(4, 12, 8)
    lengths = torch.tensor([12, 7, 1, 5])
    mask = torch.arange(12)[None] < lengths[:, None]
    before = pool(x, mask)
    garbage = x.clone()
    garbage[~mask] = torch.randn(int((~mask).sum()), 8) * 1000
    assert torch.allclose(pool(garbage, mask), before, atol=1e-5)
    # and the result equals pooling the unpadded sequence alone
    for b, n in enumerate(lengths.tolist()):
        alone = pool(x[b:b + 1, :n], torch.ones(1, n, dtype=torch.bool))
        assert torch.allclose(alone[0], before[b], atol=1e-5)
    assert before.shape == (4, pool.out_dim)


@pytest.mark.parametrize("kind", sorted(set(AUDIO_POOLINGS) | set(TEXT_POOLINGS)))
def test_all_padding_row_pools_to_zeros(kind):
    pool = Pooling(kind, dim=4)
    out = pool(torch.randn(2, 5, 4), torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool))
    assert torch.isfinite(out).all() and (out[1] == 0).all()


def test_last_and_last_k_take_the_end():
    x = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    assert Pooling("last", 1)(x, mask).item() == 3.0
    assert Pooling("last_k", 1, last_k=2)(x, mask).item() == 2.5


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="unknown pooling"):
        Pooling("median", 4)
