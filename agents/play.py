"""`coohoi play`: a trained policy (or the zero action) in the interactive MuJoCo viewer, or headless.

    coohoi play checkpoint=runs/carry_box/nn/last.pth             # the run's own task and settings
    coohoi play checkpoint=runs/x/nn/last.pth play.headless=true  # no window: play.steps steps, episode metrics
    coohoi play play.policy=zero task=team_carry_long_box         # the zero-action baseline

The policy is loaded by coohoi.agents.policy (checkpoint of either learner, or an exported ONNX file) with the
config of the run that trained it; the command line's task.* settings apply on top.
"""

from __future__ import annotations

import json
import time

from omegaconf import DictConfig

from coohoi.agents.config import PLAY_POLICIES
from coohoi.agents.evaluation import zero_action
from coohoi.agents.policy import check_compatible, load_policy, policy_run_config
from coohoi.agents.train import set_torch_threads


def policy_and_env(cfg: DictConfig, overrides: list[str], policy_kind: str = "checkpoint",
                   deterministic: bool = True):
    """The one loading path of play, render and eval: the policy named by cfg.checkpoint (or the zero action), the
    run config it was trained with (command-line task.* settings on top) and its env, checked to match.
    Returns (cfg, env, act, policy or None)."""
    from coohoi.envs import make_env

    if policy_kind not in PLAY_POLICIES:
        raise ValueError(f"policy must be one of {', '.join(PLAY_POLICIES)}, got {policy_kind!r}")
    policy = None
    if policy_kind == "checkpoint":
        if not cfg.get("checkpoint"):
            raise ValueError("give checkpoint=PATH (a .pth checkpoint or an exported .onnx policy), or play.policy=zero")
        policy = load_policy(cfg.checkpoint)  # a bad file stops before the env is built
        cfg = policy_run_config(cfg, overrides, policy)
    set_torch_threads(cfg)
    env = make_env(cfg)
    if policy is None:
        return cfg, env, zero_action(env), None
    check_compatible(policy, env)
    policy.to(env.device)
    return cfg, env, (lambda obs: policy.act(obs, deterministic=deterministic)), policy


def play(cfg: DictConfig, overrides: list[str] = ()) -> int:
    """Run a checkpoint's policy (deterministic unless play.deterministic=false), or with play.policy=zero the
    zero-action baseline (PD targets at the offsets of reference §2). Viewer on world 0 by default;
    play.headless=true runs play.steps steps without a window and prints episode metrics."""
    play_cfg = cfg.play
    cfg, env, act, _ = policy_and_env(cfg, list(overrides), play_cfg.policy, bool(play_cfg.deterministic))
    obs = env.reset()
    if play_cfg.headless:
        for _ in range(int(play_cfg.steps)):
            obs, *_ = env.step(act(obs))
        print(json.dumps(env.episode_summary()))
        return 0
    _run_viewer(env, act, obs)
    return 0


def _world0(env):
    getter = getattr(env.engine, "get_model_and_data", None)
    if getter is None:
        raise ValueError(f"engine {env.engine.name!r} cannot show a world in the viewer; use engine=mujoco")
    return getter(0)


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


__all__ = ["play", "policy_and_env"]
