"""Classifiers: output shapes for the data sets' input shapes, clear errors for the rest."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from deap_mln.cli import main
from deap_mln.training.models import MODELS, build_model

FITS = [
    ("perceptron", (5,)), ("perceptron", (1, 8, 8)), ("mlp3", (40,)), ("mlp3", (3, 32, 32)),
    ("lenet", (1, 28, 28)), ("lenet", (3, 32, 32)),
    ("resnet18", (1, 8, 8)), ("resnet18", (1, 28, 28)), ("resnet18", (3, 32, 32)),
    ("vgg16", (1, 8, 8)), ("vgg16", (1, 28, 28)), ("vgg16", (3, 32, 32)),
]


@pytest.mark.parametrize("name, shape", FITS)
def test_forward_gives_one_logit_per_class(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient(name):
    shape = (1, 12, 12) if name == "lenet" else (1, 8, 8)
    model = build_model(name, shape, num_classes=3).train()
    nn.functional.cross_entropy(model(torch.randn(4, *shape)), torch.tensor([0, 1, 2, 0])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name, shape, message", [
    ("lenet", (1, 8, 8), "at least 12x12"),
    ("lenet", (40,), "image inputs"),
    ("resnet18", (5,), "image inputs"),
    ("vgg16", (40,), "image inputs"),
])
def test_models_that_cannot_take_a_shape_say_so(name, shape, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, shape, 10)


def test_unknown_model_and_too_few_classes():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("alexnet", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="2 classes"):
        build_model("mlp3", (5,), 1)


@pytest.mark.parametrize("side, pools", [(32, 5), (28, 4), (8, 3)])
def test_vgg16_keeps_only_the_max_pools_the_image_allows(side, pools):
    model = build_model("vgg16", (1, side, side), 10)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == pools
    assert model.features[0].in_channels == 1 and sum(isinstance(m, nn.Conv2d) for m in model.features) == 13


def test_resnet18_small_image_stem():
    model = build_model("resnet18", (3, 32, 32), 10)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)


def test_same_torch_seed_same_initial_weights():
    weights = []
    for _ in range(2):
        torch.manual_seed(5)
        weights.append(torch.nn.utils.parameters_to_vector(build_model("lenet", (1, 28, 28), 10).parameters()))
    assert torch.equal(*weights)
    assert set(MODELS) == {"perceptron", "mlp3", "lenet", "resnet18", "vgg16"}


def test_cli_rejects_a_model_that_does_not_fit_the_data(tmp_path, capsys):
    code = main(["meta-test", "--loss", "ce", "--model", "lenet", "--dataset", "digits", "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert "lenet" in capsys.readouterr().err and not (tmp_path / "o").exists()
