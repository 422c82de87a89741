import torch
from torch import nn

from filterprune.measure import bytes_to_mb, checkpoint_size_bytes


def test_size_grows_with_parameter_count():
    small = checkpoint_size_bytes(nn.Linear(10, 10))
    large = checkpoint_size_bytes(nn.Linear(100, 100))
    assert small >= (10 * 10 + 10) * 4
    assert large >= (100 * 100 + 10) * 4
    assert large - small >= (100 * 100 - 10 * 10) * 4
    assert bytes_to_mb(2_500_000) == 2.5


def test_shared_and_non_contiguous_tensors_are_saved():
    model = nn.Sequential(nn.Linear(32, 32, bias=False), nn.Linear(32, 32, bias=False))
    model[1].weight = model[0].weight  # tied weights: two state-dict keys, one storage
    model.register_buffer("t", torch.randn(16, 8).t())  # non-contiguous view
    size = checkpoint_size_bytes(model)
    assert size >= (2 * 32 * 32 + 16 * 8) * 4
    assert model[1].weight is model[0].weight  # the model is untouched
