"""`coohoi train` and `coohoi play`, and the training-throughput hook of `coohoi bench`.

    coohoi train task=carry_box                      # the defaults: a short CPU run
    coohoi train task=amp_locomotion engine.num_envs=128 seed=1 train.max_epochs=2000 experiment=loco
    coohoi train task=carry_box checkpoint=runs/x/nn/last.pth resume=true    # continue a run
    coohoi train task=carry_box checkpoint=runs/x/nn/last.pth               # start from its weights only
    coohoi play task=carry_box checkpoint=runs/x/nn/last.pth [play.headless=true play.video=out.mp4]

A run writes runs/<experiment>/: config.yaml (the resolved config), nn/last.pth (rl-games checkpoint, written
atomically every train.save_frequency epochs and at the end), nn/epoch_<N>.pth snapshots, summaries/ (tensorboard),
metrics.jsonl (one line of metrics per epoch) and, with wandb.enabled=true, a wandb run (offline by default).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from coohoi.agents.adapter import RLGAMES_ENV_NAME, RlGamesVecEnv, register_rlgames_env
from coohoi.agents.checkpoint import CheckpointError, load_checkpoint  # noqa: F401  (CheckpointError: re-exported)

# Settings of cfg.task.train that the AMP agent reads from rl-games' `config.amp` section.
AMP_KEYS = ("batch_size", "minibatch_size", "demo_buffer_size", "replay_buffer_size", "replay_keep_prob",
            "disc_coef", "disc_grad_penalty", "disc_logit_reg", "disc_weight_decay", "disc_learning_rate")


def runs_on_cpu(cfg: DictConfig) -> bool:
    return str(cfg.engine.get("device", "cpu")).startswith("cpu")


def train_settings(cfg: DictConfig) -> dict[str, Any]:
    """cfg.task.train as a plain dict: the task's settings, then its `cpu_overrides` when the engine runs on the
    CPU, then the run-level shortcuts (cfg.train.*, when not null)."""
    if "train" not in cfg.task or not cfg.task.train:
        raise ValueError(f"task {cfg.task.name!r} has no train settings (cfg/task/{cfg.task.name}.yaml: train)")
    settings = OmegaConf.to_container(cfg.task.train, resolve=True)
    cpu_overrides = settings.pop("cpu_overrides", None) or {}
    layers = [("task.train.cpu_overrides", cpu_overrides if runs_on_cpu(cfg) else {}),
              ("train", OmegaConf.to_container(cfg.get("train") or {}, resolve=True))]
    for section, overrides in layers:
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in settings:
                raise ValueError(f"{section}.{key} is not a training setting; known: {', '.join(sorted(settings))}")
            settings[key] = value
    return settings


def mu_initializer(init_range: float | None) -> dict:
    """rl-games initializer of the action-mean layer's weights: PyTorch's default (published), or uniform in
    [-init_range, init_range], which starts the policy close to the zero action (PD targets at the joints' mid
    ranges) instead of at random per-state targets."""
    if init_range is None:
        return {"name": "default"}
    return {"name": "random_uniform_initializer", "a": -float(init_range), "b": float(init_range)}


MU_INIT_BIASES = ("zero", "default_pose")


def mu_bias(kind: str, env) -> list[float] | None:
    """Initial bias of the action-mean layer: zero (published: the untrained policy's mean PD targets are the
    offsets of reference §2, with knees and elbows at mid-range) or default_pose (the standing pose's action)."""
    if kind not in MU_INIT_BIASES:
        raise ValueError(f"task.train.mu_init_bias must be one of {', '.join(MU_INIT_BIASES)}, got {kind!r}")
    return None if kind == "zero" else env.default_pose_action().tolist()


def derive_amp_minibatch_size(amp_requested: int, ppo_requested: int, ppo_minibatch: int) -> int:
    """The published setup trains the discriminator on 4096 samples (of each kind) per PPO minibatch of 16384.
    When the PPO minibatch is reduced (few environments), the discriminator minibatch shrinks in proportion, so
    discriminator work per environment step stays as published."""
    return max(1, min(int(amp_requested), int(amp_requested) * ppo_minibatch // max(1, int(ppo_requested))))


def derive_minibatch_size(requested: int, batch_size: int) -> int:
    """The published minibatch (16384) needs 4096 envs; with fewer rows we take the largest divisor of the batch
    (num_rows * horizon) not above the request, since rl-games needs minibatches that tile the batch exactly."""
    size = max(1, min(int(requested), batch_size))
    while batch_size % size:
        size -= 1
    return size


def learn_threads(cfg: DictConfig) -> int:
    """Torch threads for the policy and discriminator updates: cfg.learn_threads, 0 meaning every CPU core."""
    threads = int(cfg.get("learn_threads", 0) or 0)
    return threads if threads > 0 else (os.cpu_count() or 1)


def set_torch_threads(cfg: DictConfig) -> None:
    threads = int(cfg.get("torch_threads", 0) or 0)
    if threads > 0:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


NETWORK_KEYS = ("mlp_units", "disc_units", "activation")
LR_SCHEDULES = ("constant", "adaptive")


def build_rlgames_params(cfg: DictConfig, vec_env: RlGamesVecEnv, *, max_epochs: int | None = None,
                         network: dict | None = None) -> dict:
    """The rl-games params dict (algo, model, network, config) for the AMP agent on this env. `network` overrides
    the network sizes (NETWORK_KEYS), e.g. with those a checkpoint was trained with."""
    env = vec_env.env
    t = train_settings(cfg)
    t.update({k: v for k, v in (network or {}).items() if k in NETWORK_KEYS})
    device = torch.device(env.device)
    num_rows = env.num_rows
    horizon = int(t["horizon_length"])
    minibatch = derive_minibatch_size(t["minibatch_size"], num_rows * horizon)
    missing = [k for k in AMP_KEYS if k not in t.get("amp", {})]
    if missing:
        raise ValueError(f"task.train.amp lacks {', '.join(missing)}")
    amp = {k: t["amp"][k] for k in AMP_KEYS}
    amp["minibatch_size"] = derive_amp_minibatch_size(amp["minibatch_size"], t["minibatch_size"], minibatch)
    compile_requested = bool(t.get("torch_compile", False))
    if t["lr_schedule"] not in LR_SCHEDULES:
        raise ValueError(f"task.train.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {t['lr_schedule']!r}")
    network = {
        "name": "coohoi_amp",
        "separate": True,
        "space": {
            "continuous": {
                "mu_activation": "None",
                "sigma_activation": "None",
                "mu_init": mu_initializer(t.get("mu_init_range")),
                "mu_bias": mu_bias(t.get("mu_init_bias", "zero"), env),
                "sigma_init": {"name": "const_initializer", "val": float(t["sigma_init"])},
                "fixed_sigma": True,
                "learn_sigma": bool(t["learn_sigma"]),
            }
        },
        "mlp": {"units": list(t["mlp_units"]), "activation": t["activation"], "d2rl": False,
                "initializer": {"name": "default"}},
        "disc": {"units": list(t["disc_units"]), "activation": t["activation"], "input_size": env.num_amp_obs},
    }
    config = {
        "name": str(cfg.experiment),
        "full_experiment_name": str(cfg.experiment),
        "train_dir": str(cfg.output_dir),
        "env_name": RLGAMES_ENV_NAME,
        "env_info": vec_env.get_env_info(),
        "vec_env": vec_env,
        "num_actors": num_rows,
        "device": str(device),
        "device_name": str(device),  # the player's name for it
        "ppo": True,
        "mixed_precision": False,
        "normalize_input": bool(t["normalize_input"]),
        "normalize_value": bool(t["normalize_value"]),
        "normalize_advantage": bool(t["normalize_advantage"]),
        "value_bootstrap": True,
        "reward_shaper": {"scale_value": 1.0},
        "gamma": float(t["gamma"]),
        "tau": float(t["tau"]),
        "learning_rate": float(t["learning_rate"]),
        "lr_schedule": str(t["lr_schedule"]),
        "kl_threshold": float(t["kl_threshold"]),
        "schedule_type": "standard",  # one KL read per mini-epoch, not per minibatch
        "e_clip": float(t["e_clip"]),
        "clip_value": bool(t["clip_value"]),
        "critic_coef": float(t["critic_coef"]),
        "bounds_loss_coef": float(t["bounds_loss_coef"]),
        "entropy_coef": float(t["entropy_coef"]),
        "grad_norm": float(t["grad_norm"]),
        "truncate_grads": True,
        "horizon_length": horizon,
        "minibatch_size": minibatch,
        "mini_epochs": int(t["mini_epochs"]),
        "max_epochs": int(max_epochs if max_epochs is not None else t["max_epochs"]),
        "save_frequency": int(t["save_frequency"]),
        "snapshot_frequency": int(t["snapshot_frequency"]),
        "print_stats": False,
        # torch.compile has no benefit on CPU and a long warm-up; on CUDA it is opt-in.
        "torch_compile": compile_requested and device.type == "cuda",
        "task_reward_weight": float(t["task_reward_weight"]),
        "style_reward_weight": float(t["style_reward_weight"]),
        "amp": amp,
        "rollout_threads": int(cfg.get("torch_threads", 0) or 0),
        "learn_threads": learn_threads(cfg),
        "metadata": {"task": str(cfg.task.name), "num_obs": env.num_obs, "num_actions": env.num_actions,
                     **{k: t[k] for k in NETWORK_KEYS}},
    }
    return {
        "seed": int(cfg.seed),
        "torch_threads": int(cfg.get("torch_threads", 0) or 0),
        "algo": {"name": "coohoi_amp"},
        "model": {"name": "coohoi_amp"},
        "network": network,
        "config": config,
    }


def make_agent(cfg: DictConfig, env=None, *, max_epochs: int | None = None, on_epoch_end=None):
    """Build the env (unless given), the rl-games runner and the AMP agent. Returns (agent, runner)."""
    from coohoi.agents.rlgames import AMP_NAME, make_runner

    set_torch_threads(cfg)
    seed_everything(int(cfg.seed))  # rl-games' runner skips seeding when the seed is 0
    if env is None:
        from coohoi.envs import make_env

        env = make_env(cfg)
    vec_env = RlGamesVecEnv(env)
    register_rlgames_env(lambda: env)
    params = build_rlgames_params(cfg, vec_env, max_epochs=max_epochs)
    params["config"]["on_epoch_end"] = on_epoch_end
    runner = make_runner()
    runner.load_config(params)  # seeds torch/numpy/random, sets threads, builds the reward shaper (no deepcopy)
    agent = runner.algo_factory.create(AMP_NAME, base_name="run", params=runner.params)
    return agent, runner


def _max_epochs(cfg: DictConfig) -> int:
    return int(train_settings(cfg)["max_epochs"])


def format_progress(metrics: dict[str, float], max_epochs: int) -> str:
    def get(key, fmt, scale=1.0):
        value = metrics.get(key)
        return "-" if value is None or not math.isfinite(value) else format(value * scale, fmt)

    total = f"/{max_epochs}" if max_epochs > 0 else ""
    return (
        f"epoch {metrics['epoch']}{total} | env {get('fps_env', '.0f')} steps/s | total {get('fps_total', '.0f')}"
        f" steps/s | task {get('rewards/task_per_step', '.3f')} | style {get('rewards/style_per_step', '.3f')}"
        f" | ep len {get('episodes/length', '.1f')} | success {get('episodes/success_rate', '.1f', 100.0)}%"
        f" | disc acc {get('amp/demo_accuracy', '.2f')}/{get('amp/policy_accuracy', '.2f')}"
        f" | frames {metrics['frames']}"
    )


class _EpochReporter:
    """Progress line, metrics.jsonl and wandb for every epoch."""

    def __init__(self, cfg: DictConfig, run_dir: Path, max_epochs: int):
        self.max_epochs = max_epochs
        self.metrics_file = (run_dir / "metrics.jsonl").open("a", encoding="utf-8")
        self.wandb_run = None
        wandb_cfg = cfg.get("wandb") or {}
        if wandb_cfg.get("enabled", False):
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            self.wandb_run = wandb.init(
                project=wandb_cfg.get("project", "coohoi"), name=str(cfg.experiment), dir=str(run_dir),
                mode=wandb_cfg.get("mode", "offline"), config=OmegaConf.to_container(cfg, resolve=True),
                resume="allow",
            )

    def __call__(self, agent, metrics: dict[str, float]) -> None:
        print(format_progress(metrics, self.max_epochs), flush=True)
        self.metrics_file.write(json.dumps(metrics) + "\n")
        self.metrics_file.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step=int(metrics["frames"]))

    def close(self):
        self.metrics_file.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


def train(cfg: DictConfig) -> int:
    run_dir = Path(cfg.output_dir) / str(cfg.experiment)
    checkpoint = cfg.get("checkpoint")
    resume = bool(cfg.get("resume", False))
    if resume and not checkpoint:
        raise ValueError("resume=true needs checkpoint=PATH (e.g. runs/<experiment>/nn/last.pth)")
    if checkpoint and not Path(checkpoint).is_file():
        raise ValueError(f"checkpoint {checkpoint!r} does not exist")
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    max_epochs = _max_epochs(cfg)
    reporter = _EpochReporter(cfg, run_dir, max_epochs)
    try:
        agent, _ = make_agent(cfg, on_epoch_end=reporter)
        if checkpoint:
            agent.restore(checkpoint, set_epoch=resume)
            print(f"{'resuming' if resume else 'starting from the weights of'} {checkpoint}"
                  + (f" at epoch {agent.epoch_num}" if resume else ""), flush=True)
        if agent.config.get("torch_compile"):
            agent.model = torch.compile(agent.model)
        agent.train()
        print(f"checkpoint: {agent.last_checkpoint}\ntensorboard: {agent.summaries_dir}", flush=True)
    finally:
        reporter.close()
    return 0


def measure_training_throughput(cfg: DictConfig, num_envs: int, epochs: int = 3, warmup_epochs: int = 1) -> dict:
    """Train `epochs` epochs (after `warmup_epochs`) with num_envs environments, writing nothing to disk but a
    temporary folder. Returns {"num_envs", "epochs", "env_steps_per_s" (env stepping only), "rollout_steps_per_s"
    (env + policy inference), "total_steps_per_s" (env + inference + learning), "learn_s_per_epoch",
    "env_s_per_epoch"}."""
    import tempfile

    overrides = {"engine": {"num_envs": int(num_envs)}, "train": {"max_epochs": None}}
    with tempfile.TemporaryDirectory() as tmp:
        run_cfg = OmegaConf.merge(cfg, overrides, {"output_dir": tmp, "experiment": "throughput",
                                                   "wandb": {"enabled": False}})
        rows: list[dict] = []
        agent, _ = make_agent(run_cfg, max_epochs=warmup_epochs + epochs,
                              on_epoch_end=lambda _agent, metrics: rows.append(metrics))
        agent.save_frequency = agent.snapshot_frequency = 0
        agent.train()
    timed = rows[warmup_epochs:]
    frames = sum(agent.batch_size_envs for _ in timed)
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


# ---------------------------------------------------------------------------------------------------- play
PLAY_POLICIES = ("checkpoint", "zero")


def play(cfg: DictConfig) -> int:
    """Run a checkpoint's policy (deterministic actions unless play.deterministic=false), or with play.policy=zero
    the zero-action baseline (PD targets at the offsets of reference §2). Viewer on world 0 by default;
    play.headless=true runs play.steps steps without a window (optionally writing play.video, an mp4 of world 0)
    and prints episode metrics."""
    from coohoi.agents.rlgames import AMP_NAME, make_runner
    from coohoi.envs import make_env

    play_cfg = cfg.get("play") or {}
    policy_kind = play_cfg.get("policy", "checkpoint")
    if policy_kind not in PLAY_POLICIES:
        raise ValueError(f"play.policy must be one of {', '.join(PLAY_POLICIES)}, got {policy_kind!r}")
    checkpoint = cfg.get("checkpoint")
    if policy_kind == "checkpoint" and not checkpoint:
        raise ValueError("coohoi play needs checkpoint=PATH (or play.policy=zero)")
    set_torch_threads(cfg)
    # Network sizes as trained (any engine); read first so that a bad checkpoint stops before the env is built.
    trained_with = load_checkpoint(checkpoint).get("coohoi", {}) if policy_kind == "checkpoint" else {}
    env = make_env(cfg)
    vec_env = RlGamesVecEnv(env)
    if policy_kind == "zero":
        act = lambda obs: torch.zeros(env.num_rows, env.num_actions, device=obs.device)  # noqa: E731
    else:
        params = build_rlgames_params(cfg, vec_env, network=trained_with)
        runner = make_runner()
        runner.load_config(params)
        player = runner.player_factory.create(AMP_NAME, params=runner.params)
        player.restore(checkpoint)
        deterministic = bool(play_cfg.get("deterministic", True))
        act = lambda obs: player.act(obs, deterministic=deterministic)  # noqa: E731
    steps = int(play_cfg.get("steps", 600))
    obs = env.reset()
    if play_cfg.get("headless", False):
        frames = _run_headless(env, act, obs, steps, play_cfg.get("video"))
        print(json.dumps(vec_env.episode_summary()))
        if frames:
            print(f"wrote {play_cfg.get('video')} ({frames} frames)")
        return 0
    _run_viewer(env, act, obs)
    return 0


def _world0(env):
    getter = getattr(env.engine, "get_model_and_data", None)
    if getter is None:
        raise ValueError(f"engine {env.engine.name!r} cannot show a world in the viewer; use engine=mujoco")
    return getter(0)


def _run_headless(env, act, obs, steps: int, video: str | None) -> int:
    """Step the policy; with video, render world 0 after every step (coohoi.render) and write it."""
    frames = []
    renderer = None
    if video:
        from coohoi.render import HumanoidRenderer

        renderer = HumanoidRenderer(env.engine.scene)
    try:
        for _ in range(steps):
            obs, *_ = env.step(act(obs))
            if renderer is not None:
                frames.append(renderer.render(_world0(env)[1].qpos))
    finally:
        if renderer is not None:
            renderer.close()
    if video:
        from coohoi.render import write_frames

        write_frames(video, frames, fps=1.0 / env.policy_dt)
    return len(frames)


def _run_viewer(env, act, obs) -> None:
    import mujoco
    import mujoco.viewer

    model, data = _world0(env)
    with mujoco.viewer.launch_passive(model, data) as viewer:
        while viewer.is_running():
            start = time.perf_counter()
            obs, *_ = env.step(act(obs))
            _, world = _world0(env)
            data.qpos[:], data.qvel[:] = world.qpos, world.qvel
            mujoco.mj_forward(model, data)
            viewer.sync()
            time.sleep(max(0.0, env.policy_dt - (time.perf_counter() - start)))


__all__ = ["build_rlgames_params", "derive_minibatch_size", "format_progress", "make_agent",
           "measure_training_throughput", "play", "train", "train_settings"]
