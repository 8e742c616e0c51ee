"""Loss files written by earlier versions keep loading, with the same values."""
from pathlib import Path

import pytest
import torch

import deap_mln
from deap_mln.deploy.compiled import CompiledMLNLoss
from deap_mln.gp.tree import GPLoss
from deap_mln.mln.network import MLNLoss

LEGACY = Path(__file__).parent / "fixtures" / "losses-0.1.0"
# what deap_mln 0.1.0 computed for each file on the batch of legacy_batch()
VALUES_0_1_0 = {"mln_loss.pt": (MLNLoss, 3.042006492614746), "table_loss.pt": (CompiledMLNLoss, 3.0421142578125),
                "gp_loss.pt": (GPLoss, 11.094700813293457)}


def legacy_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])


@pytest.mark.parametrize("name", sorted(VALUES_0_1_0))
def test_files_saved_by_0_1_0_load_and_give_the_same_loss(name):
    kind, value = VALUES_0_1_0[name]
    loss = deap_mln.load_loss(LEGACY / name)
    assert isinstance(loss, kind)
    logits, target = legacy_batch()
    assert float(loss(logits, target).detach()) == pytest.approx(value, rel=1e-6)
    per_sample = deap_mln.load_loss(LEGACY / name, reduction="none")(logits, target)
    assert per_sample.shape == (6,) and float(per_sample.detach().mean()) == pytest.approx(value, rel=1e-6)


def test_an_unknown_reduction_is_refused_by_every_loss_kind():
    for name in VALUES_0_1_0:
        with pytest.raises(ValueError, match="reduction"):
            deap_mln.load_loss(LEGACY / name, reduction="max")
