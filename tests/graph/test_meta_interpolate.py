"""The tracer's shortcut for ``F.interpolate`` on ``meta``: the shape torch gives, by arithmetic.

On ``meta`` the bilinear and bicubic kernels run as Python decompositions (about 80 ms a call);
CoaT upsamples 24 times a pass. The shortcut must give exactly torch's output shape, and a model
that upsamples must still prune exactly.
"""

import pytest
import torch
import torch.nn.functional as F
from exact import prune_exactly
from torch import nn

from filterprune.graph.rules.spatial import meta_interpolate

CASES = [
    ((1, 4, 7, 9), {"scale_factor": 2, "mode": "bilinear"}),
    ((1, 4, 7, 9), {"scale_factor": 1.5, "mode": "bicubic", "align_corners": False}),
    ((1, 4, 7, 9), {"scale_factor": (0.5, 3.0), "mode": "nearest"}),
    ((1, 4, 7, 9), {"size": (5, 11), "mode": "bilinear", "align_corners": True}),
    ((2, 3, 6), {"size": 13, "mode": "linear"}),
    ((1, 2, 3, 4, 5), {"scale_factor": 2, "mode": "trilinear"}),
    ((1, 4, 7, 9), {"scale_factor": 0.7, "mode": "bilinear", "recompute_scale_factor": True}),
]


@pytest.mark.parametrize(("shape", "kwargs"), CASES)
def test_shape_matches_torch(shape, kwargs):
    x = torch.randn(shape, requires_grad=True)
    want = F.interpolate(x, **kwargs)
    got = meta_interpolate((x.to("meta"),), kwargs)
    assert got is not None and got.device.type == "meta"
    assert got.shape == want.shape and got.dtype == want.dtype
    assert got.grad_fn is not None  # still attached to its input's autograd graph


def test_real_tensors_and_missing_sizes_are_left_to_torch():
    x = torch.randn(1, 2, 4, 4)
    assert meta_interpolate((x,), {"scale_factor": 2}) is None
    assert meta_interpolate((x.to("meta"),), {}) is None


class UpsampleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 12, 3, 2, 1), nn.BatchNorm2d(12), nn.ReLU())
        self.lateral = nn.Conv2d(3, 12, 1)
        self.head = nn.Conv2d(12, 4, 3, padding=1)

    def forward(self, x):
        up = F.interpolate(self.down(x), scale_factor=2, mode="bilinear", align_corners=False)
        return self.head(up + self.lateral(x))


def test_an_upsampling_model_still_prunes_exactly():
    _, pruned, _, _ = prune_exactly("upsample", UpsampleNet)
    assert pruned.down[0].out_channels == pruned.lateral.out_channels < 12


def test_batch_norm_on_meta_keeps_the_input_shape():
    from filterprune.graph.rules.spatial import meta_batch_norm

    x = torch.randn(2, 5, 3, 3, requires_grad=True).to("meta")
    stats = torch.zeros(5, device="meta"), torch.ones(5, device="meta")
    out = meta_batch_norm((x, *stats), {"training": False})
    assert out.shape == F.batch_norm(x, *stats).shape and out.device.type == "meta"
    assert meta_batch_norm((torch.randn(2, 5, 3, 3), *stats), {}) is None


class BatchNormSubclass(nn.BatchNorm2d):
    """timm's BatchNormAct2d: calls F.batch_norm itself, then an activation."""

    def forward(self, x):
        y = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         False, 0.0, self.eps)  # fmt: skip
        return F.relu(y)


class SubclassNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 12, 3, padding=1)
        self.bn = BatchNormSubclass(12)
        self.b = nn.Conv2d(12, 4, 1)

    def forward(self, x):
        return self.b(self.bn(self.a(x)))


def test_a_batch_norm_subclass_still_prunes_exactly():
    _, pruned, _, _ = prune_exactly("bn_subclass", SubclassNet)
    assert pruned.a.out_channels == pruned.bn.num_features == pruned.b.in_channels < 12


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (F.layer_norm, ((7,),)),
        (F.layer_norm, ((5, 7),)),
        (F.group_norm, (1,)),
    ],
    ids=["layer_norm_last", "layer_norm_two_dims", "group_norm"],
)
def test_layer_and_group_norm_on_meta_keep_the_input_shape(call, args) -> None:
    from filterprune.graph.rules.spatial import META_SHORTCUTS

    x = torch.randn(2, 3, 5, 7)
    shortcut = META_SHORTCUTS[call.__name__]
    out = shortcut((x.to("meta"), *args), {})
    assert out.shape == call(x, *args).shape and out.device.type == "meta"
    assert shortcut((x, *args), {}) is None  # a real tensor: torch's own kernel


def test_a_norm_whose_sizes_do_not_fit_is_left_to_torch() -> None:
    from filterprune.graph.rules.spatial import META_SHORTCUTS

    x = torch.empty(2, 6, 4, 4, device="meta")
    assert META_SHORTCUTS["layer_norm"]((x, (5,)), {}) is None
    assert META_SHORTCUTS["group_norm"]((x, 4), {}) is None
