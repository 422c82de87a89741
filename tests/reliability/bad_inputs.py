"""Every bad input of docs/errors.md: how to make it, and what the message must say.

A CLI case builds an argument list in a fresh folder (``env``); the command must fail with one
line ``filterprune: error: ...`` holding every fragment, exit with the given status, and leave
no partial output (``--run-dir``/``--out`` absent, unless the case says the folder is kept as a
complete, loadable run). An API case calls the Python API and expects an exception type.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rel_tiny import DATA, MODEL, PRUNE, TRAIN, TRUSTED, build


@dataclass
class Env:
    """A fresh folder with a copy of the trained baseline."""

    root: Path
    base: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    def write(self, name: str, data: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
        return path

    def prune(self, *extra: Any, load: Path | None = None) -> list[str]:
        return [*PRUNE, "--load", str(load or self.base), "--run-dir", str(self.run), *extra]


@dataclass(frozen=True)
class CliCase:
    id: str
    bad: str  # the bad input, as the docs table says it
    argv: Callable[[Env], list[Any]]
    fragments: tuple[str, ...]
    status: int = 1
    keeps_run: bool = False  # the run folder holds a complete, loadable run afterwards
    setup: Callable[[Env], None] | None = None
    untouched: tuple[str, ...] = field(default=())  # files under env.root that must survive


def _garbage(env: Env) -> Path:
    return env.write("bad.safetensors", b"\x00\x01not a safetensors file" * 10)


def _truncated(env: Env) -> Path:
    data = (env.base / "weights.safetensors").read_bytes()
    return env.write("half/weights.safetensors", data[: len(data) // 2])


def _whole_model(env: Env) -> Path:
    path = env.root / "whole.pt"
    torch.save(build(), path)  # pickles the module object, not just tensors
    return path


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: what a hostile checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile(env: Env) -> Path:
    path = env.root / "hostile.pt"
    torch.save({"conv1.weight": torch.zeros(1), "x": _Payload(env.root / "pwned")}, path)
    return path


def _folder_data(env: Env, *, bad_image: bool = False, empty_class: bool = False) -> Path:
    from PIL import Image

    root = env.root / "images"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        if empty_class and cls == "b":
            continue
        for i in range(4):
            Image.new("RGB", (8, 8), (40 * i, 100 if cls == "a" else 200, 0)).save(
                root / cls / f"{i}.png"
            )
    if bad_image:
        (root / "a" / "0.png").write_bytes(b"this is not a png")  # read first: split order
        (root / "b" / "0.png").write_bytes(b"this is not a png")
    return root


def _carvana_without_mask(env: Env) -> Path:
    from PIL import Image

    root = env.root / "cars"
    (root / "train").mkdir(parents=True)
    (root / "train_masks").mkdir()
    for name in ("car1_01", "car1_02"):
        Image.new("RGB", (8, 8)).save(root / "train" / f"{name}.jpg")
    Image.new("L", (8, 8)).save(root / "train_masks" / "car1_01_mask.gif")
    return root


def _finished_run(env: Env) -> None:
    from filterprune.cli import main

    assert main(env.prune("--max-iterations", "1")) == 0


def _torchscript(env: Env) -> Path:
    """A TorchScript archive: torch.load warns about it before refusing it."""
    import warnings

    path = env.root / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated
        torch.jit.script(build()).save(str(path))
    return path


def _with_weights(env: Env, name: str, change: Callable[[dict], None]) -> Path:
    """The baseline's weights with ``change`` applied, saved as ``name`` (safetensors)."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(env.base / "weights.safetensors"))
    change(state)
    path = env.root / name
    save_file(state, str(path))
    return path


def _nan_weights(env: Env) -> Path:
    return _with_weights(
        env, "nan.safetensors", lambda s: s["conv2.weight"].view(-1).__setitem__(3, float("nan"))
    )


def _nan_outputs(env: Env) -> Path:
    """Finite weights whose outputs are NaN: a negative BatchNorm variance."""
    return _with_weights(env, "negvar.safetensors", lambda s: s["bn1.running_var"].fill_(-1.0))


def _edit_json(env: Env, name: str, change: Callable[[dict], None]) -> None:
    path = env.run / name if not name.startswith("base/") else env.root / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _state(change: Callable[[dict], None]) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        _finished_run(env)
        _edit_json(env, "state.json", change)

    return setup


def _log_row(env: Env) -> None:
    _finished_run(env)
    lines = (env.run / "log.jsonl").read_text().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), "iteration": 1.5})
    (env.run / "log.jsonl").write_text("\n".join(lines) + "\n")


def _broken_plan(env: Env) -> None:
    _finished_run(env)
    (env.run / "iter_001" / "plan.json").write_text('{"format": 1, "removed_outputs": 7}')


def _narrow_baseline(env: Env) -> Path:
    """A baseline of the same model at width 4 (another architecture than the run's)."""
    from filterprune import save

    return save(build(width=4), None, env.root / "narrow")


def _carvana_with_small_mask(env: Env) -> Path:
    from PIL import Image

    root = env.root / "cars"
    (root / "train").mkdir(parents=True)
    (root / "train_masks").mkdir()
    for name in ("car1_01", "car2_01", "car3_01"):
        Image.new("RGB", (16, 16)).save(root / "train" / f"{name}.jpg")
        size = (8, 8) if name == "car1_01" else (16, 16)
        Image.new("L", size).save(root / "train_masks" / f"{name}_mask.gif")
    return root


def _png_header(width: int, height: int) -> bytes:
    """A small PNG file that claims ``width`` x ``height`` pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _huge_image(env: Env) -> Path:
    """An image folder with one file that claims 30000 x 30000 pixels (Pillow: a bomb)."""
    root = _folder_data(env)
    (root / "b" / "0.png").write_bytes(_png_header(30000, 30000))
    return root


def _more_classes(env: Env) -> Path:
    """An image folder with 12 classes, for a model with 10 outputs."""
    from PIL import Image

    root = env.root / "twelve"
    for c in range(12):
        (root / f"c{c:02d}").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (20 * c, 60 * i, 0)).save(root / f"c{c:02d}" / f"{i}.png")
    return root


def _wide_model_json(env: Env) -> None:
    """model.json next to --load asks for a model far too wide for any machine's memory."""
    _edit_json(env, "base/model.json", lambda d: d.update(model_args={"width": 100000}))


def _hub_model_json(env: Env) -> None:
    """model.json naming a timm model, with an argument that makes timm read a file."""
    info = json.loads((env.base / "model.json").read_text())
    info["model"] = "timm:resnet18"
    info["model_args"] = {"num_classes": 10, "checkpoint_path": str(env.root / "evil.pth")}
    (env.base / "model.json").write_text(json.dumps(info))


def _untrusted(env: Env) -> list[str]:
    """A prune command without --model/--trust-model-code: the model comes from model.json."""
    return [a for a in env.prune() if a not in TRUSTED]


def _hostile_model_json(env: Env) -> None:
    """model.json naming a standard-library function with a shell command as its argument."""
    info = json.loads((env.base / "model.json").read_text())
    info["model"], info["model_args"] = "os:system", {"command": f"touch {env.root / 'pwned'}"}
    (env.base / "model.json").write_text(json.dumps(info))


def _user_folder(env: Env) -> None:
    env.write("mine/notes.txt", "not a checkpoint")


def _broken_state(env: Env) -> None:
    _finished_run(env)
    (env.run / "state.json").write_text('{"format": 1, "last_')


CLI_CASES = [
    # ----- checkpoints --------------------------------------------------------------------------
    CliCase(
        "load-missing",
        "`--load` names no file or folder",
        lambda env: env.prune(load=env.root / "nope"),
        ("--load", "nope", "does not exist"),
        status=2,
    ),
    CliCase(
        "load-corrupt",
        "`--load` file is not a safetensors file (garbage bytes)",
        lambda env: env.prune("--model", MODEL, "--task", "classify", load=_garbage(env)),
        ("bad.safetensors", "is not a readable safetensors file", "torch.save(model.state_dict()"),
    ),
    CliCase(
        "load-truncated",
        "`--load` weights file cut short (e.g. an interrupted copy)",
        lambda env: env.prune("--model", MODEL, "--task", "classify", load=_truncated(env)),
        ("half/weights.safetensors", "is not a readable safetensors file"),
    ),
    CliCase(
        "load-pickled-model",
        "`--load model.pt` holding a whole pickled model (`torch.save(model)`)",
        lambda env: env.prune("--model", MODEL, "--task", "classify", load=_whole_model(env)),
        ("whole.pt", "holds pickled Python objects", "does not unpickle", "model.state_dict()"),
    ),
    CliCase(
        "load-hostile-pickle",
        "`--load x.pt` whose pickle would run code when loaded",
        lambda env: env.prune("--model", MODEL, "--task", "classify", load=_hostile(env)),
        ("hostile.pt", "holds pickled Python objects", "can run any code"),
    ),
    CliCase(
        "load-torchscript",
        "`--load model.pt` holding a TorchScript archive (torch warns while reading it)",
        lambda env: env.prune("--task", "classify", load=_torchscript(env)),
        ("scripted.pt", "is a TorchScript archive", "torch.save(model.state_dict()"),
    ),
    CliCase(
        "load-nan-weights",
        "`--load` weights holding a NaN",
        lambda env: env.prune("--task", "classify", load=_nan_weights(env)),
        ("nan.safetensors", "tensor 'conv2.weight' holds 1 NaN/inf value(s)", "earlier checkpoint"),
    ),
    CliCase(
        "eval-nan-output",
        "`eval` of a model whose outputs are NaN (finite weights, negative BatchNorm variance)",
        lambda env: (
            ["eval", "--load", _nan_outputs(env), *TRUSTED, "--task", "classify", *DATA]
            + ["--json"]
        ),
        ("--load", "negvar.safetensors", "is nan", "NaN or inf"),
    ),
    CliCase(
        "checkpoint-wrong-model-arg",
        "checkpoint made with other model arguments (`--model-arg width=4`)",
        lambda env: env.prune("--model", MODEL, "--model-arg", "width=4"),
        ("layer 'conv1'", "(8, 3, 3, 3) in the checkpoint", "(4, 3, 3, 3) in the model"),
    ),
    CliCase(
        "checkpoint-other-model",
        "checkpoint of another architecture (`--model` names a different factory)",
        lambda env: env.prune("--model", "rel_tiny:build_other"),
        ("does not match Other", "missing keys ['features.0.weight'", "same --model"),
    ),
    # ----- channel lists and width specs ------------------------------------------------------
    CliCase(
        "channel-txt-count",
        "`--channel-txt` with the wrong number of lines",
        lambda env: env.prune("--channel-txt", env.write("ch.txt", "8\n")),
        ("ch.txt", "has 1 channel counts but the model has 2 conv layers"),
    ),
    CliCase(
        "channel-txt-zero",
        "`--channel-txt` with a zero count",
        lambda env: env.prune("--channel-txt", env.write("ch.txt", "8\n0\n")),
        ("ch.txt:2", "channel count must be >= 1, got 0"),
    ),
    CliCase(
        "channel-txt-negative",
        "`--channel-txt` with a negative count",
        lambda env: env.prune("--channel-txt", env.write("ch.txt", "-8\n16\n")),
        ("ch.txt:1", "channel count must be >= 1, got -8"),
    ),
    CliCase(
        "channel-txt-not-integer",
        "`--channel-txt` with a non-integer line (`8.5`)",
        lambda env: env.prune("--channel-txt", env.write("ch.txt", "8.5\n16\n")),
        ("ch.txt:1", "'8.5' is not an integer", "one channel count per line"),
    ),
    CliCase(
        "channel-txt-too-wide",
        "`--channel-txt` count larger than the layer",
        lambda env: env.prune("--channel-txt", env.write("ch.txt", "9\n16\n")),
        ("--channel-txt", "ch.txt", "layer 'conv1' must keep an int in 1..8 channels, got 9"),
    ),
    CliCase(
        "channel-txt-mismatch",
        "`--channel-txt` valid, but not the checkpoint's widths",
        lambda env: env.prune("--channel-txt", env.write("ch.txt", "4\n16\n")),
        ("layer 'conv1'", "(8, 3, 3, 3) in the checkpoint", "(4, 3, 3, 3) in the model"),
    ),
    CliCase(
        "spec-unknown-layer",
        "`--spec` names a layer the model does not have",
        lambda env: env.prune("--spec", env.write("s.json", '{"convX": 4}')),
        ("--spec", "s.json", "names layer 'convX'", "layers are: conv1, conv2"),
    ),
    CliCase(
        "spec-zero",
        "`--spec` width 0",
        lambda env: env.prune("--spec", env.write("s.json", '{"conv1": 0}')),
        ("--spec", "s.json", "layer 'conv1' must keep an int in 1..8 channels, got 0"),
    ),
    CliCase(
        "spec-not-integer",
        '`--spec` width that is not an integer (`"8"`)',
        lambda env: env.prune("--spec", env.write("s.json", '{"conv1": "8"}')),
        ("s.json", "must hold a plan or an object layer -> channel count"),
    ),
    CliCase(
        "spec-bad-json",
        "`--spec` that is not JSON",
        lambda env: env.prune("--spec", env.write("s.json", "{conv1: 8")),
        ("s.json", "is not valid JSON"),
    ),
    CliCase(
        "spec-mismatch",
        "`--spec` valid, but not the checkpoint's widths",
        lambda env: env.prune("--spec", env.write("s.json", '{"conv2": 12}')),
        ("layer 'conv2'", "(16, 8, 3, 3) in the checkpoint", "(12, 8, 3, 3) in the model"),
    ),
    CliCase(
        "plan-malformed",
        "`--spec` plan.json with a negative channel index",
        lambda env: env.prune(
            "--spec", env.write("p.json", '{"format": 1, "removed_outputs": {"conv1": [-1]}}')
        ),
        ("p.json",),
    ),
    # ----- model and input -----------------------------------------------------------------------
    CliCase(
        "input-channels",
        "input with the wrong channel count (`inspect --input-shape 1,1,8,8`)",
        lambda env: ["inspect", *TRUSTED, "--input-shape", "1,1,8,8"],
        ("tensor (1, 1, 8, 8)", "module 'conv1' (Conv2d)", "to have 3 channels"),
    ),
    CliCase(
        "input-shape-rank",
        "input shape with too few dimensions (`--input-shape 3,8`)",
        lambda env: ["inspect", *TRUSTED, "--input-shape", "3,8"],
        ("tensor (3, 8)", "shape and channel count"),
    ),
    CliCase(
        "model-import",
        "`--model` factory that cannot be imported",
        lambda env: env.prune("--model", "no_such_module:build"),
        ("--model no_such_module:build", "cannot import 'no_such_module'"),
    ),
    CliCase(
        "model-json-names-code",
        "`model.json` next to `--load` names a factory `MODULE:FUNCTION` (here `os:system`)",
        _untrusted,
        ("model.json", "'os:system'", "not a built-in model", "never imports code named in a file"),
        setup=_hostile_model_json,
    ),
    CliCase(
        "model-json-own-factory",
        "`model.json` of a baseline trained with `--model mypkg:build`, loaded without `--model`",
        _untrusted,
        ("model.json", "'rel_tiny:build'", "--model rel_tiny:build --trust-model-code"),
    ),
    CliCase(
        "model-code-untrusted",
        "`--model MODULE:FUNCTION` without `--trust-model-code`",
        lambda env: [a for a in env.prune() if a != "--trust-model-code"],
        ("--model rel_tiny:build", "would import module 'rel_tiny'", "--trust-model-code"),
    ),
    CliCase(
        "model-arg-malformed",
        "`--model-arg` without `=`",
        lambda env: env.prune("--model-arg", "width"),
        ("--model-arg", "expected KEY=VALUE", "'width'"),
        status=2,
    ),
    # ----- data ---------------------------------------------------------------------------------
    CliCase(
        "data-missing",
        "`--data` folder that does not exist",
        lambda env: env.prune("--data", env.root / "nowhere"),
        ("--data", "nowhere", "does not exist"),
    ),
    CliCase(
        "data-empty",
        "`--data` folder with no class folders",
        lambda env: env.prune("--data", (env.root / "empty").mkdir() or env.root / "empty"),
        ("empty", "is empty (no class sub-folders)"),
    ),
    CliCase(
        "data-class-without-images",
        "`--data` class folder with no images",
        lambda env: env.prune("--data", _folder_data(env, empty_class=True)),
        ("images/b", "holds no images"),
    ),
    CliCase(
        "data-unreadable-image",
        "`--data` image file that is not an image",
        lambda env: env.prune("--data", _folder_data(env, bad_image=True)),
        ("cannot read image file", "0.png", "Replace it with a valid PNG/JPEG/GIF or delete it"),
    ),
    CliCase(
        "data-image-without-mask",
        "segment `--data` image without a mask",
        lambda env: env.prune("--task", "segment", "--data", _carvana_without_mask(env)),
        ("car1_02.jpg", "has no mask", "car1_02_mask.gif"),
    ),
    CliCase(
        "data-mask-size",
        "segment `--data` mask whose size differs from its image",
        lambda env: env.prune("--task", "segment", "--data", _carvana_with_small_mask(env)),
        ("car1_01_mask.gif", "is 8x8", "car1_01.jpg", "is 16x16", "--resize-masks"),
    ),
    CliCase(
        "device-no-cuda",
        "`--device cuda` on a machine without CUDA",
        lambda env: [*TRAIN, "--out", env.root / "b", "--device", "cuda"],
        ("--device", "'cuda'", "no CUDA device"),
        status=2,
    ),
    CliCase(
        "latency-devices-no-cuda",
        "`--latency-devices cuda:0` on a machine without CUDA",
        lambda env: env.prune("--latency-devices", "cpu,cuda:0"),
        ("--latency-devices", "'cuda:0'", "no CUDA device", "nothing would be timed"),
    ),
    CliCase(
        "batch-size-zero",
        "`--batch-size 0`",
        lambda env: env.prune("--batch-size", "0"),
        ("--batch-size must be >= 1, got 0",),
    ),
    # ----- pruning settings ---------------------------------------------------------------------
    CliCase(
        "amount-above-one",
        "`--amount 1.5`",
        lambda env: env.prune("--amount", "1.5"),
        ("--amount (PruneConfig.amount)", "fraction in (0, 1)", "got 1.5"),
    ),
    CliCase(
        "amount-percent-above-100",
        "`--amount 150%`",
        lambda env: env.prune("--amount", "150%"),
        ("--amount (PruneConfig.amount)", "fraction in (0, 1)", "got 1.5"),
    ),
    CliCase(
        "amount-zero",
        "`--amount 0`",
        lambda env: env.prune("--amount", "0"),
        ("--amount (PruneConfig.amount)", "int >= 1", "got 0"),
    ),
    CliCase(
        "amount-negative",
        "`--amount -0.2`",
        lambda env: env.prune("--amount", "-0.2"),
        ("--amount (PruneConfig.amount)", "fraction in (0, 1)", "got -0.2"),
    ),
    CliCase(
        "amount-not-a-number",
        "`--amount abc`",
        lambda env: env.prune("--amount", "abc"),
        ("--amount", "expected a fraction (0.1 or 10%) or a channel count (8)", "'abc'"),
        status=2,
    ),
    CliCase(
        "max-iterations-zero",
        "`--max-iterations 0`",
        lambda env: env.prune("--max-iterations", "0"),
        ("--max-iterations (PruneConfig.max_iterations)", "int >= 1", "got 0"),
    ),
    CliCase(
        "target-malformed",
        "`--target macs=50` (no percent sign)",
        lambda env: env.prune("--target", "macs=50"),
        ("target 'macs=50' is not understood", "macs=-50%"),
    ),
    CliCase(
        "target-no-minus",
        "`--target latency=50%` (the minus sign left out)",
        lambda env: env.prune("--target", "latency=50%"),
        ("target 'latency=50%'", "minus sign", "latency=-50%"),
    ),
    CliCase(
        "target-all-of-it",
        "`--target latency=-100%`",
        lambda env: env.prune("--target", "latency=-100%"),
        ("target 'latency=-100%'", "between 0 and 100", "got 100%", "latency=-50%"),
    ),
    CliCase(
        "target-unreachable",
        "`--target macs<=1`, which no pruning can reach",
        lambda env: env.prune("--target", "macs<=1", "--max-iterations", "2"),
        ("targets not reached: macs<=1 (reached", "relax --target", "--max-pruned-fraction"),
        keeps_run=True,
    ),
    CliCase(
        "config-bad-json",
        "`--config` file that is not JSON",
        lambda env: env.prune("--config", env.write("c.json", "{amount: 0.1")),
        ("c.json", "not valid JSON"),
    ),
    CliCase(
        "config-unknown-key",
        "`--config` with a misspelled key",
        lambda env: env.prune("--config", env.write("c.json", '{"amout": 0.1}')),
        ("c.json", "unknown config keys ['amout']", "known keys"),
    ),
    CliCase(
        "nan-loss",
        "finetuning diverges to a NaN/inf loss (`--lr 1e30`)",
        lambda env: env.prune("--lr", "1e30", "--finetune-steps", "3"),
        ("finetuning diverged (iteration 1", "the loss became", "keeps iteration 0"),
        keeps_run=True,
    ),
    CliCase(
        "final-lr-zero",
        "`--final-lr 0`",
        lambda env: env.prune("--final-lr", "0"),
        ("--final-lr must be > 0, got 0",),
    ),
    # ----- memory, labels, numbers (issue 25) --------------------------------------------------
    CliCase(
        "memory-input-shape",
        "`inspect --input-shape 1,3,600000,600000` (more memory than the machine has)",
        lambda env: ["inspect", *TRUSTED, "--input-shape", "1,3,600000,600000"],
        ("out of memory while inspecting", "(1, 3, 600000, 600000)", "TB", "--input-shape"),
    ),
    CliCase(
        "memory-model-arg",
        "`--model-arg width=100000` (a model larger than the machine's memory)",
        lambda env: ["inspect", *TRUSTED, "--model-arg", "width=100000"],
        ("out of memory while building model 'rel_tiny:build'", "'width': 100000", "GB"),
    ),
    CliCase(
        "memory-model-json",
        "`model.json` next to `--load` asks for `width=100000`",
        lambda env: env.prune(),
        ("out of memory while building model", "'width': 100000", "model_args in model.json"),
        setup=_wide_model_json,
    ),
    CliCase(
        "data-image-too-large",
        "`--data` image whose header claims 30000x30000 pixels (a decompression bomb)",
        lambda env: env.prune("--data", _huge_image(env)),
        ("image file", "images/b/0.png", "is too large to read", "decompression bombs"),
    ),
    CliCase(
        "data-more-classes",
        "`--data` folder with 12 classes for a model with 10 outputs",
        lambda env: env.prune("--data", _more_classes(env)),
        ("the data has 12 classes", "outputs 10 classes", "num_classes=12"),
    ),
    CliCase(
        "eval-more-classes",
        "`eval --data` folder with 12 classes for a model with 10 outputs",
        lambda env: ["eval", "--load", env.base, *TRUSTED, "--data", _more_classes(env)],
        ("the data has 12 classes", "outputs 10 classes", "num_classes=12"),
    ),
    CliCase(
        "train-more-classes",
        "`train --data` folder with 12 classes, `--model-arg num_classes=10`",
        lambda env: [
            *TRAIN,
            "--data",
            _more_classes(env),
            "--model-arg",
            "num_classes=10",
            "--out",
            env.root / "b",
        ],  # fmt: skip
        ("the data has 12 classes", "outputs 10 classes", "num_classes=12"),
    ),
    CliCase(
        "model-json-hub-path-arg",
        "`model.json` naming `timm:resnet18` with `model_args` `checkpoint_path`",
        _untrusted,
        ("base/model.json", "'checkpoint_path'", "is refused", "--load FILE"),
        setup=_hub_model_json,
    ),
    CliCase(
        "model-arg-hub-overlay",
        "`--model timm:resnet18 --model-arg pretrained_cfg_overlay=...`",
        lambda env: [
            "inspect",
            "--model",
            "timm:resnet18",
            "--model-arg",
            'pretrained_cfg_overlay={"file": "/etc/passwd"}',
        ],  # fmt: skip
        ("--model-arg", "'pretrained_cfg_overlay'", "is refused"),
    ),
    CliCase(
        "report-symlink",
        "`report` of a run whose `RUN_DIR/report` is a symbolic link planted to another folder",
        lambda env: ["report", str(env.run), "--no-plots", "-q"],
        ("--out", "run/report", "is a symbolic link", "never writes through a link"),
        setup=lambda env: (
            _finished_run(env),
            shutil.rmtree(env.run / "report", ignore_errors=True),
            (env.root / "elsewhere").mkdir(),
            (env.run / "report").symlink_to(env.root / "elsewhere"),
        ),
    ),
    CliCase(
        "train-out-symlink",
        "`train --out` names a symbolic link to another folder",
        lambda env: [*TRAIN, "--out", env.root / "link", "--overwrite"],
        ("--out", "link", "is a symbolic link", "nothing was written"),
        setup=lambda env: (
            (env.root / "elsewhere").mkdir(),
            (env.root / "link").symlink_to(env.root / "elsewhere"),
        ),
    ),
    CliCase(
        "weight-decay-nan",
        "`--weight-decay nan`",
        lambda env: env.prune("--weight-decay", "nan"),
        ("argument --weight-decay", "finite number in [0, 1]", "'nan'"),
        status=2,
    ),
    CliCase(
        "lr-huge",
        "`train --lr 1e308`",
        lambda env: [*TRAIN, "--lr", "1e308", "--out", env.root / "b"],
        ("argument --lr", "finite number in (0, 1e+30]", "'1e308'"),
        status=2,
    ),
    CliCase(
        "model-arg-nan",
        "`--model-arg width=NaN`",
        lambda env: env.prune("--model-arg", "width=NaN"),
        ("--model-arg", "width=NaN", "finite"),
        status=2,
    ),
    # ----- run folders --------------------------------------------------------------------------
    CliCase(
        "run-dir-holds-a-run",
        "`--run-dir` already holds a run, without `--resume`",
        lambda env: env.prune(),
        ("--run-dir", "already holds a run", "--resume"),
        setup=_finished_run,
    ),
    CliCase(
        "resume-other-config",
        "`--resume` with a different `--amount`",
        lambda env: env.prune("--amount", "0.3", "--resume"),
        ("was started with a different config (amount differ)", "new run folder"),
        setup=_finished_run,
    ),
    CliCase(
        "run-state-corrupt",
        "`--resume` of a run whose state.json was damaged by hand",
        lambda env: env.prune("--resume"),
        ("run state", "state.json", "is not valid JSON"),
        setup=_broken_state,
    ),
    CliCase(
        "run-state-missing-field",
        "`--resume` of a run whose state.json lacks a field",
        lambda env: env.prune("--resume"),
        ("state.json", "field 'steps_done' is missing", "start a new run folder"),
        setup=_state(lambda s: s.pop("steps_done")),
    ),
    CliCase(
        "run-state-wrong-type",
        "`--resume` of a run whose state.json holds a field of the wrong type",
        lambda env: env.prune("--resume"),
        ("state.json", "field 'last_completed' must be an integer >= 0", "'1'"),
        setup=_state(lambda s: s.update(last_completed="1")),
    ),
    CliCase(
        "run-state-checkpoint-name",
        "`eval` of a run whose state.json names a checkpoint that is not a number (`iter_x1`)",
        lambda env: ["eval", "--load", env.run, *TRUSTED, *DATA],
        ("state.json", "field 'current' must be 'iter_NNN'", "iter_x1"),
        setup=_state(lambda s: s.update(current="iter_x1")),
    ),
    CliCase(
        "run-state-missing-checkpoint",
        "`eval` of a run whose state.json names a checkpoint folder that is gone",
        lambda env: ["eval", "--load", env.run, *TRUSTED, *DATA],
        ("state.json", "field 'final' names checkpoint 'iter_009'", "does not exist"),
        setup=_state(lambda s: s.update(final="iter_009")),
    ),
    CliCase(
        "run-log-wrong-type",
        "`--resume` of a run whose log.jsonl has a row with a wrong `iteration`",
        lambda env: env.prune("--resume"),
        ("log.jsonl", "line 2", "field 'iteration' must be an integer", "1.5"),
        setup=_log_row,
    ),
    CliCase(
        "run-plan-broken",
        "`eval` of a run whose iter_001/plan.json is damaged",
        lambda env: ["eval", "--load", env.run, *TRUSTED, *DATA],
        ("iter_001/plan.json", "removed_outputs"),
        setup=_broken_plan,
    ),
    CliCase(
        "resume-other-widths",
        "`--resume` of a run with a baseline of other widths (`--load` another model)",
        lambda env: env.prune(
            "--resume", "--model-arg", "width=4", "--task", "classify", load=_narrow_baseline(env)
        ),
        ("run folder", "checkpoint 'iter_001'", "resume with the model the run was started from"),
        setup=_finished_run,
    ),
    CliCase(
        "model-json-wrong-field",
        "`model.json` next to `--load` with a field of the wrong type (`input_shape`)",
        lambda env: env.prune(),
        ("base/model.json", "field 'input_shape' must be a list", "'1,3,8,8'"),
        setup=lambda env: _edit_json(
            env, "base/model.json", lambda d: d.update(input_shape="1,3,8,8")
        ),
    ),
    CliCase(
        "out-exists",
        "`train --out` names an existing baseline, without `--overwrite`",
        lambda env: [*TRAIN, "--out", str(env.base)],
        ("--out", "already exists", "--overwrite", "choose another --out"),
    ),
    CliCase(
        "out-not-a-checkpoint",
        "`train --out` names a folder that holds other files",
        lambda env: (
            ["train", *TRUSTED, "--task", "classify", *DATA, "--steps", "1"]
            + ["--out", str(env.root / "mine"), "--overwrite", "-q"]
        ),
        ("--out", "mine", "is not a checkpoint folder filterprune wrote", "left untouched"),
        setup=_user_folder,
        untouched=("mine/notes.txt",),
    ),
    CliCase(
        "report-out-foreign",
        "`report --out` names a folder that holds files an earlier report did not write",
        lambda env: ["report", str(env.run), "--out", str(env.root / "mine"), "--no-plots", "-q"],
        ("--out", "mine", "holds 'notes.txt', which filterprune did not write", "left untouched"),
        setup=lambda env: (_finished_run(env), _user_folder(env)),
        untouched=("mine/notes.txt",),
    ),
]


@dataclass(frozen=True)
class ApiCase:
    id: str
    bad: str
    call: Callable[[Env], Any]
    error: type[BaseException]
    fragments: tuple[str, ...]


def _load(env: Env, path: Path) -> Any:
    from filterprune import load

    return load(path, build)


def _untraceable(env: Env) -> Any:
    """An op whose tracing rule fails (simulated), and the same model traced with a leaf."""
    import filterprune as fp
    from filterprune.graph import rules

    class Spectrum(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.fft2(x).real

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.spectrum = Spectrum()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.spectrum(self.conv(x))

    original = rules.apply_rule

    def failing(tracer, name, *args, **kwargs):
        if name == "fft_fft2":
            raise NotImplementedError("no rule can follow channels through fft_fft2")
        return original(tracer, name, *args, **kwargs)

    rules.apply_rule = failing
    try:
        fp.analyze(Model(), torch.randn(1, 3, 8, 8), leaf_types=(Spectrum,))  # the way out
        fp.analyze(Model(), torch.randn(1, 3, 8, 8))
    finally:
        rules.apply_rule = original


def _oom_loss(error: BaseException) -> Callable[[Any, Any], Any]:
    def loss(output: Any, target: Any) -> Any:
        raise error  # what a too large ranking batch does on a GPU

    return loss


def _oom_run(env: Env, error: BaseException) -> Any:
    from filterprune.loop import PruneConfig, run_pruning

    config = PruneConfig(criterion="taylor", amount=0.2, ranking_batches=2, max_iterations=2)
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))] * 2
    return run_pruning(
        build(),
        torch.randn(1, 3, 8, 8),
        config=config,
        batches=lambda: iter(batches),
        loss_fn=_oom_loss(error),
        run_dir=env.run,
        progress=False,
    )


API_CASES = [
    ApiCase(
        "api-load-missing",
        "`filterprune.load` of a path that does not exist",
        lambda env: _load(env, env.root / "nope"),
        ValueError,
        ("checkpoint", "nope", "does not exist"),
    ),
    ApiCase(
        "api-load-pickled-model",
        "`filterprune.load('whole.pt')` of a pickled whole model",
        lambda env: _load(env, _whole_model(env)),
        ValueError,
        ("holds pickled Python objects", "does not unpickle"),
    ),
    ApiCase(
        "api-input-channels",
        "`analyze` on an input with the wrong channel count",
        lambda env: __import__("filterprune").analyze(build(), torch.randn(1, 4, 8, 8)),
        RuntimeError,
        ("tensor (1, 4, 8, 8)", "module 'conv1' (Conv2d)", "to have 3 channels, but got 4"),
    ),
    ApiCase(
        "api-untraceable-op",
        "a model with an op the tracer cannot follow",
        _untraceable,
        RuntimeError,
        ("op 'fft_fft2' of module 'spectrum' (Spectrum)", "register_leaf(Spectrum)"),
    ),
    ApiCase(
        "api-oom-ranking",
        "out of memory while ranking (`torch.OutOfMemoryError`)",
        lambda env: _oom_run(env, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate")),
        torch.OutOfMemoryError,
        ("out of memory while ranking with criterion 'taylor'", "--ranking-batches"),
    ),
    ApiCase(
        "api-oom-ranking-runtime-error",
        "out of memory while ranking (a `RuntimeError` saying so)",
        lambda env: _oom_run(env, RuntimeError("CUDA error: out of memory")),
        torch.OutOfMemoryError,
        ("out of memory while ranking", "fewer or smaller batches", "--batch-size"),
    ),
    ApiCase(
        "api-amount-one",
        "`PruneConfig(amount=1.0)`",
        lambda env: __import__("filterprune").PruneConfig(amount=1.0),
        ValueError,
        ("PruneConfig.amount", "fraction in (0, 1)", "got 1.0"),
    ),
    ApiCase(
        "api-amount-nan",
        "`PruneConfig(amount=float('nan'))`",
        lambda env: __import__("filterprune").PruneConfig(amount=float("nan")),
        ValueError,
        ("PruneConfig.amount", "got nan"),
    ),
    ApiCase(
        "api-read-pickle-directly",
        "`read_weights` of a pickle with a code payload",
        lambda env: __import__("filterprune.store.weights").store.weights.read_weights(
            _hostile(env)
        ),
        ValueError,
        ("hostile.pt", "can run any code"),
    ),
    ApiCase(
        "api-finetune-weight-decay-nan",
        "`FinetuneConfig(steps=1, weight_decay=float('nan'))`",
        lambda env: __import__("filterprune.tasks").tasks.FinetuneConfig(
            steps=1, weight_decay=float("nan")
        ),
        ValueError,
        ("FinetuneConfig.weight_decay", "finite number in [0, 1]", "got nan"),
    ),
    ApiCase(
        "api-optimizer-lr-huge",
        "`Optimizer(lr=1e308)`",
        lambda env: __import__("filterprune.recipes").recipes.Optimizer(lr=1e308),
        ValueError,
        ("--lr (lr)", "finite number in (0, 1e+30]", "got 1e+308"),
    ),
    ApiCase(
        "api-flops-reg-huge",
        "`PruneConfig(flops_reg=1e308)`",
        lambda env: __import__("filterprune").PruneConfig(flops_reg=1e308),
        ValueError,
        ("flops_reg", "[0, 1000]", "got 1e+308"),
    ),
    ApiCase(
        "api-hub-path-arg",
        "`create_model('timm:resnet18', checkpoint_path=...)`",
        lambda env: __import__("filterprune.models").models.create_model(
            "timm:resnet18", checkpoint_path="/etc/passwd"
        ),
        ValueError,
        ("'checkpoint_path'", "timm:resnet18", "is refused"),
    ),
    ApiCase(
        "api-labels-out-of-range",
        "classify task: a batch with class index 12 for a model with 10 outputs",
        lambda env: (
            __import__("filterprune.tasks")
            .tasks.get_task("classify")
            .loss(torch.zeros(2, 10), torch.tensor([1, 12]))
        ),
        ValueError,
        ("class index 12", "outputs 10 classes", "num_classes=13"),
    ),
]

ALL_IDS = [c.id for c in CLI_CASES] + [c.id for c in API_CASES]
assert len(set(ALL_IDS)) == len(ALL_IDS), "case ids must be unique"
