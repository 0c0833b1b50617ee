"""The engine interface that tasks use, and the tensor logic shared by its implementations.

An engine steps `num_envs` copies of one scene (see coohoi.scene) and exposes batched torch tensors:

- per humanoid, shaped [num_envs, K, ...]: root_pos, root_quat (w, x, y, z), root_lin_vel, root_ang_vel (world
  frame), dof_pos, dof_vel [.., 28], body_pos, body_quat, body_lin_vel, body_ang_vel [.., 15, 3|4] in reference
  body order, contact_forces [.., 15, 3] (net contact force on each body, world frame);
- the object, shaped [num_envs, ...]: object_pos, object_quat, object_lin_vel, object_ang_vel, and its per-world
  object_half_extents [num_envs, 3] and object_mass [num_envs].

State tensors (root, DoF and object poses and velocities where the physics stores them in that form) are zero-copy
views of the physics state; the rest are refreshed after every step and reset. Implementations bind the raw
MuJoCo fields (qpos, qvel, ctrl, xpos, xquat, cvel, subtree_com, sensordata) as torch tensors and provide four
operations: stepping, clearing and forwarding rows, and writing per-world object size and mass.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, fields

import torch

from coohoi import humanoid as hum
from coohoi.config import EngineConfig
from coohoi.rotations import quat_rotate, quat_rotate_inverse
from coohoi.scene import Scene

log = logging.getLogger(__name__)


class EngineConfigError(ValueError):
    """An engine setting that cannot work; the message names the setting."""


# Model fields that change when a world's object is scaled by s in size and m in mass, as mj_setConst would compute
# them for a model compiled at that size and mass: field -> (what it indexes, how the object's entries scale).
# Rows of 6 are the object's free joint DoFs (3 translational, then 3 rotational). Collision bounds (geom_rbound,
# geom_aabb) stay at the compiled size, which is why sizes may only shrink. body_subtreemass of the world body
# changes too (by the object's added mass); engines handle that one entry themselves.
OBJECT_SCALED_FIELDS = {
    "geom_size": "geoms", "geom_pos": "geoms",
    "body_mass": "body", "body_inertia": "body", "body_ipos": "body", "body_subtreemass": "body",
    "body_invweight0": "body", "dof_invweight0": "dofs", "dof_M0": "dofs",
}


def object_scale_factors(size_scale: torch.Tensor, mass_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-world multipliers of the object's entries in OBJECT_SCALED_FIELDS, shaped to broadcast over the entries
    (sizes and positions scale with s, masses with m, rotational inertia with m s^2, inverse weights inversely)."""
    s, m = size_scale, mass_scale
    inertia = m * s**2
    per_dof = lambda trans, rot: torch.stack([trans] * 3 + [rot] * 3, dim=-1)  # noqa: E731
    return {
        "geom_size": s[:, None, None], "geom_pos": s[:, None, None],
        "body_mass": m, "body_inertia": inertia[:, None], "body_ipos": s[:, None], "body_subtreemass": m,
        "body_invweight0": torch.stack([1 / m, 1 / inertia], dim=-1),
        "dof_invweight0": per_dof(1 / m, 1 / inertia), "dof_M0": per_dof(m, inertia),
    }


@dataclass
class HumanoidState:
    """Generalised state of K humanoids per environment: tensors [n, K, ...]. Angular velocity is world frame."""

    root_pos: torch.Tensor
    root_quat: torch.Tensor
    root_lin_vel: torch.Tensor
    root_ang_vel: torch.Tensor
    dof_pos: torch.Tensor
    dof_vel: torch.Tensor


@dataclass
class ObjectState:
    """Object pose and velocities per environment: tensors [n, ...]. Angular velocity is world frame."""

    pos: torch.Tensor
    quat: torch.Tensor
    lin_vel: torch.Tensor
    ang_vel: torch.Tensor


@dataclass
class SimState:
    humanoid: HumanoidState
    object: ObjectState

    def clone(self) -> "SimState":
        return SimState(
            HumanoidState(**{f.name: getattr(self.humanoid, f.name).clone() for f in fields(HumanoidState)}),
            ObjectState(**{f.name: getattr(self.object, f.name).clone() for f in fields(ObjectState)}),
        )


class Engine(abc.ABC):
    """Batched physics for the tasks: PD targets in, state tensors out. Knows nothing about tasks."""

    name = "engine"

    def __init__(self, scene: Scene, cfg: EngineConfig):
        if isinstance(cfg.num_envs, bool) or not isinstance(cfg.num_envs, int) or cfg.num_envs < 1:
            raise EngineConfigError(f"engine.num_envs must be a positive integer, got {cfg.num_envs!r}")
        if isinstance(cfg.decimation, bool) or not isinstance(cfg.decimation, int) or cfg.decimation < 1:
            raise EngineConfigError(f"engine.decimation must be a positive integer, got {cfg.decimation!r}")
        if not scene.contiguous:
            raise EngineConfigError("scene humanoids are not laid out in consecutive blocks")
        self.scene = scene
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.num_humanoids = scene.num_humanoids
        self.decimation = cfg.decimation
        self.physics_dt = scene.model.opt.timestep
        self.policy_dt = self.physics_dt * self.decimation
        self.generator = torch.Generator(device="cpu")
        self.seed(cfg.seed)

    # ---- implemented by each engine -------------------------------------------------------------------------
    @abc.abstractmethod
    def _raw(self) -> dict[str, torch.Tensor]:
        """Torch views of qpos, qvel, ctrl, xpos, xquat, cvel, subtree_com and sensordata, each [num_envs, ...]."""

    @abc.abstractmethod
    def _step_physics(self) -> torch.Tensor | None:
        """Advance every world by `decimation` physics steps, leaving position and velocity fields current.
        Returns a bool mask of worlds the physics reported as failed, or None."""

    @abc.abstractmethod
    def _clear_rows(self, env_ids: torch.Tensor) -> None:
        """Reset the worlds' full physics state (warm starts, activations) to the model defaults."""

    @abc.abstractmethod
    def _forward_rows(self, env_ids: torch.Tensor) -> None:
        """Recompute derived fields (kinematics, velocities, contacts, sensors) of the worlds from their state."""

    @abc.abstractmethod
    def _write_object_scale(self, env_ids: torch.Tensor, size_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        """Give worlds their object's size (scale of the built size, <= 1) and mass (scale of the built mass)."""

    # ---- shared logic ---------------------------------------------------------------------------------------
    def _setup_views(self) -> None:
        """Slice the raw fields into named views; call once the implementation has bound its raw fields."""
        raw = self._raw()
        sc, n, k = self.scene, self.num_envs, self.num_humanoids
        self.device = raw["qpos"].device
        self.dtype = raw["qpos"].dtype
        q0, v0, b0, a0, s0 = (int(sc.qpos_start[0]), int(sc.qvel_start[0]), int(sc.body_ids[0, 0]),
                              int(sc.actuator_ids[0, 0]), int(sc.contact_sensor_adr[0, 0]))
        hq = raw["qpos"][:, q0:q0 + k * hum.QPOS_SIZE].unflatten(1, (k, hum.QPOS_SIZE))
        hv = raw["qvel"][:, v0:v0 + k * hum.QVEL_SIZE].unflatten(1, (k, hum.QVEL_SIZE))
        self.root_pos, self.root_quat, self.dof_pos = hq[..., 0:3], hq[..., 3:7], hq[..., 7:]
        self.root_lin_vel, self._root_ang_vel_local, self.dof_vel = hv[..., 0:3], hv[..., 3:6], hv[..., 6:]
        self.pd_targets = raw["ctrl"][:, a0:a0 + k * hum.NUM_DOFS].unflatten(1, (k, hum.NUM_DOFS))
        bodies = slice(b0, b0 + k * hum.NUM_BODIES)
        self.body_pos = raw["xpos"][:, bodies].unflatten(1, (k, hum.NUM_BODIES))
        self.body_quat = raw["xquat"][:, bodies].unflatten(1, (k, hum.NUM_BODIES))
        self._body_cvel = raw["cvel"][:, bodies].unflatten(1, (k, hum.NUM_BODIES))
        self._root_subtree_com = raw["subtree_com"][:, b0:b0 + k * hum.NUM_BODIES:hum.NUM_BODIES]
        self._contact_sensor = raw["sensordata"][:, s0:s0 + k * hum.NUM_BODIES * 3].unflatten(1, (k, hum.NUM_BODIES, 3))
        oq, ov = sc.object_qpos_start, sc.object_qvel_start
        self.object_pos, self.object_quat = raw["qpos"][:, oq:oq + 3], raw["qpos"][:, oq + 3:oq + 7]
        self.object_lin_vel, self._object_ang_vel_local = raw["qvel"][:, ov:ov + 3], raw["qvel"][:, ov + 3:ov + 6]
        self._qpos, self._qvel = raw["qpos"], raw["qvel"]

        zeros = lambda *shape: torch.zeros(shape, dtype=self.dtype, device=self.device)  # noqa: E731
        self.root_ang_vel = zeros(n, k, 3)
        self.body_lin_vel = zeros(n, k, hum.NUM_BODIES, 3)
        self.body_ang_vel = zeros(n, k, hum.NUM_BODIES, 3)
        self.contact_forces = zeros(n, k, hum.NUM_BODIES, 3)
        self.object_ang_vel = zeros(n, 3)
        self.unstable = torch.zeros(n, dtype=torch.bool, device=self.device)
        base_half = torch.as_tensor(sc.object_info.half_extents, dtype=self.dtype, device=self.device)
        self._object_base_half_extents = base_half
        self.object_half_extents = base_half.repeat(n, 1)
        self.object_mass = torch.full((n,), sc.object_info.mass, dtype=self.dtype, device=self.device)
        self._all_ids = torch.arange(n, device=self.device)
        self._refresh()

    def _refresh(self) -> None:
        """Derived tensors from the physics fields: world-frame angular velocities, body velocities, contacts."""
        self.root_ang_vel.copy_(quat_rotate(self.root_quat, self._root_ang_vel_local))
        self.object_ang_vel.copy_(quat_rotate(self.object_quat, self._object_ang_vel_local))
        # cvel is the spatial velocity (angular, linear) at the tree's centre of mass; move it to each body origin.
        ang, lin_at_com = self._body_cvel[..., 0:3], self._body_cvel[..., 3:6]
        offset = self.body_pos - self._root_subtree_com.unsqueeze(2)
        self.body_ang_vel.copy_(ang)
        torch.cross(ang, offset, dim=-1, out=self.body_lin_vel).add_(lin_at_com)
        # The contact sensor reports the force the body exerts; tasks want the force acting on it.
        torch.neg(self._contact_sensor, out=self.contact_forces)

    def seed(self, seed: int) -> None:
        """Seed the engine's own randomness (object size and mass sampling)."""
        self.generator.manual_seed(int(seed))

    def set_pd_targets(self, targets: torch.Tensor) -> None:
        """PD position targets [num_envs, K, 28] in radians, applied from the next step on."""
        if targets.shape != self.pd_targets.shape:
            raise ValueError(f"PD targets must have shape {tuple(self.pd_targets.shape)}, got {tuple(targets.shape)}")
        finite = torch.isfinite(targets).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten().tolist()
            raise ValueError(f"PD targets contain NaN or infinity in environments {bad[:10]}{'...' if len(bad) > 10 else ''}")
        self.pd_targets.copy_(targets)

    def step(self) -> None:
        """One policy step: `decimation` physics steps under the current PD targets.

        Worlds whose state turns non-finite or faster than engine.max_speed are flagged in `unstable`; the task is
        expected to reset them (and it logs that it did)."""
        failed = self._step_physics()
        self._refresh()
        speed_limit = self.cfg.max_speed
        bad = ~torch.isfinite(self._qpos).all(dim=1) | ~torch.isfinite(self._qvel).all(dim=1)
        bad |= (self._qvel.abs() > speed_limit).any(dim=1)
        if failed is not None:
            bad |= failed
        self.unstable.copy_(bad)

    def _ids(self, env_ids) -> torch.Tensor:
        if env_ids is None:
            return self._all_ids
        ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device).flatten()
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise IndexError(f"environment ids must lie in [0, {self.num_envs}), got {ids.tolist()[:10]}")
        return ids

    def reset(self, env_ids, state: SimState) -> None:
        """Reset the given environments to `state` (tensors [len(env_ids), ...]); the others stay untouched.

        PD targets of those environments are set to the state's DoF positions."""
        ids = self._ids(env_ids)
        if ids.numel() == 0:
            return
        self._clear_rows(ids)
        h, o = state.humanoid, state.object
        cast = lambda t: torch.as_tensor(t, dtype=self.dtype, device=self.device)  # noqa: E731
        self.root_pos[ids] = cast(h.root_pos)
        self.root_quat[ids] = cast(h.root_quat)
        self.root_lin_vel[ids] = cast(h.root_lin_vel)
        self._root_ang_vel_local[ids] = quat_rotate_inverse(cast(h.root_quat), cast(h.root_ang_vel))
        self.dof_pos[ids] = cast(h.dof_pos)
        self.dof_vel[ids] = cast(h.dof_vel)
        self.pd_targets[ids] = cast(h.dof_pos)
        self.object_pos[ids] = cast(o.pos)
        self.object_quat[ids] = cast(o.quat)
        self.object_lin_vel[ids] = cast(o.lin_vel)
        self._object_ang_vel_local[ids] = quat_rotate_inverse(cast(o.quat), cast(o.ang_vel))
        self._forward_rows(ids)
        self._refresh()
        self.unstable[ids] = False

    def randomize_object(self, env_ids=None) -> None:
        """Sample each given world's object size and mass from the scene's object randomisation ranges."""
        ids = self._ids(env_ids)
        obj = self.scene.cfg.object
        n = ids.numel()
        uniform = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=self.generator, dtype=self.dtype)  # noqa: E731
        size_scale = uniform(*obj.size_scale_range).to(self.device)
        mass_scale = uniform(*obj.mass_scale_range).to(self.device)
        self.set_object_scale(ids, size_scale, mass_scale)

    def set_object_scale(self, env_ids, size_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        ids = self._ids(env_ids)
        size_scale = torch.as_tensor(size_scale, dtype=self.dtype, device=self.device).expand(ids.shape)
        mass_scale = torch.as_tensor(mass_scale, dtype=self.dtype, device=self.device).expand(ids.shape)
        if bool((size_scale > 1.0).any()) or bool((size_scale <= 0).any()) or bool((mass_scale <= 0).any()):
            raise ValueError("object size scales must lie in (0, 1] and mass scales must be positive")
        self._write_object_scale(ids, size_scale, mass_scale)
        self.object_half_extents[ids] = self._object_base_half_extents * size_scale[:, None]
        self.object_mass[ids] = self.scene.object_info.mass * mass_scale

    def get_state(self, env_ids=None) -> SimState:
        """A copy of the current state of the given environments."""
        ids = self._ids(env_ids)
        return SimState(
            HumanoidState(self.root_pos[ids], self.root_quat[ids], self.root_lin_vel[ids], self.root_ang_vel[ids],
                          self.dof_pos[ids], self.dof_vel[ids]),
            ObjectState(self.object_pos[ids], self.object_quat[ids], self.object_lin_vel[ids], self.object_ang_vel[ids]),
        ).clone()

    def default_state(self, num: int) -> SimState:
        """The scene's default spawn (humanoids standing in the default pose, object on the ground), num copies."""
        sc = self.scene
        qpos = torch.as_tensor(sc.default_qpos, dtype=self.dtype, device=self.device)
        k = self.num_humanoids
        hq = qpos[int(sc.qpos_start[0]):int(sc.qpos_start[0]) + k * hum.QPOS_SIZE].view(k, hum.QPOS_SIZE)
        oq = qpos[sc.object_qpos_start:sc.object_qpos_start + 7]
        rep = lambda t: t.expand((num,) + t.shape).clone()  # noqa: E731
        z = lambda *s: torch.zeros((num,) + s, dtype=self.dtype, device=self.device)  # noqa: E731
        return SimState(
            HumanoidState(rep(hq[:, 0:3]), rep(hq[:, 3:7]), z(k, 3), z(k, 3), rep(hq[:, 7:]), z(k, hum.NUM_DOFS)),
            ObjectState(rep(oq[0:3]), rep(oq[3:7]), z(3), z(3)),
        )
