"""Untrained-policy baselines under setting variants: how long the zero action lasts, deterministically and with
the published action noise, for each deviation from the published setup (torque limit, physics step, resets,
placement). Prints a markdown table: one episode per environment from a fresh start (coohoi.agents.evaluation),
the environment steps per second of those episodes, and the worlds whose physics failed.

    python scripts/measure_baselines.py                       # every variant of VARIANTS, 128 envs
    python scripts/measure_baselines.py --envs 256 --only loco_published loco_gear_limit
    python scripts/measure_baselines.py --stress              # physics failures under saturated actions

--stress drives 64 AMP-locomotion worlds for 300 steps with saturated actions (each action +1 or -1 at random, as a
deterministic policy with a tanh output produces when it saturates) or with Gaussian actions of std 0.2, and counts
the worlds whose physics failed (reset by the env) for each physics step and torque limit.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from coohoi.agents.config import PPOConfig
from coohoi.agents.evaluation import baselines
from coohoi.cli import compose
from coohoi.envs import make_env

PUBLISHED_NOISE_STD = math.exp(PPOConfig.sigma_init)  # exp(-2.9)
DT240, DT480 = repr(1 / 240), repr(1 / 480)

# name -> (overrides, what it is)
VARIANTS = {
    "loco_published": (["task=amp_locomotion"], "AMP locomotion as published (reference starts, no torque limit, 1/120 s)"),
    "loco_gear_limit": (["task=amp_locomotion", "task.scene.torque_limit=1.0"], "... torques clamped at the gears"),
    "loco_gear_limit_x2": (["task=amp_locomotion", "task.scene.torque_limit=2.0"], "... clamped at twice the gears"),
    "loco_dt240": (["task=amp_locomotion", f"task.scene.physics_dt={DT240}"], "... physics at 1/240 s"),
    "loco_dt480": (["task=amp_locomotion", f"task.scene.physics_dt={DT480}"], "... physics at 1/480 s"),
    "loco_mix": (["task=amp_locomotion", "task.env.reset_mode=mix"], "... half the starts from the default pose"),
    "loco_default_pose": (["task=amp_locomotion", "task.env.reset_mode=default"], "... all from the default pose"),
    "carry_published": (["task=carry_box"], "carry as published (default-pose starts, box ahead, no torque limit)"),
    "carry_gear_limit": (["task=carry_box", "task.scene.torque_limit=1.0"], "... torques clamped at the gears"),
    "carry_mix": (["task=carry_box", "task.env.reset_mode=mix"], "... half the starts from reference states"),
    "carry_anywhere": (["task=carry_box_anywhere"], "... box and target in any direction and yaw"),
}


def measure(overrides: list[str], num_envs: int, seed: int, noise: float) -> dict[str, float]:
    cfg = compose([*overrides, f"engine.num_envs={num_envs}", f"seed={seed}"])
    env = make_env(cfg)
    env.seed(seed)
    start = time.perf_counter()
    result = baselines(env, torch.tensor([noise]), torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    z, zn = result["zero"], result["zero_noise"]
    steps = (z["episode_length"] * z["num_episodes"] + zn["episode_length"] * zn["num_episodes"])
    return {"zero": z["episode_length"], "zero_full": z["full_episode_rate"], "noise": zn["episode_length"],
            "noise_full": zn["full_episode_rate"], "faulted": z["faulted"] + zn["faulted"],
            "max_len": env.max_episode_length, "steps_per_s": steps / seconds}


STRESS_VARIANTS = {
    "1/120 s, no limit (published)": [],
    "1/240 s, no limit": [f"task.scene.physics_dt={DT240}"],
    "1/120 s, gear limit": ["task.scene.torque_limit=1.0"],
    "1/120 s, twice the gears": ["task.scene.torque_limit=2.0"],
}


def stress(overrides: list[str], kind: str, steps: int = 300, num_envs: int = 64, seed: int = 5) -> dict[str, float]:
    env = make_env(compose(["task=amp_locomotion", f"engine.num_envs={num_envs}", f"seed={seed}", *overrides]))
    env.reset()
    env.episode_summary()
    g = torch.Generator().manual_seed(0)
    ended = 0
    for _ in range(steps):
        a = torch.randn(num_envs, env.num_actions, generator=g)
        _, _, terminated, truncated, _ = env.step(a.sign() if kind == "saturated" else 0.2 * a)
        ended += int((terminated | truncated).sum())
    summary = env.episode_summary()
    return {"failed": sum(v for k, v in summary.items() if k.startswith("faults/")), "ended": ended}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=128)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--noise", type=float, default=PUBLISHED_NOISE_STD, help="action noise std (exp(-2.9))")
    parser.add_argument("--only", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--stress", action="store_true", help="physics failures under saturated actions instead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.stress:
        print("64 AMP-locomotion worlds, 300 steps: worlds whose physics failed / episodes ended")
        print("| physics | saturated actions (+-1) | Gaussian actions, std 0.2 |")
        print("|---|---|---|")
        for name, overrides in STRESS_VARIANTS.items():
            sat, gauss = stress(overrides, "saturated"), stress(overrides, "gaussian")
            print(f"| {name} | {sat['failed']:.0f} / {sat['ended']} | {gauss['failed']:.0f} / {gauss['ended']} |",
                  flush=True)
        return
    print(f"one episode per environment, {args.envs} environments, seed {args.seed}, noise std {args.noise:.4f}")
    print("| variant | zero action (steps) | zero + noise (steps) | full episodes (zero / noisy) | physics failures | "
          "env steps/s | settings |")
    print("|---|---|---|---|---|---|---|")
    for name in args.only:
        overrides, what = VARIANTS[name]
        r = measure(overrides, args.envs, args.seed, args.noise)
        print(f"| {name} | {r['zero']:.1f} | {r['noise']:.1f} | {100 * r['zero_full']:.0f}% / {100 * r['noise_full']:.0f}% "
              f"| {r['faulted']:.0f} | {r['steps_per_s']:.0f} | {what} |", flush=True)


if __name__ == "__main__":
    main()
