import dataclasses
import json

import pytest
import torch

from filterprune.measure import (
    LatencyResult,
    efficiency,
    macs_reduction_ratio,
    measure_latency,
    speedup,
    speedups,
)


def test_measure_latency_positive_and_threads_restored(tiny, tiny_input):
    previous = torch.get_num_threads()
    wanted = 1 if previous != 1 else 2
    tiny.train()
    results = measure_latency(
        tiny, tiny_input, batch_sizes=(1, 4), repeats=5, warmup=1, threads=wanted, min_run_time=0.02
    )
    assert torch.get_num_threads() == previous
    assert tiny.training
    assert [r.batch_size for r in results] == [1, 4]
    for r in results:
        assert r.median_ms > 0 and r.mean_ms > 0 and r.iqr_ms >= 0
        assert r.runs >= 1 and r.calls >= 5 and r.threads == wanted and r.device == "cpu"
    assert json.loads(json.dumps(dataclasses.asdict(results[0])))["batch_size"] == 1


def test_measure_latency_tuple_inputs_and_errors(tiny, tiny_input):
    class Add(torch.nn.Module):
        def forward(self, x, y):
            return x + y

    (result,) = measure_latency(
        Add(), (tiny_input, tiny_input), batch_sizes=(3,), repeats=2, warmup=0, min_run_time=0.0
    )
    assert result.batch_size == 3 and result.median_ms > 0
    with pytest.raises(ValueError, match="repeats must be > 0"):
        measure_latency(tiny, tiny_input, repeats=0)
    with pytest.raises(ValueError, match="batch_sizes is empty"):
        measure_latency(tiny, tiny_input, batch_sizes=())


def test_speedup_and_efficiency_arithmetic():
    def result(batch_size, ms):
        return LatencyResult(batch_size, "cpu", 1, ms, 0.0, ms, 10, 1)

    assert speedup(result(1, 10.0), result(1, 4.0)) == 2.5
    assert speedup(10.0, 5.0) == 2.0
    assert speedups([result(1, 10.0), result(8, 40.0)], [result(8, 20.0)]) == {8: 2.0}
    assert macs_reduction_ratio(400, 100) == 4.0
    assert efficiency(speedup=2.0, macs_before=400, macs_after=100) == 0.5
    with pytest.raises(ValueError, match="after"):
        speedup(1.0, 0.0)
