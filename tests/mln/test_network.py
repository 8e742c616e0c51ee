
import numpy as np
import pytest
import torch

from deap_mln.mln.network import (
    MetaLossNetwork,
    MLNLoss,
    batched_mln_forward,
    genome_size,
    genome_to_module,
    glorot_genome,
    load_loss,
    load_loss_record,
    module_to_genome,
    save_loss,
)


def test_paper_architecture_has_175718_parameters():
    mln = MetaLossNetwork()
    assert sum(p.numel() for p in mln.parameters()) == 175_718 == genome_size()
    widths = [m.out_features for m in mln.net if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 64, 128, 256, 512, 1]
    assert isinstance(mln.net[-1], torch.nn.Softplus)


def test_genome_roundtrip_is_lossless():
    torch.manual_seed(0)
    mln = MetaLossNetwork((8, 16))
    genome = module_to_genome(mln)
    assert genome.dtype == np.float32 and genome.shape == (genome_size((8, 16)),)
    rebuilt = genome_to_module(genome, (8, 16))
    for a, b in zip(mln.parameters(), rebuilt.parameters()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(module_to_genome(rebuilt), genome)


def test_genome_of_wrong_length_is_rejected():
    with pytest.raises(ValueError, match="parameters"):
        genome_to_module(np.zeros(10, dtype=np.float32), (8, 16))


def test_glorot_genome_matches_module_initialisation_bounds(rng):
    genome = glorot_genome((8, 16), rng)
    mln = genome_to_module(genome, (8, 16))
    first = mln.net[0].weight
    bound = np.sqrt(6 / (4 + 8))
    assert first.abs().max() <= bound and first.abs().max() > 0.8 * bound
    assert torch.all(mln.net[0].bias == 0) and torch.all(mln.net[1].weight == 0.25)


def test_batched_forward_equals_module_forward(rng):
    genomes = np.stack([glorot_genome((8, 16), rng) for _ in range(3)])
    x = torch.rand(3, 11, 4)
    batched = batched_mln_forward(torch.as_tensor(genomes), x, (8, 16))
    for i in range(3):
        expected = genome_to_module(genomes[i], (8, 16))(x[i])
        torch.testing.assert_close(batched[i], expected, rtol=1e-6, atol=1e-6)


def _hand_mln() -> MetaLossNetwork:
    """MLN with one hidden unit whose output is softplus(2 * relu-ish(p_true - p_false) ...):
    weights chosen so the value can be computed by hand."""
    mln = MetaLossNetwork((1,))
    with torch.no_grad():
        lin1, prelu, lin2 = mln.net[0], mln.net[1], mln.net[2]
        lin1.weight.copy_(torch.tensor([[-1.0, 1.0, 0.5, 0.0]]))  # h = -p_true + p_false + 0.5
        lin1.bias.zero_()
        prelu.weight.fill_(0.1)
        lin2.weight.fill_(2.0)
        lin2.bias.fill_(-0.3)
    return mln


def _hand_value(pt: float, pf: float) -> float:
    h = -pt + pf + 0.5
    h = h if h >= 0 else 0.1 * h
    return float(np.log1p(np.exp(2.0 * h - 0.3)))


def test_mln_loss_matches_hand_computed_eq4_value_and_gradient():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]], requires_grad=True)
    target = torch.tensor([0, 2])
    loss = MLNLoss(_hand_mln())(logits, target)
    p = torch.softmax(logits.detach(), 1).numpy()
    expected = np.mean([
        _hand_value(p[0, 0], p[0, 1]) + _hand_value(p[0, 0], p[0, 2]),
        _hand_value(p[1, 2], p[1, 0]) + _hand_value(p[1, 2], p[1, 1]),
    ])
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # gradient against central finite differences in float64
    loss.backward()
    mln64 = _hand_mln().double()
    eps = 1e-6
    for i in range(2):
        for j in range(3):
            up, down = logits.detach().double().clone(), logits.detach().double().clone()
            up[i, j] += eps
            down[i, j] -= eps
            fd = (MLNLoss(mln64)(up, target) - MLNLoss(mln64)(down, target)).item() / (2 * eps)
            assert logits.grad[i, j].item() == pytest.approx(fd, abs=1e-5)


def test_mln_loss_reductions_and_binary_case(rng):
    mln = genome_to_module(glorot_genome((8, 8), rng), (8, 8))
    logits, target = torch.randn(5, 2), torch.tensor([0, 1, 1, 0, 1])
    per_sample = MLNLoss(mln, reduction="none")(logits, target)
    assert per_sample.shape == (5,)
    torch.testing.assert_close(MLNLoss(mln, "sum")(logits, target), per_sample.sum())
    torch.testing.assert_close(MLNLoss(mln)(logits, target), per_sample.mean())
    # binary: one false class, p_false = 1 - p_true
    p = torch.softmax(logits, 1)
    pt = p[torch.arange(5), target]
    manual = mln(torch.stack([pt, 1 - pt, torch.ones(5), torch.zeros(5)], 1))
    torch.testing.assert_close(per_sample, manual, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        MLNLoss(mln, reduction="avg")


def test_mln_loss_trains_a_classifier_like_a_torch_loss(rng):
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = torch.nn.Linear(4, 2)
    # A loss that decreases in p_true: Softplus(a * (p_false - p_true)) with a hand-set MLN.
    loss_fn = MLNLoss(_hand_mln())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    assert (model(x).argmax(1) == y).float().mean() > 0.95


def test_save_and_load_loss_roundtrip(tmp_path, rng):
    genome = glorot_genome((8, 8), rng)
    save_loss(tmp_path / "loss.pt", genome, (8, 8), metadata={"fitness": -0.01, "seed": 3})
    record = load_loss_record(tmp_path / "loss.pt")
    assert record["metadata"] == {"fitness": -0.01, "seed": 3}
    np.testing.assert_array_equal(record["genome"].numpy(), genome)
    logits, target = torch.randn(4, 5), torch.tensor([0, 1, 2, 4])
    expected = MLNLoss(genome_to_module(genome, (8, 8)))(logits, target)
    torch.testing.assert_close(load_loss(tmp_path / "loss.pt")(logits, target), expected)


class _Exploit:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_loading_rejects_pickled_code_and_corrupt_files(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "deap_mln.loss/1", "payload": _Exploit()}, evil)
    with pytest.raises(ValueError, match="not a readable"):
        load_loss_record(evil)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a torch file")
    with pytest.raises(ValueError, match="not a readable"):
        load_loss_record(corrupt)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a deap_mln loss file"):
        load_loss_record(other)
    with pytest.raises(FileNotFoundError):
        load_loss_record(tmp_path / "missing.pt")
    for bad in (torch.zeros(genome_size((8, 8)), dtype=torch.float64), torch.full((genome_size((8, 8)),), float("nan"))):
        torch.save({"format": "deap_mln.loss/1", "hidden": [8, 8], "genome": bad, "metadata": {}}, other)
        with pytest.raises(ValueError, match="float32|NaN"):
            load_loss_record(other)


def test_unreadable_file_errors_are_one_line(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"payload": _Exploit()}, evil)
    with pytest.raises(ValueError) as info:
        load_loss_record(evil)
    assert "\n" not in str(info.value)
