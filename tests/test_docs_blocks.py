"""Every fenced shell and Python block of README.md and docs/*.md runs as written.

The blocks are read from the documents at test time; no command is edited. Each document is one
session, as a reader would follow it: its blocks run in order in one working folder (a fresh
temporary one), its Python blocks share one namespace, and its shell blocks run with ``bash -e``
with this environment's ``filterprune`` first on ``PATH`` (an activated ``.venv``). What the test
adds is data at the paths the documents name: tiny folders of the layouts they describe
(``data/carvana``, ``data/dogs-vs-cats``) and, where a block starts from "your" checkpoint, the
file at the named path (see ``PREPARE``).

A block is left out only through ``EXCLUDED``, each entry with its reason; a stale entry (one
that matches no block) fails the test, and so does a block in a language that is neither shell
nor Python (every fence must name ``bash``, ``python`` or ``text``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from seed_files import seed_checkpoint
from torchrun_abort import teardown_abort

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"bash", "python", "text"}

# (document, how the block's first line starts) -> why it does not run here. Only what CI cannot do.
EXCLUDED: dict[tuple[str, str], str] = {
    # README.md
    ("README.md", "make demo   # creates .venv"): (
        "`make test` runs this very suite (it would recurse) and `make demo` is the full demo "
        "(tens of minutes); `filterprune demo --quick` is run by tests/cli"
    ),
    ("README.md", "apt-get update && apt-get install -y dataset-fashion-mnist"): (
        "needs root and the Debian archive"
    ),
    ("README.md", "filterprune train --task classify --data fashion-mnist"): (
        "needs the Debian Fashion-MNIST dataset (/usr/share/datasets/fashion-mnist); timed with "
        "it by benchmarks/bench_readme.py --fashion"
    ),
    ("README.md", "filterprune train --task detect --data fashion-mnist-det --model yolo_tiny"): (
        "needs the Debian Fashion-MNIST dataset and minutes of training; the same commands on "
        "tiny item files run in tests/tasks/test_detect_cli.py"
    ),
    (
        "README.md",
        "pip install timm",
    ): "needs timm and torchvision (and the network to install them)",
    ("README.md", "import lightning as L"): (
        "run as written, its printed history and checkpoint checked, by "
        "tests/integrations/test_readme_lightning.py (in its own process: Lightning's DDP and "
        "logging must not touch this session)"
    ),
    # docs/distributed.md
    ("distributed.md", "torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 \\"): (
        "needs two machines with 8 GPUs each"
    ),
    ("distributed.md", "fpd.init_from_env()"): (
        "an excerpt: `finetune`, `evaluate` and `ranking_batches` are the reader's own DDP code; "
        "run_pruning under torchrun is run by tests/distributed/test_loop_ddp.py"
    ),
    ("distributed.md", "import itertools"): (
        "two excerpts (Lightning DDP on 2 devices, Hugging Face Accelerate) around the reader's "
        "own LightningModule and loaders; Accelerate is not installed here"
    ),
    # docs/benchmarks.md: each block re-measures and rewrites the checked-in results
    ("benchmarks.md", 'B="nice -n 5 .venv/bin/python benchmarks/bench_fashion.py'): (
        "needs the Debian Fashion-MNIST dataset; hours of training"
    ),
    ("benchmarks.md", "PYTHONPATH=src .venv/bin/python benchmarks/bench_import.py"): (
        "needs the git history (an old commit as baseline); rewrites benchmarks/results"
    ),
    ("benchmarks.md", "PYTHONPATH=src .venv/bin/python benchmarks/bench_criteria.py"): (
        "a 12-minute measurement that rewrites benchmarks/results"
    ),
    ("benchmarks.md", "PYTHONPATH=src .venv/bin/python benchmarks/bench_tasks.py --threads 1"): (
        "a measurement of tens of minutes that rewrites benchmarks/results"
    ),
    ("benchmarks.md", "for o in 0 1 2; do"): (
        "a measurement of tens of minutes that rewrites benchmarks/results"
    ),
    ("benchmarks.md", "PYTHONPATH=src .venv/bin/python benchmarks/bench_rank.py"): (
        "a measurement on a quiet machine that rewrites benchmarks/results"
    ),
    ("benchmarks.md", "PYTHONPATH=src .venv/bin/python benchmarks/bench_vgg224_speed.py"): (
        "a 15-minute measurement that rewrites benchmarks/results"
    ),
    ("benchmarks.md", ".venv/bin/pip install torch-pruning"): (
        "needs the network (torch-pruning); rewrites benchmarks/results and docs/benchmarks.md"
    ),
    ("benchmarks.md", "../shared/tools/zoo-venv.sh /work/zoo-venv"): "needs torchvision",
    ("benchmarks.md", "PYTHONPATH=src .venv/bin/python benchmarks/bench_contention.py"): (
        "a measurement on an idle machine that rewrites benchmarks/results"
    ),
    ("benchmarks.md", "chromium --headless --no-sandbox --hide-scrollbars"): "needs chromium",
    ("benchmarks.md", "PYTHONPATH=src .venv/bin/python benchmarks/bench_demo.py"): (
        "a 4-minute measurement that rewrites benchmarks/results"
    ),
    ("benchmarks.md", "PYTHONPATH=src .venv/bin/python benchmarks/bench_latency_flags.py"): (
        "60 A/A latency comparisons (minutes) that rewrite benchmarks/results"
    ),
    ("benchmarks.md", "PYTHONPATH=src .venv/bin/python benchmarks/bench_readme.py"): (
        "runs every README command (tens of minutes) and rewrites benchmarks/results"
    ),
    ("benchmarks.md", "PYTHONPATH=src .venv/bin/python benchmarks/bench_threads_under_load.py"): (
        "a 100-second measurement of the machine's load that rewrites benchmarks/results"
    ),
    ("benchmarks.md", "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_staircase.py"): (
        "a timing of single layers on an idle machine that rewrites benchmarks/results"
    ),
    ("benchmarks.md", 'B="benchmarks/bench_vgg224_speed.py --out /work/runs/vgg224.json"'): (
        "prunes VGG-16 at 224 px four ways (minutes) and times it on an idle machine"
    ),
    ("benchmarks.md", "benchmarks/latency_target.sh"): (
        "needs the Debian Fashion-MNIST dataset; half an hour of training and pruning"
    ),
    ("benchmarks.md", "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_latency_widths.py"): (
        "minutes of timing on an idle machine that rewrite benchmarks/results; its held-out "
        "half needs torchvision"
    ),
    ("benchmarks.md", "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_floor.py"): (
        "times the pruned models of benchmarks/latency_target.sh (Fashion-MNIST, half an hour "
        "of training and pruning) for minutes, and appends to benchmarks/results"
    ),
    ("benchmarks.md", "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_reach.py"): (
        "a minute of timing on an idle machine that appends to benchmarks/results; its second "
        "half needs torchvision"
    ),
    ("benchmarks.md", "filterprune prune --load /work/runs/lt/resnet-base"): (
        "starts from the ResNet-18 baseline of benchmarks/latency_target.sh (the Debian "
        "Fashion-MNIST dataset); the warning itself is tested in tests/loop/test_latency_target.py"
    ),
    ("benchmarks.md", "benchmarks/canvases.sh"): (
        "needs the Debian Fashion-MNIST dataset and hours of training"
    ),
    ("benchmarks.md", "FILTERPRUNE_SUMMARY_SCREENSHOT="): (
        "runs tests/report/test_summary_page.py, which this suite runs itself, and rewrites "
        "the committed screenshot"
    ),
}

# Blocks that take more than a few seconds: marked slow, with the rest of their document (they
# still run in CI).
SLOW = {
    ("README.md", "filterprune inspect --model resnet18"),
    ("README.md", "filterprune train --task segment --model unet"),
    ("README.md", "filterprune eval --load seed_unet.pth"),
    ("README.md", "import filterprune as fp"),
    ("README.md", "filterprune train --task classify --model vgg16_bn --model-arg width=0.25"),
    ("distributed.md", "torchrun --nproc-per-node 2 prune_ddp.py"),
    ("distributed.md", "torchrun --nproc-per-node 2 -m filterprune train \\"),
}


@dataclass(frozen=True)
class Block:
    """One fenced block: its document, the line of its opening fence, language and code."""

    document: Path
    line: int
    language: str
    code: str

    @property
    def first_line(self) -> str:
        return self.code.strip().splitlines()[0].strip()

    @property
    def id(self) -> str:
        return f"{self.document.name}:{self.line}"


def read_blocks(document: Path) -> list[Block]:
    blocks, text = [], document.read_text()
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(document, line, match.group(1), match.group(2)))
    return blocks


def entries(table, block: Block) -> list:
    """The keys of ``table`` naming ``block``: its document, and how its first line starts."""
    return [
        key
        for key in table
        if key[0] == block.document.name and block.first_line.startswith(key[1])
    ]


BLOCKS = [block for document in DOCUMENTS for block in read_blocks(document)]
RUN = [b for b in BLOCKS if b.language in ("bash", "python") and not entries(EXCLUDED, b)]


# ----- data at the documented paths -------------------------------------------------------------
def _carvana(root: Path) -> None:
    from PIL import Image

    (root / "train").mkdir(parents=True)
    (root / "train_masks").mkdir()
    for car in range(4):
        for view in (1, 2):
            name = f"car{car}_{view:02d}"
            image = Image.new("RGB", (40, 40), (60 * car, 30 * view, 90))
            image.save(root / "train" / f"{name}.jpg")
            mask = Image.new("L", (40, 40), 0)
            mask.paste(255, (10, 10, 30, 30))
            mask.save(root / "train_masks" / f"{name}_mask.gif")


def _dogs_vs_cats(root: Path) -> None:
    from PIL import Image

    for split, n in (("train", 6), ("test", 3)):
        for label, name in enumerate(("cats", "dogs")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                color = (200 * label, 25 * i, 120)
                Image.new("RGB", (48, 48), color).save(root / split / name / f"{i}.jpg")


# block key -> what to put in place before it runs
PREPARE: dict[tuple[str, str], Callable[[Path], None]] = {
    ("README.md", "filterprune train --task segment --model unet --model-arg base=16"): (
        lambda work: _carvana(work / "data" / "carvana")
    ),
    (
        "README.md",
        "filterprune eval --load seed_unet.pth --model unet --model-arg layout=2018 \\",
    ): (seed_checkpoint),
    (
        "README.md",
        "filterprune train --task classify --model vgg16_bn --model-arg width=0.25 --model-arg head=cifar",
    ): (lambda work: _dogs_vs_cats(work / "data" / "dogs-vs-cats")),
}
# block key -> file it is saved as, when the document says "`NAME`:" before it
SAVED_AS = {
    ("distributed.md", '"""Prune a ResNet-18 with Taylor ranking on every rank\'s shard, '
     'finetune with DDP after each step."""'): "prune_ddp.py",
}  # fmt: skip


# ----- one session per document -----------------------------------------------------------------
@dataclass
class Session:
    work: Path
    namespace: dict
    failed: str | None = None


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Session]:
    return {
        doc.name: Session(tmp_path_factory.mktemp(doc.stem), {"__name__": "__docs__"})
        for doc in DOCUMENTS
    }


def _teardown_abort(code: str, stderr: str) -> bool:
    """A torchrun worker killed by the C++ runtime's abort, with no Python error of its own."""
    return code.lstrip().startswith("torchrun") and teardown_abort(stderr)


def _run_bash(code: str, work: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", code],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _run_python(code: str, block: Block, session: Session) -> None:
    before = Path.cwd()
    os.chdir(session.work)
    try:
        exec(compile(code, f"{block.document}:{block.line}", "exec"), session.namespace)
    finally:
        os.chdir(before)


def _params(blocks: list[Block]) -> list:
    """One test per block; a slow block makes the rest of its document slow (they build on it)."""
    params, slow = [], set()
    for block in blocks:
        if entries(SLOW, block) or entries(PREPARE, block):
            slow.add(block.document)
        marks = [pytest.mark.slow] if block.document in slow else []
        params.append(pytest.param(block, id=block.id, marks=marks))
    return params


@pytest.mark.parametrize("block", _params(RUN))
def test_block_runs_as_written(block: Block, sessions: dict[str, Session]) -> None:
    session = sessions[block.document.name]
    if session.failed is not None:
        pytest.fail(f"an earlier block of {block.document.name} failed: {session.failed}")
    session.failed = block.id  # until it succeeds
    for key in entries(SAVED_AS, block):
        (session.work / SAVED_AS[key]).write_text(block.code)
        session.failed = None
        return
    for key in entries(PREPARE, block):
        PREPARE[key](session.work)
    if block.language == "python":
        _run_python(block.code, block, session)
    else:
        done = _run_bash(block.code, session.work)
        if done.returncode != 0 and _teardown_abort(block.code, done.stderr):
            # the runtime's abort at a worker's exit (torchrun_abort.py): the same command
            # runs once more; a second failure, or any other, fails
            done = _run_bash(block.code, session.work)
        assert done.returncode == 0, f"{block.id}\n{block.code}\n{done.stderr[-4000:]}"
    session.failed = None


def test_every_fence_names_its_language() -> None:
    odd = [f"{b.id} ({b.language or 'no language'})" for b in BLOCKS if b.language not in LANGUAGES]
    assert not odd, f"fences must name bash, python or text: {odd}"


def test_every_entry_names_a_block() -> None:
    for table in (EXCLUDED, SLOW, PREPARE, SAVED_AS):
        stale = [key for key in table if not any(key in entries(table, b) for b in BLOCKS)]
        assert stale == [], f"no block starts so: {stale}"
