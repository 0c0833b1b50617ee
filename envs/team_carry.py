"""Cooperative carrying (reference §3-4, §7-8): a team of humanoids carries one object to a target, in one MuJoCo
world. The agents send no messages; each reads what the others do from the object's motion.

- Every agent observes the object from its own handle (coohoi.envs.observations.team_handles) in the single-agent
  layout (76 numbers: its held point, the corners of a handle-sized sub-box, the object and target rotations seen
  from its side, the object's velocities), so a phase-1 policy loads unchanged.
- The critic group adds a global state (team_state_size numbers): the object's pose and velocity, the target, every team
  slot's root state, hand positions and activity, and the agent's own slot, all relative to the agent's root in its
  heading frame.
- The scene holds scene.num_humanoids slots; each reset samples the active team size per environment from
  env.team_size_range. Inactive humanoids stand parked far away (env.park_xy), hold the default pose and are masked
  out (agent_mask).
- Placement: the object at the environment's origin with a sampled yaw; each active agent behind its standing point,
  pushed out by env.start_distance_range (published for two agents: the object between the humanoids plus U[0.5, 2]
  m) or, with env.start_circle_radius, on a circle around the object in the direction of its rim point, facing the
  centre (TeamHOI); the target at a sampled distance and direction from the object.
- Rewards per agent (the single-agent terms on its handle; reference §4's two-agent changes are
  TeamCarryEnvConfig's defaults), resets per team: one agent falls, or the object is kicked or dropped
  (TeamCarryEnvConfig), and the whole environment resets.
- Metrics (reference §8): CarryEnv's CooHOI metrics (success_rate, final_distance_m in 3D, precision_cm,
  completion_time_s, ...) and TeamHOI's from a coohoi.envs.metrics.TeamMetricsTracker updated once per step:
  sticky_success_rate, final_distance_xy_m, cooperation_fraction, jerk_mps3, and ours load_share_<k> per slot and
  load_imbalance. Inactive agents count in none of them (their load share is NaN, cooperation ignores them).
  Geometry of the metrics (see team_outlines):
    * the rim whose points' jerk is measured is the object's top edge (+half_z): the bounding rectangle, or the
      circle of radius half_x for kind round_table;
    * "hands within 0.12 m of the rim" is measured to the band of the outline that agents grip, the same part as
      their handles: a table top's edge (its thickness), a box's or sofa's side over its full height. A hand on a
      box's end face at any height is then at distance ~ its radius (0.04 m), as it is on a table's edge;
    * a hand is in contact when its contact force with the object exceeds task.env.fall_contact_force (the fall
      rule's test);
    * load shares use the engine's hand_object_force (force ON each hand FROM the object alone, from contact
      sensors between each hand and the object).
"""

from __future__ import annotations

import math

import torch

from coohoi.engine.base import HumanoidState, ObjectState
from coohoi.envs.carry import CarryEnv
from coohoi.envs.config import TeamCarryEnvConfig
from coohoi.envs.humanoid_env import Starts
from coohoi.envs.metrics import Outline, TeamMetricsTracker, distance_to_outline, outline_points
from coohoi.envs.observations import _to_heading, place_handle
from coohoi.rotations import heading_angle, heading_quat_inverse, quat_mul, quat_rotate, quat_to_tan_norm, yaw_quat

# Per team slot in the critic's global state: root position 3, root rotation 6D 6, root linear and angular velocity
# 6, both hands' positions 6, active 1.
SLOT_STATE_SIZE = 22
# Object position 3, rotation 6D 6, linear and angular velocity 6; target position 3, rotation 6D 6.
OBJECT_TARGET_STATE_SIZE = 24
# Points around the object's rim whose jerk the metrics average (TeamHOI, reference §8).
RIM_POINTS = 16


def team_state_size(num_agents: int) -> int:
    """The critic's global state: object and target, every slot, and the agent's own slot one-hot."""
    return OBJECT_TARGET_STATE_SIZE + num_agents * (SLOT_STATE_SIZE + 1)


class TeamCarryEnv(CarryEnv):
    cfg: TeamCarryEnvConfig
    team_task = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.cfg
        lo, hi = c.team_size_range
        if not 1 <= lo <= hi <= self.num_agents:
            raise ValueError(f"task.env.team_size_range {list(c.team_size_range)} must lie within 1 and "
                             f"scene.num_humanoids ({self.num_agents})")
        self.team_metrics = TeamMetricsTracker(self.num_envs, self.num_agents, RIM_POINTS, self.policy_dt,
                                               self.device, self.dtype, success_distance=c.success_distance,
                                               sticky_distance=c.sticky_distance, lift_threshold=c.lift_height,
                                               coop_distance=c.cooperation_distance)
        self._up = torch.zeros(self.num_envs, 3, dtype=self.dtype, device=self.device)
        self._up[:, 2] = 1.0  # the object frame's z axis, for the metrics' grip band

    def _critic_state_size(self) -> int:
        return team_state_size(self.num_agents)

    # ---- starts ---------------------------------------------------------------------------------------------
    def sample_starts(self, n: int, reference=None) -> Starts:
        """Team size, object, target and every humanoid's place for n environments (see the module docstring)."""
        c, k = self.cfg, self.num_agents
        humanoid, history = self._humanoid_starts(n, reference)
        lo, hi = c.team_size_range
        team = torch.randint(lo, hi + 1, (n,), generator=self.generator, device=self.device)
        half, task = self._object_sizes(n)
        task["team_size"] = team
        zeros = torch.zeros(n, 3, dtype=self.dtype, device=self.device)
        obj_pos = torch.cat((zeros[:, :2], half[:, 2:3]), dim=-1)
        obj_quat = yaw_quat(self._uniform(n, *c.box_yaw_range))

        # Every slot's handle for this team size, placed with the object's start pose.
        rows = lambda t: t.repeat_interleave(k, dim=0)  # noqa: E731
        index = torch.arange(k, device=self.device).repeat(n)
        handles = self.handles_for(rows(half), index, rows(team))
        placed = place_handle(rows(obj_pos), rows(obj_quat), handles, c.stand_offset)
        yaw = heading_angle(placed.quat)  # handles turn about z only: +x, their inward axis, has this yaw
        inward = torch.stack((torch.cos(yaw), torch.sin(yaw)), dim=-1)
        if c.start_circle_radius is not None:
            # TeamHOI: on a circle around the object, in the direction of the agent's rim point from its centre,
            # facing the centre. Not along the handle's inward normal: agents on the same side of a rectangle share
            # that normal and would start inside each other (which made the physics fail at once). A team of one
            # holds the whole object at its centre: it stands behind the handle's -x face.
            out = placed.held_point[:, :2] - rows(obj_pos[:, :2])
            length = out.norm(dim=-1, keepdim=True)
            out = torch.where(length > 1e-6, out / length.clamp_min(1e-6), -inward)
            xy = rows(obj_pos[:, :2]) + c.start_circle_radius * out
            facing = torch.atan2(-out[:, 1], -out[:, 0])
        else:
            xy = placed.stand_point[:, :2] - self._uniform(n * k, *c.start_distance_range).unsqueeze(-1) * inward
            facing = yaw
        active = index < rows(team)
        park = torch.stack((torch.full_like(facing, c.park_xy[0]),
                            c.park_xy[1] + c.park_spacing * index.to(self.dtype)), dim=-1)
        xy = torch.where(active[:, None], xy, park)
        facing = torch.where(active, facing, torch.zeros_like(facing))
        humanoid = self._turn_and_place(humanoid, xy.view(n, k, 2), facing.view(n, k))

        task["target_pos"], task["target_quat"] = self._target_starts(obj_pos)
        obj = ObjectState(obj_pos, obj_quat, zeros.clone(), zeros.clone())
        return Starts(humanoid, obj, history, task)

    def _turn_and_place(self, h: HumanoidState, xy: torch.Tensor, yaw: torch.Tensor) -> HumanoidState:
        """The humanoid starts moved to xy [n, K, 2] and turned about z to face yaw [n, K] (velocities turned
        with them; the AMP history is seen from the heading frame, so it does not change)."""
        turn = yaw_quat(yaw - heading_angle(h.root_quat))
        pos = torch.cat((xy, h.root_pos[..., 2:]), dim=-1)
        return HumanoidState(pos, quat_mul(turn, h.root_quat), quat_rotate(turn, h.root_lin_vel),
                             quat_rotate(turn, h.root_ang_vel), h.dof_pos, h.dof_vel)

    # ---- critic ---------------------------------------------------------------------------------------------
    def _critic_state(self) -> torch.Tensor:
        """TEAM state per row, relative to the row's root in its heading frame (module docstring)."""
        e, n, k = self.engine, self.num_envs, self.num_agents
        root_pos = self.rows(e.root_pos)
        heading_inv = heading_quat_inverse(self.rows(e.root_quat))
        per_row = self.per_row
        # Positions relative to the root and velocities, all turned into the heading frame in one batch.
        every = lambda t: t.unsqueeze(1).expand((n, k) + t.shape[1:]).flatten(0, 1)  # noqa: E731  [n*k, ...]
        team_pos = every(e.root_pos)
        hands = every(e.body_pos[:, :, self.hand_body_ids].flatten(1, 2))
        points = torch.cat((per_row(e.object_pos).unsqueeze(1), per_row(self.target_pos).unsqueeze(1), team_pos,
                            hands), dim=1) - root_pos.unsqueeze(1)
        team_vel = every(torch.cat((e.root_lin_vel, e.root_ang_vel), dim=1))  # [rows, 2K, 3]: lin of every slot, ang
        velocities = torch.cat((per_row(e.object_lin_vel).unsqueeze(1), per_row(e.object_ang_vel).unsqueeze(1),
                                team_vel), dim=1)
        vectors = _to_heading(heading_inv, torch.cat((points, velocities), dim=1))
        obj_p, target_p, slot_p, hand_p, obj_v, slot_v = vectors.split((1, 1, k, 2 * k, 2, 2 * k), dim=1)
        quats = torch.cat((per_row(e.object_quat).unsqueeze(1), per_row(self.target_quat).unsqueeze(1),
                           every(e.root_quat)), dim=1)
        rot6 = quat_to_tan_norm(quat_mul(heading_inv.unsqueeze(1).expand_as(quats), quats))
        active = every(self.agent_mask.view(n, k)).unsqueeze(-1)
        slot_v = torch.cat((slot_v[:, :k], slot_v[:, k:]), dim=-1)  # [rows, K, 6]: linear, angular
        slots = torch.cat((slot_p, rot6[:, 2:], slot_v, hand_p.reshape(n * k, k, 6)), dim=-1)
        slots = torch.cat((slots * active, active.to(slots.dtype)), dim=-1)
        own = torch.nn.functional.one_hot(self._agent_index, k).to(slots.dtype)
        return torch.cat((obj_p[:, 0], rot6[:, 0], obj_v.flatten(1), target_p[:, 0], rot6[:, 1], slots.flatten(1),
                          own), dim=-1)

    # ---- metrics (reference §8) -----------------------------------------------------------------------------
    def team_outlines(self) -> tuple[Outline, Outline, torch.Tensor]:
        """The metrics' geometry of every environment's object (module docstring): the rim (top edge, for the
        jerk), the grip outline (at the centre height of the gripped part) and that part's half height [N]."""
        half = self.engine.object_half_extents
        grip_z, grip_half = self.grip_band(half)
        make = (lambda z: Outline.circle(half[:, 0], z)) if self._round_outline else \
            (lambda z: Outline.rectangle(half[:, :2], z))
        return make(half[:, 2]), make(grip_z), grip_half

    def hand_rim_distance(self, hand_pos: torch.Tensor, grip: Outline, grip_half: torch.Tensor) -> torch.Tensor:
        """[N, K, H] distance of the hands hand_pos [N, K, H, 3] from the gripped band: the grip outline swept
        +-grip_half [N] along the object's z axis (distance_to_outline of the hand moved to the band's middle
        height by the part of its height offset that lies inside the band)."""
        e = self.engine
        n, k, h = hand_pos.shape[:3]
        up = quat_rotate(e.object_quat, self._up)[:, None, None]
        dz = ((hand_pos - e.object_pos[:, None, None]) * up).sum(dim=-1) - grip.height[:, None, None]
        band = grip_half[:, None, None]
        inside = torch.maximum(torch.minimum(dz, band), -band)  # the offset the band absorbs
        moved = (hand_pos - inside.unsqueeze(-1) * up).reshape(n, k * h, 3)
        return distance_to_outline(moved, e.object_pos, e.object_quat, grip).view(n, k, h)

    def _after_physics(self) -> None:
        super()._after_physics()
        e = self.engine
        rim, grip, grip_half = self.team_outlines()
        hand_pos = e.body_pos[:, :, self.hand_body_ids]
        hand_contact = e.hand_object_force.norm(dim=-1) > self.cfg.fall_contact_force  # touching the object
        self.team_metrics.update(
            e.object_pos, e.object_half_extents[:, 2], self.target_pos,
            outline_points(e.object_pos, e.object_quat, rim, RIM_POINTS), hand_pos, hand_contact,
            e.hand_object_force, e.object_mass, self.agent_mask.view(self.num_envs, self.num_agents),
            self.progress, hand_rim_distance=self.hand_rim_distance(hand_pos, grip, grip_half))

    def _task_terminated(self) -> dict[str, torch.Tensor]:
        """CarryEnv's (kicked), and dropped (TeamCarryEnvConfig): tilted beyond dropped_tilt, or back on the ground
        away from the target after a lift."""
        reasons = super()._task_terminated()
        c, e = self.cfg, self.engine
        if not c.enable_dropped_termination:
            return reasons
        x, y = e.object_quat[:, 1], e.object_quat[:, 2]
        tilted = 1.0 - 2.0 * (x * x + y * y) < math.cos(c.dropped_tilt)  # the object's z axis, its world z part
        down = e.object_pos[:, 2] - e.object_half_extents[:, 2] < c.dropped_height
        away = (self.target_pos[:, :2] - e.object_pos[:, :2]).square().sum(dim=-1) > c.near_xy_sq
        reasons["dropped"] = self.per_row(tilted | (self.team_metrics.lifted & down & away))
        return reasons

    def _after_reset(self, mask: torch.Tensor, starts) -> None:
        super()._after_reset(mask, starts)
        self.team_metrics.reset(mask)

    def _episode_metrics(self) -> dict[str, torch.Tensor]:
        """CarryEnv's metrics (CooHOI: 3D final distance and success) and the team's (TeamHOI: xy distance, sticky
        success, cooperation, jerk; ours: load shares)."""
        out = super()._episode_metrics()
        v = self.team_metrics.episode_values()
        out.update({"sticky_success_rate": v["sticky_success"], "final_distance_xy_m": v["final_distance_m"],
                    "cooperation_fraction": v["cooperation_fraction"], "jerk_mps3": v["jerk"]})
        out.update({f"load_share_{i}": v[f"load_share_{i}"] for i in range(self.num_agents)})
        out["load_imbalance"] = v["load_imbalance"]
        return out
