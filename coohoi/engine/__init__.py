"""Engines: batched physics behind one interface (coohoi.engine.base.Engine).

- `mujoco`: CPU, mujoco.batch (coohoi.engine.mujoco_cpu)
- `warp`: GPU (or Warp's CPU device), mujoco_warp (coohoi.engine.warp_gpu)
"""

from __future__ import annotations

from coohoi.config import ENGINES, EngineConfig, SceneConfig
from coohoi.engine.base import Engine, EngineConfigError, HumanoidState, ObjectState, SimState
from coohoi.scene import Scene, build_scene


def make_engine(scene: Scene | SceneConfig, cfg: EngineConfig) -> Engine:
    """Build the scene (if given its config) and the engine named by cfg.name."""
    if isinstance(scene, SceneConfig):
        scene = build_scene(scene)
    if cfg.name == "mujoco":
        from coohoi.engine.mujoco_cpu import MujocoEngine

        return MujocoEngine(scene, cfg)
    if cfg.name == "warp":
        from coohoi.engine.warp_gpu import WarpEngine

        return WarpEngine(scene, cfg)
    raise EngineConfigError(f"unknown engine {cfg.name!r}; choose one of {', '.join(ENGINES)}")


__all__ = ["Engine", "EngineConfigError", "HumanoidState", "ObjectState", "SimState", "make_engine"]
