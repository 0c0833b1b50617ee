"""The shared base of the task environments: engine, motion library, actions, resets, falls and the AMP history.

Rows are controlled humanoids: row = env * num_agents + agent. A task subclass supplies its task observation, its
reward terms, its extra terminations, where the object (and anything else the task places) starts, and optional
per-episode metrics. Everything numeric is computed by the pure functions of coohoi.envs.observations / rewards /
terminations.

The env contract (what learners, adapters, export and evaluation rely on) is written down in coohoi.envs.contract;
this class implements it. Team tasks use fewer humanoids than the scene holds in some episodes: `agent_mask`
[rows] marks the active ones; inactive humanoids stand parked (the task places them), act with the default pose,
earn nothing, never end an episode, count in no metric, and their rows carry their team's first agent's
observations.

A step has fixed shapes and never synchronises with the host on the GPU engine (the CPU engine, whose state is in
host memory, skips the resets when nothing ended): environments that end are reset by mask from a pool of
pre-sampled start states, redrawn every START_POOL_REFILL_STEPS steps. Drawing starts has a fixed cost (about 3 ms
on the CPU) and a cost per start (reference starts about 0.04 ms each: the clip's state and AMP history), so one
batch per period beats a small one per step. Each environment takes its own starts of the pool, so that what one
environment does (a fault, an early fall) never changes another's next start.
"""

from __future__ import annotations

import logging
import math
from typing import Any
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.config import EngineConfig, SceneConfig
from coohoi.engine import make_engine
from coohoi.engine.base import FAULT_KINDS, HumanoidState, ObjectState, SimState
from coohoi.envs.assist import assist_wrench
from coohoi.envs.config import HumanoidEnvConfig, resolve_dataset_path, validate_humanoid_config
from coohoi.envs.contract import (
    CRITIC,
    INFO_AGENT_MASK,
    INFO_AMP_OBS,
    INFO_EPISODE_METRICS,
    INFO_FAULTED,
    INFO_FINAL_OBS,
    INFO_OBSERVATIONS,
    INFO_REWARD_TERMS,
    INFO_TERMINATED_REASONS,
    POLICY,
)
from coohoi.envs.observations import PROPRIO_LAYOUT, PROPRIO_SIZE, proprioception
from coohoi.envs.terminations import fall_heights, fallen, timed_out
from coohoi.motion.amp_features import AMP_FEATURE_SIZE, amp_features
from coohoi.motion.kinematics import ForwardKinematics, lowest_foot_z
from coohoi.rotations import quat_mul, quat_rotate, yaw_quat

log = logging.getLogger(__name__)

# What episode_summary counts as faults/<name>: the engine's fault kinds, then non-finite actions.
FAULT_COUNTS = (*FAULT_KINDS, "nonfinite_actions")

# The start pool holds START_POOL_SIZE starts per environment and is redrawn every START_POOL_REFILL_STEPS steps;
# an environment that ends takes its next own start. Untrained AMP-locomotion episodes last about 1 s (30 steps),
# about one per environment per period; an environment that ends more often within a period takes its first start
# again (counted: reused_starts in episode_summary(); a 30-minute carry training reused none). Measured on the
# 2-core CPU (scripts/profile_epoch.py, AMP-locomotion training, 256 environments): resets take 1.8 ms per step at
# this size and period, against 3.7 ms with a redraw every 8 steps.
START_POOL_SIZE = 2
START_POOL_REFILL_STEPS = 32
DEMO_SEED_OFFSET = 7919  # the demo samples' stream is seeded with the env's seed plus this
AMP_ROOT_HEIGHT = 0  # amp_features' first feature is the root height (a lifted start lifts its history with it)
# A reference start whose lowest foot point is further than this below the floor is lifted onto it. Interpolating
# between grounded frames dips a little: the shipped clips' starts go down to 1.1 mm below the floor (20000 random
# times), which soft contacts absorb, and which this leaves unchanged; clips sunk by centimetres are lifted.
START_FLOOR_TOLERANCE = 0.002  # m


def pd_action_offset_scale(dof_limits: np.ndarray, cfg: HumanoidEnvConfig) -> tuple[np.ndarray, np.ndarray]:
    """PD target = offset + scale * action (reference §2), from the joint ranges [28, 2] in radians.

    3-DoF groups: offset 0, scale min(cfg.action_scale_3dof * max |limit| over the group, cap).
    1-DoF groups: offset at the middle of the range, scale cfg.action_scale_1dof * (high - low)."""
    offset = np.zeros(hum.NUM_DOFS)
    scale = np.zeros(hum.NUM_DOFS)
    for g in range(hum.NUM_JOINT_GROUPS):
        lo, hi = hum.DOF_OFFSETS[g], hum.DOF_OFFSETS[g + 1]
        limits = dof_limits[lo:hi]
        if hi - lo == 3:
            scale[lo:hi] = min(cfg.action_scale_3dof * float(np.abs(limits).max()), cfg.action_scale_3dof_cap)
        else:
            low, high = float(limits[0, 0]), float(limits[0, 1])
            offset[lo] = 0.5 * (low + high)
            scale[lo] = cfg.action_scale_1dof * (high - low)
    return offset, scale


@dataclass
class Starts:
    """Start states of n environments: humanoids [n, K, ...], the object [n, ...], each humanoid's AMP history
    [n, K, amp_history, 125] and what the task places [n, ...] (task-specific keys)."""

    humanoid: HumanoidState
    object: ObjectState
    amp_history: torch.Tensor
    task: dict[str, torch.Tensor]

    def map(self, fn) -> "Starts":
        state = SimState(self.humanoid, self.object).map(fn)
        return Starts(state.humanoid, state.object, fn(self.amp_history), {k: fn(v) for k, v in self.task.items()})


class StartPool:
    """Starts packed row by row into one tensor [size, width] (in the engine's float type), so that taking any
    rows is a single gather rather than one per field."""

    def __init__(self, starts: Starts, dtype: torch.dtype):
        leaves = []
        self._layout = starts.map(lambda t: leaves.append(t) or t[:0])  # the structure, empty
        self._fields = [(tuple(t.shape[1:]), t.dtype, t[0].numel()) for t in leaves]
        self.rows = torch.cat([t.reshape(t.shape[0], -1).to(dtype) for t in leaves], dim=1)

    def take(self, index: torch.Tensor) -> Starts:
        """The starts at these rows (index [n])."""
        rows, fields, offset = self.rows[index], iter(self._fields), 0

        def unpack(_):
            nonlocal offset
            shape, dtype, width = next(fields)
            offset += width
            return rows[:, offset - width:offset].view((-1,) + shape).to(dtype)

        return self._layout.map(unpack)


class HumanoidEnv:
    """Task environment base; implements coohoi.envs.contract."""

    task_obs_size = 0
    task_obs_layout: dict[str, slice] | None = None  # the task observation's named parts

    def __init__(self, cfg: HumanoidEnvConfig, scene_cfg: SceneConfig, engine_cfg: EngineConfig, seed: int = 0,
                 motion_lib=None):
        validate_humanoid_config(cfg)
        self.cfg = cfg
        self.engine = make_engine(scene_cfg, engine_cfg)
        e = self.engine
        self.num_envs = e.num_envs
        self.num_agents = e.num_humanoids
        self.num_rows = self.num_envs * self.num_agents
        self.device = e.device
        self.dtype = e.dtype
        self.policy_dt = e.policy_dt
        self.max_episode_length = max(2, int(round(cfg.episode_length_s / self.policy_dt)))
        self.amp_history = cfg.amp_history
        self.num_actions = hum.NUM_DOFS
        self.num_obs = PROPRIO_SIZE + self.task_obs_size
        self.num_critic_obs = self.num_obs + self._critic_state_size()
        self.observation_groups = {POLICY: self.num_obs, CRITIC: self.num_critic_obs}
        self.num_amp_obs = self.amp_history * AMP_FEATURE_SIZE
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.num_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.num_actions,), dtype=np.float32)
        self.keep_final_obs = False  # set by learners that need info["final_obs"]

        if motion_lib is None:
            from coohoi.motion.library import MotionLib

            motion_lib = MotionLib.from_dataset(resolve_dataset_path(cfg.motion_dataset), device=self.device,
                                                dtype=self.dtype)
        self.motion_lib = motion_lib
        self.fk = ForwardKinematics(device=self.device, dtype=self.dtype)
        self.generator = torch.Generator(device=self.device)  # starts, placement, noise
        self.demo_generator = torch.Generator(device=self.device)  # demo samples: a stream of their own
        self.seed(seed)

        tensor = lambda x: torch.as_tensor(x, dtype=self.dtype, device=self.device)  # noqa: E731
        offset, scale = pd_action_offset_scale(e.scene.dof_limits, cfg)
        self.action_offset, self.action_scale = tensor(offset), tensor(scale)
        self.contact_body_mask = torch.tensor([n in cfg.contact_bodies for n in hum.BODY_NAMES], device=self.device)
        self.fall_heights = fall_heights(cfg.fall_height, cfg.head_fall_height, hum.HEAD_BODY_ID, hum.NUM_BODIES,
                                         self.dtype, self.device)
        self.key_body_ids = torch.tensor(hum.KEY_BODY_IDS, device=self.device)
        self.hand_body_ids = torch.tensor(hum.HAND_BODY_IDS, device=self.device)
        self._default = e.default_state(1)
        self._default_action = self.default_pose_action().to(self.dtype)

        n = self.num_envs
        self.progress = torch.zeros(n, dtype=torch.long, device=self.device)
        # Active humanoids per environment (a team task samples it at every reset) and the rows they are.
        self.team_size = torch.full((n,), self.num_agents, dtype=torch.long, device=self.device)
        self.agent_mask = torch.ones(self.num_rows, dtype=torch.bool, device=self.device)
        self._agent_index = torch.arange(self.num_agents, device=self.device).repeat(n)  # [rows]
        self.distance = torch.zeros(n, dtype=self.dtype, device=self.device)  # horizontal root path this episode
        self.amp_hist = torch.zeros(self.num_rows, self.amp_history, AMP_FEATURE_SIZE, dtype=torch.float32,
                                    device=self.device)  # in the discriminator's precision
        self._pool: StartPool | None = None
        self._pool_used = torch.zeros(n, dtype=torch.long, device=self.device)  # starts taken since the redraw
        self._pool_first = torch.arange(n, device=self.device) * START_POOL_SIZE  # each environment's first start
        self._steps = 0
        self._episode_keys: list[str] = []  # the metrics of step()'s info["episode_metrics"], in order
        self._episode_totals: torch.Tensor | None = None  # [2, num_metrics]: sums and counts over ended episodes
        # Per epoch (episode_summary), in the order of FAULT_COUNTS then reused_starts: worlds reset for each engine
        # fault kind and for non-finite actions, and starts taken a second time from an exhausted start pool.
        self._fault_counts = torch.zeros(len(FAULT_COUNTS) + 1, dtype=torch.long, device=self.device)
        self._fault_codes = torch.arange(1, len(FAULT_COUNTS) + 1, device=self.device)
        self.faults_total = 0  # worlds reset for a fault (either cause) since the env was built
        self.assist = None  # envs.assist.AssistConfig-like settings, from set_assist()
        self.assist_level = 0.0

    def seed(self, seed: int) -> None:
        """Seed the env's randomness (starts, placement, noise, demo sampling) and the engine's; start pools drawn
        before are discarded."""
        self.generator.manual_seed(int(seed))
        self.demo_generator.manual_seed(int(seed) + DEMO_SEED_OFFSET)
        self.engine.seed(int(seed))
        self._pool = None

    def get_state(self) -> dict:
        """What a resumed training run takes over from this env: its random streams (starts, demo samples, engine), so
        that a resumed run continues them instead of repeating the first run's. The worlds are not saved: MuJoCo's
        contact and sensor fields, which observations read, lag the integrated state by a physics step and cannot
        be written back, so a resumed run starts new episodes. Demo samples have a stream of their own, so that the
        resumed run's new starts do not change them."""
        return {"generator": self.generator.get_state(), "demo_generator": self.demo_generator.get_state(),
                "engine_generator": self.engine.generator.get_state()}

    def set_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.demo_generator.set_state(state["demo_generator"])
        self.engine.generator.set_state(state["engine_generator"])
        self._pool = None  # the next step draws starts from the restored stream

    # ---- row views of engine tensors ------------------------------------------------------------------------
    @staticmethod
    def rows(t: torch.Tensor) -> torch.Tensor:
        """[N, K, ...] -> [N * K, ...]"""
        return t.flatten(0, 1)

    def per_row(self, t: torch.Tensor) -> torch.Tensor:
        """Per-environment [N, ...] -> per-row [N * K, ...] (every agent of an environment sees the same; with one
        agent per environment that is `t` itself, not a copy)."""
        return t if self.num_agents == 1 else t.repeat_interleave(self.num_agents, dim=0)

    def _uniform(self, n: int, lo: float, hi: float) -> torch.Tensor:
        u = torch.rand(n, generator=self.generator, dtype=self.dtype, device=self.device)
        return lo + (hi - lo) * u

    def _randn(self, shape, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, dtype=dtype or self.dtype, device=self.device)

    # ---- task hooks -----------------------------------------------------------------------------------------
    def _object_starts(self, humanoid: HumanoidState) -> tuple[ObjectState, dict[str, torch.Tensor]]:
        """Where the object starts for n humanoid starts [n, K, ...], and any other task placement [n, ...]
        (keys object_size_scale and object_mass_scale set the object's size and mass)."""
        raise NotImplementedError

    def _task_obs(self) -> torch.Tensor | None:
        return None

    def _task_reward(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return torch.zeros(self.num_rows, dtype=self.dtype, device=self.device), {}

    def _task_terminated(self) -> dict[str, torch.Tensor]:
        """Task-specific early terminations, name -> [rows] bool."""
        return {}

    def _after_physics(self) -> None:
        """Update per-episode trackers from the state just reached (before any reset)."""

    def _episode_metrics(self) -> dict[str, torch.Tensor]:
        """Per-episode task metrics [num_envs] as if every episode ended now (the state is the final one); NaN where
        a metric does not apply to an episode."""
        return {}

    def _after_reset(self, mask: torch.Tensor, starts: Starts) -> None:
        """Task state of the environments in mask [num_envs] to take from their starts (tensors [num_envs, ...])."""

    # ---- AMP ------------------------------------------------------------------------------------------------
    def amp_frame(self) -> torch.Tensor:
        """The current AMP features [rows, 125] of every row, from engine tensors."""
        e, r = self.engine, self.rows
        return amp_features(r(e.root_pos), r(e.root_quat), r(e.root_lin_vel), r(e.root_ang_vel), r(e.dof_pos),
                            r(e.dof_vel), r(e.body_pos)[:, self.key_body_ids])

    def fetch_amp_demo(self, n: int) -> torch.Tensor:
        """n demo AMP observations [n, num_amp_obs] (float32) from the motion library."""
        demo = self.motion_lib.sample_amp_demo(n, self.amp_history, self.policy_dt, self.demo_generator)
        return demo.to(device=self.device, dtype=torch.float32)

    # ---- start states ---------------------------------------------------------------------------------------
    def sample_starts(self, n: int, reference=None) -> Starts:
        """Start states for n environments (fixed shapes: no host sync). reference: optional (clip_ids, times), one
        per row, forcing reference starts at those clip times; otherwise cfg.reset_mode decides."""
        humanoid, history = self._humanoid_starts(n, reference)
        obj, task = self._object_starts(humanoid)
        return Starts(humanoid, obj, history, task)

    def _humanoid_starts(self, n: int, reference=None) -> tuple[HumanoidState, torch.Tensor]:
        """Humanoid start states [n, K, ...] and their AMP histories [n, K, amp_history, 125]: the reference clip's
        past frames for reference starts, the start frame repeated for default starts."""
        k, h = self.num_agents, self.amp_history
        m = n * k
        d = self._default.humanoid
        expand = lambda t: self.rows(t.expand((n,) + t.shape[1:])).clone()  # noqa: E731
        root_pos, root_quat, lin, ang, dof, dof_vel = (expand(t) for t in (
            d.root_pos, d.root_quat, d.root_lin_vel, d.root_ang_vel, d.dof_pos, d.dof_vel))
        mode = "reference" if reference is not None else self.cfg.reset_mode
        use_ref = None  # rows that start from a reference state
        if mode != "default":
            lib = self.motion_lib
            if reference is None:
                cids = lib.sample_clips(m, self.generator).to(self.device)
                t = lib.sample_times(cids, self.generator)
            else:
                cids = torch.as_tensor(reference[0], dtype=torch.long, device=self.device).flatten()
                t = torch.as_tensor(reference[1], dtype=self.dtype, device=self.device).flatten()
                if cids.numel() != m or t.numel() != m:
                    raise ValueError(f"reference starts need one (clip, time) per row: {m}, got {cids.numel()} and "
                                     f"{t.numel()}")
            # One library query gives the start state and the AMP history that led to it.
            st, ref_history = lib.state_and_amp_features(cids, t.to(lib.dtype), h, self.policy_dt)
            use_ref = (torch.ones(m, dtype=torch.bool, device=self.device) if mode == "reference"
                       else self._uniform(m, 0.0, 1.0) < self.cfg.reference_reset_prob)

            def pick(ref, default):
                return torch.where(use_ref.view((-1,) + (1,) * (default.dim() - 1)),
                                   ref.to(device=self.device, dtype=self.dtype), default)

            # Keep the clip's height; put it where this humanoid spawns by default.
            ref_pos = torch.cat((root_pos[:, :2], st.root_pos[:, 2:].to(root_pos) + self.cfg.reference_height_offset),
                                dim=-1)
            root_pos, root_quat = pick(ref_pos, root_pos), pick(st.root_quat, root_quat)
            lin, ang = pick(st.root_lin_vel, lin), pick(st.root_ang_vel, ang)
            dof, dof_vel = pick(st.dof_pos, dof), pick(st.dof_vel, dof_vel)
        # The start frame of every row (reference rows included: it is the same state the engine will hold).
        body_pos, body_quat = self.fk(root_pos, root_quat, dof)
        if use_ref is not None:  # never start inside the floor: lift a reference start whose feet are below it
            lowest = lowest_foot_z(body_pos, body_quat)
            lift = torch.where(use_ref & (lowest < -START_FLOOR_TOLERANCE), -lowest, 0.0)
            root_pos = root_pos + torch.nn.functional.pad(lift[:, None], (2, 0))
            body_pos = body_pos + torch.nn.functional.pad(lift[:, None, None], (2, 0))
        frame = amp_features(root_pos, root_quat, lin, ang, dof, dof_vel, body_pos[:, self.key_body_ids])
        hist = frame.unsqueeze(1).expand(m, h, AMP_FEATURE_SIZE).clone()
        if use_ref is not None:
            hist[:, 1:] = torch.where(use_ref[:, None, None], ref_history[:, 1:].to(hist), hist[:, 1:])
            hist[:, 1:, AMP_ROOT_HEIGHT] += lift[:, None].to(hist)
        if self.cfg.random_heading:  # AMP features are seen from the heading frame: the history does not change
            turn = yaw_quat(self._uniform(m, -math.pi, math.pi))
            root_quat = quat_mul(turn, root_quat)
            lin, ang = quat_rotate(turn, lin), quat_rotate(turn, ang)
        shape = lambda x: x.unflatten(0, (n, k))  # noqa: E731
        state = HumanoidState(shape(root_pos), shape(root_quat), shape(lin), shape(ang), shape(dof), shape(dof_vel))
        return state, shape(hist.to(torch.float32))

    def _apply_starts(self, mask: torch.Tensor, starts: Starts) -> None:
        """Start new episodes in the environments of mask [num_envs] from their rows of `starts` (full size)."""
        task = starts.task
        if "object_size_scale" in task:
            self.engine.set_object_scale_where(mask, task["object_size_scale"], task["object_mass_scale"])
        self.engine.reset_where(mask, SimState(starts.humanoid, starts.object))
        self.progress = torch.where(mask, torch.zeros_like(self.progress), self.progress)
        self.distance = torch.where(mask, torch.zeros_like(self.distance), self.distance)
        rows = self.per_row(mask)
        self.amp_hist = torch.where(rows[:, None, None], self.rows(starts.amp_history), self.amp_hist)
        if "team_size" in task:
            self.team_size = torch.where(mask, task["team_size"].to(self.team_size.dtype), self.team_size)
            self.agent_mask = self._agent_index < self.per_row(self.team_size)
        self._after_reset(mask, starts)

    def _refill_pool(self) -> None:
        self._pool = StartPool(self.sample_starts(START_POOL_SIZE * self.num_envs), self.dtype)
        self._pool_used.zero_()

    def _reset_ended(self, ended: torch.Tensor) -> None:
        """Reset the environments in `ended` from their next own starts of the pool (no host sync)."""
        if self._pool is None or self._steps % START_POOL_REFILL_STEPS == 0:
            self._refill_pool()
        if self.engine.host_state and not bool(ended.any()):  # a free check on the CPU engine
            return
        self._apply_starts(ended, self._pool.take(self._pool_first + self._pool_used % START_POOL_SIZE))
        self._fault_counts[-1] += (ended & (self._pool_used >= START_POOL_SIZE)).sum()
        self._pool_used += ended

    def reset_envs(self, env_ids, reference=None) -> None:
        """Start new episodes in the given environments (the others are untouched).

        reference: optional (clip_ids, times), one per row of those environments, to start every row from that
        reference state (e.g. for evaluation or tests); otherwise cfg.reset_mode decides."""
        ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device).flatten()
        if ids.numel() == 0:
            return
        starts = self.sample_starts(ids.numel(), reference)

        def full(t):
            out = torch.zeros((self.num_envs,) + tuple(t.shape[1:]), dtype=t.dtype, device=self.device)
            out[ids] = t
            return out

        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        mask[ids] = True
        self._apply_starts(mask, starts.map(full))

    def reset(self) -> torch.Tensor:
        """Reset every environment; the first observation [rows, num_obs] (float32)."""
        self._apply_starts(torch.ones(self.num_envs, dtype=torch.bool, device=self.device),
                           self.sample_starts(self.num_envs))
        return self.observe()

    # ---- observation ----------------------------------------------------------------------------------------
    def observations(self) -> dict[str, torch.Tensor]:
        """The observation groups of the current state: policy [rows, num_obs] and critic [rows, num_critic_obs]
        (the policy tensor itself unless the task adds a global state)."""
        obs = self.observe()  # inactive rows already carry their team's first agent's
        state = self._critic_state()
        if state is None:
            return {POLICY: obs, CRITIC: obs}
        return {POLICY: obs, CRITIC: torch.cat((obs, self._parked_as_first(state.to(torch.float32))), dim=-1)}

    def _parked_as_first(self, t: torch.Tensor) -> torch.Tensor:
        """Rows [rows, ...] with every inactive slot's row replaced by its team's first agent's (always active), so
        that learners' normalisers and networks only ever see states that exist in the team."""
        if self.num_agents == 1:
            return t
        first = t.view((self.num_envs, self.num_agents) + t.shape[1:])[:, :1].expand(
            (self.num_envs, self.num_agents) + t.shape[1:]).flatten(0, 1)
        return torch.where(self.agent_mask.view((-1,) + (1,) * (t.dim() - 1)), t, first)

    def observation_layout(self) -> dict[str, list[tuple[str, int]]]:
        """Every observation group's named parts in order, (name, size): proprioception (PROPRIO_LAYOUT), the task's
        parts (task_obs_layout) and, in the critic group, the global state a team task adds. Exported policies carry
        it in their metadata (coohoi.agents.export), and evaluation refuses a policy whose layout differs."""
        policy = [(name, part.stop - part.start) for layout in (PROPRIO_LAYOUT, self.task_obs_layout or {})
                  for name, part in layout.items()]
        state = self._critic_state_size()
        return {POLICY: policy, CRITIC: policy + ([("team_state", state)] if state else [])}

    def policy_metadata(self) -> dict[str, Any]:
        """What a policy needs to know about the environment it acts in, as plain JSON values: the observation groups'
        named parts, the action's mapping to PD targets, joint and body order, PD gains and torque limits (the first
        humanoid's position actuators), control period and quaternion convention."""
        model = self.engine.scene.model
        n = self.num_actions
        kp = model.actuator_gainprm[:n, 0]
        kd = -model.actuator_biasprm[:n, 2]
        limited = model.actuator_forcelimited[:n].astype(bool)
        torque = [float(hi) if lim else None for hi, lim in zip(model.actuator_forcerange[:n, 1], limited)]
        layout = self.observation_layout()
        return {
            "observation": {
                "groups": {group: [{"name": name, "size": int(size)} for name, size in parts]
                           for group, parts in layout.items()},
                "policy_size": int(self.num_obs),
                "critic_size": int(self.num_critic_obs),
                "dtype": "float32",
                "frame": "positions and velocities in the agent's heading frame (root yaw removed), root at the origin",
                "rotation": "tan-norm: the first two columns of the rotation matrix (6 numbers)",
            },
            "action": {"size": int(n), "scale": self.action_scale.tolist(), "offset": self.action_offset.tolist(),
                       "clip": [-1.0, 1.0] if self.cfg.clip_actions else None,
                       "pd_target": "offset + scale * action, radians, one per joint in `joints` order"},
            "joints": list(hum.DOF_NAMES),
            "bodies": list(hum.BODY_NAMES),
            "pd": {"kp": kp.tolist(), "kd": kd.tolist(), "torque_limit": torque},
            "control": {"policy_dt": float(self.policy_dt), "physics_dt": float(model.opt.timestep),
                        "decimation": int(self.engine.decimation)},
            "quaternion": "wxyz (MuJoCo: scalar first)",
            "num_agents": int(self.num_agents),
        }

    def _critic_state_size(self) -> int:
        """Numbers the critic group adds to the policy observation (a team task's global state)."""
        return 0

    def _critic_state(self) -> torch.Tensor | None:
        """The global state [rows, _critic_state_size()] the critic group adds (None: nothing)."""
        return None

    def observe(self) -> torch.Tensor:
        e = self.engine
        obs = proprioception(self.rows(e.root_pos), self.rows(e.root_quat), self.rows(e.body_pos),
                             self.rows(e.body_quat), self.rows(e.body_lin_vel), self.rows(e.body_ang_vel))
        obs = obs.to(torch.float32)  # the policy's precision; the noise is drawn in it too (half the cost on the CPU)
        if self.cfg.proprio_noise_std > 0:
            obs = obs + self.cfg.proprio_noise_std * self._randn(obs.shape, torch.float32)
        task = self._task_obs()
        if task is not None:
            obs = torch.cat((obs, task.to(torch.float32)), dim=-1)
        return self._parked_as_first(obs)

    # ---- assistance -----------------------------------------------------------------------------------------
    def set_assist(self, cfg) -> None:
        """Assistance forces (envs.assist) with these settings (an AssistConfig; None: none)."""
        self.assist = cfg if cfg is not None and cfg.enabled else None
        self.assist_level = 1.0 if self.assist is not None else 0.0
        if self.assist is not None:
            height = cfg.height if cfg.height is not None else float(self._default.humanoid.root_pos[0, 0, 2])
            self._assist_height = height

    def set_assist_level(self, level: float) -> None:
        """The curriculum's level in [0, 1]; 0 removes the forces at once (evaluation envs never have any)."""
        self.assist_level = float(min(max(level, 0.0), 1.0)) if self.assist is not None else 0.0
        if self.assist_level == 0.0:
            zero = torch.zeros_like(self.engine.root_pos)
            self.engine.set_root_wrench(zero, zero)

    def _apply_assist(self) -> None:
        e = self.engine
        if self.assist is None or self.assist_level <= 0.0:
            return
        force, torque = assist_wrench(e.root_pos, e.root_quat, e.root_lin_vel, e.root_ang_vel, self._assist_height,
                                      self.assist)
        e.set_root_wrench(self.assist_level * force, self.assist_level * torque)

    # ---- step -----------------------------------------------------------------------------------------------
    def _check_actions(self, actions) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions as the engine's dtype, clamped (cfg.clip_actions); rows with NaN or infinity act as zero and
        their environments are flagged [num_envs] for a reset (counted in episode_summary)."""
        actions = torch.as_tensor(actions, device=self.device)
        if actions.shape != (self.num_rows, self.num_actions):
            raise ValueError(f"actions must have shape ({self.num_rows}, {self.num_actions}), got {tuple(actions.shape)}")
        finite = torch.isfinite(actions).all(dim=1) | ~self.agent_mask
        actions = torch.where(finite[:, None], actions, torch.zeros_like(actions)).to(self.dtype)
        bad_env = ~finite.view(self.num_envs, self.num_agents).all(dim=1)
        actions = actions.clamp(-1.0, 1.0) if self.cfg.clip_actions else actions
        if self.num_agents > 1:  # parked humanoids hold the default pose
            actions = torch.where(self.agent_mask[:, None], actions, self._default_action)
        return actions, bad_env

    def default_pose_action(self) -> torch.Tensor:
        """The action [28] whose PD targets are the humanoid's default (standing) pose."""
        default = self._default.humanoid.dof_pos.reshape(-1, self.num_actions)[0]
        return (default - self.action_offset) / self.action_scale

    def pd_targets(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions [rows, 28] -> PD targets [rows, 28]."""
        return self.action_offset + self.action_scale * actions

    def _fall(self) -> torch.Tensor:
        e = self.engine
        return fallen(self.rows(e.body_pos), self.rows(e.contact_forces), self.contact_body_mask, self.fall_heights,
                      self.cfg.fall_contact_force)

    def step(self, actions):
        """Advance one policy step (coohoi.envs.contract: what it returns)."""
        actions, bad_action_env = self._check_actions(actions)
        e = self.engine
        e.set_pd_targets(self.pd_targets(actions).view(self.num_envs, self.num_agents, self.num_actions), check=False)
        self._apply_assist()
        e.step()
        self._steps += 1
        self.progress += 1
        faulted = e.unstable | bad_action_env
        active = self.agent_mask  # the rows of this step's episodes
        team = active.view(self.num_envs, self.num_agents)
        # [num_envs], mean over the env's active humanoids
        speed = (e.root_lin_vel[..., :2].norm(dim=-1) * team).sum(dim=1) / self.team_size
        self.distance += torch.where(faulted, torch.zeros_like(speed), speed) * self.policy_dt
        faulted_row = self.per_row(faulted)

        # A world that failed repeats its last valid frame: the discriminator never sees NaN. A new tensor each
        # step, so that the amp_obs returned never change afterwards.
        frame = torch.where(faulted_row[:, None], self.amp_hist[:, 0], self.amp_frame().to(torch.float32))
        self.amp_hist = torch.cat((frame.unsqueeze(1), self.amp_hist[:, :-1]), dim=1)
        amp_obs = self.amp_hist.flatten(1)

        self._after_physics()
        reward, terms = self._task_reward()
        learn = active & ~faulted_row
        zero_unless_learnt = lambda v: torch.where(learn, torch.nan_to_num(v), torch.zeros_like(v))  # noqa: E731
        reward = zero_unless_learnt(reward)
        terms = {k: zero_unless_learnt(v).to(torch.float32) for k, v in terms.items()}

        reasons = {"fall": self._fall()} if self.cfg.enable_early_termination else {}
        reasons.update(self._task_terminated())
        may_end = (self.progress > self.cfg.termination_grace_steps) & ~faulted
        reasons = {k: (v.view(self.num_envs, self.num_agents) & team).any(dim=1) & may_end for k, v in reasons.items()}
        terminated_env = torch.zeros_like(faulted)
        for v in reasons.values():
            terminated_env = terminated_env | v
        truncated_env = (timed_out(self.progress, self.max_episode_length) & ~terminated_env) | faulted
        ended = terminated_env | truncated_env

        metrics = {"episode_length": self.progress.to(torch.float32),
                   "root_speed_mps": (self.distance / (self.progress * self.policy_dt)).to(torch.float32)}
        metrics.update({f"{name}_rate": v.to(torch.float32) for name, v in reasons.items()})
        metrics.update(self._episode_metrics())
        self._record_episodes(ended & ~faulted, metrics)
        kinds = torch.where(bad_action_env & ~e.unstable, len(FAULT_KINDS) + 1, e.fault_kind)
        self._fault_counts[:-1] += (kinds[:, None] == self._fault_codes).sum(dim=0)  # no host sync, unlike bincount

        info = {INFO_AMP_OBS: amp_obs, INFO_REWARD_TERMS: terms, INFO_EPISODE_METRICS: metrics,
                INFO_FAULTED: faulted, INFO_AGENT_MASK: active,
                INFO_TERMINATED_REASONS: {k: self.per_row(v) for k, v in reasons.items()}}
        if self.keep_final_obs:  # a failed world has no valid final state: zeros (its transition is faulted)
            info[INFO_FINAL_OBS] = torch.where(faulted_row[:, None], 0.0, self.observe())
        self._reset_ended(ended)
        groups = self.observations()
        info[INFO_OBSERVATIONS] = groups
        obs = groups[POLICY]
        return obs, reward.to(torch.float32), self.per_row(terminated_env), self.per_row(truncated_env), info

    # ---- per-episode metrics --------------------------------------------------------------------------------
    def _record_episodes(self, ended: torch.Tensor, metrics: dict[str, torch.Tensor]) -> None:
        """Add the metrics [num_envs] of the episodes in `ended` to the running sums and counts (on the device, all
        metrics in one batch; a metric counts where it is finite)."""
        values = torch.stack([v.to(torch.float64) for v in metrics.values()])  # [num_metrics, num_envs]
        valid = ended & torch.isfinite(values)
        totals = torch.stack((torch.where(valid, values, 0.0).sum(dim=1), valid.sum(dim=1).to(torch.float64)))
        if self._episode_totals is None:
            self._episode_keys, self._episode_totals = list(metrics), totals
        else:
            self._episode_totals += totals

    def episode_summary(self) -> dict[str, float]:
        """Means over the episodes that ended since the last call (e.g. one epoch); metrics that apply only to
        some episodes (precision: successes) average over those. Also num_episodes; faults/<kind>, the environments
        reset for each physics fault (coohoi.engine.base.FAULT_KINDS, counted once under the first that applies) and
        for non-finite actions (faults/nonfinite_actions), logged as a warning; and the starts taken a second time
        from an exhausted start pool (reused_starts). One host synchronisation, and the engine's own fault check
        (engine.check_faults)."""
        keys = self._episode_keys if self._episode_totals is not None else []
        totals = self._episode_totals.flatten() if keys else torch.zeros(0, dtype=torch.float64, device=self.device)
        values = torch.cat((totals, self._fault_counts.to(torch.float64))).tolist()
        sums, counts = values[:len(keys)], values[len(keys):2 * len(keys)]
        faults, reused = values[2 * len(keys):-1], values[-1]
        out = {"num_episodes": counts[keys.index("episode_length")] if "episode_length" in keys else 0.0}
        out.update({k: s / c for k, s, c in zip(keys, sums, counts) if c > 0})
        out.update({f"faults/{k}": v for k, v in zip(FAULT_COUNTS, faults)})
        out["reused_starts"] = reused
        if any(faults):
            self.faults_total += int(sum(faults))
            log.warning("reset environments for faults: %s (%d since the start)",
                        ", ".join(f"{int(v)} {k}" for k, v in zip(FAULT_COUNTS, faults) if v), self.faults_total)
        self.engine.check_faults()
        self._episode_totals = None
        self._fault_counts.zero_()
        return out
