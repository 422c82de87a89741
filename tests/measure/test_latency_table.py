"""The latency lookup table (measured layer times against widths, cached per machine) and the
widths chosen on its staircases."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from torch import nn

import filterprune as fp
from filterprune.config import PruneConfig, Selection
from filterprune.errors import ConfigError
from filterprune.measure.latency_table import LatencyTable, LayerShape, layer_shapes
from filterprune.measure.staircase import StaircaseWidths

X = torch.randn(2, 3, 10, 10, generator=torch.Generator().manual_seed(0))


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 40, 3, padding=1), nn.BatchNorm2d(40), nn.ReLU(),
        nn.Conv2d(40, 40, 3, padding=1, groups=40), nn.BatchNorm2d(40), nn.ReLU(),
        nn.Conv2d(40, 36, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(36, 5),
    )  # fmt: skip


def test_layer_shapes_record_every_conv_and_linear_with_its_input():
    shapes = layer_shapes(_net(), X)
    assert set(shapes) == {"0", "3", "6", "10"}
    assert shapes["0"].input_shape == (2, 3, 10, 10) and shapes["0"].cout == 40
    assert shapes["3"].groups == "depthwise"
    assert shapes["10"].kind == "Linear" and shapes["10"].input_shape == (2, 36)


def test_widths_that_break_a_layers_grouping_are_not_timed(tmp_path):
    table = LatencyTable(cache_dir=False)
    depthwise = layer_shapes(_net(), X)["3"]
    assert table.layer_ms(depthwise, 32, 32) > 0
    assert math.isnan(table.layer_ms(depthwise, 32, 40))  # a depthwise layer keeps in == out
    grouped = LayerShape.of(nn.Conv2d(8, 8, 3, groups=4), torch.randn(1, 8, 6, 6))
    assert grouped is not None and grouped.groups == 4
    assert math.isnan(table.layer_ms(grouped, 6, 8))  # 6 inputs in 4 groups
    assert table.layer_ms(grouped, 4, 8) > 0


def test_the_table_is_cached_per_machine_and_read_back(tmp_path):
    shape = layer_shapes(_net(), X)["6"]
    first = LatencyTable(cache_dir=tmp_path)
    ms = first.layer_ms(shape, 20, 18)
    first.save()
    assert first.measured == 1 and first.path is not None and first.path.exists()
    again = LatencyTable(cache_dir=tmp_path)
    assert again.layer_ms(shape, 20, 18) == ms and again.measured == 0
    other_threads = LatencyTable(threads=first.threads + 1, cache_dir=tmp_path)
    assert other_threads.path != first.path  # a table belongs to one thread count


def test_two_processes_writing_one_cache_keep_both_entries(tmp_path):
    shape = layer_shapes(_net(), X)["6"]
    a, b = LatencyTable(cache_dir=tmp_path), LatencyTable(cache_dir=tmp_path)
    a.layer_ms(shape, 20, 18)
    b.layer_ms(shape, 22, 18)  # b read the file before a wrote
    a.save()
    b.save()  # merges what a wrote
    entries = json.loads(a.path.read_text())["entries"]
    assert shape.key(20, 18) in entries and shape.key(22, 18) in entries


@pytest.mark.parametrize("body", ["not json", '{"format": 99, "entries": {}}', '{"format": 1}'])
def test_a_file_that_is_not_a_table_is_left_alone_and_named(tmp_path, caplog, body):
    probe = LatencyTable(cache_dir=tmp_path)
    probe.path.write_text(body)
    with caplog.at_level(logging.WARNING, logger="filterprune"):
        table = LatencyTable(cache_dir=tmp_path)
        table.layer_ms(layer_shapes(_net(), X)["6"], 20, 18)
        table.save()
    assert str(probe.path) in caplog.text and "delete the file" in caplog.text
    assert probe.path.read_text() == body  # not overwritten


class Stairs(LatencyTable):
    """A table whose layers cost 100 per block of 16 outputs plus 1 per input (no timing)."""

    def __init__(self) -> None:
        super().__init__(cache_dir=False)

    def layer_ms(self, shape, cin=None, cout=None):
        cin = shape.cin if cin is None else cin
        cout = shape.cout if cout is None else cout
        return float(100 * math.ceil(cout / 16) + cin)


def _stairs_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 80, 3, padding=1), nn.ReLU(),
        nn.Conv2d(80, 70, 3, padding=1), nn.ReLU(),
        nn.Conv2d(70, 8, 1),
    )  # fmt: skip


def test_the_chooser_takes_the_widest_of_the_fastest_widths_nearby():
    model = _stairs_net()
    graph = fp.analyze(model, X)
    chooser = StaircaseWidths(model, X, Stairs())
    group = next(g for g in graph.prunable if g.name == "0")
    # 80 -> 66 saves 1 per channel; 80 -> 64 saves a whole block too: the best rate
    assert chooser(group, 66, 1) == 64
    # 60 kept: 49..64 all cost four blocks, so the widest of them, 64, saves the most per channel
    assert chooser(group, 60, 1) == 64
    assert chooser(group, 60, 62) == 64  # never below the lowest allowed
    assert chooser(group, 66, 66) == 66  # no block within reach: the ranking's width stays
    assert chooser.moves == [("0", 66, 64), ("0", 60, 64), ("0", 60, 64)]


class Even(LatencyTable):
    """A table whose layers cost their widths' product (no steps)."""

    def __init__(self) -> None:
        super().__init__(cache_dir=False)

    def layer_ms(self, shape, cin=None, cout=None):
        return float((shape.cin if cin is None else cin) * (shape.cout if cout is None else cout))


def test_where_time_falls_evenly_the_rankings_width_stays():
    model = _stairs_net()
    group = next(g for g in fp.analyze(model, X).prunable if g.name == "0")
    chooser = StaircaseWidths(model, X, Even())
    assert [chooser(group, k, 1) for k in (66, 60, 41)] == [66, 60, 41]
    assert chooser.moves == []


class EvenAtOneStairsAtSixteen(LatencyTable):
    """Time falls evenly with width at small batches and in blocks of 16 outputs at 16."""

    def __init__(self) -> None:
        super().__init__(cache_dir=False)
        self.stairs, self.even = Stairs(), Even()

    def layer_ms(self, shape, cin=None, cout=None):
        one = shape.input_shape[0] < 16  # X: batch 2
        return (self.even if one else self.stairs).layer_ms(shape, cin, cout) * (1 if one else 16)


def test_widths_suit_every_batch_size_given_where_one_has_no_steps():
    model = _stairs_net()
    group = next(g for g in fp.analyze(model, X).prunable if g.name == "0")
    table = EvenAtOneStairsAtSixteen()
    at_one = StaircaseWidths(model, X, table)
    assert [at_one(group, k, 1) for k in (66, 60)] == [66, 60]  # batch 2 alone: no steps
    both = StaircaseWidths(model, X, table, more_examples=[X.repeat(8, 1, 1, 1)])
    assert [both(group, k, 1) for k in (66, 60)] == [64, 64]  # batch 16's blocks decide


def test_prune_with_measured_widths_lands_on_the_stairs():
    model = _stairs_net().eval()
    reference = model(X)
    chooser = StaircaseWidths(model, X, Stairs())
    plan = fp.prune(model, X, amount=0.15, criterion="l1", scope="per_group", widths="measured",
                    width_chooser=chooser)  # fmt: skip
    widths = [m.out_channels for m in model if isinstance(m, nn.Conv2d)]
    assert widths[:2] == [64, 64]  # 80 and 70 each lose 15 % by the ranking, then go to 64
    assert plan.num_removed == (80 - 64) + (70 - 64)
    assert model(X).shape == reference.shape


def test_prune_measured_times_this_machine_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("FILTERPRUNE_CACHE_DIR", str(tmp_path))
    model = _stairs_net()
    fp.prune(model, X, amount=0.2, criterion="l1", widths="measured")
    assert list(tmp_path.glob("latency-table-*.json"))  # timed, and cached for the next run


def test_a_latency_target_measures_widths_unless_told_otherwise():
    assert PruneConfig(targets=["latency=-60%"]).widths == "measured"
    assert PruneConfig(targets=["latency=-60%"], round_to=8).widths == "any"
    assert PruneConfig(targets=["latency=-60%"], widths="any").widths == "any"
    assert PruneConfig(targets=["macs=-60%"]).widths == "any"
    with pytest.raises(ConfigError, match="round_to=8 fixes the widths"):
        Selection(widths="measured", round_to=8)
    with pytest.raises(ConfigError, match="widths"):
        Selection(widths="fast")
