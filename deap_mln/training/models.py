"""Classifiers for meta-testing, built for a data set's input shape and number of classes.

| name | architecture | inputs |
|---|---|---|
| perceptron | one linear layer on the flattened input | any |
| mlp3 | three-layer perceptron: flatten -> 128 -> 128 -> K, ReLU | any |
| lenet | LeNet-5: conv 6@5x5 (pad 2), pool, conv 16@5x5, pool, 120, 84, K; ReLU | images, H, W >= 12 |
| resnet18 | torchvision ResNet-18, stem for small images: 3x3 stride-1 conv, no max pool | images (C, H, W) |
| vgg16 | VGG-16-BN (torchvision's layers), pools below 1x1 dropped, classifier 512, 512, K | images (C, H, W) |

Inputs with any number of channels are accepted (the first convolution is built for C).
A model that cannot take a shape raises ``ValueError`` naming the shape and what it needs.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

MODELS = ("perceptron", "mlp3", "lenet", "resnet18", "vgg16")
MLP_HIDDEN = 128
LENET_MIN_SIDE = 12  # conv5(pad 2) -> pool2 -> conv5 -> pool2 leaves at least 1x1 from 12x12


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def perceptron(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Single-layer perceptron: logits = W flatten(x) + b."""
    return nn.Sequential(nn.Flatten(), nn.Linear(_numel(input_shape), num_classes))


def mlp3(input_shape: Sequence[int], num_classes: int, hidden: int = MLP_HIDDEN) -> nn.Module:
    """Three-layer perceptron (two hidden ReLU layers of ``hidden`` units)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(_numel(input_shape), hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def _image_shape(name: str, input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"model {name} needs image inputs (channels, height, width); this data set gives "
                         f"inputs of shape {tuple(input_shape)}: use perceptron or mlp3")
    c, h, w = (int(s) for s in input_shape)
    return c, h, w


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling; padding 2 on the first
    convolution so that 28x28 digits keep the classic 5x5x16 feature map."""

    def __init__(self, input_shape: Sequence[int], num_classes: int):
        super().__init__()
        c, h, w = _image_shape("lenet", input_shape)
        if min(h, w) < LENET_MIN_SIDE:
            raise ValueError(f"model lenet needs images of at least {LENET_MIN_SIDE}x{LENET_MIN_SIDE}; "
                             f"this data set gives {h}x{w}")
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        side_h, side_w = (h // 2 - 4) // 2, (w // 2 - 4) // 2
        self.classifier = nn.Sequential(nn.Linear(16 * side_h * side_w, 120), nn.ReLU(),
                                        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def resnet18_small(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """torchvision ResNet-18 with the usual small-image stem (as for CIFAR): a 3x3 stride-1
    convolution from C channels and no max pool; global average pooling keeps any size."""
    from torchvision.models import resnet18

    c, _, _ = _image_shape("resnet18", input_shape)
    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(c, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


class VGG16Small(nn.Module):
    """VGG-16 (configuration D of Simonyan & Zisserman, batch-norm variant, which trains from
    scratch with Adam) adapted to small images, built from torchvision's ``make_layers``:
    first convolution from C channels; max pools that would halve a map smaller than 2x2
    replaced by identities (28x28 keeps 4 of 5, 8x8 keeps 3); global average pooling and the
    CIFAR-style classifier 512 -> 512 -> K instead of 25088 -> 4096 -> 4096 -> 1000.
    Initialisation as torchvision's VGG."""

    def __init__(self, input_shape: Sequence[int], num_classes: int):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        c, h, w = _image_shape("vgg16", input_shape)
        layers = list(make_layers(cfgs["D"], batch_norm=True))
        layers[0] = nn.Conv2d(c, 64, kernel_size=3, padding=1)
        side = min(h, w)
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.MaxPool2d):
                if side >= 2:
                    side //= 2
                else:
                    layers[i] = nn.Identity()
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
                                        nn.Linear(512, num_classes))
        for m in self.modules():  # torchvision's VGG initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


_BUILDERS = {"perceptron": perceptron, "mlp3": mlp3, "lenet": LeNet5, "resnet18": resnet18_small, "vgg16": VGG16Small}


def build_model(name: str, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """A freshly initialised classifier ``name`` (one of :data:`MODELS`) for inputs of
    ``input_shape`` (without the batch axis) and ``num_classes`` outputs.

    Initial weights come from torch's global generator: seed it (``torch.manual_seed``)
    before calling for reproducible weights."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    return _BUILDERS[name](tuple(input_shape), num_classes)
