import contextlib
import dataclasses
import json
from collections.abc import Iterator

import pytest
import torch

from filterprune.measure import (
    NOISY_IQR_FRACTION,
    LatencyResult,
    compare_latency,
    efficiency,
    macs_reduction_ratio,
    measure_latency,
)
from filterprune.measure.latency import _flags, median_spread


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


def test_efficiency_arithmetic():
    assert macs_reduction_ratio(400, 100) == 4.0
    assert efficiency(speedup=2.0, macs_before=400, macs_after=100) == 0.5
    with pytest.raises(ValueError, match="macs_after"):
        macs_reduction_ratio(1, 0)


class _Recorder(torch.nn.Module):
    """Logs its name and the input's storage on every call."""

    def __init__(self, name, log):
        super().__init__()
        self.name, self.log = name, log
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x):
        self.log.append((self.name, x.data_ptr(), torch.get_num_threads()))
        return self.conv(x)


def _runs(names):
    out = []
    for name in names:
        if not out or out[-1] != name:
            out.append(name)
    return out


def test_compare_latency_alternates_rounds_on_the_same_input(tiny_input):
    log = []
    a, b = _Recorder("a", log), _Recorder("b", log)
    a.train(), b.eval()
    previous = torch.get_num_threads()
    wanted = 1 if previous != 1 else 2
    (result,) = compare_latency(
        a, b, tiny_input, batch_sizes=(2,), rounds=4, repeats=2, warmup=1, threads=wanted,
        min_run_time=0.0,
    )  # fmt: skip
    assert torch.get_num_threads() == previous and a.training and not b.training
    assert {threads for _, _, threads in log} == {wanted}
    assert len({ptr for _, ptr, _ in log}) == 1  # one input tensor, shared by both models
    # warm-up a, warm-up b, then rounds a|b, b|a, a|b, b|a (adjacent runs of a name merge)
    assert _runs(name for name, _, _ in log) == ["a", "b", "a", "b", "a", "b", "a"]
    assert result.batch_size == 2 and result.rounds == 4 and len(result.round_speedups) == 4
    assert len(result.reference.round_medians_ms) == len(result.model.round_medians_ms) == 4
    assert result.speedup_low == min(result.round_speedups) <= result.speedup
    assert result.speedup <= max(result.round_speedups) == result.speedup_high
    ratios = [
        x / y
        for x, y in zip(
            result.reference.round_medians_ms, result.model.round_medians_ms, strict=True
        )
    ]
    assert sorted(result.round_speedups) == pytest.approx(sorted(ratios))
    record = json.loads(json.dumps(result.to_dict()))
    assert record["speedup"] == result.speedup and record["rounds"] == 4
    assert record["original_median_ms"] == result.reference.median_ms
    with pytest.raises(ValueError, match="compare_latency: rounds must be > 0"):
        compare_latency(a, b, tiny_input, rounds=0)


def test_compare_latency_of_a_model_with_itself(tiny, tiny_input):
    (result,) = compare_latency(tiny, tiny, tiny_input, rounds=3, repeats=3, min_run_time=0.0)
    assert result.rounds == 3 and result.speedup > 0


def test_flags_name_noise_and_disagreeing_rounds():
    def result(iqr):
        return LatencyResult(1, "cpu", 1, 10.0, iqr, 10.0, 10, 1)

    noisy = 10.0 * NOISY_IQR_FRACTION * 1.5
    assert _flags(result(0.1), result(0.1), [2.0, 2.05, 1.98]) == []
    assert _flags(result(noisy), result(0.1), [2.0]) == ["noisy reference"]
    assert _flags(result(0.1), result(noisy), [2.0, 2.0]) == ["noisy model"]
    assert _flags(result(0.1), result(0.1), [2.0, 2.9, 2.1]) == ["rounds disagree"]


def test_flags_fire_on_a_wide_spread_not_on_a_tight_one():
    def result(iqr):  # median 10 ms
        return LatencyResult(1, "cpu", 1, 10.0, iqr, 10.0, 10, 1)

    # an IQR as large as the median is noise; 2 ms of 10 (a busy machine's usual A/A) is not
    assert _flags(result(10.0), result(2.0), [1.0]) == ["noisy reference"]
    assert _flags(result(2.0), result(2.0), [1.0]) == []
    # tight rounds: no flag; one outlying round on each side (the median ignores them): no flag
    tight = [1.48, 1.50, 1.52, 1.49, 1.51]
    assert _flags(result(1.0), result(1.0), tight) == []
    assert _flags(result(1.0), result(1.0), [0.4, 1.48, 1.5, 1.52, 6.0]) == []
    # the rounds beside the median far apart (1.0 to 2.0 around 1.5): the figure may be off by
    # a third either way
    wide = [0.4, 1.0, 1.5, 2.0, 2.6]
    assert median_spread(wide) == pytest.approx(1.0 / 1.5)
    assert _flags(result(1.0), result(1.0), wide) == ["rounds disagree"]
    assert median_spread([1.0]) == 0.0 and median_spread([1.0, 3.0]) == pytest.approx(1.0)
    assert median_spread([1.0, 1.2, 1.4, 1.6, 1.8, 2.0]) == pytest.approx((1.8 - 1.2) / 1.5)
    assert NOISY_IQR_FRACTION < 1.0  # an IQR as large as the median is always flagged


def test_a_timing_that_held_a_core_less_than_its_minimum_share_is_flagged_preempted():
    def result():
        return LatencyResult(1, "cpu", 1, 10.0, 0.1, 10.0, 10, 1)

    tight = [2.0, 2.01, 1.99]
    assert _flags(result(), result(), tight, cpu_share=0.98) == []
    assert _flags(result(), result(), tight, cpu_share=None) == []  # not on the CPU
    assert _flags(result(), result(), tight, cpu_share=0.22) == [
        "preempted (on a core 22% of the time)"
    ]


def _spin(seconds: float) -> None:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@contextlib.contextmanager
def _others_spinning(per_core: int = 3) -> Iterator[None]:
    """Other processes, ``per_core`` for each core this one may use, spinning meanwhile."""
    import multiprocessing
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    spinners = [multiprocessing.get_context("spawn").Process(target=_spin, args=(20.0,))
                for _ in range(per_core * (cores or 1))]  # fmt: skip
    for p in spinners:
        p.start()
    try:
        _spin(1.0)  # let the spinners start (spawn imports this module)
        yield
    finally:
        for p in spinners:
            p.terminate()
            p.join()


def test_compare_latency_flags_a_timing_while_other_processes_hold_every_core():
    """Three spinning processes per core: the timing process gets about a quarter of one."""
    from filterprune.measure.latency import MIN_CPU_SHARE

    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))
    x = torch.randn(1, 64)
    with _others_spinning():
        (busy,) = compare_latency(model, model, x, rounds=3, repeats=50, min_run_time=0.3)
    assert busy.cpu_share is not None and busy.cpu_share < MIN_CPU_SHARE
    assert any(flag.startswith("preempted") for flag in busy.flags)
    assert busy.to_dict()["cpu_share"] == busy.cpu_share


def _stack(blocks: int) -> torch.nn.Module:
    """``blocks`` equal matmul blocks: a stack of 4 costs 4 times one (the floor's oracle)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        *(torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU()) for _ in range(blocks))
    )


def test_the_floor_speed_up_reads_a_known_ratio_on_a_machine_others_hold():
    """Four times the work, timed while three spinning processes per core want the CPU: the
    rounds of compare_latency are preempted; the fastest clean blocks still read about 4x."""
    from filterprune.measure import floor_speedup

    x = torch.randn(16, 256)
    with _others_spinning():
        floor = floor_speedup(_stack(4), _stack(1), x, batch_size=16, seconds=3.0)
    assert floor.speedup is not None, floor
    assert 3.0 <= floor.speedup <= 5.3, floor
    assert floor.clean_blocks[0] <= floor.blocks[0] and floor.clean_blocks[1] <= floor.blocks[1]
    assert sum(floor.clean_blocks) < sum(floor.blocks)  # the spinners did interrupt blocks
    assert floor.to_dict()["speedup"] == floor.speedup


def test_the_floor_keeps_no_block_its_process_was_preempted_in(monkeypatch):
    import filterprune.measure.latency as latency

    clock = iter(range(10**9))  # CPU time that never advances within a block: every one preempted
    monkeypatch.setattr(latency.time, "process_time", lambda: 0.0 * next(clock))
    floor = latency.floor_speedup(_stack(2), _stack(1), torch.randn(1, 256), seconds=0.05)
    assert floor.speedup is None and floor.clean_blocks == (0, 0) and min(floor.blocks) > 0


def test_the_floor_checks_its_settings():
    from filterprune.errors import ConfigError
    from filterprune.measure import floor_speedup

    with pytest.raises(ConfigError, match="seconds must be > 0"):
        floor_speedup(_stack(1), _stack(1), torch.randn(1, 256), seconds=0)
    with pytest.raises(ConfigError, match="batch_size must be > 0"):
        floor_speedup(_stack(1), _stack(1), torch.randn(1, 256), batch_size=0)
