"""U-Net for dense (per-pixel) prediction, in the layout popularised by milesial/Pytorch-UNet.

Paper: Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015. https://arxiv.org/abs/1505.04597

Registered name: ``unet``.

Encoder widths are ``b, 2b, 4b, 8b, 16b`` with ``b = max(1, round(base * width))`` (64 .. 1024
for the standard net). With ``bilinear=True`` upsampling has no weights, so the bottleneck and
each decoder stage halve their output (``16b -> 8b``, ...) to keep the concatenations balanced;
with ``bilinear=False`` a ``ConvTranspose2d(k=2, s=2)`` halves the channels while upsampling.
Convs are padded ("same"), and an upsampled map is zero-padded to its skip's size before
``torch.cat([skip, up], 1)``, so the output has the input's spatial size for any H, W >= 16.

Tiny preset for tests: ``base=4`` (widths 4 .. 64) on 32x32 input.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ._build import check_positive, init_weights, scale_channels
from .registry import register_model

__all__ = ["DoubleConv", "Down", "OutConv", "UNet", "Up", "unet"]


class DoubleConv(nn.Sequential):
    """(Conv3x3 -> BN -> ReLU) twice; keeps the spatial size.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H, W)``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        mid_channels: Output channels of the first conv; defaults to ``out_channels``.
        bias: Give the convs a bias (the 2018 layout's convs have one).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        mid_channels: int | None = None,
        bias: bool = False,
    ):
        mid = out_channels if mid_channels is None else mid_channels
        super().__init__(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=bias),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 3, padding=1, bias=bias),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """MaxPool2d(2) then :class:`DoubleConv`.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool = False) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, bias=bias))


class Up(nn.Module):
    """Upsample x2, pad to the skip's size, concatenate ``[skip, up]``, then :class:`DoubleConv`.

    Shapes: ``x (N, in_channels - C_skip, h, w)``, ``skip (N, C_skip, H, W)`` with
    ``H in {2h, 2h + 1}`` -> ``(N, out_channels, H, W)``. For ``bilinear=False``, ``x`` has
    ``in_channels`` channels and the transposed conv halves them.

    Args:
        in_channels: Channels entering the :class:`DoubleConv` (after concatenation) in bilinear
            mode; channels of ``x`` in transposed-conv mode.
        out_channels: Output channels.
        bilinear: Weight-free bilinear upsampling (``align_corners=True``) instead of a
            ``ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, bilinear: bool, layout: str = "default"
    ) -> None:
        super().__init__()
        if layout == "2018":  # the decoder of milesial/Pytorch-UNet before 2020
            half = in_channels // 2
            self.up = (
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
                if bilinear
                else nn.ConvTranspose2d(half, half, 2, stride=2)
            )
            self.conv = DoubleConv(in_channels, out_channels, bias=True)
        elif bilinear:
            self.up: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, mid_channels=in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        diff_y = skip.size(2) - x.size(2)
        diff_x = skip.size(3) - x.size(3)
        # F.pad orders the padding (left, right, top, bottom) for the last two dims.
        x = F.pad(x, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class OutConv(nn.Conv2d):
    """1x1 conv producing the per-pixel logits: ``(N, C, H, W) -> (N, num_classes, H, W)``."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__(in_channels, num_classes, kernel_size=1)


class UNet(nn.Module):
    """Four-level U-Net encoder/decoder with skip connections.

    Input: ``(N, in_channels, H, W)`` with ``H, W >= 16`` (odd sizes are fine).
    Output: per-pixel logits ``(N, num_classes, H, W)``.

    Args:
        in_channels: Channels of the input image.
        num_classes: Output channels (1 for binary segmentation logits).
        bilinear: Upsample bilinearly (halved decoder widths) instead of with transposed convs.
        base: Width of the first level at ``width=1`` (64 in the paper).
        width: Multiplier for ``base``; the first level has ``max(1, round(base * width))``
            channels.
        layout: ``"default"``, or ``"2018"``: milesial/Pytorch-UNet as it was before 2020, the
            layout the seed project (Prune_U-Net) pruned: convs with biases, the bottleneck
            halved (``8b``) whatever the upsampling, each decoder block's two convs both of its
            output width, and a transposed conv that keeps its width (``in / 2 -> in / 2``).
            Its checkpoints load as they are (see :meth:`adapt_state_dict`), and so do its
            channel files (:meth:`channel_list_inputs`).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        *,
        bilinear: bool = False,
        base: int = 64,
        width: float = 1.0,
        layout: str = "default",
    ) -> None:
        super().__init__()
        layout = str(layout)  # --model-arg layout=2018 arrives as a number
        if layout not in LAYOUTS:
            raise ConfigError(
                f"UNet: layout must be one of {', '.join(map(repr, LAYOUTS))}, got {layout!r}"
            )
        check_positive("UNet", "in_channels", in_channels)
        check_positive("UNet", "num_classes", num_classes)
        check_positive("UNet", "base", base)
        #: The (C, H, W) input the model is built for (see filterprune.models.input_shape).
        self.input_size = (in_channels, 64, 64)
        check_positive("UNet", "width", width)
        self.bilinear = bilinear
        self.layout = layout
        b = scale_channels(base, width)
        old = layout == "2018"
        factor = 2 if bilinear or old else 1
        up = {"bilinear": bilinear, "layout": layout}

        self.inc = DoubleConv(in_channels, b, bias=old)
        self.down1 = Down(b, 2 * b, bias=old)
        self.down2 = Down(2 * b, 4 * b, bias=old)
        self.down3 = Down(4 * b, 8 * b, bias=old)
        self.down4 = Down(8 * b, 16 * b // factor, bias=old)
        self.up1 = Up(16 * b, 8 * b // factor, **up)
        self.up2 = Up(8 * b, 4 * b // factor, **up)
        self.up3 = Up(4 * b, 2 * b // factor, **up)
        self.up4 = Up(2 * b, b, **up)
        self.outc = OutConv(b, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, in_channels, H, W)`` to logits ``(N, num_classes, H, W)``."""
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)

    def channel_list_inputs(self) -> dict[str, list[str]]:
        """Conv -> the layers whose outputs are concatenated into its input.

        The seed project's channel files list, before each decoder block's first conv, the width
        of its concatenated input: the skip connection's width plus the upsampled one's
        (``1024`` in the 22-line list of the 2018 layout). :func:`filterprune.store.widths.
        channel_widths` accepts such a file and checks those lines against these sums.
        """
        skips = ["down3.1.3", "down2.1.3", "down1.1.3", "inc.3"]
        below = ["down4.1.3", "up1.conv.3", "up2.conv.3", "up3.conv.3"]
        return {
            f"up{i}.conv.0": [skip, src if self.bilinear else f"up{i}.up"]
            for i, (skip, src) in enumerate(zip(skips, below, strict=True), 1)
        }

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` with milesial/Pytorch-UNet's key names (2018 and current) renamed to ours.

        ``inc.conv.conv.0.weight`` / ``inc.double_conv.0.weight`` -> ``inc.0.weight``,
        ``down1.mpconv.1.conv.0.*`` / ``down1.maxpool_conv.1.double_conv.0.*`` ->
        ``down1.1.0.*``, ``up1.conv.conv.0.*`` / ``up1.conv.double_conv.0.*`` ->
        ``up1.conv.0.*``, ``outc.conv.*`` -> ``outc.*``. Other keys are kept as they are (and a
        strict load names them).
        """
        return {_RENAME.sub(_renamed, key): value for key, value in state.items()}


_RENAME = re.compile(
    r"^(?:(inc)\.(?:conv\.conv|double_conv)"
    r"|(down\d)\.(?:mpconv|maxpool_conv)\.1\.(?:conv|double_conv)"
    r"|(up\d\.conv)\.(?:conv|double_conv)"
    r"|(outc)\.conv)\."
)


def _renamed(match: re.Match) -> str:
    inc, down, up, outc = match.groups()
    if down:
        return f"{down}.1."
    return f"{inc or up or outc}."


LAYOUTS = ("default", "2018")


@register_model("unet")
def unet(**kwargs: Any) -> UNet:
    """U-Net (milesial layout). Keyword arguments as for :class:`UNet`."""
    return UNet(**kwargs)
