"""summary.html of a real (tiny) run: settings, split tables, inline plots; no overflow at 1280 px."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from report_tiny import make_catnet

from filterprune.loop import PruneConfig, run_pruning
from filterprune.report import write_run_report
from filterprune.report.summary import MAX_HTML_COLUMNS

pytest.importorskip("matplotlib")
pytest.importorskip("safetensors")

X = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(5))
LABELS = torch.tensor([0, 1, 0, 1])


def _evaluate(model: torch.nn.Module) -> dict[str, float]:
    with torch.no_grad():
        out = model(X)
    return {
        "accuracy": float((out.argmax(1) == LABELS).float().mean()),
        "loss": float(out.abs().mean()),
    }


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("summary") / "run"
    config = PruneConfig(
        amount=0.25, max_iterations=2, metric="accuracy", max_metric_drop=1.0,
        measure_latency=True,
        latency={"devices": ["cpu"], "threads": 1, "rounds": 3, "repeats": 2, "min_run_time": 0.0},
    )  # fmt: skip
    run_pruning(
        make_catnet(), X[:1], config=config, evaluate=_evaluate, run_dir=run, progress=False
    )
    write_run_report(run)
    return run / "report"


def test_summary_has_settings_split_tables_and_inline_plots(report_dir):
    page = (report_dir / "summary.html").read_text()
    assert "<caption>Run settings</caption>" in page
    for setting in ("criterion", "scope", "FLOPs regularisation", "targets", "stop reason",
                    "machine", "software", "metric bound"):  # fmt: skip
        assert f"<td>{setting}</td>" in page
    assert f"torch {torch.__version__}" in page and "logical cores" in page
    assert "accuracy ≥ " in page and "max_iterations" in page
    # the iteration table (more than MAX_HTML_COLUMNS columns) is split, each part keyed
    assert "Pruning iterations (1/" in page
    for table in re.findall(r"<table>.*?</table>", page, flags=re.S):
        assert table.count("<th>") <= MAX_HTML_COLUMNS
    images = re.findall(r'<img src="([^"]+)"', page)
    stems = {Path(src).stem for src in images}
    assert {"overview", "accuracy_vs_macs", "latency_vs_macs", "channels", "scores"} <= stems
    assert all((report_dir / src).is_file() for src in images)
    assert "+0.00 pt" in page  # accuracy changes in percentage points


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_summary_renders_without_horizontal_overflow_in_chromium(report_dir, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium')")
    probe = report_dir / "probe.html"
    page = (report_dir / "summary.html").read_text()
    script = (
        "<script>window.addEventListener('load',()=>{const d=document.documentElement;"
        "document.body.setAttribute('data-width',d.scrollWidth+'/'+d.clientWidth);});</script>"
    )
    probe.write_text(page.replace("</body>", script + "</body>"))
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    found = re.search(r'data-width="(\d+)/(\d+)"', out.stdout)
    assert found, out.stderr[-2000:]
    scroll, client = map(int, found.groups())
    assert client > 1000  # the 1280 px window (less a scroll bar)
    assert scroll <= client, f"page is {scroll} px wide in a {client} px window"
