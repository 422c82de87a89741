"""``import filterprune`` loads the core only; the rest loads on first use and still works."""

import json
import subprocess
import sys

LAZY_PACKAGES = ("cli", "distributed", "loop", "models", "recipes", "report", "store", "tasks")
OPTIONAL = ("matplotlib", "onnx", "onnxruntime", "safetensors", "sklearn", "lightning", "tqdm")
HEAVY = ("torch.utils.benchmark", "setuptools")  # latency timing loads them (~0.8 s) when it runs


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_import_loads_the_core_only():
    loaded = _run(  # what filterprune adds to what torch itself loads
        "import json, sys, torch\n"
        "before = set(sys.modules)\n"
        "import filterprune\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    own = {m.split(".")[1] for m in loaded if m.startswith("filterprune.")}
    assert {"api", "graph", "criteria", "surgery", "plan", "select"} <= own
    assert not own & set(LAZY_PACKAGES), sorted(own & set(LAZY_PACKAGES))
    assert not [m for m in loaded if m.split(".")[0] in OPTIONAL]
    assert not [m for m in HEAVY if m in loaded]


def test_lazy_names_load_on_first_use_and_are_the_real_objects():
    result = _run(
        "import json, sys, filterprune as fp\n"
        "from filterprune.loop import PruneConfig\n"
        "import filterprune.distributed as fpd\n"
        "same = fp.PruneConfig is PruneConfig and fp.distributed is fpd\n"
        "from filterprune import run_pruning, load, save\n"
        "report = fp.report.__name__\n"
        "print(json.dumps({'same': same, 'report': report, 'dir': 'PruneConfig' in dir(fp)}))"
    )
    assert result == {"same": True, "report": "filterprune.report", "dir": True}


def test_an_unknown_attribute_still_raises_attribute_error():
    result = _run(
        "import json, filterprune as fp\n"
        "try:\n"
        "    fp.no_such_thing\n"
        "except AttributeError as exc:\n"
        "    print(json.dumps(str(exc)))"
    )
    assert "no_such_thing" in result
