"""Classification and binary-segmentation metrics, and meters that average them per sample.

Segmentation scores are computed per image and averaged over every image of every batch
(sum of per-image values / number of images); batches of different sizes are weighted correctly.

* Dice = 2|A∩B| / (|A| + |B|)   (Dice 1945, https://doi.org/10.2307/1932409)
* IoU  = |A∩B| / |A∪B|          (Jaccard index)

Both are 1.0 for an image where prediction and target are both empty.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


def _check_classification(logits: torch.Tensor, targets: torch.Tensor, *, name: str) -> None:
    if logits.ndim != 2 or targets.ndim != 1 or logits.shape[0] != targets.shape[0]:
        raise ConfigError(
            f"{name}: expected logits (N, C) and integer targets (N,), got {tuple(logits.shape)} "
            f"and {tuple(targets.shape)}."
        )


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of samples whose arg-max class equals the target.

    Args:
        logits: ``(N, C)`` scores (logits or probabilities).
        targets: ``(N,)`` integer class indices.

    Returns:
        Accuracy in [0, 1].
    """
    return topk_accuracy(logits, targets, k=1)


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, *, k: int) -> torch.Tensor:
    """Per-sample hit of the top-``k`` prediction: bool ``(N,)``.

    Ties are broken by :func:`torch.topk` (lowest index first on CPU).
    """
    _check_classification(logits, targets, name="topk_accuracy")
    if not 1 <= k <= logits.shape[1]:
        raise ConfigError(
            f"topk_accuracy: k must be in [1, number of classes = {logits.shape[1]}], got {k}."
        )
    top = logits.topk(k, dim=1).indices  # (N, k)
    return (top == targets.to(top.device).unsqueeze(1)).any(dim=1)


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    """Fraction of samples whose target is among the ``k`` highest scores.

    Args:
        logits: ``(N, C)`` scores.
        targets: ``(N,)`` integer class indices.
        k: How many top classes count as a hit, ``1 <= k <= C``.

    Returns:
        Top-k accuracy in [0, 1] (0.0 for an empty batch).
    """
    correct = topk_correct(logits, targets, k=k)
    return correct.float().mean().item() if correct.numel() else 0.0


def binarize(
    pred: torch.Tensor, *, threshold: float = 0.5, from_logits: bool = True
) -> torch.Tensor:
    """Turn predictions into a bool mask: ``sigmoid(pred) > threshold`` (or ``pred > threshold``)."""
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold!r}; use e.g. 0.5.")
    probs = torch.sigmoid(pred) if from_logits else pred
    return probs > threshold


def _overlaps(
    pred: torch.Tensor, target: torch.Tensor, *, threshold: float, from_logits: bool, name: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image ``|A∩B|``, ``|A|``, ``|B|`` as float64 ``(N,)``."""
    if pred.shape != target.shape or pred.ndim < 2:
        raise ConfigError(
            f"{name}: prediction and target must have the same shape (N, 1, H, W) or (N, H, W), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}."
        )
    if pred.ndim == 4 and pred.shape[1] != 1:
        raise ConfigError(
            f"{name}: only binary masks (one channel) are supported, got {pred.shape[1]} channels."
        )
    a = binarize(pred, threshold=threshold, from_logits=from_logits).flatten(1).double()
    b = (target > 0.5).flatten(1).double().to(a.device)
    return (a * b).sum(1), a.sum(1), b.sum(1)


def dice_per_image(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    threshold: float = 0.5,
    from_logits: bool = True,
    eps: float = 0.0,
) -> torch.Tensor:
    """Dice coefficient of each image, ``(2|A∩B| + eps) / (|A| + |B| + eps)``.

    Args:
        pred: ``(N, 1, H, W)`` or ``(N, H, W)`` logits (``from_logits=True``) or probabilities.
        target: Same shape, values in {0, 1}.
        threshold: Probability above which a pixel is foreground.
        from_logits: Whether ``pred`` holds logits (sigmoid applied first) or probabilities.
        eps: Optional smoothing added to numerator and denominator; 0 gives the exact ratio.

    Returns:
        float32 ``(N,)``; 1.0 for images where both masks are empty.
    """
    inter, size_a, size_b = _overlaps(
        pred, target, threshold=threshold, from_logits=from_logits, name="dice_per_image"
    )
    denom = size_a + size_b
    dice = (2 * inter + eps) / (denom + eps).clamp(min=1e-12)
    return torch.where(denom == 0, torch.ones_like(dice), dice).float()


def iou_per_image(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    threshold: float = 0.5,
    from_logits: bool = True,
    eps: float = 0.0,
) -> torch.Tensor:
    """Intersection over union of each image, ``(|A∩B| + eps) / (|A∪B| + eps)``.

    Arguments as in :func:`dice_per_image`. Returns float32 ``(N,)``; 1.0 where both masks are empty.
    """
    inter, size_a, size_b = _overlaps(
        pred, target, threshold=threshold, from_logits=from_logits, name="iou_per_image"
    )
    union = size_a + size_b - inter
    iou = (inter + eps) / (union + eps).clamp(min=1e-12)
    return torch.where(union == 0, torch.ones_like(iou), iou).float()


class _Meter:
    """Sums of per-sample values; ``compute()`` divides by the number of samples seen."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.count = 0
        self._sums: dict[str, float] = {}

    def _add(self, name: str, per_sample_sum: float) -> None:
        self._sums[name] = self._sums.get(name, 0.0) + float(per_sample_sum)

    def _add_loss(self, loss: torch.Tensor | float | None, batch_size: int) -> None:
        if loss is not None:  # ``loss`` is the batch mean; weight it by the batch size
            self._add("loss", float(loss) * batch_size)

    def compute(self) -> dict[str, float]:
        """Per-sample averages over all updates, e.g. ``{"dice": 0.93, "iou": 0.88, "loss": 0.1}``."""
        if self.count == 0:
            raise ConfigError(
                f"{type(self).__name__}.compute(): no samples seen; call update() first."
            )
        return {name: total / self.count for name, total in self._sums.items()}


class SegmentationMeter(_Meter):
    """Averages Dice and IoU per image over all images of all batches.

    Args:
        threshold: Probability above which a pixel is foreground.
        from_logits: Whether predictions are logits.
    """

    def __init__(self, *, threshold: float = 0.5, from_logits: bool = True) -> None:
        self.threshold = threshold
        self.from_logits = from_logits
        super().__init__()

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, *, loss: torch.Tensor | float | None = None
    ) -> None:
        """Add one batch: ``pred``/``target`` ``(B, 1, H, W)``; ``loss`` is the batch-mean loss."""
        options = {"threshold": self.threshold, "from_logits": self.from_logits}
        self._add("dice", dice_per_image(pred, target, **options).sum().item())
        self._add("iou", iou_per_image(pred, target, **options).sum().item())
        self._add_loss(loss, pred.shape[0])
        self.count += pred.shape[0]


class ClassificationMeter(_Meter):
    """Averages accuracy (and top-k accuracy) per sample over all batches.

    Args:
        topk: Extra ``k`` values to report as ``"top{k}"`` (skipped when ``k`` exceeds the classes).
    """

    def __init__(self, *, topk: tuple[int, ...] = (5,)) -> None:
        self.topk = topk
        super().__init__()

    def update(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        *,
        loss: torch.Tensor | float | None = None,
    ) -> None:
        """Add one batch: ``logits`` ``(B, C)``, ``targets`` ``(B,)``; ``loss`` is the batch mean."""
        self._add("accuracy", topk_correct(logits, targets, k=1).sum().item())
        for k in self.topk:
            if k <= logits.shape[1]:
                self._add(f"top{k}", topk_correct(logits, targets, k=k).sum().item())
        self._add_loss(loss, logits.shape[0])
        self.count += logits.shape[0]
