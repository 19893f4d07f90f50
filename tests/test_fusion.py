import pytest
import torch

from turnfusion.models.fusion import ExpertsHead, expert_logits, make_head, product_of_experts


def parts(b=5):
    torch.manual_seed(1)
    return [torch.randn(b, 6), torch.randn(b, 4)]


@pytest.mark.parametrize("kind,n_experts", [("experts", 2), ("experts_concat", 3), ("concat", 1), ("tensor", 1)])
def test_every_head_gives_its_experts_logits(kind, n_experts):
    head = make_head(kind, [6, 4], 8, 3, 0.0).eval()
    x = parts()
    logits = expert_logits(head, x)
    assert logits.shape == (5, n_experts, 3)
    if n_experts == 1:
        assert torch.equal(logits[:, 0], head(x))


def test_the_decision_multiplies_the_experts_probabilities():
    head = make_head("experts_concat", [6, 4], 8, 3, 0.0).eval()
    x = parts()
    each = torch.softmax(expert_logits(head, x), dim=-1)
    product = each.prod(dim=1)
    assert torch.allclose(torch.softmax(head(x), dim=-1), product / product.sum(-1, keepdim=True), atol=1e-6)


def test_each_modality_expert_reads_its_own_modality_only():
    head = ExpertsHead([6, 4], 8, 3, 0.0, joint=True).eval()
    x = parts()
    changed = [x[0], x[1] + 1.0]  # the audio vector moves
    a, b = expert_logits(head, x), expert_logits(head, changed)
    assert torch.equal(a[:, 0], b[:, 0])  # the text expert does not see it
    assert not torch.allclose(a[:, 1], b[:, 1]) and not torch.allclose(a[:, 2], b[:, 2])


def test_a_single_experts_product_keeps_its_decision():
    logits = torch.randn(7, 1, 3)
    assert torch.allclose(torch.softmax(product_of_experts(logits), -1), torch.softmax(logits[:, 0], -1), atol=1e-6)
