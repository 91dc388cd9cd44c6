"""Grid executor benchmark: the same tiny grid run by the local executor and by the Ray one, in one process.

    flock /tmp/ptst-heavy.lock python benchmarks/bench_grid.py [--repeats 4] [--epochs 2] [--json out.json]

A random tiny Llama and small JSONL sets (2 training cells + baseline, x 2 test templates = 6 evaluation cells,
8 tasks). Each repeat runs the grid cold into a fresh run directory, first locally, then on a local Ray cluster
(`num_cpus` = this machine's cores, started once and timed apart). The work per cell is seconds, so the ratio
measures what Ray adds per task: worker start and imports, shipping inputs and results through the object store,
placing them. Both executors run torch with one intra-op thread per task, as Ray sets it for a 1-CPU task, so
the two runs compute the same numbers; the Ray run may use the cores in parallel, the local one does not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def setup(d: Path, epochs: int) -> Path:
    """A tiny model and a grid config over small JSONL sets (ptst.testing, as the grid tests build them)."""
    from ptst.testing import grid_yaml, save_tiny, tiny_data

    return grid_yaml(d, save_tiny(d / "model", "llama2"), tiny_data(d / "data"), name="bench", epochs=epochs)


def cpu_name() -> str:
    from ptst.runtime import cpu

    return cpu.name()


def timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=4, help="grid runs per executor; the first is cold")
    p.add_argument("--epochs", type=int, default=2, help="training epochs per cell (12 rows, batch 4)")
    p.add_argument("--json", help="write the numbers here too")
    args = p.parse_args()

    import ray
    import torch

    from ptst.grid.cells import load_grid
    from ptst.grid.runner import run

    torch.set_num_threads(1)
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        os.environ["PTST_CACHE_DIR"] = str(d / "cache")  # before the cluster starts: its workers inherit it
        cfg = load_grid(setup(d, args.epochs))
        start = timed(lambda: ray.init(num_cpus=cpus, object_store_memory=200 * 2**20, include_dashboard=False,
                                       logging_level="ERROR", log_to_driver=False))
        local, remote = [], []
        for k in range(args.repeats):
            local.append(timed(lambda k=k: run(cfg, d / f"local-{k}")))
            remote.append(timed(lambda k=k: run(cfg, d / f"ray-{k}", executor="ray")))
            print(f"repeat {k + 1}: local {local[-1]:.1f} s, ray {remote[-1]:.1f} s", flush=True)
        ray.shutdown()
    # The first Ray run starts its worker processes (each imports torch and transformers); later runs reuse them.
    warm_l, warm_r = statistics.median(local[1:] or local), statistics.median(remote[1:] or remote)
    r = {"cpu": cpu_name(), "cores": cpus, "tasks": 8, "epochs": args.epochs, "ray_version": ray.__version__,
         "cluster_start_s": round(start, 2), "local_s": [round(x, 2) for x in local],
         "ray_s": [round(x, 2) for x in remote], "ratio_cold": round(remote[0] / local[0], 3),
         "ratio_warm": round(warm_r / warm_l, 3), "overhead_per_task_cold_s": round((remote[0] - local[0]) / 8, 2),
         "overhead_per_task_warm_s": round((warm_r - warm_l) / 8, 2)}
    print(f"{cpu_name()}, {cpus} cores, Ray {ray.__version__}; tiny grid, 8 tasks (2 train + 6 eval cells), "
          f"{args.epochs} epochs")
    print(f"cluster start: {start:.1f} s (once, not in the ratios)")
    print(f"first run (Ray starts its workers): local {local[0]:.1f} s, ray {remote[0]:.1f} s, ray / local = "
          f"{r['ratio_cold']:.2f} ({r['overhead_per_task_cold_s']:+.2f} s per task)")
    print(f"later runs (median; workers reused): local {warm_l:.1f} s, ray {warm_r:.1f} s, ray / local = "
          f"{r['ratio_warm']:.2f} ({r['overhead_per_task_warm_s']:+.2f} s per task)")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
