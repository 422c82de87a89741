"""Tests for the built-in model zoo: every registered model, built tiny, must run and behave."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from filterprune.models import (
    VGG,
    VGG16_CONFIG,
    DenseLayer,
    UnknownModelError,
    create_model,
    list_models,
    register_model,
)

# name -> (tiny constructor kwargs, input shape, expected output shape)
TINY: dict[str, tuple[dict[str, Any], tuple[int, ...], tuple[int, ...]]] = {
    "vgg16": ({"width": 1 / 16, "head": "cifar", "num_classes": 10}, (2, 3, 32, 32), (2, 10)),
    "vgg16_bn": ({"width": 1 / 16, "head": "cifar", "num_classes": 10}, (2, 3, 32, 32), (2, 10)),
    "resnet18": ({"width": 1 / 16, "stem": "cifar", "num_classes": 10}, (2, 3, 32, 32), (2, 10)),
    "resnet34": ({"width": 1 / 16, "stem": "cifar", "num_classes": 10}, (2, 3, 32, 32), (2, 10)),
    "resnet50": ({"width": 1 / 16, "stem": "cifar", "num_classes": 10}, (2, 3, 32, 32), (2, 10)),
    "resnet101": ({"width": 1 / 16, "stem": "cifar", "num_classes": 7}, (2, 3, 32, 32), (2, 7)),
    "resnet152": (
        {"width": 1 / 16, "stem": "cifar", "num_classes": 5, "in_channels": 1},
        (2, 1, 32, 32),
        (2, 5),
    ),
    "mobilenet_v2": (
        {"width": 0.25, "small_input": True, "num_classes": 10},
        (2, 3, 32, 32),
        (2, 10),
    ),
    "densenet_tiny": ({"num_classes": 10}, (2, 3, 32, 32), (2, 10)),
    "unet": ({"base": 4, "num_classes": 2}, (2, 3, 32, 32), (2, 2, 32, 32)),
}

# Models with a ``width`` multiplier (U-Net's tiny preset sets ``base`` and keeps width 1).
WIDTH_MODELS = [name for name, (kwargs, _, _) in TINY.items() if "width" in kwargs] + ["unet"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    # Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the thread
    # hand-offs make them ~10x slower; restore the setting for the rest of the suite.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _tiny(name: str, **overrides: Any) -> nn.Module:
    kwargs, _, _ = TINY[name]
    return create_model(name, **{**kwargs, **overrides})


# Detectors return one map per scale; tests/models/test_yolo.py covers them.
DETECTORS = {"yolo_tiny"}


def test_every_registered_model_has_a_tiny_config() -> None:
    assert set(list_models()) - DETECTORS == set(TINY)
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_shape(name: str) -> None:
    _, in_shape, out_shape = TINY[name]
    torch.manual_seed(0)
    model = _tiny(name)
    out = model(torch.randn(in_shape))
    assert out.shape == out_shape
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert _num_params(model) < 300_000, "tiny preset is not tiny"


# Every head/stem option of each model (the option's name -> its values).
HEAD_OPTIONS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "vgg16": ("head", ("cifar", "imagenet")),
    "vgg16_bn": ("head", ("cifar", "imagenet")),
    "resnet18": ("stem", ("cifar", "imagenet")),
    "resnet34": ("stem", ("cifar", "imagenet")),
    "resnet50": ("stem", ("cifar", "imagenet")),
    "resnet101": ("stem", ("cifar", "imagenet")),
    "resnet152": ("stem", ("cifar", "imagenet")),
    "mobilenet_v2": ("small_input", (True, False)),
    "densenet_tiny": ("stem", ("cifar", "imagenet")),
    "unet": ("bilinear", (True, False)),
}


def test_every_model_lists_its_head_options() -> None:
    assert set(HEAD_OPTIONS) == set(TINY)


@pytest.mark.parametrize("size", [32, 48, 64, 96])
@pytest.mark.parametrize(
    ("name", "option", "value"),
    [(name, option, value) for name, (option, values) in HEAD_OPTIONS.items() for value in values],
)
def test_every_head_takes_any_reasonable_input_size(
    name: str, option: str, value: Any, size: int
) -> None:
    # head="cifar" at 64x64 once failed with "mat1 and mat2 shapes cannot be multiplied"
    kwargs, in_shape, out_shape = TINY[name]
    model = _tiny(name, **{option: value}).eval()
    with torch.no_grad():
        out = model(torch.randn(1, in_shape[1], size, size))
    expected = (1, *out_shape[1:-2], size, size) if name == "unet" else (1, *out_shape[1:])
    assert tuple(out.shape) == expected


def test_vgg_cifar_head_pools_globally_and_is_unchanged_at_32() -> None:
    torch.manual_seed(0)
    model = _tiny("vgg16_bn").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = torch.flatten(model.features(x), 1)  # five pools leave 1x1 at 32x32
        assert torch.allclose(model(x), model.classifier(features))


@pytest.mark.parametrize("name", sorted(TINY))
def test_init_is_deterministic_and_follows_scheme(name: str) -> None:
    torch.manual_seed(123)
    first = _tiny(name).state_dict()
    torch.manual_seed(123)
    second = _tiny(name)
    for key, value in second.state_dict().items():
        assert torch.equal(value, first[key]), key
    for module in second.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
        if isinstance(module, nn.Conv2d | nn.Linear) and module.bias is not None:
            assert torch.all(module.bias == 0)


@pytest.mark.parametrize("name", sorted(TINY))
def test_fx_traceable(name: str) -> None:
    _, in_shape, _ = TINY[name]
    model = _tiny(name).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(in_shape)
    torch.testing.assert_close(traced(x), model(x))


def test_unknown_model_name_lists_known_names() -> None:
    with pytest.raises(KeyError) as info:
        create_model("resnet9000")
    message = str(info.value)
    assert "resnet9000" in message
    for name in list_models():
        assert name in message
    assert isinstance(info.value, UnknownModelError)
    assert isinstance(info.value, ValueError)


def test_register_duplicate_name_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("vgg16")(lambda: nn.Identity())


@pytest.mark.parametrize("name", WIDTH_MODELS)
def test_smaller_width_means_fewer_params(name: str) -> None:
    tiny_width = TINY[name][0].get("width", 1.0)
    sizes = [_num_params(_tiny(name, width=tiny_width * k)) for k in (1, 2, 4)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_vgg16_param_count_matches_hand_count() -> None:
    # width 1/16: conv widths 4,4 | 8,8 | 16,16,16 | 32,32,32 | 32,32,32; cifar head hidden 32.
    widths = [4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]
    expected, c_in = 0, 3
    for c_out in widths:
        expected += c_in * c_out * 9 + c_out  # weight + bias
        c_in = c_out
    expected += 32 * 32 + 32 + 32 * 10 + 10  # Linear(32, 32), Linear(32, 10)
    assert _num_params(_tiny("vgg16")) == expected
    # The BN variant drops conv biases and adds a BN weight and bias per channel.
    assert _num_params(_tiny("vgg16_bn")) == expected + sum(widths)


def test_vgg16_imagenet_head_flattens_7x7_features() -> None:
    model = create_model("vgg16", width=1 / 16, num_classes=11)  # head="imagenet" by default
    out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 11)
    last_conv = [m for m in model.features if isinstance(m, nn.Conv2d)][-1]
    first_linear = next(m for m in model.classifier if isinstance(m, nn.Linear))
    assert last_conv.out_channels == 32
    assert first_linear.in_features == last_conv.out_channels * 49
    assert first_linear.out_features == 4096 // 16


def test_vgg_rejects_bad_options_and_positional_args() -> None:
    with pytest.raises(ValueError, match="head"):
        create_model("vgg16", head="mnist")
    with pytest.raises(ValueError, match="width"):
        create_model("vgg16", width=0)
    with pytest.raises(TypeError):
        VGG(VGG16_CONFIG, 10)  # num_classes is keyword-only


@pytest.mark.parametrize(("name", "fc_in"), [("resnet18", 32), ("resnet50", 128)])
def test_resnet_stems_and_expansion(name: str, fc_in: int) -> None:
    imagenet = create_model(name, width=1 / 16, num_classes=3)
    assert imagenet.conv1.kernel_size == (7, 7) and isinstance(imagenet.maxpool, nn.MaxPool2d)
    assert imagenet(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    cifar = create_model(name, width=1 / 16, num_classes=3, stem="cifar")
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, nn.Identity)
    assert cifar.fc.in_features == fc_in
    # The first block of stages 2-4 changes shape, so it has a 1x1 conv + BN shortcut.
    shortcut = cifar.layer2[0].downsample
    assert isinstance(shortcut[0], nn.Conv2d) and shortcut[0].kernel_size == (1, 1)
    assert isinstance(shortcut[1], nn.BatchNorm2d)


def test_mobilenet_v2_depthwise_and_residuals() -> None:
    model = _tiny("mobilenet_v2")
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17  # one per inverted residual block
    assert all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    assert isinstance(model.features[0][2], nn.ReLU6)
    # Residual blocks: the n - 1 repeats of each stage (10), plus, at width 0.25 (all early
    # widths round up to 8) with small_input, the first blocks of the 16- and 24-wide stages.
    assert sum(getattr(m, "use_residual", False) for m in model.modules()) == 12
    features = model.features(torch.randn(2, 3, 32, 32))
    assert features.shape[-2:] == (4, 4)  # total stride 8 with small_input
    full = create_model("mobilenet_v2", width=0.25)
    assert full.features(torch.randn(2, 3, 64, 64)).shape[-2:] == (2, 2)  # stride 32


def test_mobilenet_v2_divisor_rounds_widths() -> None:
    widths = {m.out_channels for m in _tiny("mobilenet_v2").modules() if isinstance(m, nn.Conv2d)}
    assert all(w % 8 == 0 for w in widths)
    small = create_model("mobilenet_v2", width=0.1, divisor=1, small_input=True)
    assert 3 in {m.out_channels for m in small.modules() if isinstance(m, nn.Conv2d)}


def test_densenet_layers_concatenate() -> None:
    model = _tiny("densenet_tiny")
    layer = next(m for m in model.modules() if isinstance(m, DenseLayer))
    x = torch.randn(2, layer.conv1.in_channels, 8, 8)
    out = layer(x)
    assert out.shape == (2, x.shape[1] + 12, 8, 8)
    torch.testing.assert_close(out[:, : x.shape[1]], x)  # input passes through unchanged
    # 24 stem -> +48 = 72 -> 36 -> +48 = 84 -> 42 -> +48 = 90 channels into the classifier.
    assert model.classifier.in_features == 90
    # 8 stem -> +8 = 16 -> 8 -> +8 = 16.
    smaller = create_model("densenet_tiny", growth_rate=4, block_config=(2, 2))
    assert smaller.classifier.in_features == 16
    assert smaller(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("bilinear", [True, False])
@pytest.mark.parametrize("size", [(32, 32), (36, 44), (17, 23)])
def test_unet_output_matches_input_size(bilinear: bool, size: tuple[int, int]) -> None:
    model = create_model("unet", base=4, bilinear=bilinear, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 3, *size)


@pytest.mark.parametrize(("bilinear", "bottleneck"), [(True, 32), (False, 64)])
def test_unet_channel_layout(bilinear: bool, bottleneck: int) -> None:
    model = create_model("unet", base=4, bilinear=bilinear)
    assert model.inc[0].out_channels == 4
    assert model.down4[1][-3].out_channels == bottleneck
    assert isinstance(model.up1.up, nn.Upsample if bilinear else nn.ConvTranspose2d)
    assert model.outc.out_channels == 1
    assert create_model("unet", base=8, width=0.5).inc[0].out_channels == 4
