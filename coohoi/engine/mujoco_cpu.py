"""CPU engine on mujoco.batch: the worlds of one model stepped on a thread pool (one MjData per thread, loaded with
each world's state), state bound as numpy arrays.

Every tensor is a torch view of the batch's bound arrays (float64), so nothing is copied between MuJoCo and the
tasks except the few derived quantities the base class computes.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings

import mujoco
import mujoco.batch
import numpy as np
import torch

from coohoi.config import EngineConfig
from coohoi.engine.base import OBJECT_SCALED_FIELDS, Engine, EngineConfigError, object_scale_factors
from coohoi.scene import Scene

log = logging.getLogger(__name__)

RAW_FIELDS = ("qpos", "qvel", "ctrl", "xfrc_applied", "xpos", "xquat", "cvel", "subtree_com", "sensordata")


class MujocoEngine(Engine):
    name = "mujoco"
    host_state = True

    def __init__(self, scene: Scene, cfg: EngineConfig):
        super().__init__(scene, cfg)
        if cfg.device != "cpu":
            raise EngineConfigError(f"the mujoco engine runs on the CPU; got engine.device={cfg.device!r} (use engine=warp)")
        nthread = cfg.nthread or os.cpu_count() or 1
        model = copy.copy(scene.model)
        # MuJoCo would silently reset a world whose accelerations blow up; let the NaN through so that the engine
        # flags the world as unstable and the task resets it (and logs it). MuJoCo Warp does not auto-reset either.
        model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_AUTORESET
        # Not persistent: one MjData per thread, loaded with each world's state, stays in cache. On the 2-core
        # machine at 256 worlds it steps about 3% faster than one MjData kept per world; with a lighter state
        # refresh, `coohoi bench` went from 81.9% to 86.7% of raw mujoco.batch (docs/engines.md).
        self.batch = mujoco.batch.Batch(model, nsim=self.num_envs, nthread=nthread, persistent=False)
        self.batch.reset()
        with warnings.catch_warnings():  # derived fields are read-only numpy arrays; we never write them
            warnings.simplefilter("ignore", UserWarning)
            self._bound = {name: torch.from_numpy(self.batch.bind(name)) for name in RAW_FIELDS}
        self._base_mass = float(scene.model.body_mass[scene.object_body_id])
        self._object_index = {"geoms": np.asarray(scene.object_geom_ids), "body": int(scene.object_body_id),
                              "dofs": scene.object_qvel_start + np.arange(6)}
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

    @staticmethod
    def _host_ids(mask: torch.Tensor) -> np.ndarray:
        return torch.nonzero(mask).flatten().numpy()

    def _clear_where(self, mask: torch.Tensor) -> None:
        ids = self._host_ids(mask)
        if ids.size:
            self.batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)

    def _forward_where(self, mask: torch.Tensor) -> None:
        ids = self._host_ids(mask)
        if ids.size:  # position and velocity stages: kinematics and cvel, not the contact solve
            self.batch.forward(ids, stage=mujoco.mjtStage.mjSTAGE_VEL)

    def _write_object_scale(self, mask: torch.Tensor, size_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        ids = self._host_ids(mask)
        if not ids.size:
            return
        if self._scaled_fields is None:
            self._scaled_fields = {f: self.batch.expand(f) for f in OBJECT_SCALED_FIELDS}
        model, fields = self.scene.model, self._scaled_fields
        size_scale, mass_scale = size_scale.double()[ids], mass_scale.double()[ids]
        factors = object_scale_factors(size_scale, mass_scale)
        for name, kind in OBJECT_SCALED_FIELDS.items():
            index = self._object_index[kind]
            base = getattr(model, name)[index]
            if isinstance(index, int):
                fields[name][ids, index] = base * factors[name].numpy()
            else:
                fields[name][ids[:, None], index[None, :]] = base * factors[name].numpy()
        # The world body's subtree holds everything: it gains what the object gains.
        fields["body_subtreemass"][ids, 0] = model.body_subtreemass[0] + self._base_mass * (mass_scale.numpy() - 1.0)

    def get_model_and_data(self, env_id: int) -> tuple[mujoco.MjModel, mujoco.MjData]:
        """One world as a plain MjModel and MjData, e.g. for the viewer or a renderer."""
        model = self.batch.get_model(env_id)
        data = self.batch.get_data(env_id)
        mujoco.mj_forward(model, data)
        return model, data
