"""`coohoi bench`: the engine and task-env tables of coohoi.bench, then the training loop's throughput.

The simulation core (coohoi.bench) never imports the learners; this module adds what needs them: a few epochs of
real training at `bench.training_num_envs`, timed as a whole (environment + policy + learning) next to the
environment-only figure of the same epochs.
"""

from __future__ import annotations

import tempfile

from omegaconf import DictConfig, OmegaConf

from coohoi import bench as core_bench
from coohoi.agents.train import make_agent


def measure_training_throughput(cfg: DictConfig, num_envs: int, epochs: int = 3, warmup_epochs: int = 1) -> dict:
    """Train `epochs` epochs (after `warmup_epochs`) with num_envs environments, writing nothing to disk but a
    temporary folder. Returns {"num_envs", "epochs", "env_steps_per_s" (env stepping only), "rollout_steps_per_s"
    (env + policy inference), "total_steps_per_s" (env + inference + learning), "learn_s_per_epoch",
    "env_s_per_epoch"}."""
    with tempfile.TemporaryDirectory() as tmp:
        run_cfg = OmegaConf.merge(cfg, {"engine": {"num_envs": int(num_envs)}, "output_dir": tmp,
                                        "experiment": "throughput", "wandb": {"enabled": False}})
        rows: list[dict] = []
        agent, _ = make_agent(run_cfg, max_epochs=warmup_epochs + epochs,
                              on_epoch_end=lambda _agent, metrics: rows.append(metrics))
        agent.save_frequency = agent.snapshot_frequency = 0
        agent.train()
    timed = rows[warmup_epochs:]
    frames = sum(r["frames_epoch"] for r in timed)
    env_s = sum(r["time_env"] for r in timed)
    rollout_s = sum(r["time_rollout"] for r in timed)
    update_s = sum(r["time_update"] for r in timed)
    return {
        "num_envs": int(num_envs),
        "epochs": len(timed),
        "env_steps_per_s": frames / env_s,
        "rollout_steps_per_s": frames / rollout_s,
        "total_steps_per_s": frames / (rollout_s + update_s),
        "env_s_per_epoch": env_s / len(timed),
        "learn_s_per_epoch": (rollout_s - env_s + update_s) / len(timed),
    }


def training_table(cfg: DictConfig, counts: list[int], epochs: int) -> str:
    """Whole-loop training throughput of cfg.task next to its environment-only rate, from the same epochs."""
    lines = [f"training task={cfg.task.name}: steps/s summed over environments; per epoch, seconds in the "
             f"environment vs in policy inference and learning",
             f"{'N':>6} {'env only':>10} {'env+learning':>13} {'env s':>7} {'learn s':>8}"]
    for n in counts:
        t = measure_training_throughput(cfg, int(n), epochs=epochs)
        lines.append(f"{n:>6} {t['env_steps_per_s']:>10,.0f} {t['total_steps_per_s']:>13,.0f} "
                     f"{t['env_s_per_epoch']:>7.2f} {t['learn_s_per_epoch']:>8.2f}")
    return "\n".join(lines)


def bench(cfg: DictConfig, overrides: list[str] = ()) -> int:
    """The core tables (coohoi.bench.run), then training throughput at bench.training_num_envs (default [256] on
    the CPU engine, none on warp; [] skips it)."""
    core_bench.run(cfg)
    settings = core_bench.settings_of(cfg)
    counts = settings.training_num_envs
    if counts is None:
        counts = [256] if cfg.engine.name == "mujoco" else []
    if counts:
        print(training_table(cfg, counts, settings.training_epochs), flush=True)
    return 0
