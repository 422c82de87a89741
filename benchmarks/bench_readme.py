"""How long each command the README shows takes on this machine, as it is loaded.

Every fenced ``bash`` and ``python`` block of README.md runs as a reader runs it: in document
order, in one fresh working folder, the Python blocks in one interpreter (they build on each
other), each shell command on its own. Per command it records the wall time, the CPU time (user +
system, all threads), the load average before and after, and the longest time without a line of
output (the issue's "no silence longer than 30 s"). The blocks that start from the reader's own
data get folders of the documented layout made here, with the sizes recorded in the result
(``DATA``): their times grow with images x epochs.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_readme.py   # -> results/readme_commands.json

    PYTHONPATH=src .venv/bin/python benchmarks/bench_readme.py --fashion  # the Fashion-MNIST recipe

Left out, with the reason recorded: ``make demo`` / ``make test`` (benchmarks/bench_demo.py and a
timed ``make test``), commands that need the network (``pip install``, timm, torchvision) and,
unless ``--fashion`` selects it alone, the Fashion-MNIST recipe (needs the Debian dataset).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
SKIP = {  # how a command starts -> why it is not timed here
    "make ": "timed by benchmarks/bench_demo.py (demo) and a timed `make test` (the suite)",
    "apt-get ": "needs root and the Debian archive (timed by hand, see docs/benchmarks.md)",
    "pip install": "needs the network",
    "filterprune inspect --model timm:": "needs timm",
    "filterprune train --task classify --model timm:": "needs timm",
    "filterprune prune --load runs/timm": "needs timm",
    "filterprune prune --load resnet18.safetensors": "needs torchvision and pretrained weights",
}
# the Fashion-MNIST classification recipe's commands: --fashion times them (and only them)
FASHION = re.compile(r"--data fashion-mnist(\s|$)|runs/fm-")
OTHER_RECIPES = {  # text in a command -> why this script leaves it out
    "fashion-mnist-det": "the detection recipe on Fashion-MNIST canvases: not timed here yet",
    "runs/det-": "the detection recipe on Fashion-MNIST canvases: not timed here yet",
    "fashion-mnist-seg": "the segmentation recipe on Fashion-MNIST canvases: not timed here yet",
}
DATA = {
    "data/carvana": "64 image/mask pairs of 96 x 144 px (Carvana layout)",
    "data/dogs-vs-cats": "train/ 2 x 200 and test/ 2 x 50 images of 96 x 96 px (ImageFolder)",
    "seed_unet.pth": "a narrow milesial-2018 U-Net (widths 4-8) and its 22-line channel file",
}

RUNNER = r"""
import json, os, resource, sys, time
protocol = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
namespace = {"__name__": "__readme__"}
for line in sys.stdin:
    block = json.loads(line)
    usage, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    print(f"@@start {block['id']}", file=sys.stderr, flush=True)
    error = None
    try:
        exec(compile(block["code"], block["id"], "exec"), namespace)
    except Exception as exc:
        error = repr(exc)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "error": error}), file=protocol, flush=True)
"""


def blocks(document: Path) -> list[tuple[int, str, str]]:
    """(line, language, code) of each fenced block."""
    text, found = document.read_text(), []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        found.append((text.count("\n", 0, match.start()) + 1, match.group(1), match.group(2)))
    return found


def commands(code: str) -> list[str]:
    """The shell commands of a block: continuation lines joined, comment lines dropped."""
    out, current = [], ""
    for line in code.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line + "\n"
        if not line.rstrip().endswith("\\"):
            out.append(current.rstrip())
            current = ""
    return out


def skipped(command: str, fashion: bool) -> str | None:
    """Why ``command`` is not run: a SKIP entry, or the other half of a --fashion choice."""
    why = next((why for start, why in SKIP.items() if command.startswith(start)), None)
    why = why or next((why for text, why in OTHER_RECIPES.items() if text in command), None)
    if why is None and bool(FASHION.search(command)) != fashion:
        why = "not the Fashion-MNIST recipe" if fashion else "the Fashion-MNIST recipe: --fashion"
    return why


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def longest_silence(stamps: list[float], start: float, end: float) -> float:
    points = [start, *sorted(t for t in stamps if start <= t <= end), end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def run_shell(command: str, work: Path, env: dict, log) -> dict:
    stamps: list[float] = []
    usage, before, start = resource.getrusage(resource.RUSAGE_CHILDREN), load(), time.time()
    proc = subprocess.Popen(
        ["bash", "-eo", "pipefail", "-c", command], cwd=work, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    tail: list[str] = []
    for line in proc.stdout:
        stamps.append(time.time())
        log.write(line)
        tail = [*tail[-7:], line.rstrip()]
    code, end = proc.wait(), time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    return {
        "exit_code": code,
        "wall_s": round(end - start, 1),
        "cpu_s": round(cpu, 1),
        "longest_silence_s": round(longest_silence(stamps, start, end), 1),
        "load_average_before": before,
        "load_average_after": load(),
        "output_tail": tail,
    }


class PythonSession:
    """One interpreter for a document's Python blocks; its output lines are time-stamped."""

    def __init__(self, work: Path, env: dict, log) -> None:
        self.stamps: list[float] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER], cwd=work, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.reader = threading.Thread(target=self._read, args=(log,), daemon=True)
        self.reader.start()

    def _read(self, log) -> None:
        for line in self.proc.stderr:
            self.stamps.append(time.time())
            log.write(line)

    def run(self, block_id: str, code: str) -> dict:
        before, start = load(), time.time()
        self.proc.stdin.write(json.dumps({"id": block_id, "code": code}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        end = time.time()
        stamps = [t for t in self.stamps if t > start + 0.05]  # not the start marker
        return {
            "exit_code": 0 if reply["error"] is None else 1,
            "error": reply["error"],
            "wall_s": round(reply["wall_s"], 1),
            "cpu_s": round(reply["cpu_s"], 1),
            "longest_silence_s": round(longest_silence(stamps, start, end), 1),
            "load_average_before": before,
            "load_average_after": load(),
        }

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


# ----- the reader's data, at the documented paths ------------------------------------------------
def carvana(root: Path, n: int = 64) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    (root / "train_masks").mkdir()
    for i in range(n):
        image = rng.integers(0, 80, (96, 144, 3), dtype=np.uint8)
        mask = np.zeros((96, 144), dtype=np.uint8)
        top, left = rng.integers(10, 40), rng.integers(10, 70)
        image[top : top + 40, left : left + 60] += np.uint8(120)
        mask[top : top + 40, left : left + 60] = 255
        Image.fromarray(image).save(root / "train" / f"car{i:03d}_01.jpg")
        Image.fromarray(mask).save(root / "train_masks" / f"car{i:03d}_01_mask.gif")


def dogs_vs_cats(root: Path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("test", 50)):
        for label, name in enumerate(("cats", "dogs")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                image = rng.integers(0, 160, (96, 96, 3), dtype=np.uint8)
                image[..., label * 2] += np.uint8(90)
                Image.fromarray(image).save(root / split / name / f"{i}.jpg")


def seed_files(work: Path) -> None:
    """Seed 000's files as the docs test writes them, trained 5 epochs on the bigger data here."""
    sys.path.insert(0, str(ROOT / "tests"))
    from seed_files import seed_checkpoint

    seed_checkpoint(work, epochs=5)


PREPARE = {  # how a command starts -> data it needs, made before it runs
    "filterprune train --task segment --model unet": lambda w: carvana(w / "data" / "carvana"),
    "filterprune eval --load seed_unet.pth": seed_files,
    "filterprune train --task classify --model vgg16_bn --model-arg width=0.25 --model-arg head=cifar \\\n    --data data/dogs-vs-cats": (
        lambda w: dogs_vs_cats(w / "data" / "dogs-vs-cats")
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--document", default=str(ROOT / "README.md"))
    parser.add_argument("--log", help="keep every command's output here (default: discarded)")
    parser.add_argument(
        "--out",
        help="default results/readme_commands.json (--fashion: results/readme_fashion_recipe.json)",
    )
    parser.add_argument(
        "--fashion",
        action="store_true",
        help="time only the Fashion-MNIST recipe (needs dataset-fashion-mnist)",
    )
    args = parser.parse_args()
    document = Path(args.document)
    name = "readme_fashion_recipe.json" if args.fashion else "readme_commands.json"
    out = Path(args.out) if args.out else RESULTS / name
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = {"machine": machine_info(), "document": document.name, "data": DATA, "commands": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        open(args.log or Path(tmp) / "output.log", "w", buffering=1) as log,
    ):
        work = Path(tmp) / "work"
        work.mkdir()
        session = PythonSession(work, env, log)
        for line, language, code in blocks(document):
            if language == "python" and not args.fashion:
                entry = session.run(f"{document.name}:{line}", code)
                entry.update(line=line, language="python", command=code.strip().splitlines()[0])
            elif language == "bash":
                for command in commands(code):
                    entry = {"line": line, "language": "bash", "command": command}
                    why = skipped(command, args.fashion)
                    if why is not None:
                        entry["skipped"] = why
                    else:
                        for start, prepare in PREPARE.items():
                            if command.startswith(start):
                                prepare(work)
                        entry.update(run_shell(command, work, env, log))
                    result["commands"].append(entry)
                    print(json.dumps(entry), flush=True)
                continue
            else:
                continue
            result["commands"].append(entry)
            print(json.dumps(entry), flush=True)
        session.close()
    result["load_average_end"] = load()
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
