"""The engine interface that tasks use, and the tensor logic shared by its implementations.

An engine steps `num_envs` copies of one scene (see coohoi.scene) and exposes batched torch tensors:

- per humanoid, shaped [num_envs, K, ...]: root_pos, root_quat (w, x, y, z), root_lin_vel, root_ang_vel (world
  frame), dof_pos, dof_vel [.., 28], body_pos, body_quat, body_lin_vel, body_ang_vel [.., 15, 3|4] in reference
  body order, contact_forces [.., 15, 3] (net contact force on each body, world frame), hand_object_force
  [.., 2, 3] (net contact force on the right and left hand (coohoi.scene.HAND_BODIES) from the object alone, world
  frame: an object resting on a palm pushes it down with about -m g);
- the object, shaped [num_envs, ...]: object_pos, object_quat, object_lin_vel, object_ang_vel, and its per-world
  object_half_extents [num_envs, 3] and object_mass [num_envs].

State tensors (root, DoF and object poses and velocities where the physics stores them in that form) are zero-copy
views of the physics state; the rest are refreshed after every step and reset. Implementations bind the raw
MuJoCo fields (qpos, qvel, ctrl, xfrc_applied, xpos, xquat, cvel, subtree_com, sensordata) as torch tensors and provide
four operations: stepping, clearing and forwarding the worlds in a mask, and writing per-world object size and mass.
Resets take a mask of worlds and full-size tensors, so that a task can reset whichever worlds ended without a host
synchronisation (the CPU engine turns the mask into indices on the host, where that costs nothing).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, fields

import mujoco
import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.config import EngineConfig
from coohoi.rotations import quat_rotate, quat_rotate_inverse, quat_to_matrix
from coohoi.scene import Scene


class EngineConfigError(ValueError):
    """An engine setting that cannot work; the message names the setting."""


# What can go wrong with a world's physics in a step (Engine.fault_kind: 0 for none, else 1 + the index of the first
# that applies): its state turned non-finite; a joint or body moved faster than engine.max_speed; a humanoid geom or
# the object's bounding box sank deeper than engine.max_penetration into the ground; the engine reported the world
# failed (MuJoCo Warp ran out of constraint rows; mujoco.batch raised its own warnings: constraint or contact buffer
# full, bad accelerations).
FAULT_KINDS = ("nonfinite", "velocity", "penetration", "overflow")


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


def derive_decimation(cfg: EngineConfig, physics_dt: float) -> int:
    """Physics steps per policy step: engine.decimation, or engine.policy_dt / physics_dt when that is None (which
    must then be a whole number)."""
    if cfg.decimation is not None:
        if isinstance(cfg.decimation, bool) or not isinstance(cfg.decimation, int) or cfg.decimation < 1:
            raise EngineConfigError(f"engine.decimation must be a positive integer or null, got {cfg.decimation!r}")
        return cfg.decimation
    if not (isinstance(cfg.policy_dt, (int, float)) and math.isfinite(cfg.policy_dt) and cfg.policy_dt > 0):
        raise EngineConfigError(f"engine.policy_dt must be a positive number of seconds, got {cfg.policy_dt!r}")
    ratio = cfg.policy_dt / physics_dt
    if abs(ratio - round(ratio)) > 1e-6 * ratio or round(ratio) < 1:
        raise EngineConfigError(f"engine.policy_dt ({cfg.policy_dt:g} s) must be a whole number of physics steps "
                                f"(scene.physics_dt {physics_dt:g} s); set engine.decimation or change either")
    return int(round(ratio))


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

    def map(self, fn) -> "SimState":
        """A new state with fn applied to every tensor."""
        return SimState(
            HumanoidState(**{f.name: fn(getattr(self.humanoid, f.name)) for f in fields(HumanoidState)}),
            ObjectState(**{f.name: fn(getattr(self.object, f.name)) for f in fields(ObjectState)}),
        )

    def clone(self) -> "SimState":
        return self.map(torch.clone)


class Engine(abc.ABC):
    """Batched physics for the tasks: PD targets in, state tensors out. Knows nothing about tasks."""

    name = "engine"
    host_state = False  # the state lives in host memory (the CPU engine): reading it never waits for a device

    def __init__(self, scene: Scene, cfg: EngineConfig):
        if isinstance(cfg.num_envs, bool) or not isinstance(cfg.num_envs, int) or cfg.num_envs < 1:
            raise EngineConfigError(f"engine.num_envs must be a positive integer, got {cfg.num_envs!r}")
        if not scene.contiguous:
            raise EngineConfigError("scene humanoids are not laid out in consecutive blocks")
        self.scene = scene
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.num_humanoids = scene.num_humanoids
        self.physics_dt = scene.model.opt.timestep
        self.decimation = derive_decimation(cfg, self.physics_dt)
        self.policy_dt = self.physics_dt * self.decimation
        self.generator = torch.Generator(device="cpu")
        self.seed(cfg.seed)

    # ---- implemented by each engine -------------------------------------------------------------------------
    @abc.abstractmethod
    def _raw(self) -> dict[str, torch.Tensor]:
        """Torch views of qpos, qvel, ctrl, xfrc_applied, xpos, xquat, cvel, subtree_com and sensordata, each
        [num_envs, ...]."""

    @abc.abstractmethod
    def _step_physics(self) -> torch.Tensor | None:
        """Advance every world by `decimation` physics steps, leaving position and velocity fields current.
        Returns a bool mask of worlds the physics reported as failed, or None."""

    @abc.abstractmethod
    def _clear_where(self, mask: torch.Tensor) -> None:
        """Reset the full physics state (warm starts, activations, applied forces, sensors) of the worlds in mask
        [num_envs] bool to the model defaults."""

    @abc.abstractmethod
    def _forward_where(self, mask: torch.Tensor) -> None:
        """Recompute kinematics and velocities (xpos, xquat, cvel, subtree_com) of the worlds in mask from their
        state; other worlds' fields stay exactly as they were. Contact forces are not recomputed: they read zero
        until the world's next step (tasks let a reset settle for a grace step before judging contacts)."""

    @abc.abstractmethod
    def _write_object_scale(self, mask: torch.Tensor, size_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        """Give the worlds in mask their object's size (scale of the built size, <= 1) and mass (scale of the built
        mass); size_scale and mass_scale are [num_envs]."""

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
        h0, nh = int(sc.hand_object_sensor_adr[0, 0]), sc.hand_object_sensor_adr.shape[1]
        self._hand_object_sensor = raw["sensordata"][:, h0:h0 + k * nh * 3].unflatten(1, (k, nh, 3))
        # Force and torque (world frame, at the body's centre of mass) applied to each humanoid's pelvis.
        self._root_wrench = raw["xfrc_applied"][:, b0:b0 + k * hum.NUM_BODIES:hum.NUM_BODIES]
        oq, ov = sc.object_qpos_start, sc.object_qvel_start
        self.object_pos, self.object_quat = raw["qpos"][:, oq:oq + 3], raw["qpos"][:, oq + 3:oq + 7]
        self.object_lin_vel, self._object_ang_vel_local = raw["qvel"][:, ov:ov + 3], raw["qvel"][:, ov + 3:ov + 6]
        self._qpos, self._qvel = raw["qpos"], raw["qvel"]

        zeros = lambda *shape: torch.zeros(shape, dtype=self.dtype, device=self.device)  # noqa: E731
        self.root_ang_vel = zeros(n, k, 3)
        self.body_lin_vel = zeros(n, k, hum.NUM_BODIES, 3)
        self.body_ang_vel = self._body_cvel[..., 0:3]  # the same at every point of a body: a view, no copy
        self.contact_forces = zeros(n, k, hum.NUM_BODIES, 3)
        self.hand_object_force = zeros(n, k, self._hand_object_sensor.shape[2], 3)
        self.object_ang_vel = zeros(n, 3)
        self.unstable = torch.zeros(n, dtype=torch.bool, device=self.device)
        self.fault_kind = torch.zeros(n, dtype=torch.long, device=self.device)  # FAULT_KINDS: 0 none, i + 1 kind i
        self._setup_ground_geoms()
        base_half = torch.as_tensor(sc.object_info.half_extents, dtype=self.dtype, device=self.device)
        self.object_base_half_extents = base_half  # [3] at full scale
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
        torch.cross(ang, offset, dim=-1, out=self.body_lin_vel).add_(lin_at_com)
        # The contact sensor reports the force the body exerts (on the object, for the hand sensors); tasks want the
        # force acting on it.
        torch.neg(self._contact_sensor, out=self.contact_forces)
        torch.neg(self._hand_object_sensor, out=self.hand_object_force)

    def seed(self, seed: int) -> None:
        """Seed the engine's own randomness (object size and mass sampling)."""
        self.generator.manual_seed(int(seed))

    def set_pd_targets(self, targets: torch.Tensor, check: bool = True) -> None:
        """PD position targets [num_envs, K, 28] in radians, applied from the next step on. check=True refuses
        non-finite targets naming the environments (a host sync; tasks that sanitise their actions pass False)."""
        if targets.shape != self.pd_targets.shape:
            raise ValueError(f"PD targets must have shape {tuple(self.pd_targets.shape)}, got {tuple(targets.shape)}")
        if check:
            finite = torch.isfinite(targets).flatten(1).all(dim=1)
            if not bool(finite.all()):
                bad = torch.nonzero(~finite).flatten().tolist()
                raise ValueError(f"PD targets contain NaN or infinity in environments {bad[:10]}"
                                 f"{'...' if len(bad) > 10 else ''}")
        self.pd_targets.copy_(targets)

    def set_root_wrench(self, force: torch.Tensor, torque: torch.Tensor) -> None:
        """External force and torque [num_envs, K, 3] (world frame, N and N m) on each humanoid's pelvis, held
        through the following steps until set again (a reset clears it)."""
        self._root_wrench[..., 0:3] = force
        self._root_wrench[..., 3:6] = torque

    def _setup_ground_geoms(self) -> None:
        """Per humanoid geom (every humanoid's are the first one's): its body's index, centre and axes in the body
        frame, type and size, for ground_penetration()."""
        m, bodies = self.scene.model, [int(b) for b in self.scene.body_ids[0]]
        geoms = [g for g in range(m.ngeom) if int(m.geom_bodyid[g]) in bodies]
        as_tensor = lambda a, dtype=self.dtype: torch.as_tensor(np.asarray(a), dtype=dtype, device=self.device)  # noqa: E731
        self._geom_body = as_tensor([bodies.index(int(m.geom_bodyid[g])) for g in geoms], torch.long)
        self._geom_pos = as_tensor(m.geom_pos[geoms])
        self._geom_axes = quat_to_matrix(as_tensor(m.geom_quat[geoms])).transpose(1, 2)  # [G, axis, xyz]
        self._geom_size, self._geom_rbound = as_tensor(m.geom_size[geoms]), as_tensor(m.geom_rbound[geoms])
        self._geom_type = as_tensor(m.geom_type[geoms], torch.long)

    def ground_penetration(self) -> torch.Tensor:
        """How deep [num_envs] (m, 0 when clear) the lowest humanoid geom or the lowest corner of the object's
        bounding box lies below the ground plane (z = 0). Exact for spheres, capsules, cylinders, boxes and ellipsoids;
        other geoms count their bounding sphere."""
        g = mujoco.mjtGeom
        up = quat_to_matrix(self.body_quat)[..., 2, :][:, :, self._geom_body]  # world z row of each geom's body
        centre = self.body_pos[..., 2][:, :, self._geom_body] + (up * self._geom_pos).sum(-1)
        a = torch.einsum("nkgc,gjc->nkgj", up, self._geom_axes).abs()  # |z component| of each geom axis
        size, kind = self._geom_size, self._geom_type
        r, h, axis = size[:, 0], size[:, 1], a[..., 2]
        reach = torch.where(kind == int(g.mjGEOM_SPHERE), r, self._geom_rbound)
        reach = torch.where(kind == int(g.mjGEOM_CAPSULE), axis * h + r, reach)
        reach = torch.where(kind == int(g.mjGEOM_CYLINDER), axis * h + r * (1 - axis.square()).clamp(min=0).sqrt(), reach)
        reach = torch.where(kind == int(g.mjGEOM_BOX), (a * size).sum(-1), reach)
        reach = torch.where(kind == int(g.mjGEOM_ELLIPSOID), (a * size).square().sum(-1).sqrt(), reach)
        lowest = (centre - reach).flatten(1).amin(dim=1)
        object_up = quat_to_matrix(self.object_quat)[:, 2, :]
        lowest = torch.minimum(lowest, self.object_pos[:, 2] - (object_up.abs() * self.object_half_extents).sum(-1))
        return (-lowest).clamp(min=0.0)

    def step(self) -> None:
        """One policy step: `decimation` physics steps under the current PD targets.

        Worlds that show a fault (FAULT_KINDS) are flagged in `unstable`, and `fault_kind` says which; the task is
        expected to reset them (and to count them)."""
        failed = self._step_physics()
        self._refresh()
        nonfinite = ~(torch.isfinite(self._qpos).all(dim=1) & torch.isfinite(self._qvel).all(dim=1))
        too_fast = ~(self._qvel.abs() <= self.cfg.max_speed).all(dim=1)
        too_deep = self.ground_penetration() > self.cfg.max_penetration
        failed = failed if failed is not None else torch.zeros_like(nonfinite)
        kinds = torch.stack((nonfinite, too_fast, too_deep, failed), dim=1)
        self.unstable.copy_(kinds.any(dim=1))
        self.fault_kind.copy_(torch.where(self.unstable, kinds.to(torch.uint8).argmax(dim=1) + 1, 0))

    def check_faults(self) -> None:
        """Report faults the engine noticed on the device since the last call (one host synchronisation: call it once
        per epoch, not per step). The CPU engine has none to report."""

    def _ids(self, env_ids) -> torch.Tensor:
        if env_ids is None:
            return self._all_ids
        ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device).flatten()
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise IndexError(f"environment ids must lie in [0, {self.num_envs}), got {ids.tolist()[:10]}")
        return ids

    def _mask(self, env_ids) -> torch.Tensor:
        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        mask[self._ids(env_ids)] = True
        return mask

    def reset(self, env_ids, state: SimState) -> None:
        """Reset the given environments to `state` (tensors [len(env_ids), ...]); the others stay untouched."""
        ids = self._ids(env_ids)
        cast = lambda t: torch.as_tensor(t, dtype=self.dtype, device=self.device)  # noqa: E731

        def full(t):
            out = torch.zeros((self.num_envs,) + tuple(t.shape[1:]), dtype=self.dtype, device=self.device)
            out[ids] = cast(t)
            return out

        self.reset_where(self._mask(ids), state.map(full))

    def reset_where(self, mask: torch.Tensor, state: SimState) -> None:
        """Reset the environments in mask [num_envs] bool to their rows of `state` (tensors [num_envs, ...]); the
        others stay bit for bit as they were. PD targets of reset environments are set to their DoF positions.
        Fixed shapes only: no host synchronisation on the GPU engine."""
        self._clear_where(mask)
        h, o = state.humanoid, state.object

        def write(view: torch.Tensor, value: torch.Tensor) -> None:
            m = mask.view((-1,) + (1,) * (view.dim() - 1))
            view.copy_(torch.where(m, value.to(self.dtype), view))

        write(self.root_pos, h.root_pos)
        write(self.root_quat, h.root_quat)
        write(self.root_lin_vel, h.root_lin_vel)
        write(self._root_ang_vel_local, quat_rotate_inverse(h.root_quat.to(self.dtype), h.root_ang_vel.to(self.dtype)))
        write(self.dof_pos, h.dof_pos)
        write(self.dof_vel, h.dof_vel)
        write(self.pd_targets, h.dof_pos)
        write(self.object_pos, o.pos)
        write(self.object_quat, o.quat)
        write(self.object_lin_vel, o.lin_vel)
        write(self._object_ang_vel_local, quat_rotate_inverse(o.quat.to(self.dtype), o.ang_vel.to(self.dtype)))
        self._forward_where(mask)
        self._refresh()
        self.unstable &= ~mask
        self.fault_kind.masked_fill_(mask, 0)

    def sample_object_scales(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n (size scale, mass scale) pairs from the scene's object randomisation ranges (object.constant_density:
        the mass scale times the size scale cubed), on the engine's device."""
        obj = self.scene.cfg.object
        g = generator or self.generator

        def uniform(lo, hi):
            return lo + (hi - lo) * torch.rand(n, generator=g, dtype=self.dtype, device=g.device).to(self.device)

        size, mass = uniform(*obj.size_scale_range), uniform(*obj.mass_scale_range)
        return size, mass * size**3 if obj.constant_density else mass

    def set_object_scale(self, env_ids, size_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        """Object size and mass scales of the given worlds (checked: sizes in (0, 1], masses positive)."""
        ids = self._ids(env_ids)
        size_scale = torch.as_tensor(size_scale, dtype=self.dtype, device=self.device).expand(ids.shape)
        mass_scale = torch.as_tensor(mass_scale, dtype=self.dtype, device=self.device).expand(ids.shape)
        if bool((size_scale > 1.0).any()) or bool((size_scale <= 0).any()) or bool((mass_scale <= 0).any()):
            raise ValueError("object size scales must lie in (0, 1] and mass scales must be positive")
        full_size = torch.ones(self.num_envs, dtype=self.dtype, device=self.device)
        full_mass = torch.ones_like(full_size)
        full_size[ids], full_mass[ids] = size_scale, mass_scale
        self.set_object_scale_where(self._mask(ids), full_size, full_mass)

    def set_object_scale_where(self, mask: torch.Tensor, size_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        """Object size and mass scales [num_envs] for the worlds in mask (unchecked, no host synchronisation)."""
        self._write_object_scale(mask, size_scale, mass_scale)
        self.object_half_extents.copy_(torch.where(mask[:, None], self.object_base_half_extents * size_scale[:, None],
                                                   self.object_half_extents))
        self.object_mass.copy_(torch.where(mask, self.scene.object_info.mass * mass_scale, self.object_mass))

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
