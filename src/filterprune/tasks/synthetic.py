"""Seeded synthetic Carvana-like segmentation data: car silhouettes on textured backgrounds.

A stand-in for the Carvana Image Masking Challenge (https://www.kaggle.com/c/carvana-image-masking-challenge)
that needs no download. Each car identity (body shape, cabin, wheels, paint) is rendered in several
views (position, size, aspect, rotation, facing, background, lighting), like Carvana's 16 views per
car, so that train/val splits can be made by car (see :func:`filterprune.tasks.split_by_object_id`).

Only torch is needed to generate; writing to disk (:func:`write_carvana_layout`) needs Pillow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from filterprune.tasks._deps import require

from ..errors import ConfigError

_CHUNK = 64  # images rendered at once; fixed so results never depend on memory settings


@dataclass(frozen=True)
class SyntheticCarsConfig:
    """What to generate.

    Attributes:
        num_cars: Number of distinct car identities.
        views_per_car: Renderings of each car (different pose, background, lighting).
        image_size: Side of the square images in pixels.
        seed: Seed of the generator; the same config always gives identical tensors.
        noise_std: Standard deviation of the additive pixel noise (images are in [0, 1]).
    """

    num_cars: int = 64
    views_per_car: int = 8
    image_size: int = 64
    seed: int = 0
    noise_std: float = 0.03

    def __post_init__(self) -> None:
        for name in ("num_cars", "views_per_car"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"SyntheticCarsConfig.{name} must be an int >= 1, got {value!r}.")
        if not isinstance(self.image_size, int) or self.image_size < 16:
            raise ConfigError(
                f"SyntheticCarsConfig.image_size must be an int >= 16 (pixels), got "
                f"{self.image_size!r}; use e.g. 64."
            )
        if not 0.0 <= self.noise_std <= 0.5:
            raise ConfigError(
                f"SyntheticCarsConfig.noise_std must be in [0, 0.5], got {self.noise_std!r}."
            )

    @property
    def num_images(self) -> int:
        """Total number of images, ``num_cars * views_per_car``."""
        return self.num_cars * self.views_per_car


class SyntheticCars(NamedTuple):
    """Generated data.

    Attributes:
        images: float32 ``(N, 3, H, W)`` in [0, 1].
        masks: float32 ``(N, 1, H, W)`` with values in {0, 1}; 1 marks the car.
        object_ids: int64 ``(N,)``; the car identity of each image (views of one car share it).
        names: ``N`` Carvana-style names ``"car00012_03"`` (``CARID_VIEW``).
    """

    images: torch.Tensor
    masks: torch.Tensor
    object_ids: torch.Tensor
    names: list[str]


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, 1, 1, generator=gen)


def _car_identities(gen: torch.Generator, num_cars: int) -> dict[str, torch.Tensor]:
    """Per-car shape and paint, each ``(num_cars, 1, 1)`` (colors ``(num_cars, 3, 1, 1)``)."""
    return {
        "aspect": _uniform(gen, num_cars, 2.2, 3.2),  # body length / body height
        "cabin_len": _uniform(gen, num_cars, 0.40, 0.62),  # fraction of body length
        "cabin_h": _uniform(gen, num_cars, 0.5, 0.8),  # fraction of body height
        "cabin_shift": _uniform(gen, num_cars, -0.12, 0.12),  # fraction of body length
        "wheel_r": _uniform(gen, num_cars, 0.28, 0.38),  # fraction of body height
        "corner": _uniform(gen, num_cars, 0.15, 0.45),  # corner radius / body height
        "paint": torch.rand(num_cars, 3, 1, 1, generator=gen),
    }


def _backgrounds(gen: torch.Generator, n: int, size: int, avoid: torch.Tensor) -> torch.Tensor:
    """Textured backgrounds ``(n, 3, size, size)`` in [0, 1], tinted away from ``avoid`` colors."""
    axis = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    angle = _uniform(gen, n, 0.0, math.pi)
    along = xx * torch.cos(angle) + yy * torch.sin(angle)  # (n, S, S)
    gradient = (along + 1.0) / 2.0
    freq = _uniform(gen, n, 2.0, 7.0)
    stripes = (torch.sin(along * freq * math.pi) > 0).float()
    across = -xx * torch.sin(angle) + yy * torch.cos(angle)
    checker = ((torch.floor((along + 2) * freq) + torch.floor((across + 2) * freq)) % 2).float()
    coarse = torch.rand(n, 1, 6, 6, generator=gen)
    noise = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")[:, 0]
    centers = torch.rand(n, 4, 2, generator=gen) * 2 - 1
    widths = 0.15 + 0.3 * torch.rand(n, 4, 1, 1, generator=gen)
    dist2 = (xx - centers[..., 0, None, None]) ** 2 + (yy - centers[..., 1, None, None]) ** 2
    blobs = torch.exp(-dist2 / widths**2).amax(dim=1)
    patterns = torch.stack([gradient, stripes, checker, noise, blobs], dim=1)  # (n, 5, S, S)
    choice = torch.randint(0, patterns.shape[1], (n,), generator=gen)
    texture = patterns[torch.arange(n), choice].unsqueeze(1)  # (n, 1, S, S)
    contrast = _uniform(gen, n, 0.15, 0.6).unsqueeze(1)
    base = torch.rand(n, 3, 1, 1, generator=gen)
    # Keep the background's base colour away from the car's paint so the car stays visible.
    too_close = (base - avoid).abs().amax(dim=1, keepdim=True) < 0.3
    base = torch.where(too_close, 1.0 - base, base)
    second = torch.rand(n, 3, 1, 1, generator=gen)
    return ((1 - contrast) * base + contrast * second * texture).clamp(0.0, 1.0)


def _render_chunk(
    gen: torch.Generator, cars: dict[str, torch.Tensor], car_index: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render one view of each car in ``car_index``; returns images and masks."""
    n = car_index.numel()
    shape = {key: value[car_index] for key, value in cars.items()}
    axis = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    # Pose: a side view may be foreshortened (seen at an angle) and mirrored.
    length = _uniform(gen, n, 1.0, 1.6)  # body length, in units of half the image
    foreshorten = _uniform(gen, n, 0.8, 1.0)
    half_len = length * foreshorten / 2
    half_h = length / shape["aspect"] / 2
    facing = torch.where(torch.rand(n, 1, 1, generator=gen) < 0.5, -1.0, 1.0)
    theta = _uniform(gen, n, -0.2, 0.2)
    reach = (half_len + 0.05).clamp(max=0.95)
    cx = (torch.rand(n, 1, 1, generator=gen) * 2 - 1) * (1 - reach)
    cy = _uniform(gen, n, -0.35, 0.45)
    # Car-local coordinates: u along the car (front is +u), v downwards.
    dx, dy = xx - cx, yy - cy
    u = (dx * torch.cos(theta) + dy * torch.sin(theta)) * facing
    v = -dx * torch.sin(theta) + dy * torch.cos(theta)
    radius = shape["corner"] * half_h
    qx = u.abs() - half_len + radius
    qy = v.abs() - half_h + radius
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    body = (outside + torch.minimum(torch.maximum(qx, qy), torch.zeros(())) - radius) <= 0
    cabin_half = shape["cabin_len"] * half_len
    cabin_top = -half_h - shape["cabin_h"] * 2 * half_h
    rise = ((-half_h - v) / (-half_h - cabin_top)).clamp(0, 1)  # 0 at body top, 1 at roof
    cabin_u = u - shape["cabin_shift"] * 2 * half_len
    cabin = (
        (v <= -half_h + 1e-3) & (v >= cabin_top) & (cabin_u.abs() <= cabin_half * (1 - 0.45 * rise))
    )
    wheel_r = shape["wheel_r"] * 2 * half_h
    wheel_x = half_len - 1.3 * wheel_r
    wheels = torch.zeros_like(body)
    for sign in (-1.0, 1.0):
        wheels |= ((u - sign * wheel_x) ** 2 + (v - half_h) ** 2) <= wheel_r**2
    mask = (body | cabin | wheels).unsqueeze(1).float()  # (n, 1, S, S)

    paint = shape["paint"]
    image = _backgrounds(gen, n, size, avoid=paint)
    shade = (1.0 - 0.35 * ((v + half_h) / (2 * half_h)).clamp(0, 1)).unsqueeze(1)
    car = paint * shade
    glass = (cabin & (v >= cabin_top + 0.2 * (-half_h - cabin_top))).unsqueeze(1)
    car = torch.where(glass, 0.25 * paint + 0.1, car)
    car = torch.where(wheels.unsqueeze(1), torch.full_like(car, 0.08), car)
    image = torch.where(mask.bool(), car, image)
    # Lighting: global brightness and a soft directional light, then sensor noise.
    light_angle = _uniform(gen, n, 0.0, 2 * math.pi)
    light = 1 + 0.25 * (xx * torch.cos(light_angle) + yy * torch.sin(light_angle)) / 1.5
    image = image * _uniform(gen, n, 0.75, 1.2).unsqueeze(1) * light.unsqueeze(1)
    return image, mask


def make_synthetic_cars(config: SyntheticCarsConfig | None = None) -> SyntheticCars:
    """Generate the synthetic car dataset.

    Args:
        config: What to generate; defaults to ``SyntheticCarsConfig()`` (512 images of 64x64).

    Returns:
        A :class:`SyntheticCars` with images ``(N, 3, H, W)``, masks ``(N, 1, H, W)``,
        object_ids ``(N,)`` and names, grouped car by car (views of car 0 first).
    """
    config = config or SyntheticCarsConfig()
    gen = torch.Generator().manual_seed(config.seed)
    cars = _car_identities(gen, config.num_cars)
    object_ids = torch.arange(config.num_cars).repeat_interleave(config.views_per_car)
    noise_gen = torch.Generator().manual_seed(config.seed + 1)
    images, masks = [], []
    for start in range(0, config.num_images, _CHUNK):
        chunk_ids = object_ids[start : start + _CHUNK]
        image, mask = _render_chunk(gen, cars, chunk_ids, config.image_size)
        image = image + config.noise_std * torch.randn(image.shape, generator=noise_gen)
        images.append(image.clamp(0.0, 1.0))
        masks.append(mask)
    views = torch.arange(config.num_images) % config.views_per_car
    names = [f"car{int(o):05d}_{int(v):02d}" for o, v in zip(object_ids, views, strict=True)]
    return SyntheticCars(torch.cat(images), torch.cat(masks), object_ids, names)


def write_carvana_layout(
    root: str | Path, data: SyntheticCars, *, mask_format: str = "gif", quality: int = 95
) -> Path:
    """Write images and masks to disk in the Carvana layout.

    Creates ``root/train/CARID_VIEW.jpg`` and ``root/train_masks/CARID_VIEW_mask.gif`` (or ``.png``),
    masks stored as 8-bit images with 0 (background) and 255 (car).

    Args:
        root: Output folder (created if missing).
        data: Output of :func:`make_synthetic_cars`.
        mask_format: ``"gif"`` (as in Carvana) or ``"png"``.
        quality: JPEG quality of the images.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.
    """
    if mask_format not in ("gif", "png"):
        raise ConfigError(
            f"write_carvana_layout: mask_format must be 'gif' or 'png', got {mask_format!r}."
        )
    image_mod = require("PIL.Image", feature="write_carvana_layout")
    np = require("numpy", feature="write_carvana_layout")
    root = Path(root)
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "train_masks").mkdir(parents=True, exist_ok=True)
    pixels = (data.images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    mask_pixels = (data.masks[:, 0] > 0.5).to(torch.uint8).numpy() * 255
    for name, rgb, mask in zip(data.names, pixels, mask_pixels, strict=True):
        image_mod.fromarray(np.ascontiguousarray(rgb)).save(
            root / "train" / f"{name}.jpg", quality=quality
        )
        image_mod.fromarray(np.ascontiguousarray(mask)).save(
            root / "train_masks" / f"{name}_mask.{mask_format}"
        )
    return root
