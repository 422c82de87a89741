"""Canvases of Fashion-MNIST items for segmentation and detection, with labels exact by construction.

Each canvas is drawn from its own seed (the set's seed, its split and its index), so a set is the
same on every machine and in every epoch, and nothing is stored. A canvas of side ``size`` is:

1. **A background**, one of (chosen at random from ``CanvasConfig.backgrounds``):

   * ``"noise"``: Gaussian noise around a random colour, drawn at 1/1 to 1/8 of the side and
     enlarged (from fine grain to soft blobs);
   * ``"gradient"``: a linear ramp between two random colours in a random direction;
   * ``"texture"``: 8 to 20 small, faint items of the same pool scattered over a random colour
     (they are background: they have no label);
   * ``"flat"``: one random colour.

   Background values stay in [0, 0.5] per channel.
2. **1 to 6 items** (``min_items``..``max_items``), each a random image of the pool enlarged
   (bilinear) to a side of ``min_scale``..``max_scale`` x ``size``, at a random place inside the
   canvas, in a random colour of brightness 0.55 to 1. An item's **mask** is where its enlarged
   pixel reaches ``threshold`` (of 1 = white); there the canvas takes the item's pixel exactly (no
   blending), so the mask is exactly where the item shows. Later items cover earlier ones: each
   pixel belongs to the last item drawn there. A new item that would leave an earlier one less
   than ``min_visible`` of its own mask is moved (up to 10 places tried) or left out.
3. **Labels from the items**: the instance masks are the pixels each item owns; a **box** is the
   tight box of that mask, ``(x1, y1, x2, y2)`` in pixel edges (``x2 = last column + 1``); the
   **class** is the item's Fashion-MNIST label (0..9, :data:`~filterprune.tasks.idx.FASHION_MNIST_CLASSES`).

Splits: :func:`canvas_datasets` draws training and validation canvases from disjoint, seeded parts
of the training file's images and test canvases from the ``t10k`` file only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from ..errors import DataError

__all__ = ["BACKGROUNDS", "Canvas", "CanvasConfig", "draw_canvas"]

BACKGROUNDS = ("noise", "gradient", "texture", "flat")
_TRIES = 10


@dataclass(frozen=True)
class CanvasConfig:
    """How canvases are drawn; every field is checked (a ``DataError`` names it).

    Attributes:
        size: Side of a canvas in pixels (64 to 128 for the benchmarks; >= 16).
        min_items: Fewest items per canvas (>= 1).
        max_items: Most items per canvas (>= ``min_items``); also the rows of a detection target.
        min_scale: Smallest item side as a share of ``size`` (an item image is 28 px with a border).
        max_scale: Largest item side as a share of ``size`` (<= 1).
        backgrounds: Background kinds to choose from (see the module docstring).
        channels: 3 (coloured items and backgrounds) or 1 (gray).
        threshold: Pixel value (0..1) from which an enlarged item pixel belongs to its mask.
        min_visible: Share of its own mask an item keeps when later items cover it, in [0, 1).
        seed: Seed of the set; canvas ``i`` of a split is the same for the same seed.
    """

    size: int = 64
    min_items: int = 1
    max_items: int = 6
    min_scale: float = 0.3
    max_scale: float = 0.65
    backgrounds: tuple[str, ...] = field(default=BACKGROUNDS)
    channels: int = 3
    threshold: float = 0.2
    min_visible: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        def fail(name: str, value: object, need: str) -> DataError:
            return DataError(f"CanvasConfig.{name}: {need}, got {value!r}")

        if not isinstance(self.size, int) or self.size < 16:
            raise fail("size", self.size, "need an int >= 16 (pixels; e.g. 64)")
        if not isinstance(self.min_items, int) or self.min_items < 1:
            raise fail("min_items", self.min_items, "need an int >= 1")
        if not isinstance(self.max_items, int) or self.max_items < self.min_items:
            raise fail("max_items", self.max_items, f"need an int >= min_items ({self.min_items})")
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise fail(
                "min_scale/max_scale",
                (self.min_scale, self.max_scale),
                "need 0 < min_scale <= max_scale <= 1",
            )
        if round(self.min_scale * self.size) < 4:
            raise fail("min_scale", self.min_scale, f"items under 4 px at size {self.size}")
        bad = [b for b in self.backgrounds if b not in BACKGROUNDS]
        if not self.backgrounds or bad:
            raise fail("backgrounds", self.backgrounds, f"need some of {BACKGROUNDS}")
        if self.channels not in (1, 3):
            raise fail("channels", self.channels, "need 1 or 3")
        if not 0 < self.threshold < 1:
            raise fail("threshold", self.threshold, "need a value in (0, 1)")
        if not 0 <= self.min_visible < 1:
            raise fail("min_visible", self.min_visible, "need a share in [0, 1)")


@dataclass
class Canvas:
    """One drawn canvas and its labels.

    Attributes:
        image: float32 ``(channels, size, size)`` in [0, 1].
        masks: bool ``(K, size, size)``, the pixels each of the ``K`` items owns (disjoint).
        boxes: float32 ``(K, 4)``, ``(x1, y1, x2, y2)`` pixel edges of each mask.
        labels: int64 ``(K,)`` class of each item.
    """

    image: torch.Tensor
    masks: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor


def _uniform(gen: torch.Generator, low: float, high: float, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=gen) * (high - low) + low


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """An int in [low, high] (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _resize(item: torch.Tensor, side: int) -> torch.Tensor:
    """``(h, w)`` float pixels in [0, 1] -> ``(side, side)``, bilinear."""
    out = F.interpolate(item[None, None], size=(side, side), mode="bilinear", align_corners=False)
    return out[0, 0].clamp_(0, 1)


def _background(
    kind: str, config: CanvasConfig, items: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    size, ch = config.size, config.channels
    base = _uniform(gen, 0.0, 0.4, ch, 1, 1)
    if kind == "flat":
        return base.expand(ch, size, size).clone()
    if kind == "gradient":
        other = _uniform(gen, 0.0, 0.5, ch, 1, 1)
        angle = float(_uniform(gen, 0, 2 * math.pi, 1))
        axis = torch.linspace(-1, 1, size)
        ramp = math.cos(angle) * axis[None, :] + math.sin(angle) * axis[:, None]
        ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min() + 1e-8)
        return (base + (other - base) * ramp).clamp(0, 0.5)
    if kind == "noise":
        coarse = max(2, size // (2 ** _randint(gen, 0, 3)))
        noise = torch.randn(1, ch, coarse, coarse, generator=gen) * float(
            _uniform(gen, 0.04, 0.15, 1)
        )
        noise = F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)[0]
        return (base + noise).clamp(0, 0.5)
    # texture: small faint items of the pool, unlabeled
    canvas = base.expand(ch, size, size).clone()
    for _ in range(_randint(gen, 8, 20)):
        side = max(3, round(float(_uniform(gen, 0.12, 0.3, 1)) * size))
        tile = _resize(items[_randint(gen, 0, len(items) - 1)].float() / 255, side)
        y, x = _randint(gen, 0, size - side), _randint(gen, 0, size - side)
        contrast = _uniform(gen, 0.1, 0.3, ch, 1, 1)
        region = canvas[:, y : y + side, x : x + side]
        torch.maximum(region, base + contrast * tile, out=region)
    return canvas.clamp(0, 0.5)


def draw_canvas(
    images: torch.Tensor, labels: torch.Tensor, config: CanvasConfig, gen: torch.Generator
) -> Canvas:
    """Draw one canvas from a pool of item images (see the module docstring for how).

    Args:
        images: uint8 ``(N, h, w)`` item images (Fashion-MNIST: ``(N, 28, 28)``), N >= 1.
        labels: ``(N,)`` the class of each item image.
        config: Sizes, counts and backgrounds.
        gen: The random generator; the same state gives the same canvas.
    """
    if images.ndim != 3 or len(images) == 0 or len(labels) != len(images):
        raise DataError(
            f"draw_canvas: need item images (N, h, w) with N >= 1 and N labels, got images "
            f"{tuple(images.shape)} and labels {tuple(labels.shape)}"
        )
    size = config.size
    kind = config.backgrounds[_randint(gen, 0, len(config.backgrounds) - 1)]
    canvas = _background(kind, config, images, gen)
    owner = torch.full((size, size), -1, dtype=torch.long)
    areas: list[int] = []
    classes: list[int] = []
    lo, hi = round(config.min_scale * size), round(config.max_scale * size)
    for _ in range(_randint(gen, config.min_items, config.max_items)):
        pick = _randint(gen, 0, len(images) - 1)
        side = _randint(gen, lo, hi)
        tile = _resize(images[pick].float() / 255, side)
        mask = tile >= config.threshold
        if int(mask.sum()) < 4:
            continue
        colour = _uniform(gen, 0.55, 1.0, 1) * _uniform(gen, 0.6, 1.0, config.channels)
        colour = colour / colour.max() * float(_uniform(gen, 0.55, 1.0, 1))
        for _try in range(_TRIES):
            y, x = _randint(gen, 0, size - side), _randint(gen, 0, size - side)
            covered = owner[y : y + side, x : x + side][mask]
            lost = torch.bincount(covered[covered >= 0], minlength=len(areas))
            left = [
                int((owner == k).sum()) - int(lost[k]) >= config.min_visible * areas[k]
                for k in range(len(areas))
            ]
            if all(left):
                break
        else:
            continue
        region = canvas[:, y : y + side, x : x + side]
        region[:, mask] = colour[:, None] * tile[mask][None]
        owner[y : y + side, x : x + side][mask] = len(areas)
        areas.append(int(mask.sum()))
        classes.append(int(labels[pick]))
    masks = owner[None] == torch.arange(len(areas))[:, None, None]
    keep = masks.flatten(1).any(1)
    masks = masks[keep]
    boxes = torch.zeros(len(masks), 4)
    for k, mask in enumerate(masks):
        ys, xs = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        boxes[k] = torch.tensor([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=torch.float32)
    return Canvas(
        image=canvas.float(),
        masks=masks,
        boxes=boxes,
        labels=torch.tensor(classes, dtype=torch.long)[keep],
    )
