"""The TaylorGLO wing: the polynomial, the invariant check, DEAP's CMA-ES, the run directory."""
import csv
import inspect

import pytest
import torch
from deap import algorithms, cma
from torch.nn import functional as F

import deap_mln
from deap_mln.io import BEST_LOSS_FILE, CONFIG_FILE, FITNESS_PLOT, LOGBOOK_FILE
from deap_mln.saved_losses import TAYLOR_FORMAT, read_record
from deap_mln.taylor.config import SQUARED_ERROR_THETA, TaylorConfig, taylor_preset
from deap_mln.taylor.fitness import check_taylor
from deap_mln.taylor.loss import TaylorGLOLoss
from deap_mln.taylor.run import evolve_taylor
from deap_mln.taylor.search import build_taylor_toolbox, numpy_random

TINY = dict(generations=2, lambda_=4, steps=5, hidden=8)


def test_squared_error_parameters_give_squared_error_and_its_gradient():
    logits = torch.randn(6, 10, dtype=torch.float64, requires_grad=True)
    target = torch.randint(10, (6,))
    loss = TaylorGLOLoss(SQUARED_ERROR_THETA)(logits, target)
    p, y = logits.softmax(1), F.one_hot(target, 10).double()
    expected = ((p - y) ** 2).mean(1).mean() - 0.1
    assert torch.allclose(loss, expected)
    (g1,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (g2,) = torch.autograd.grad(expected, logits)
    assert torch.allclose(g1, g2)


def test_linear_parameters_give_minus_p_true_over_k():
    logits, target = torch.randn(5, 4, dtype=torch.float64), torch.randint(4, (5,))
    loss = TaylorGLOLoss([0, 0, 0, 0, 0, 1, 0, 0], reduction="none")(logits, target)
    assert torch.allclose(loss, -logits.softmax(1).gather(1, target[:, None]).squeeze(1) / 4)


def test_bad_parameter_vector_is_refused():
    with pytest.raises(ValueError, match="8 parameters"):
        TaylorGLOLoss([1.0, 2.0])


def test_invariant_check_accepts_trainable_and_rejects_bad_vectors():
    assert check_taylor(SQUARED_ERROR_THETA)
    assert not check_taylor([0.0] * 8)                                   # constant: cannot train
    assert not check_taylor([-v for v in SQUARED_ERROR_THETA])           # rewards the wrong class


def test_the_cma_es_is_deaps(tmp_path):
    toolbox = build_taylor_toolbox(TaylorConfig(**TINY), lambda v: 0.5)
    for name in ("generate", "update"):
        bound = getattr(toolbox, name).func
        assert inspect.ismethod(bound) and isinstance(bound.__self__, cma.Strategy)
    import deap_mln.taylor.search as search
    assert "algorithms.eaGenerateUpdate" in inspect.getsource(search.run_taylor_search)
    assert algorithms.eaGenerateUpdate is search.algorithms.eaGenerateUpdate


def test_numpy_random_is_seeded_and_restored():
    import numpy as np
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    with numpy_random(0, "x"):
        a = np.random.rand()
    with numpy_random(0, "x"):
        assert np.random.rand() == a
    assert (np.random.get_state()[1] == before).all()


def test_tiny_run_writes_its_files_reproducibly_and_the_loss_round_trips(tmp_path):
    config = taylor_preset("quick", **TINY)
    first = evolve_taylor(config, tmp_path / "a", backend="serial", progress=None)
    evolve_taylor(config, tmp_path / "b", backend="serial", progress=None)
    for name in (CONFIG_FILE, LOGBOOK_FILE, BEST_LOSS_FILE, FITNESS_PLOT):
        assert (tmp_path / "a" / name).is_file()

    def rows(run):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(tmp_path / run / LOGBOOK_FILE))]
    assert rows("a") == rows("b") and len(rows("a")) == 2
    assert read_record(first.loss_file)["format"] == TAYLOR_FORMAT
    loss = deap_mln.load_loss(first.loss_file)
    assert isinstance(loss, TaylorGLOLoss)
    assert torch.allclose(loss.theta, torch.tensor(first.best, dtype=torch.float64))
    with pytest.raises(FileExistsError):
        evolve_taylor(config, tmp_path / "a", backend="serial", progress=None)


def test_config_round_trip_and_validation(tmp_path):
    config = taylor_preset("quick")
    config.save(tmp_path / "c.json")
    assert TaylorConfig.load(tmp_path / "c.json") == config
    with pytest.raises(ValueError, match="centroid"):
        taylor_preset("quick", centroid=[0.0])
    with pytest.raises(ValueError, match="unknown TaylorGLO preset"):
        taylor_preset("nope")


@pytest.mark.slow
def test_successive_halving_scores_a_generation_by_rungs_and_is_refused_elsewhere(tmp_path):
    """With halving_rungs, a generation's best trained longest: fitness = rung reached + accuracy."""
    from deap_mln.gp.config import gp_preset
    from deap_mln.mln.config import preset
    from deap_mln.taylor.config import taylor_preset
    from deap_mln.taylor.run import evolve_taylor

    config = taylor_preset("quick", generations=2, lambda_=6, fitness_training="faithful", spec_steps=40,
                           spec_batch_size=64, fraction=0.25, halving_rungs=3, seed=1)
    result = evolve_taylor(config, tmp_path / "tg", backend="serial", progress=None)
    for row in result.search.logbook:
        trained = row["evals"] - row["rejected"]
        if trained >= 3:  # the better half (rounded up) of >= 3 trained vectors goes on to rung 1
            assert 1 <= row["best"] < 3
    assert result.best_fitness >= 1
    for make in (lambda: gp_preset("quick", fitness_training="faithful", halving_rungs=2),
                 lambda: preset("quick", tasks_source="digits", fitness_training="faithful", halving_rungs=2)):
        with pytest.raises(ValueError, match="successive halving scores a cohort"):
            make()
