"""FilterPruning under Lightning's DDP strategy: two CPU processes (gloo), one data shard each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")

WORKER = Path(__file__).with_name("lightning_ddp_worker.py")


@pytest.mark.slow
def test_ddp_ranks_prune_alike_and_stay_in_step(tmp_path):
    done = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for result in ranks:
        assert result["world_size"] == 2
        assert result["wrapped_after_each_step"] == [True, True]
        assert [h["step"] for h in result["history"]] == [1, 2]
        macs = [h["macs"] for h in result["history"]]
        assert result["original"]["macs"] > macs[0] > macs[1]
        assert len(result["oracle_diffs"]) == 2 and max(result["oracle_diffs"]) < 1e-5
    # all-reduced Taylor statistics: the same plan on both shards
    assert ranks[0]["plan_digest"] == ranks[1]["plan_digest"]
    assert ranks[0]["history"] == ranks[1]["history"]
    # the re-wrapped DDP kept averaging gradients after each removal: the replicas are equal
    assert ranks[0]["param_sum"] == pytest.approx(ranks[1]["param_sum"], rel=1e-6, abs=1e-6)
    assert ranks[0]["param_abs_sum"] == pytest.approx(ranks[1]["param_abs_sum"], rel=1e-6)
