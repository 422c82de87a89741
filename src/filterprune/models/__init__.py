"""Built-in model zoo: CNNs to prune, built by name.

>>> from filterprune.models import create_model, list_models
>>> model = create_model("vgg16_bn", num_classes=10, head="cifar", width=0.25)

Every model takes keyword arguments (``num_classes``, ``in_channels``, a ``width`` multiplier or
its own size knobs), initialises its weights with a fixed scheme (Kaiming-normal convs, BN weight
1 / bias 0) and runs on CPU in float32. Small ``width`` / ``base`` values give tiny models for
tests; each model module's docstring names them.
"""

from ._arguments import ModelArgument, model_arguments
from .densenet import DenseLayer, DenseNet, Transition, densenet_tiny
from .hub import HubError, create_hub_model, input_shape, is_hub_name
from .mobilenet import InvertedResidual, MobileNetV2, mobilenet_v2
from .registry import UnknownModelError, create_model, list_models, register_model
from .resnet import (
    BasicBlock,
    Bottleneck,
    ResNet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)
from .unet import DoubleConv, Down, OutConv, UNet, Up, unet
from .vgg import VGG, VGG16_CONFIG, vgg16, vgg16_bn
from .yolo import SPPF, C2f, TinyYOLO, yolo_tiny

__all__ = [
    "VGG",
    "VGG16_CONFIG",
    "BasicBlock",
    "C2f",
    "SPPF",
    "TinyYOLO",
    "Bottleneck",
    "DenseLayer",
    "DenseNet",
    "DoubleConv",
    "Down",
    "InvertedResidual",
    "MobileNetV2",
    "ModelArgument",
    "OutConv",
    "ResNet",
    "Transition",
    "UNet",
    "HubError",
    "UnknownModelError",
    "Up",
    "create_hub_model",
    "create_model",
    "input_shape",
    "is_hub_name",
    "densenet_tiny",
    "list_models",
    "mobilenet_v2",
    "model_arguments",
    "register_model",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "unet",
    "vgg16",
    "vgg16_bn",
    "yolo_tiny",
]
