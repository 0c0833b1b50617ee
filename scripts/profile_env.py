"""Per-step cost of the task environments on the CPU engine: engine-only steps vs full env.step.

For each task and environment count it times env.step(random actions in [-1, 1]) (physics + observations, rewards,
AMP history, terminations and the resets that random actions cause), and, inside those same steps, the time spent
in engine.set_pd_targets + engine.step (physics only). Timing the engine inside the env run keeps both on the
same states: a standalone engine run under random targets never resets, so its fallen, often unstable humanoids
would make physics look slower than it is in training. (engine.reset, i.e. MuJoCo's reset and forward of the
worlds that start over, counts as env time.) Prints env-steps/s (policy steps * num_envs) of the
engine and of the env, their time ratio, and environments reset per step.
With --profile it also runs cProfile over the env steps and prints the top functions by cumulative time.
On a shared machine use --clock cpu (CPU seconds of this process, all its threads): wall time then depends on the
other jobs more than on this code.

    python scripts/profile_env.py                       # 64 and 256 envs, both tasks, 1 torch thread and default
    python scripts/profile_env.py --envs 64 --tasks carry_box --threads 1 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch

from coohoi.cli import compose
from coohoi.envs import make_env

DEFAULT_TASKS = ("amp_locomotion", "carry_box")
DEFAULT_ENVS = (64, 256)
WARMUP_STEPS = 10
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def make(task: str, num_envs: int, nthread: int, dataset: str | None = None):
    overrides = [f"task={task}", f"engine.num_envs={num_envs}", f"engine.nthread={nthread}"]
    if dataset:
        overrides.append(f"task.env.motion_dataset={dataset}")
    cfg = compose(overrides)
    env = make_env(cfg)
    env.reset()
    return env


def random_actions(env, generator: torch.Generator) -> torch.Tensor:
    return 2.0 * torch.rand(env.num_rows, env.num_actions, generator=generator) - 1.0


class EngineTimer:
    """Wraps an engine's set_pd_targets and step (instance attributes shadow the methods) to sum their time."""

    def __init__(self, engine, clock=time.perf_counter):
        self.seconds = 0.0
        self.clock = clock
        for name in ("set_pd_targets", "step"):
            setattr(engine, name, self._timed(getattr(engine, name)))

    def _timed(self, fn):
        def wrapper(*args, **kwargs):
            start = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += self.clock() - start
        return wrapper


def time_env(env, steps: int, generator: torch.Generator, profiler: cProfile.Profile | None = None,
             clock=time.perf_counter):
    """Seconds per env step and per engine step inside it (random actions), and environments reset per step."""
    actions = [random_actions(env, generator) for _ in range(steps)]
    for a in actions[:WARMUP_STEPS]:
        env.step(a)
    timer = EngineTimer(env.engine, clock)
    resets = 0
    if profiler is not None:
        profiler.enable()
    start = clock()
    for a in actions[WARMUP_STEPS:]:
        _, _, terminated, truncated, _ = env.step(a)
        resets += int((terminated | truncated).sum())
    elapsed = clock() - start
    if profiler is not None:
        profiler.disable()
    timed = steps - WARMUP_STEPS
    return elapsed / timed, timer.seconds / timed, resets / timed / env.num_agents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--envs", nargs="+", type=int, default=list(DEFAULT_ENVS))
    parser.add_argument("--threads", nargs="+", default=["1", "default"],
                        help="torch intra-op thread settings to try: integers or 'default'")
    parser.add_argument("--steps", type=int, default=60, help="steps per measurement, including warm-up")
    parser.add_argument("--nthread", type=int, default=0, help="engine.nthread (MuJoCo worker threads, 0 = all)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall time or process CPU time")
    parser.add_argument("--dataset", help="task.env.motion_dataset override (e.g. a frozen copy of the clips)")
    parser.add_argument("--profile", action="store_true", help="cProfile the env steps and print the hot spots")
    parser.add_argument("--top", type=int, default=30, help="functions to list with --profile")
    args = parser.parse_args()
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must exceed the {WARMUP_STEPS} warm-up steps")

    default_threads = torch.get_num_threads()
    rows = []
    for threads in args.threads:
        torch.set_num_threads(default_threads if threads == "default" else int(threads))
        for task in args.tasks:
            for n in args.envs:
                env = make(task, n, args.nthread, args.dataset)
                generator = torch.Generator().manual_seed(0)
                profiler = cProfile.Profile() if args.profile else None
                t_env, t_engine, resets = time_env(env, args.steps, generator, profiler, CLOCKS[args.clock])
                rows.append((task, n, torch.get_num_threads(), t_engine, t_env, resets))
                print(f"{task:15s} envs={n:4d} torch_threads={torch.get_num_threads()}  engine {1e3 * t_engine:7.2f} ms"
                      f"  env {1e3 * t_env:7.2f} ms  ratio {t_env / t_engine:5.2f}  resets/step {resets:5.2f}",
                      flush=True)
                if profiler is not None:
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)
                del env

    print(f"\n{args.clock} clock, engine.nthread={args.nthread}")
    print("| task | envs | torch threads | engine env-steps/s | env env-steps/s | env/engine time | resets/step |")
    print("|---|---|---|---|---|---|---|")
    for task, n, threads, t_engine, t_env, resets in rows:
        print(f"| {task} | {n} | {threads} | {n / t_engine:.0f} | {n / t_env:.0f} | {t_env / t_engine:.2f} | "
              f"{resets:.2f} |")


if __name__ == "__main__":
    main()
