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


def test_import_loads_at_most_25_of_its_modules():
    loaded = _run(  # what filterprune adds to what torch itself loads
        "import json, sys, torch\n"
        "before = set(sys.modules)\n"
        "import filterprune\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    own = [m for m in loaded if m == "filterprune" or m.startswith("filterprune.")]
    assert len(own) <= 25, own
    assert not [m for m in loaded if m.split(".")[0] in OPTIONAL]
    assert not [m for m in HEAVY if m in loaded]


def test_the_verbs_load_the_core_only():
    """``fp.prune`` loads tracing, criteria, selection and surgery, but not latency timing, the
    process-group code or the loop, the store, the reports and the CLI."""
    loaded = _run(
        "import json, sys, torch\n"
        "before = set(sys.modules)\n"
        "import filterprune as fp\n"
        "fp.prune, fp.inspect, fp.Selection, fp.Ranking\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    own = {m.split(".")[1] for m in loaded if m.startswith("filterprune.")}
    assert {"api", "graph", "criteria", "surgery", "plan", "choose", "config"} <= own
    assert not own & set(LAZY_PACKAGES), sorted(own & set(LAZY_PACKAGES))
    assert "filterprune.measure.latency" not in loaded
    assert "filterprune.parallel.process" not in loaded
    assert not [m for m in loaded if m.split(".")[0] in OPTIONAL]
    assert not [m for m in HEAVY if m in loaded]


def test_lazy_names_load_on_first_use_and_are_the_real_objects():
    result = _run(
        "import json, sys, filterprune as fp\n"
        "from filterprune.config import PruneConfig\n"
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


def test_every_package_face_exports_only_names_it_has():
    """``from filterprune.X import *`` works for every package: no ``__all__`` lists a name the
    package does not define (``report`` listed three that did not exist)."""
    result = _run(
        "import importlib, json, pkgutil, filterprune\n"
        "bad = {}\n"
        "for info in pkgutil.walk_packages(filterprune.__path__, 'filterprune.'):\n"
        "    if not info.ispkg:\n"
        "        continue\n"
        "    module = importlib.import_module(info.name)\n"
        "    missing = [n for n in getattr(module, '__all__', ()) if not hasattr(module, n)]\n"
        "    if missing:\n"
        "        bad[info.name] = missing\n"
        "    exec(f'from {info.name} import *', {})\n"
        "print(json.dumps(bad))"
    )
    assert result == {}


def test_the_loop_loads_without_the_report():
    loaded = _run(
        "import json, sys\n"
        "import filterprune.loop.result, filterprune.loop.run\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('filterprune.report'))))"
    )
    assert loaded == []
