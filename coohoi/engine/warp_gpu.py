"""GPU engine on MuJoCo Warp: all worlds in one batched Data on a CUDA device (or Warp's CPU device for tests).

The raw MuJoCo fields are Warp arrays shared zero-copy with torch (`wp.to_torch`), so tasks read the state and
write PD targets and reset states in place on the device. On CUDA the whole policy step (the `decimation` physics
steps plus the kinematics refresh) is one captured CUDA graph.

Warp engine specifics, all on the same compiled scene as the CPU engine:
- Contact and constraint buffers (engine.nconmax per world, pooled over worlds; engine.njmax per world) are sized
  from the scene's geoms unless the config sets them. Overflow is checked after every step on the device: a world
  that ran out of constraint rows is flagged `unstable` (the task resets it); a contact-pool overflow, which MuJoCo
  Warp cannot attribute to worlds, is remembered, and check_faults() (once per epoch) stops with a message naming
  engine.nconmax and reports the constraint overflows. A step never synchronises with the host.
- Per-world object size and mass live in batched model fields (one row per world).
"""

from __future__ import annotations

import logging

import mujoco
import torch

from coohoi.config import EngineConfig
from coohoi.engine.base import OBJECT_SCALED_FIELDS, Engine, EngineConfigError, object_scale_factors
from coohoi.scene import Scene

log = logging.getLogger(__name__)

RAW_FIELDS = ("qpos", "qvel", "ctrl", "xfrc_applied", "xpos", "xquat", "cvel", "subtree_com", "sensordata")
# Per-world state that carries over between steps besides qpos/qvel/ctrl, zeroed when a world is reset.
CLEARED_FIELDS = ("qacc_warmstart", "qacc", "qfrc_applied", "xfrc_applied", "act", "act_dot", "time", "sensordata",
                  "overflow")

# Most contacts MuJoCo makes between a geom of each type and a plane or a box (its per-pair limits).
CONTACTS_WITH_PLANE = {
    mujoco.mjtGeom.mjGEOM_SPHERE: 1, mujoco.mjtGeom.mjGEOM_CAPSULE: 2, mujoco.mjtGeom.mjGEOM_ELLIPSOID: 1,
    mujoco.mjtGeom.mjGEOM_CYLINDER: 4, mujoco.mjtGeom.mjGEOM_BOX: 4, mujoco.mjtGeom.mjGEOM_MESH: 4,
}
CONTACTS_WITH_BOX = {
    mujoco.mjtGeom.mjGEOM_SPHERE: 1, mujoco.mjtGeom.mjGEOM_CAPSULE: 2, mujoco.mjtGeom.mjGEOM_ELLIPSOID: 1,
    mujoco.mjtGeom.mjGEOM_CYLINDER: 4, mujoco.mjtGeom.mjGEOM_BOX: 8, mujoco.mjtGeom.mjGEOM_MESH: 8,
}
DEFAULT_PAIR_CONTACTS = 4  # geom types missing from the tables above (meshes against meshes)
# Room for contacts between two teammates (scene.team_collisions). The per-geom-pair bound would be some 600 per pair
# of humanoids (18 x 18 geoms), a 25-fold larger buffer for four humanoids, while two humanoids overlapped deeply (one
# 0.15 m ahead of and 0.25 m beside the other, tests/test_scene_team.py) make 25. The contact pool is shared by all
# worlds, so a world that makes more borrows from the others; a world short of constraint rows is flagged unstable
# and reset.
TEAM_PAIR_CONTACTS = 32


def _overflow_bits():
    from mujoco_warp._src.types import OverflowType

    per_world = int(OverflowType.NEFC | OverflowType.NJMAX_NNZ)
    pooled = int(OverflowType.BROADPHASE | OverflowType.NARROWPHASE | OverflowType.CCD)
    return per_world, pooled


def _can_collide(model: mujoco.MjModel, g1: int, g2: int) -> bool:
    if model.geom_bodyid[g1] == model.geom_bodyid[g2]:
        return False
    return bool(model.geom_contype[g1] & model.geom_conaffinity[g2]
                or model.geom_contype[g2] & model.geom_conaffinity[g1])


def contact_buffer_sizes(scene: Scene) -> tuple[int, int]:
    """(nconmax, njmax) per world from the scene: the most contacts MuJoCo can make between the object, the
    humanoids and the floor (per-pair limits of each geom type) plus TEAM_PAIR_CONTACTS for each pair of humanoids
    that collide, and the constraint rows those contacts and the joint limits need."""
    model = scene.model
    bodies = {int(b) for b in scene.body_ids.flatten()} | {scene.object_body_id}
    movable = [g for g in range(model.ngeom) if int(model.geom_bodyid[g]) in bodies]
    static = [g for g in range(model.ngeom) if model.geom_bodyid[g] == 0]
    obj_geoms = {int(g) for g in scene.object_geom_ids}
    humanoid_of = {int(b): k for k in range(scene.num_humanoids) for b in scene.body_ids[k]}
    owner = {g: humanoid_of.get(int(model.geom_bodyid[g]), -1) for g in movable}
    ncon = 0
    team_pairs = set()
    for i, g in enumerate(movable):
        for s in static:
            if _can_collide(model, g, s):
                table = CONTACTS_WITH_PLANE if model.geom_type[s] == mujoco.mjtGeom.mjGEOM_PLANE else CONTACTS_WITH_BOX
                ncon += table.get(int(model.geom_type[g]), DEFAULT_PAIR_CONTACTS)
        for h in movable[i + 1:]:
            if owner[g] >= 0 and owner[h] >= 0 and owner[g] != owner[h]:
                if _can_collide(model, g, h):
                    team_pairs.add((owner[g], owner[h]))
                continue
            if _can_collide(model, g, h):
                other = h if h in obj_geoms else g
                this = g if other == h else h
                ncon += CONTACTS_WITH_BOX.get(int(model.geom_type[this]), DEFAULT_PAIR_CONTACTS) \
                    if model.geom_type[other] == mujoco.mjtGeom.mjGEOM_BOX else DEFAULT_PAIR_CONTACTS
    ncon += TEAM_PAIR_CONTACTS * len(team_pairs)
    elliptic = model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    max_condim = int(model.geom_condim.max())
    rows_per_contact = max_condim if elliptic else max(1, 2 * (max_condim - 1))
    limit_rows = int(model.jnt_limited.sum()) + int(model.dof_frictionloss.astype(bool).sum()) + 6 * model.neq
    return ncon, ncon * rows_per_contact + limit_rows


class WarpEngine(Engine):
    name = "warp"

    def __init__(self, scene: Scene, cfg: EngineConfig):
        super().__init__(scene, cfg)
        try:
            import mujoco_warp as mjw
            import warp as wp
        except ImportError as exc:
            raise EngineConfigError(f"engine=warp needs the mujoco-warp and warp-lang packages ({exc})") from exc
        from mujoco_warp._src import smooth

        self._wp, self._mjw, self._smooth = wp, mjw, smooth
        wp.config.quiet = True  # no banner, no line per loaded kernel module
        wp.config.log_level = max(wp.config.log_level, wp.LOG_WARNING)
        wp.init()
        try:
            self.wp_device = wp.get_device(cfg.device)
        except Exception as exc:  # warp raises a bare RuntimeError/ValueError for unknown devices
            raise EngineConfigError(
                f"engine.device={cfg.device!r} is not a Warp device here ({exc}); Warp sees "
                f"{[str(d) for d in wp.get_devices()]} (engine.device=cpu runs Warp's CPU device)") from exc
        self._on_cuda = self.wp_device.is_cuda
        self._torch_device = torch.device(f"cuda:{self.wp_device.ordinal}" if self._on_cuda else "cpu")

        nconmax_auto, njmax_auto = contact_buffer_sizes(scene)
        self.nconmax = self._size_setting("nconmax", cfg.nconmax, nconmax_auto)
        self.njmax = self._size_setting("njmax", cfg.njmax, njmax_auto)
        self._per_world_overflow, self._pooled_overflow = _overflow_bits()

        self._stream = None
        if self._on_cuda:  # our own stream: graphs cannot be captured on torch's default (legacy) stream
            self._torch_stream = torch.cuda.Stream(device=self._torch_device)
            self._stream = wp.stream_from_torch(self._torch_stream)
        mjm = scene.model
        n = self.num_envs
        # The object's size and mass fields get one row per world (MuJoCo Warp has no dof_M0: it builds the mass
        # matrix from body masses every step).
        self._object_fields = [f for f in OBJECT_SCALED_FIELDS if f in mjw.Model.__dataclass_fields__]
        with wp.ScopedDevice(self.wp_device):
            self.model = mjw.put_model(mjm, batch_sizes={f: n for f in self._object_fields})
            self.model.opt.warn_overflow = 0  # we report overflows ourselves, naming our settings
            self.data = mjw.make_data(mjm, nworld=n, nconmax=self.nconmax, njmax=self.njmax)
        self._t = {f: wp.to_torch(getattr(self.data, f)) for f in set(RAW_FIELDS + CLEARED_FIELDS)}
        self._nacon = wp.to_torch(self.data.nacon)
        self._nefc = wp.to_torch(self.data.nefc)
        self._object_model = {f: wp.to_torch(getattr(self.model, f)) for f in self._object_fields}
        dev = self._torch_device
        self._object_index = {"geoms": torch.as_tensor(scene.object_geom_ids, dtype=torch.long, device=dev),
                              "body": int(scene.object_body_id),
                              "dofs": scene.object_qvel_start + torch.arange(6, device=dev)}
        self._base_mass = float(scene.model.body_mass[scene.object_body_id])
        # The object's compiled entries of each scaled field (float64), as a per-world row would index them.
        self._compiled = {f: torch.as_tensor(getattr(mjm, f), device=dev)[self._object_index[OBJECT_SCALED_FIELDS[f]]]
                          for f in self._object_fields}
        self._pooled_overflow_seen = torch.zeros((), dtype=torch.bool, device=dev)
        self._njmax_overflows = torch.zeros((), dtype=torch.long, device=dev)
        self._nefc_peak = torch.zeros((), dtype=self._nefc.dtype, device=dev)
        self._step_graph = None
        self._kinematics_graph = None
        self._run(self._forward_all)
        self._setup_views()

    def _size_setting(self, name: str, value, auto: int) -> int:
        if value is None:
            return int(auto)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EngineConfigError(
                f"engine.{name} must be a positive integer or null (sized from the scene), got {value!r}")
        return int(value)

    # ---- launching ------------------------------------------------------------------------------------------
    def _run(self, fn, graph_attr: str | None = None) -> None:
        """Run a sequence of Warp launches, ordered with torch's work on the device; captured once as a CUDA graph
        (stored in graph_attr) when on CUDA with engine.cuda_graph."""
        wp = self._wp
        if not self._on_cuda:
            with wp.ScopedDevice(self.wp_device):
                fn()
            return
        torch_stream = torch.cuda.current_stream(self._torch_device)
        self._torch_stream.wait_stream(torch_stream)
        with wp.ScopedDevice(self.wp_device), wp.ScopedStream(self._stream, sync_enter=False):
            graph = getattr(self, graph_attr) if graph_attr else None
            if graph is not None:
                wp.capture_launch(graph, stream=self._stream)
            elif graph_attr and self.cfg.cuda_graph and getattr(self, f"{graph_attr}_warm", False):
                # The eager first call loaded every module the step uses; loading all of Warp's would compile
                # MuJoCo Warp features this scene never runs.
                with wp.ScopedCapture(device=self.wp_device, stream=self._stream,
                                      force_module_load=False) as capture:
                    fn()
                setattr(self, graph_attr, capture.graph)
                wp.capture_launch(capture.graph, stream=self._stream)
            else:  # first call runs eagerly: compiles and loads every kernel before a capture
                fn()
                if graph_attr:
                    setattr(self, f"{graph_attr}_warm", True)
        torch_stream.wait_stream(self._torch_stream)

    def _physics_steps(self) -> None:
        mjw = self._mjw
        self.data.overflow.zero_()
        for _ in range(self.decimation):
            mjw.step(self.model, self.data)
        self._kinematics()  # of the new state (MuJoCo's step leaves them at the previous one)

    def _forward_all(self) -> None:
        self._mjw.forward(self.model, self.data)

    # ---- the engine interface -------------------------------------------------------------------------------
    def _raw(self) -> dict[str, torch.Tensor]:
        return {f: self._t[f] for f in RAW_FIELDS}

    def _step_physics(self) -> torch.Tensor | None:
        self._run(self._physics_steps, "_step_graph")
        return self._check_overflow()

    def _check_overflow(self) -> torch.Tensor:
        """Worlds that ran out of constraint rows in this step ([num_envs] bool, flagged unstable for reset). A
        contact-pool overflow, which MuJoCo Warp cannot attribute to worlds, is remembered on the device and raised
        by check_faults() (no host synchronisation here)."""
        overflow = self._t["overflow"]
        per_world = (overflow & self._per_world_overflow) != 0
        self._pooled_overflow_seen |= ((overflow & self._pooled_overflow) != 0).any()
        self._njmax_overflows += per_world.sum()
        self._nefc_peak = torch.maximum(self._nefc_peak, self._nefc.max())
        return per_world

    def check_faults(self) -> None:
        """Raise on a contact-pool overflow since the last call and warn about constraint-row overflows (one host
        synchronisation; call it once per epoch, not per step)."""
        pooled, overflows, peak = (int(x) for x in torch.stack(
            [self._pooled_overflow_seen.long(), self._njmax_overflows, self._nefc_peak.long()]).tolist())
        self._pooled_overflow_seen.zero_()
        self._njmax_overflows.zero_()
        if pooled:
            raise EngineConfigError(
                f"the contact buffer overflowed: room for {self.nconmax} contacts per world ({self.nconmax * self.num_envs} "
                f"in all); raise engine.nconmax (sized from the scene: {contact_buffer_sizes(self.scene)[0]})")
        if overflows:
            log.warning("engine.njmax=%d constraint rows were not enough %d times (up to %d needed); those worlds were "
                        "flagged unstable and reset; raise engine.njmax if this repeats", self.njmax, overflows, peak)

    def _clear_where(self, mask: torch.Tensor) -> None:
        for f in CLEARED_FIELDS + ("ctrl",):
            t = self._t[f]
            t.copy_(torch.where(mask.view((-1,) + (1,) * (t.dim() - 1)), torch.zeros((), dtype=t.dtype,
                                                                                     device=t.device), t))

    def _forward_where(self, mask: torch.Tensor) -> None:
        # Kinematics and velocities of every world: for worlds a reset did not touch they recompute exactly what the
        # last step left (the same kernels on the same state), so no masking is needed and nothing syncs.
        self._run(self._kinematics, "_kinematics_graph")

    def _kinematics(self) -> None:
        smooth = self._smooth
        smooth.kinematics(self.model, self.data)
        smooth.com_pos(self.model, self.data)
        smooth.com_vel(self.model, self.data)

    def _write_object_scale(self, mask: torch.Tensor, size_scale: torch.Tensor, mass_scale: torch.Tensor) -> None:
        model, fields = self.scene.model, self._object_model
        factors = object_scale_factors(size_scale.double(), mass_scale.double())
        for name in self._object_fields:
            index = self._object_index[OBJECT_SCALED_FIELDS[name]]
            field = fields[name]
            base = self._compiled[name]
            value = (base * factors[name]).to(field.dtype)
            field[:, index] = torch.where(mask.view((-1,) + (1,) * (value.dim() - 1)), value, field[:, index])
        # The world body's subtree holds everything: it gains what the object gains.
        subtree = fields["body_subtreemass"]
        value = (float(model.body_subtreemass[0]) + self._base_mass * (mass_scale.double() - 1.0)).to(subtree.dtype)
        subtree[:, 0] = torch.where(mask, value, subtree[:, 0])

    def memory_stats(self) -> dict[str, float]:
        """Device memory in MiB: what Warp's allocator holds now and torch's peak (CUDA only)."""
        if not self._on_cuda:
            return {}
        wp = self._wp
        stats = {"torch_max_allocated_mib": torch.cuda.max_memory_allocated(self._torch_device) / 2**20}
        try:
            stats["warp_mempool_used_mib"] = wp.get_mempool_used_mem_current(self.wp_device) / 2**20
            stats["warp_mempool_peak_mib"] = wp.get_mempool_used_mem_high(self.wp_device) / 2**20
        except AttributeError:
            pass
        free, total = torch.cuda.mem_get_info(self._torch_device)
        stats["device_used_mib"] = (total - free) / 2**20
        return stats
