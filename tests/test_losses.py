import torch
import torch.nn.functional as F

from turnfusion.models.fusion import product_of_experts
from turnfusion.training.losses import classification_loss, distillation_loss, experts_loss, focal_loss


def test_focal_equals_cross_entropy_at_gamma_zero_with_uniform_alpha():
    torch.manual_seed(0)
    logits, target = torch.randn(64, 3), torch.randint(0, 3, (64,))
    ce = F.cross_entropy(logits, target)
    assert torch.allclose(focal_loss(logits, target, None, gamma=0.0), ce)
    assert torch.allclose(focal_loss(logits, target, torch.ones(3), gamma=0.0), ce)


def test_focal_is_a_per_sample_mean_that_down_weights_easy_examples():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([0, 0])
    per_sample = [focal_loss(logits[i:i + 1], target[i:i + 1], None, 2.0) for i in range(2)]
    assert torch.allclose(focal_loss(logits, target, None, 2.0), (per_sample[0] + per_sample[1]) / 2)
    assert per_sample[0] < 0.01 * per_sample[1]
    alpha = torch.tensor([2.0, 1.0, 1.0])
    assert torch.allclose(focal_loss(logits, target, alpha, 2.0), 2 * focal_loss(logits, target, None, 2.0))


def test_distillation_pulls_p_shift_towards_trp():
    logits = torch.tensor([[0.0, 3.0, 0.0]])
    assert distillation_loss(logits, torch.tensor([0.9])) < distillation_loss(logits, torch.tensor([0.1]))


def test_per_class_alpha_weights_each_sample_by_its_own_class():
    torch.manual_seed(1)
    logits, target = torch.randn(12, 3), torch.tensor([0, 1, 2, 2, 1, 0, 0, 2, 1, 1, 0, 2])
    alpha = torch.tensor([2.0, 1.0, 0.5])
    per_sample = F.cross_entropy(logits, target, reduction="none")
    assert torch.allclose(focal_loss(logits, target, alpha, gamma=0.0), (alpha[target] * per_sample).mean())
    p_true = torch.softmax(logits, -1).gather(1, target[:, None]).squeeze(1)
    focal = (alpha[target] * (1 - p_true) ** 2 * per_sample).mean()
    assert torch.allclose(focal_loss(logits, target, alpha, gamma=2.0), focal)


def test_experts_loss_trains_each_expert_alone():
    target = torch.tensor([0, 1, 2, 1])
    logits = torch.randn(4, 2, 3, requires_grad=True)
    assert torch.allclose(experts_loss("focal", logits[:, :1], target, None, 2.0),
                          classification_loss("focal", logits[:, 0], target, None, 2.0))
    experts_loss("ce", logits, target, None, 0.0).backward()
    first = logits.grad[:, 0].clone()
    other = logits.detach().clone()
    other[:, 1] += torch.randn(4, 3)  # another second expert: the first one's gradient must not move
    other.requires_grad_(True)
    experts_loss("ce", other, target, None, 0.0).backward()
    assert torch.allclose(other.grad[:, 0], first)
    joint = logits.detach().clone().requires_grad_(True)  # a loss on the product would couple them
    classification_loss("ce", product_of_experts(joint), target, None, 0.0).backward()
    assert not torch.allclose(joint.grad[:, 0], first)
