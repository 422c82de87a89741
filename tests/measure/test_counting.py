import pytest
import torch
from torch import nn

from filterprune.measure import count, count_params, per_module_macs

# Hand counts for tiny_models.FlattenNet (the `tiny` fixture) on a (1, 3, 8, 8) input.
TINY_CONV_MACS = 4 * 3 * 3 * 3 * 8 * 8  # Cout * Cin * k * k * Hout * Wout = 6912
TINY_FC_MACS = 4 * 8 * 8 * 10  # in * out = 2560
TINY_PARAMS = (4 * 3 * 3 * 3 + 4) + (4 + 4) + (4 * 8 * 8 * 10 + 10)  # conv, bn, fc = 2690


def test_count_matches_hand_computed_macs_and_params(tiny, tiny_input):
    counts = count(tiny, tiny_input)
    assert counts.macs == TINY_CONV_MACS + TINY_FC_MACS == 9472
    assert counts.flops == 2 * counts.macs
    assert counts.params == TINY_PARAMS == sum(p.numel() for p in tiny.parameters())
    assert counts.to_dict() == {"params": TINY_PARAMS, "macs": 9472, "flops": 18944}


def test_macs_scale_with_batch(tiny, tiny_input):
    assert count(tiny, tiny_input.repeat(3, 1, 1, 1)).macs == 3 * count(tiny, tiny_input).macs


def test_per_module_macs_lists_every_leaf(tiny, tiny_input):
    assert per_module_macs(tiny, tiny_input) == {
        "conv": TINY_CONV_MACS,
        "bn": 0,
        "relu": 0,
        "fc": TINY_FC_MACS,
    }


def test_per_module_macs_nested_and_root_leaf(tiny_input):
    nested = nn.Sequential(nn.Sequential(nn.Conv2d(3, 2, 1)), nn.Conv2d(2, 5, 1))
    assert per_module_macs(nested, tiny_input) == {"0.0": 3 * 2 * 64, "1": 2 * 5 * 64}
    assert per_module_macs(nn.Conv2d(3, 2, 1), tiny_input) == {"": 3 * 2 * 64}


def test_training_flags_restored(tiny, tiny_input):
    tiny.train()
    tiny.bn.eval()
    running_mean = tiny.bn.running_mean.clone()
    count(tiny, tiny_input)
    assert tiny.training and tiny.conv.training and not tiny.bn.training
    tiny.bn.train()
    per_module_macs(tiny, tiny_input)
    assert tiny.bn.training
    assert torch.equal(tiny.bn.running_mean, running_mean)  # ran in eval mode


def test_tuple_inputs_and_shared_parameters():
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(6, 6, bias=False)
            self.b = nn.Linear(6, 6, bias=False)
            self.b.weight = self.a.weight  # tied: counted once

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(y)

    model = TwoInputs()
    counts = count(model, (torch.randn(2, 6), torch.randn(2, 6)))
    assert counts.macs == 2 * (2 * 6 * 6)
    assert counts.params == count_params(model) == 36


@pytest.mark.parametrize("bad", [[1.0, 2.0], "x", (), 3])
def test_bad_example_inputs_raise_type_error(tiny, bad):
    with pytest.raises(TypeError, match="example_inputs"):
        count(tiny, bad)
