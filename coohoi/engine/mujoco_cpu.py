"""CPU engine on mujoco.batch: many MjData of one model stepped on a thread pool, state bound as numpy arrays.

Every tensor is a torch view of the batch's bound arrays (float64), so nothing is copied between MuJoCo and the
tasks except the few derived quantities the base class computes.
"""

from __future__ import annotations

import logging
import os
import warnings

import mujoco
import mujoco.batch
import numpy as np
import torch

from coohoi.config import EngineConfig
from coohoi.engine.base import Engine, EngineConfigError
from coohoi.scene import Scene

log = logging.getLogger(__name__)

RAW_FIELDS = ("qpos", "qvel", "ctrl", "xpos", "xquat", "cvel", "subtree_com", "sensordata")


class MujocoEngine(Engine):
    name = "mujoco"

    def __init__(self, scene: Scene, cfg: EngineConfig):
        super().__init__(scene, cfg)
        if cfg.device != "cpu":
            raise EngineConfigError(f"the mujoco engine runs on the CPU; got engine.device={cfg.device!r} (use engine=warp)")
        nthread = cfg.nthread or os.cpu_count() or 1
        self.batch = mujoco.batch.Batch(scene.model, nsim=self.num_envs, nthread=nthread, persistent=True)
        self.batch.reset()
        with warnings.catch_warnings():  # derived fields are read-only numpy arrays; we never write them
            warnings.simplefilter("ignore", UserWarning)
            self._bound = {name: torch.from_numpy(self.batch.bind(name)) for name in RAW_FIELDS}
        self._obj_geoms = scene.object_geom_ids
        self._obj_body = scene.object_body_id
        self._base_geom_size = scene.model.geom_size[self._obj_geoms].copy()
        self._base_geom_pos = scene.model.geom_pos[self._obj_geoms].copy()
        self._base_mass = float(scene.model.body_mass[self._obj_body])
        self._base_inertia = scene.model.body_inertia[self._obj_body].copy()
        self._base_ipos = scene.model.body_ipos[self._obj_body].copy()
        self._scaled_fields = None
        self._setup_views()

    def _raw(self) -> dict[str, torch.Tensor]:
        return self._bound

    def _step_physics(self) -> torch.Tensor | None:
        try:
            self.batch.step(nstep=self.decimation, stage=mujoco.mjtStage.mjSTAGE_VEL)
        except mujoco.batch.SimulationError as exc:
            failed = torch.zeros(self.num_envs, dtype=torch.bool)
            failed[torch.as_tensor(exc.ids, dtype=torch.long)] = True
            log.warning("MuJoCo failed in %d environments: %s", len(exc.ids), self.batch.error(int(exc.ids[0])))
            return failed
        return None

    def _clear_rows(self, env_ids: torch.Tensor) -> None:
        self.batch.reset(env_ids.numpy(), stage=mujoco.mjtStage.mjSTAGE_NONE)

    def _forward_rows(self, env_ids: torch.Tensor) -> None:
        self.batch.forward(env_ids.numpy())

    def _write_object_scale(self, env_ids: torch.Tensor, size_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        if self._scaled_fields is None:
            self._scaled_fields = {f: self.batch.expand(f) for f in
                                   ("geom_size", "geom_pos", "body_mass", "body_inertia", "body_ipos")}
        f, ids = self._scaled_fields, env_ids.numpy()
        s = size_scale.numpy()[:, None, None]
        m = mass_scale.numpy()
        geoms = self._obj_geoms
        f["geom_size"][ids[:, None], geoms[None, :]] = self._base_geom_size[None] * s
        f["geom_pos"][ids[:, None], geoms[None, :]] = self._base_geom_pos[None] * s
        f["body_mass"][ids, self._obj_body] = self._base_mass * m
        # Inertia of a body scaled by s in size and m in mass: m * s^2 times the base.
        f["body_inertia"][ids, self._obj_body] = self._base_inertia[None] * (m * size_scale.numpy() ** 2)[:, None]
        f["body_ipos"][ids, self._obj_body] = self._base_ipos[None] * size_scale.numpy()[:, None]

    def get_model_and_data(self, env_id: int) -> tuple[mujoco.MjModel, mujoco.MjData]:
        """One world as a plain MjModel and MjData, e.g. for the viewer or a renderer."""
        model = self.batch.get_model(env_id)
        data = self.batch.get_data(env_id)
        mujoco.mj_forward(model, data)
        return model, data
