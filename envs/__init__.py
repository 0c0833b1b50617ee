"""Task environments (installed as coohoi.envs): `make_env(cfg)` builds the one of cfg.task.env_type."""

from __future__ import annotations

from typing import Any

from coohoi.config import EngineConfig, SceneConfig
from coohoi.envs.amp_locomotion import AmpLocomotionEnv
from coohoi.envs.carry import CarryEnv
from coohoi.envs.config import (
    AmpLocomotionEnvConfig,
    CarryEnvConfig,
    EnvConfigError,
    HumanoidEnvConfig,
    TeamCarryEnvConfig,
    to_dataclass,
)
from coohoi.envs.humanoid_env import HumanoidEnv
from coohoi.envs.team_carry import TeamCarryEnv

# Env type (task.env_type; a task's variants share it) -> (env class, its config dataclass).
TASKS: dict[str, tuple[type[HumanoidEnv], type[HumanoidEnvConfig]]] = {
    "amp_locomotion": (AmpLocomotionEnv, AmpLocomotionEnvConfig),
    "carry": (CarryEnv, CarryEnvConfig),
    "team_carry": (TeamCarryEnv, TeamCarryEnvConfig),
}


def task_configs(cfg: Any) -> tuple[type[HumanoidEnv], HumanoidEnvConfig, SceneConfig, EngineConfig]:
    """Check the composed config's task and engine sections against their dataclasses."""
    kind = cfg.task.get("env_type")
    if kind not in TASKS:
        raise EnvConfigError(f"task {cfg.task.get('name')!r} has unknown task.env_type {kind!r}; known: {', '.join(TASKS)}")
    env_cls, env_cfg_cls = TASKS[kind]
    env_cfg = to_dataclass(env_cfg_cls, cfg.task.get("env"), "task.env")
    scene_cfg = to_dataclass(SceneConfig, cfg.task.get("scene"), "task.scene")
    engine_cfg = to_dataclass(EngineConfig, cfg.engine, "engine")
    return env_cls, env_cfg, scene_cfg, engine_cfg


def make_env(cfg: Any, motion_lib=None) -> HumanoidEnv:
    """The task environment for a composed config (cfg.task, cfg.engine, cfg.seed)."""
    env_cls, env_cfg, scene_cfg, engine_cfg = task_configs(cfg)
    return env_cls(env_cfg, scene_cfg, engine_cfg, seed=int(cfg.get("seed", 0)), motion_lib=motion_lib)


__all__ = ["TASKS", "AmpLocomotionEnv", "CarryEnv", "EnvConfigError", "HumanoidEnv", "TeamCarryEnv", "make_env", "task_configs"]
