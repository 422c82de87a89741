"""Pilot behind the final-finetuning default (docs/benchmarks.md, Fashion-MNIST): finetune a
saved iteration of a bench_fashion.py run folder with several (steps, rate, schedule, batch)
variants and print the test accuracy of each.

    PYTHONPATH=src:benchmarks OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fashion_final_pilot.py \
        RUN_DIR iter_008 300:1e-4:constant:16 3000:1e-3:cosine:16
"""

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_fashion as bf
from torch.utils.data import DataLoader

from filterprune.loop.state import seed_everything
from filterprune.models import create_model
from filterprune.recipes import load_data
from filterprune.store.load import load
from filterprune.tasks import get_task

torch.set_num_threads(1)
run = sys.argv[1]
it = sys.argv[2]
variants = [v.split(":") for v in sys.argv[3:]]  # steps:lr:schedule:batch
info = json.loads(Path(f"{run}/model.json").read_text())
test = bf._test_split(info, "fashion-mnist")
for steps, lr, sched, batch in variants:
    model = load(f"{run}/{it}", lambda: create_model(info["model"], **info["model_args"]))
    data = load_data("classify", saved=info["data"], batch_size=int(batch))
    seed_everything(0, "pilot")
    t = time.time()
    data.task.finetune(
        model, data.train_loader, steps=int(steps), lr=float(lr), optimizer="adam", schedule=sched
    )
    acc = get_task("classify").evaluate(model.eval(), DataLoader(test, batch_size=200))["accuracy"]
    print(
        f"{it} steps={steps} lr={lr} {sched} batch={batch}: test {100 * acc:.2f} ({time.time() - t:.0f} s)",
        flush=True,
    )
