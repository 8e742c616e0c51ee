"""The fixed reference losses beside CE: Poly-1, Baikal and NGL."""
import pytest
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
    for name in ("baikal", "ngl"):
        loss = baseline_loss(name)
        assert isinstance(loss, GPLoss) and loss.expression == str(GPLoss(KNOWN_LOSSES[name]).expression)


def test_baikal_and_ngl_compute_the_published_formulas():
    """Written out in torch from the papers, as K times their mean over classes (gp/tree.py)."""
    generator = torch.Generator().manual_seed(0)
    logits, target = torch.randn(7, 5, generator=generator), torch.randint(5, (7,), generator=generator)
    p, classes = logits.softmax(1), logits.shape[1]
    y = F.one_hot(target, classes).float()
    # Baikal (Gonzalez & Miikkulainen 2020): L = -1/n sum_i (log x_i - y_i / x_i)
    baikal = -(p.log() - y / p).mean(1) * classes
    # NGL (Akhmedova & Koerber 2024, NGL_torch.py): mean of exp(alpha - p (1 + y)) - cos(cos(sin(p)))
    ngl = (torch.exp(2.4092 - p * (1 + y)) - torch.cos(torch.cos(torch.sin(p)))).mean(1) * classes
    assert torch.allclose(baseline_loss("baikal")(logits, target), baikal.mean())
    assert torch.allclose(baseline_loss("ngl")(logits, target), ngl.mean())
    assert not torch.allclose(baikal.mean(), ngl.mean())  # the two formulas tell each other apart here


def test_new_names_resolve_as_loss_names():
    for name in ("poly1", "baikal", "ngl"):
        assert name in BASELINES
        spec = resolve_loss(name)
        assert spec.label == name and not spec.mln


def test_label_smoothing_at_another_epsilon_is_named_ls_colon_eps():
    logits, target = torch.randn(7, 5), torch.randint(5, (7,))
    spec = resolve_loss("ls:0.2")
    assert spec.label == "ls:0.2" and not spec.mln
    assert torch.allclose(spec.module(logits, target), F.cross_entropy(logits, target, label_smoothing=0.2))
    assert not torch.allclose(spec.module(logits, target), baseline_loss("ls")(logits, target))
    # ls keeps meaning 0.1, and ls:0.1 is the same loss under the same label
    assert resolve_loss("ls:0.1").label == "ls"
    assert torch.allclose(baseline_loss("ls")(logits, target), F.cross_entropy(logits, target, label_smoothing=0.1))
    for bad in ("ls:1", "ls:-0.1", "ls:abc", "ls:"):
        with pytest.raises(ValueError, match="epsilon in"):
            resolve_loss(bad)
