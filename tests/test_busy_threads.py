"""The demo runs on one torch thread when the machine is busier than its cores, unless
OMP_NUM_THREADS chose a count (docs/benchmarks.md, "One thread or two on a busy machine")."""

from __future__ import annotations

import os

import pytest
import torch

from filterprune.recipes import demo


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    torch.set_num_threads(2)


@pytest.mark.parametrize(("load", "busy"), [(9.5, 9.5), (2.0, 2.0), (1.9, None), (0.3, None)])
def test_busy_when_the_load_reaches_the_cores(two_cores, monkeypatch, load, busy):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert demo.busy_load() == busy


def test_a_chosen_thread_count_is_kept(two_cores, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (9.5, 9.5, 9.5))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert demo.busy_load() is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    torch.set_num_threads(1)  # already one thread: nothing to change
    assert demo.busy_load() is None


def test_no_load_average_is_not_busy(two_cores, monkeypatch):
    def missing():
        raise OSError("no load average")

    monkeypatch.setattr(os, "getloadavg", missing)
    assert demo.busy_load() is None


def test_the_demo_restores_the_thread_count(two_cores, monkeypatch, tmp_path):
    monkeypatch.setattr(os, "getloadavg", lambda: (9.5, 9.5, 9.5))
    seen = []
    monkeypatch.setattr(
        demo, "_run_locked", lambda config, echo: seen.append(torch.get_num_threads())
    )
    demo.run_demo(demo.DemoConfig(size="smoke", run_dir=tmp_path / "d", cache_dir=tmp_path / "c"))
    assert seen == [1] and torch.get_num_threads() == 2
