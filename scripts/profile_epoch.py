"""Where one training epoch's time goes, on the CPU: physics, the engine's own refresh and checks, observations,
rewards and terminations, AMP features, resets (start pool and engine resets), episode bookkeeping, the rest of
the env step, policy inference and the updates. Times are wall-clock seconds per epoch of a real training run
(the learner of train.algo), measured by wrapping each part's method; a part nested in another is subtracted
from it. Run it on a quiet machine.

    python scripts/profile_epoch.py                              # amp_locomotion, PPO, 256 envs
    python scripts/profile_epoch.py task=carry_box train=td3     # any hydra overrides
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict

from coohoi.cli import compose

WARMUP_EPOCHS = 2
TIMED_EPOCHS = 4


class Timer:
    """Wraps methods of objects (instance attributes shadow them) and sums their wall time per label."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, obj, name: str, label: str) -> None:
        fn = getattr(obj, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start

        setattr(obj, name, timed)


def main(argv: list[str]) -> None:
    from coohoi.agents.train import make_agent

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose(["task=amp_locomotion", "engine.num_envs=256", "train.eval.every=0", f"output_dir={tmp}",
                       "experiment=profile", *argv])
        rows = []
        agent, _ = make_agent(cfg, max_epochs=WARMUP_EPOCHS + TIMED_EPOCHS, on_epoch_end=lambda a, m: rows.append(m))
        agent.save_frequency = agent.snapshot_frequency = 0
        env = agent.env if hasattr(agent, "env") and not hasattr(agent, "vec_env") else agent.vec_env.env
        engine = env.engine
        t = Timer()
        t.wrap(engine, "_step_physics", "physics")
        t.wrap(engine, "step", "engine step")
        t.wrap(env, "observe", "observations")
        t.wrap(env, "_task_reward", "rewards")
        t.wrap(env, "_fall", "terminations")
        t.wrap(env, "_task_terminated", "terminations")
        t.wrap(env, "amp_frame", "AMP features")
        t.wrap(env, "_reset_ended", "resets")
        t.wrap(env, "_episode_metrics", "episode metrics")
        t.wrap(env, "_record_episodes", "episode metrics")
        t.wrap(env, "step", "env step")
        if hasattr(agent, "get_action_values"):  # PPO on rl-games
            t.wrap(agent, "get_action_values", "policy inference")
            t.wrap(agent, "play_steps", "rollout")
            t.wrap(agent, "train_epoch", "epoch")
        else:
            t.wrap(agent, "act", "policy inference")
            t.wrap(agent, "update", "updates")
            t.wrap(agent, "_train_epoch", "epoch")
        epoch_marks = []
        original = agent.on_epoch_end

        def mark(a, m):
            epoch_marks.append(dict(t.seconds))
            original(a, m)

        agent.on_epoch_end = mark
        agent.train()
    first, last = epoch_marks[WARMUP_EPOCHS - 1], epoch_marks[-1]
    s = {k: (last.get(k, 0.0) - first.get(k, 0.0)) / TIMED_EPOCHS for k in last}
    inner_env = ["observations", "rewards", "terminations", "AMP features", "resets", "episode metrics"]
    parts = {
        "physics (MuJoCo)": s["physics"],
        "engine refresh and checks": s["engine step"] - s["physics"],
        **{k: s.get(k, 0.0) for k in inner_env},
    }
    parts["env step, the rest"] = s["env step"] - s["engine step"] - sum(s.get(k, 0.0) for k in inner_env)
    parts["policy inference"] = s.get("policy inference", 0.0)
    if "rollout" in s:
        parts["rollout, the rest"] = s["rollout"] - s["env step"] - s["policy inference"]
        parts["updates"] = s["epoch"] - s["rollout"]
    else:
        parts["updates"] = s["updates"]
        parts["rollout, the rest"] = s["epoch"] - s["env step"] - s["policy inference"] - s["updates"]
    env_torch = s["env step"] - s["physics"]
    frames = rows[-1]["frames_epoch"]
    print(f"task={cfg.task.name} train.algo={cfg.train.algo} envs={env.num_envs}: seconds per epoch "
          f"({frames} env steps), mean of {TIMED_EPOCHS} epochs after {WARMUP_EPOCHS}")
    print("| part | s/epoch | share of physics |")
    print("|---|---|---|")
    for name, sec in parts.items():
        print(f"| {name} | {sec:.3f} | {sec / s['physics']:.0%} |")
    print(f"| **env step without physics (torch work)** | {env_torch:.3f} | {env_torch / s['physics']:.0%} |")
    print(f"| **epoch** | {s['epoch']:.3f} | {s['epoch'] / s['physics']:.0%} |")


if __name__ == "__main__":
    main(sys.argv[1:])
