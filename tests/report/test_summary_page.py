"""summary.html of a real (tiny) run: settings, split tables, inline plots; no overflow at 1280 px."""

from __future__ import annotations

import html
import json
import os
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
    assert '<ul class="notes">' in page  # notes in the tables' small type
    assert "0.00 − 0.00" not in page  # a tiny model's size in MB has significant digits


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# Written into the page's <body> once it has loaded: the page's width against the window's,
# the elements whose right edge passes the window, and the images that did not load.
_MEASURE = """<script>window.addEventListener('load', () => {
  const d = document.documentElement, b = document.body, w = d.clientWidth;
  const wide = [...b.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > w + 1)
    .map(e => e.tagName.toLowerCase() + ':' + (e.textContent || e.getAttribute('src') || '')
      .trim().slice(0, 40));
  const imgs = [...document.images];
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
  b.setAttribute('data-width', d.scrollWidth + '/' + w);
  b.setAttribute('data-height', String(d.scrollHeight));
  b.setAttribute('data-images', imgs.length + '/' + broken.length);
  b.setAttribute('data-wide', JSON.stringify(wide));
  b.setAttribute('data-broken', JSON.stringify(broken));
});</script>"""

_HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--virtual-time-budget=5000"]  # fmt: skip


def _run(browser: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, *_HEADLESS, *args], capture_output=True, text=True, timeout=180, check=True
    )


def test_summary_renders_without_horizontal_overflow_in_chromium(report_dir, tmp_path):
    """The page in a real browser at 1280 px: no horizontal scrolling, every figure loads.

    Skipped without Chromium (Debian package ``chromium``), except under CI (``CI`` set, as
    ``.ci/run`` does), where a missing browser fails. A screenshot of the page is kept in
    ``tmp_path`` and, when ``FILTERPRUNE_SUMMARY_SCREENSHOT`` names a file, copied there (that is
    how ``benchmarks/results/summary_screenshot.png`` was made).
    """
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI: headless Chromium is not installed (.ci/run installs 'chromium')")
        pytest.skip("headless Chromium is not installed (Debian package 'chromium')")
    probe = report_dir / "probe.html"  # beside summary.html, so the figures' links resolve
    page = (report_dir / "summary.html").read_text()
    probe.write_text(page.replace("</body>", _MEASURE + "</body>"))
    out = _run(browser, "--window-size=1280,900", "--dump-dom", probe.as_uri())
    probe.unlink()
    found = re.search(r'<body data-width="(\d+)/(\d+)" data-height="(\d+)"', out.stdout)
    assert found, out.stderr[-2000:]
    scroll, client, height = map(int, found.groups())
    assert client == 1280  # the window (scroll bars hidden)
    wide = json.loads(html.unescape(re.search(r'data-wide="([^"]*)"', out.stdout).group(1)))
    assert scroll <= client and not wide, f"page is {scroll} px wide in {client} px: {wide}"
    images, broken = map(int, re.search(r'data-images="(\d+)/(\d+)"', out.stdout).groups())
    bad = re.search(r'data-broken="([^"]*)"', out.stdout).group(1)
    assert images >= 5 and broken == 0, f"{broken} of {images} figures did not load: {bad}"

    shot = tmp_path / "summary.png"
    size = f"--window-size=1280,{min(height, 12000)}"
    _run(browser, size, f"--screenshot={shot}", (report_dir / "summary.html").as_uri())
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("FILTERPRUNE_SUMMARY_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
