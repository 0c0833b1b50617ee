"""Training throughput by thread count, on an idle machine and on one shared with another busy job.

For each learner (PPO, the off-policy td3) it trains AMP locomotion for a few epochs (coohoi.bench's
measure_training_throughput, 128 environments) with learn_threads=1 and learn_threads=0 (every core), with OpenMP's
waiting threads spinning (OMP_WAIT_POLICY=ACTIVE) or sleeping (PASSIVE, coohoi's default), first alone and then next
to one busy process per core (the "other job"). Each measurement runs in its own process, since OpenMP reads the
policy when torch loads. Prints a markdown table of environment steps per second including learning.

    python scripts/measure_threads.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys

CHILD = """
import json, sys
from coohoi.cli import compose
from coohoi.agents.throughput import measure_training_throughput
algo, threads, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = compose(["task=amp_locomotion", f"train={algo}", f"learn_threads={threads}", "train.eval.every=0",
               "train.eval.baselines=false"])
print(json.dumps(measure_training_throughput(cfg, 128, epochs=epochs)))
"""


def spin() -> None:
    while True:
        pass


def measure(algo: str, threads: int, policy: str, epochs: int) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY=policy)
    out = subprocess.run([sys.executable, "-c", CHILD, algo, str(threads), str(epochs)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{cores} cores; environment steps per second including learning (learning seconds per epoch)")
    print("| learner | load | learn_threads | OMP_WAIT_POLICY=ACTIVE | PASSIVE (default) |")
    print("|---|---|---|---|---|")
    for load in ("idle", "shared"):
        hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(cores if load == "shared" else 0)]
        for h in hogs:
            h.start()
        try:
            for algo in ("ppo", "td3"):
                for threads in (1, 0):
                    cells = []
                    for policy in ("ACTIVE", "PASSIVE"):
                        r = measure(algo, threads, policy, args.epochs)
                        cells.append(f"{r['total_steps_per_s']:,.0f} ({r['learn_s_per_epoch']:.2f} s)")
                    print(f"| {algo} | {load} | {threads or 'all'} | {cells[0]} | {cells[1]} |", flush=True)
        finally:
            for h in hogs:
                h.terminate()


if __name__ == "__main__":
    main()
