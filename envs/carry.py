"""The carry task (reference §2-4, §7-8): walk to a box, pick it up, carry it to a target pose and put it down.

Box and target placement are sampled over distance and angle; the defaults are the published placement (angles
zero: the box straight ahead, the target further along +x). The target is state only (no physics body).
Observations and rewards are computed per agent from its handle of the object (coohoi.envs.observations.Handle,
team_handles): a team of one holds the whole box; coohoi.envs.team_carry places several agents around one object
with the same code.
"""

from __future__ import annotations

import torch

from coohoi.engine.base import HumanoidState, ObjectState
from coohoi.envs.config import CarryEnvConfig
from coohoi.envs.humanoid_env import HumanoidEnv
from coohoi.envs.metrics import coohoi_metrics
from coohoi.envs.observations import (
    TASK_OBS_LAYOUT,
    TASK_OBS_NOISY_PARTS,
    TASK_OBS_SIZE,
    Handle,
    HandlePose,
    carry_task_obs,
    place_handle,
    team_handles,
)
from coohoi.objects import ROUND_KINDS, TABLE_KINDS, TABLE_TOP_THICKNESS
from coohoi.envs.rewards import carry_reward, carry_state
from coohoi.envs.terminations import kicked
from coohoi.rotations import yaw_quat


class CarryEnv(HumanoidEnv):
    cfg: CarryEnvConfig
    task_obs_size = TASK_OBS_SIZE
    task_obs_layout = TASK_OBS_LAYOUT

    team_task = False  # True: several humanoids carry one object (coohoi.envs.team_carry)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.num_agents != 1 and not self.team_task:
            raise ValueError(f"the carry task controls one humanoid per environment; scene.num_humanoids is "
                             f"{self.num_agents} (cooperative carrying is task=team_carry_long_box and its variants)")
        n = self.num_envs
        kind = self.engine.scene.cfg.object.kind
        self._round_outline = kind in ROUND_KINDS
        # Tables are gripped at the rim of their top (this fraction of their half height); every other object at
        # its centre height, over its full height.
        base_half_height = float(self.engine.object_base_half_extents[2])
        self._grip_top_fraction = 0.5 * TABLE_TOP_THICKNESS / base_half_height if kind in TABLE_KINDS else None
        self._handles: Handle | None = None  # every row's handle, set at resets (which change sizes and teams)
        self.target_pos = torch.zeros(n, 3, dtype=self.dtype, device=self.device)
        self.target_quat = torch.zeros(n, 4, dtype=self.dtype, device=self.device)
        self.target_quat[:, 0] = 1.0
        # First step at which the object came within the success distance of the target (-1: not yet).
        self.first_success_step = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self.reached = torch.zeros(n, dtype=torch.bool, device=self.device)  # at the standing point this episode
        self.held = torch.zeros(n, dtype=torch.bool, device=self.device)  # held the box long enough this episode
        self.held_streak = torch.zeros(n, dtype=torch.long, device=self.device)  # steps holding it, in a row
        # handle_poses() of the state the physics just reached (set by _after_physics): the step's reward and
        # metrics share it.
        self._step_poses: tuple[HandlePose, HandlePose] | None = None
        noisy = torch.zeros(TASK_OBS_SIZE, dtype=torch.bool, device=self.device)
        for part in TASK_OBS_NOISY_PARTS:
            noisy[TASK_OBS_LAYOUT[part]] = True
        self._noisy_task_obs = noisy

    # ---- handles --------------------------------------------------------------------------------------------
    def handles(self) -> Handle:
        """Each row's handle in the object frame (a team of one: the whole object); they change only at resets."""
        return self._handles

    def grip_band(self, half: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre height and half thickness [R] of the part agents grip, in the object frame, for objects of half
        sizes [R, 3]: a table top (scaled with the table), or the whole height of any other object."""
        if self._grip_top_fraction is None:
            return torch.zeros_like(half[:, 2]), half[:, 2]
        top = half[:, 2] * self._grip_top_fraction
        return half[:, 2] - top, top

    def handles_for(self, half: torch.Tensor, agent_index: torch.Tensor, team_size: torch.Tensor) -> Handle:
        """The handles of rows with these object half sizes [R, 3], team slots [R] and team sizes [R]."""
        grip_z, grip_half = self.grip_band(half)
        return team_handles(half, agent_index, team_size, self._round_outline, grip_z, grip_half,
                            self.cfg.handle_half_size)

    def handle_poses(self) -> tuple[HandlePose, HandlePose]:
        """Each row's handle at the object's current pose and at the target pose (both placed in one batch)."""
        e, h = self.engine, self.handles()
        both = lambda current, target: torch.cat((self.per_row(current), self.per_row(target)))  # noqa: E731
        twice = Handle(*(torch.cat((x, x)) for x in (h.center, h.quat, h.half_extents)))
        placed = place_handle(both(e.object_pos, self.target_pos), both(e.object_quat, self.target_quat), twice,
                              self.cfg.stand_offset)
        current, target = zip(*(x.chunk(2) for x in (placed.held_point, placed.quat, placed.corners,
                                                     placed.stand_point)))
        return HandlePose(*current), HandlePose(*target)

    # ---- resets ---------------------------------------------------------------------------------------------
    def _object_starts(self, humanoid: HumanoidState) -> tuple[ObjectState, dict[str, torch.Tensor]]:
        """Box on the ground at a sampled distance and direction from the humanoid, with a sampled yaw; the target
        at a sampled distance and direction from the box, at the box's resting height, with a sampled yaw; and
        (cfg.randomize_object) the box's size and mass scales."""
        c = self.cfg
        half, task = self._object_sizes(humanoid.root_pos.shape[0])
        origin = humanoid.root_pos[:, 0, :2]
        box_xy = self._ring(origin, c.box_distance_range, c.box_direction_range, self._box_min_distance(humanoid, half))
        box_pos = torch.cat((box_xy, half[:, 2:3]), dim=-1)
        box_quat = yaw_quat(self._uniform(box_xy.shape[0], *c.box_yaw_range))
        task["target_pos"], task["target_quat"] = self._target_starts(box_pos)
        return ObjectState(box_pos, box_quat, torch.zeros_like(box_pos), torch.zeros_like(box_pos)), task

    def _object_sizes(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Half sizes [n, 3] of n new objects and, with cfg.randomize_object, the task keys that set their size and
        mass scales (the engine's randomisation ranges)."""
        if not self.cfg.randomize_object:
            return self.engine.object_base_half_extents.expand(n, 3), {}
        size, mass = self.engine.sample_object_scales(n, self.generator)
        return self.engine.object_base_half_extents * size[:, None], {"object_size_scale": size,
                                                                      "object_mass_scale": mass}

    def _ring(self, center: torch.Tensor, distance_range, direction_range, min_distance=None) -> torch.Tensor:
        """Points [n, 2] at a sampled distance (at least min_distance [n], if given) and direction from center."""
        n = center.shape[0]
        d = self._uniform(n, *distance_range)
        if min_distance is not None:
            d = torch.maximum(d, min_distance)
        a = self._uniform(n, *direction_range)
        return center + d.unsqueeze(-1) * torch.stack((torch.cos(a), torch.sin(a)), dim=-1)

    def _target_starts(self, object_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Target positions [n, 3] at a sampled distance and direction from the objects at object_pos [n, 3] (at
        their resting height), and target yaws as quaternions [n, 4]."""
        c = self.cfg
        xy = self._ring(object_pos[:, :2], c.target_distance_range, c.target_direction_range)
        return torch.cat((xy, object_pos[:, 2:3]), dim=-1), yaw_quat(self._uniform(xy.shape[0], *c.target_yaw_range))

    def _box_min_distance(self, humanoid: HumanoidState, half: torch.Tensor) -> torch.Tensor:
        """[n] Nearest the box centre may start to the root: the reach of the humanoid's low bodies (those below the
        box top plus the clearance) around the root, plus the box's bounding radius and the clearance."""
        body_pos, _ = self.fk(humanoid.root_pos[:, 0], humanoid.root_quat[:, 0], humanoid.dof_pos[:, 0])
        reach = (body_pos[..., :2] - humanoid.root_pos[:, :1, :2]).norm(dim=-1)
        low = body_pos[..., 2] < (2.0 * half[:, 2:3] + self.cfg.box_clearance)
        reach = torch.where(low, reach, torch.zeros_like(reach)).amax(dim=-1)
        return reach + half[:, :2].norm(dim=-1) + self.cfg.box_clearance

    def _after_reset(self, mask: torch.Tensor, starts) -> None:
        # Every row's, in one batch: cheaper than selecting the reset ones (sizes and team sizes are already set).
        self._handles = self.handles_for(self.per_row(self.engine.object_half_extents), self._agent_index,
                                         self.per_row(self.team_size))
        self.target_pos = torch.where(mask[:, None], starts.task["target_pos"], self.target_pos)
        self.target_quat = torch.where(mask[:, None], starts.task["target_quat"], self.target_quat)
        self.first_success_step = torch.where(mask, torch.full_like(self.first_success_step, -1),
                                              self.first_success_step)
        self.reached &= ~mask
        self.held &= ~mask
        self.held_streak = torch.where(mask, torch.zeros_like(self.held_streak), self.held_streak)

    # ---- observation, reward, termination -------------------------------------------------------------------
    def _task_obs(self) -> torch.Tensor:
        e = self.engine
        current, target = self.handle_poses()
        density = self.per_row(e.object_mass / (8.0 * e.object_half_extents.prod(dim=-1))) * self.cfg.density_scale
        obs = carry_task_obs(self.rows(e.root_pos), self.rows(e.root_quat), current, target,
                             self.per_row(e.object_lin_vel), self.per_row(e.object_ang_vel), density).to(torch.float32)
        if self.cfg.task_obs_noise_std > 0:
            obs = obs + self.cfg.task_obs_noise_std * self._randn(obs.shape, torch.float32) * self._noisy_task_obs
        return obs

    def _task_reward(self):
        e, c = self.engine, self.cfg
        current, target = self._step_poses
        hand_pos = self.rows(e.body_pos)[:, self.hand_body_ids]
        reward, terms = carry_reward(self.rows(e.root_pos), self.rows(e.root_quat), self.rows(e.root_lin_vel),
                                     hand_pos, current, target, c)
        # Progress trackers of the episode (metrics): reached the standing point; held the box (held reward above
        # c.held_threshold) for c.held_seconds in a row.
        self.reached |= self.whole_team(terms["walk_pos"] >= 1.0)  # 1 exactly within walk_arrived_distance
        holding = self.whole_team(terms["held"] > c.held_threshold)
        self.held_streak = torch.where(holding, self.held_streak + 1, torch.zeros_like(self.held_streak))
        self.held |= self.held_streak * self.policy_dt >= c.held_seconds - 1e-9
        return reward, terms

    def _task_terminated(self) -> dict[str, torch.Tensor]:
        if not self.cfg.enable_kicked_termination:
            return {}
        e, c = self.engine, self.cfg
        hand_height = self.rows(e.body_pos)[:, self.hand_body_ids, 2].mean(dim=-1)
        below = e.object_half_extents[:, 2] + c.kicked_height_above_rest
        return {"kicked": kicked(self.per_row(e.object_lin_vel), self.per_row(e.object_pos[:, 2]), hand_height,
                                 c.kicked_speed, self.per_row(below), c.kicked_hand_height)}

    # ---- metrics (reference §8) -----------------------------------------------------------------------------
    def whole_team(self, per_row: torch.Tensor) -> torch.Tensor:
        """[rows] bool -> [num_envs]: true for every active agent of the environment."""
        return (per_row | ~self.agent_mask).view(self.num_envs, self.num_agents).all(dim=1)

    def object_target_distance(self) -> torch.Tensor:
        """[num_envs] 3D distance of the object centre from the target (at resting height)."""
        return (self.engine.object_pos - self.target_pos).norm(dim=-1)

    def _after_physics(self) -> None:
        self._step_poses = self.handle_poses()
        within = self.object_target_distance() < self.cfg.success_distance
        self.first_success_step = torch.where(within & (self.first_success_step < 0), self.progress,
                                              self.first_success_step)

    def _episode_metrics(self) -> dict[str, torch.Tensor]:
        dist = self.object_target_distance()
        coohoi = coohoi_metrics(dist, self.first_success_step, self.cfg.success_distance, self.policy_dt)
        current, target = self._step_poses
        state = carry_state(current, target, self.cfg)
        return {
            "success_rate": coohoi["success"],
            "final_distance_m": dist,
            "precision_cm": coohoi["precision_cm"],
            "completion_time_s": coohoi["completion_time_s"],
            "placed_rate": self.whole_team(state["placed"]).to(dist.dtype),
            "reached_rate": self.reached.to(dist.dtype),
            "held_rate": self.held.to(dist.dtype),
        }
