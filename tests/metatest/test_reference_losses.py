"""The fixed reference losses beside CE: Poly-1, Baikal and NGL."""
import torch
from torch.nn import functional as F

from deap_mln.gp.tree import KNOWN_LOSSES, GPLoss
from deap_mln.metatest.baselines import BASELINES, baseline_loss, resolve_loss


def test_poly1_is_ce_plus_one_minus_p_true():
    logits, target = torch.randn(7, 5), torch.randint(5, (7,))
    p_true = logits.softmax(1).gather(1, target[:, None]).squeeze(1)
    expected = F.cross_entropy(logits, target) + (1 - p_true).mean()
    assert torch.allclose(baseline_loss("poly1")(logits, target), expected)


def test_baikal_and_ngl_are_the_gp_formulas():
    logits, target = torch.randn(7, 5), torch.randint(5, (7,))
    for name in ("baikal", "ngl"):
        loss = baseline_loss(name)
        assert isinstance(loss, GPLoss) and loss.expression == str(GPLoss(KNOWN_LOSSES[name]).expression)
        assert torch.allclose(loss(logits, target), GPLoss(KNOWN_LOSSES[name])(logits, target))


def test_new_names_resolve_as_loss_names():
    for name in ("poly1", "baikal", "ngl"):
        assert name in BASELINES
        spec = resolve_loss(name)
        assert spec.label == name and not spec.mln
