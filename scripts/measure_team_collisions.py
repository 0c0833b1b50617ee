"""What teammate collisions (scene.team_collisions) cost the CPU engine's step rate.

For each scene it builds the engine with team collisions on and off and times, in each round, the first
STEPS_PER_ROUND policy steps (1 s) after resetting every world to the default spawn, under default-pose PD targets.
Rounds alternate on and off and each keeps its fastest round (coohoi.bench's method, which discounts other load on
the machine). Scenes: the two-humanoid long box (humanoids 1 m apart, as spawned by default), four humanoids with
the table, and two humanoids spawned 0.4 m apart, whose upper arms overlap by 5 cm: with team collisions on they
push each other apart in the timed second (the cost of a bump), with it off they pass through each other.

    python scripts/measure_team_collisions.py [--num-envs 256] [--rounds 6] [--nthread 0]

Prints environment steps per second (policy steps summed over environments) and the ratio on/off.
"""

from __future__ import annotations

import argparse
import time

import torch

from coohoi.config import EngineConfig, ObjectConfig, SceneConfig
from coohoi.engine import make_engine

SCENES = {
    "2 humanoids + long box": dict(num_humanoids=2, object=ObjectConfig(kind="long_box")),
    "4 humanoids + table": dict(num_humanoids=4, object=ObjectConfig(kind="table")),
    "2 humanoids 0.4 m apart (arms overlap)": dict(num_humanoids=2, object=ObjectConfig(kind="long_box"),
                                                   humanoid_spacing=0.4),
}
STEPS_PER_ROUND = 30  # policy steps timed after each reset: 1 s at 30 Hz


class _Loop:
    """Policy steps of one engine under default-pose PD targets from the default spawn."""

    def __init__(self, scene_kwargs: dict, team: bool, cfg: EngineConfig):
        self.engine = make_engine(SceneConfig(team_collisions=team, **scene_kwargs), cfg)
        self.state = self.engine.default_state(self.engine.num_envs)
        self.targets = self.state.humanoid.dof_pos.clone()

    def round(self) -> float:
        """Seconds for STEPS_PER_ROUND policy steps after a reset (the reset not timed)."""
        self.engine.reset(None, self.state)
        start = time.perf_counter()
        for _ in range(STEPS_PER_ROUND):
            self.engine.set_pd_targets(self.targets, check=False)
            self.engine.step()
        return time.perf_counter() - start


def _team_contacts(loop: _Loop) -> float:
    """Mean number of contacts between different humanoids per world, in the first 8 worlds' current state."""
    engine, scene = loop.engine, loop.engine.scene
    owner = torch.full((scene.model.nbody,), -1, dtype=torch.long)
    owner[torch.as_tensor(scene.body_ids)] = torch.arange(scene.num_humanoids)[:, None]
    counts = []
    for i in range(min(8, engine.num_envs)):
        model, data = engine.get_model_and_data(i)
        pairs = owner[torch.as_tensor(model.geom_bodyid[data.contact.geom[:data.ncon]], dtype=torch.long)]
        counts.append(int(((pairs >= 0).all(dim=1) & (pairs[:, 0] != pairs[:, 1])).sum()) if data.ncon else 0)
    return sum(counts) / len(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--nthread", type=int, default=0, help="engine threads (0: every CPU)")
    args = parser.parse_args()
    cfg = EngineConfig(num_envs=args.num_envs, nthread=args.nthread)

    print(f"CPU engine, {args.num_envs} environments; env steps/s (policy steps summed over environments) in the "
          f"first {STEPS_PER_ROUND} steps after a reset, best of {args.rounds} alternating rounds")
    print("| scene | team_collisions on | off | on/off | teammate contacts per world at the end (on) |")
    print("|---|---:|---:|---:|---:|")
    for title, kwargs in SCENES.items():
        loops = {team: _Loop(kwargs, team, cfg) for team in (True, False)}
        for loop in loops.values():
            loop.round()  # warm-up
        best = {team: float("inf") for team in loops}
        for _ in range(args.rounds):  # alternating, so that other load on the machine hits both alike
            for team, loop in loops.items():
                best[team] = min(best[team], loop.round())
        rate = {team: args.num_envs * STEPS_PER_ROUND / best[team] for team in loops}
        contacts = _team_contacts(loops[True])
        print(f"| {title} | {rate[True]:,.0f} | {rate[False]:,.0f} | {rate[True] / rate[False]:.3f} | {contacts:.1f} |")


if __name__ == "__main__":
    main()
