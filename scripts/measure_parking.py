"""What parked (inactive) team slots cost: the table task with a team of 2 in a scene of exactly 2 humanoid slots,
against the same team in scenes of 4 and 8 slots whose other humanoids stand parked (coohoi.envs.team_carry). Whole
env steps (observations, rewards, resets), default-pose actions, alternating rounds; prints steps/s and the ratio.

    python scripts/measure_parking.py [engine.num_envs=128] [--seconds 12]
"""

from __future__ import annotations

import argparse

import torch

from coohoi.bench import BenchSettings, fastest
from coohoi.cli import compose
from coohoi.envs import make_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loops = {}
    for slots in (2, 4, 8):
        env = make_env(compose(["task=team_carry_table", f"task.scene.num_humanoids={slots}",
                                "task.env.team_size_range=[2,2]", *args.overrides]))
        env.reset()
        action = env.default_pose_action().to(torch.float32).expand(env.num_rows, -1).contiguous()
        loops[slots] = (lambda env=env, action=action: env.step(action), lambda: None)
    best = fastest(loops, BenchSettings(seconds=args.seconds, rounds=args.rounds))
    n = env.num_envs
    print(f"table, team of 2, {n} environments: env steps/s by humanoid slots in the scene (the rest parked)")
    for slots, seconds in best.items():
        print(f"{slots:>3} slots {n / seconds:>10,.0f} steps/s  {best[2] / seconds:>6.1%} of the 2-slot scene")


if __name__ == "__main__":
    main()
