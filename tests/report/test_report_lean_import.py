import subprocess
import sys


def test_import_loads_no_optional_extras():
    code = (
        "import sys, filterprune.report, filterprune.measure\n"
        "print(sorted(m for m in ('matplotlib', 'onnx', 'onnxruntime', 'onnxscript', 'safetensors')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
