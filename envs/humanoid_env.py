"""The shared base of the task environments: engine, motion library, actions, resets, falls and the AMP history.

Rows are controlled humanoids: row = env * num_agents + agent. A task subclass supplies four things: the size of
its task observation and the observation itself, its reward terms, its extra terminations, and where the object
starts (plus optional per-episode metrics). Everything numeric is computed by the pure functions of
coohoi.envs.observations / rewards / terminations.
"""

from __future__ import annotations

import logging
import math

import gymnasium as gym
import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.config import EngineConfig, SceneConfig
from coohoi.engine import make_engine
from coohoi.engine.base import HumanoidState, ObjectState, SimState
from coohoi.envs.config import HumanoidEnvConfig, resolve_dataset_path, validate_humanoid_config
from coohoi.envs.observations import PROPRIO_SIZE, proprioception
from coohoi.envs.terminations import fall_heights, fallen, timed_out
from coohoi.motion.amp_features import AMP_FEATURE_SIZE, amp_features
from coohoi.rotations import quat_mul, quat_rotate, yaw_quat

log = logging.getLogger(__name__)


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


class HumanoidEnv:
    """Task environment base (see the module docstring and the env API in the project docs)."""

    task_obs_size = 0

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
        self.max_episode_length = cfg.episode_length
        self.amp_history = cfg.amp_history
        self.num_actions = hum.NUM_DOFS
        self.num_obs = PROPRIO_SIZE + self.task_obs_size
        self.num_amp_obs = self.amp_history * AMP_FEATURE_SIZE
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.num_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.num_actions,), dtype=np.float32)

        if motion_lib is None:
            from coohoi.motion.library import MotionLib

            motion_lib = MotionLib.from_dataset(resolve_dataset_path(cfg.motion_dataset), device=self.device,
                                                dtype=self.dtype)
        self.motion_lib = motion_lib
        self.generator = torch.Generator(device="cpu")
        self.seed(seed)

        tensor = lambda x: torch.as_tensor(x, dtype=self.dtype, device=self.device)  # noqa: E731
        offset, scale = pd_action_offset_scale(e.scene.dof_limits, cfg)
        self.action_offset, self.action_scale = tensor(offset), tensor(scale)
        self.contact_body_mask = torch.tensor([n in cfg.contact_bodies for n in hum.BODY_NAMES], device=self.device)
        self.fall_heights = fall_heights(cfg.fall_height, cfg.head_fall_height, hum.HEAD_BODY_ID, hum.NUM_BODIES,
                                         self.dtype, self.device)
        self.key_body_ids = torch.tensor(hum.KEY_BODY_IDS, device=self.device)
        self.hand_body_ids = torch.tensor(hum.HAND_BODY_IDS, device=self.device)

        self.progress = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.amp_hist = torch.zeros(self.num_rows, self.amp_history, AMP_FEATURE_SIZE, dtype=self.dtype,
                                    device=self.device)
        self.unstable_resets_total = 0
        self._summary: dict[str, list[float]] = {}
        self._all_envs = torch.arange(self.num_envs, device=self.device)

    def seed(self, seed: int) -> None:
        """Seed the env's randomness (starts, placement, noise, demo sampling) and the engine's."""
        self.generator.manual_seed(int(seed))
        self.engine.seed(int(seed))

    # ---- row views of engine tensors ------------------------------------------------------------------------
    @staticmethod
    def rows(t: torch.Tensor) -> torch.Tensor:
        """[N, K, ...] -> [N * K, ...]"""
        return t.flatten(0, 1)

    def per_row(self, t: torch.Tensor) -> torch.Tensor:
        """Per-environment [N, ...] -> per-row [N * K, ...] (every agent of an environment sees the same; with one
        agent per environment that is `t` itself, not a copy)."""
        return t if self.num_agents == 1 else t.repeat_interleave(self.num_agents, dim=0)

    def env_rows(self, env_ids: torch.Tensor) -> torch.Tensor:
        return (env_ids.unsqueeze(-1) * self.num_agents + torch.arange(self.num_agents, device=self.device)).flatten()

    def _uniform(self, n: int, lo: float, hi: float) -> torch.Tensor:
        u = torch.rand(n, generator=self.generator, dtype=self.dtype)
        return (lo + (hi - lo) * u).to(self.device)

    # ---- task hooks -----------------------------------------------------------------------------------------
    def _object_start(self, env_ids: torch.Tensor, humanoid: HumanoidState) -> ObjectState:
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

    def _episode_metrics(self, env_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-episode task metrics [len(env_ids)] of the episodes that end now (the state is still the final one);
        NaN where a metric does not apply to an episode."""
        return {}

    def _after_reset(self, env_ids: torch.Tensor) -> None:
        """Task state to reset together with the environments."""

    # ---- AMP ------------------------------------------------------------------------------------------------
    def amp_frame(self, row_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The current AMP features [rows, 125] of the given rows (all rows if None), from engine tensors."""
        e = self.engine
        sel = (lambda t: self.rows(t)) if row_ids is None else (lambda t: self.rows(t)[row_ids])  # noqa: E731
        return amp_features(sel(e.root_pos), sel(e.root_quat), sel(e.root_lin_vel), sel(e.root_ang_vel),
                            sel(e.dof_pos), sel(e.dof_vel), sel(e.body_pos)[:, self.key_body_ids])

    def fetch_amp_demo(self, n: int) -> torch.Tensor:
        """n demo AMP observations [n, num_amp_obs] (float32) from the motion library."""
        demo = self.motion_lib.sample_amp_demo(n, self.amp_history, self.policy_dt, self.generator)
        return demo.to(device=self.device, dtype=torch.float32)

    # ---- resets ---------------------------------------------------------------------------------------------
    def _sample_humanoid_start(self, env_ids: torch.Tensor, reference=None):
        """Start states [n, K, ...], the rows that start from a reference state, and those rows' AMP history
        [len(ref_rows), amp_history, 125] from the motion library (None if there are none).

        reference: optional (clip_ids, times) per row, forcing reference starts at those clip times."""
        n, k = env_ids.numel(), self.num_agents
        m = n * k
        default = self.engine.default_state(n).humanoid
        root_pos, root_quat, lin, ang, dof, dof_vel = (self.rows(t).clone() for t in (
            default.root_pos, default.root_quat, default.root_lin_vel, default.root_ang_vel, default.dof_pos,
            default.dof_vel))
        mode = self.cfg.reset_mode
        if reference is not None or mode == "reference":
            use_ref = torch.ones(m, dtype=torch.bool, device=self.device)
        elif mode == "mix":
            use_ref = self._uniform(m, 0.0, 1.0) < self.cfg.reference_reset_prob
        else:
            use_ref = torch.zeros(m, dtype=torch.bool, device=self.device)
        ref_rows = torch.nonzero(use_ref).flatten()
        ref_history = None
        if ref_rows.numel():
            lib = self.motion_lib
            if reference is None:
                cids = lib.sample_clips(ref_rows.numel(), self.generator).to(self.device)
                t = lib.sample_times(cids, self.generator)
            else:
                cids = torch.as_tensor(reference[0], dtype=torch.long, device=self.device).flatten()
                t = torch.as_tensor(reference[1], dtype=self.dtype, device=self.device).flatten()
                if cids.numel() != m or t.numel() != m:
                    raise ValueError(f"reference starts need one (clip, time) per row: {m}, got {cids.numel()} and {t.numel()}")
            # One library query gives the start state and the AMP history that led to it.
            st, ref_history = lib.state_and_amp_features(cids, t.to(self.dtype), self.amp_history, self.policy_dt)
            cast = lambda x: x.to(device=self.device, dtype=self.dtype)  # noqa: E731
            ref_history = cast(ref_history)
            ref_pos = cast(st.root_pos)
            # Keep the clip's height; put it where this humanoid spawns by default.
            ref_pos[:, :2] = root_pos[ref_rows, :2]
            ref_pos[:, 2] += self.cfg.reference_height_offset
            root_pos[ref_rows], root_quat[ref_rows] = ref_pos, cast(st.root_quat)
            lin[ref_rows], ang[ref_rows] = cast(st.root_lin_vel), cast(st.root_ang_vel)
            dof[ref_rows], dof_vel[ref_rows] = cast(st.dof_pos), cast(st.dof_vel)
        if self.cfg.random_heading:
            turn = yaw_quat(self._uniform(m, -math.pi, math.pi))
            root_quat = quat_mul(turn, root_quat)
            lin, ang = quat_rotate(turn, lin), quat_rotate(turn, ang)
        shape = lambda x: x.unflatten(0, (n, k))  # noqa: E731
        state = HumanoidState(shape(root_pos), shape(root_quat), shape(lin), shape(ang), shape(dof), shape(dof_vel))
        return state, ref_rows, ref_history

    def reset_envs(self, env_ids, reference=None) -> None:
        """Start new episodes in the given environments (the others are untouched).

        reference: optional (clip_ids, times), one per row of those environments, to start every row from that
        reference state (e.g. for evaluation or tests); otherwise cfg.reset_mode decides."""
        ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device).flatten()
        if ids.numel() == 0:
            return
        humanoid, ref_rows, ref_history = self._sample_humanoid_start(ids, reference)
        obj = self._object_start(ids, humanoid)
        self.engine.reset(ids, SimState(humanoid, obj))
        self.progress[ids] = 0
        rows = self.env_rows(ids)
        # Back-fill the AMP history: the reference clip's past frames, or the start frame repeated.
        hist = self.amp_frame(rows).unsqueeze(1).repeat(1, self.amp_history, 1)
        if ref_history is not None:
            hist[ref_rows, 1:] = ref_history[:, 1:]
        self.amp_hist[rows] = hist
        self._after_reset(ids)

    def reset(self) -> torch.Tensor:
        """Reset every environment; the first observation [rows, num_obs] (float32)."""
        self.reset_envs(self._all_envs)
        return self.observe()

    # ---- observation ----------------------------------------------------------------------------------------
    def observe(self) -> torch.Tensor:
        e = self.engine
        obs = proprioception(self.rows(e.root_pos), self.rows(e.root_quat), self.rows(e.body_pos),
                             self.rows(e.body_quat), self.rows(e.body_lin_vel), self.rows(e.body_ang_vel))
        if self.cfg.proprio_noise_std > 0:
            obs = obs + self.cfg.proprio_noise_std * torch.randn(obs.shape, generator=self.generator,
                                                                 dtype=self.dtype).to(self.device)
        task = self._task_obs()
        if task is not None:
            obs = torch.cat((obs, task), dim=-1)
        return obs.to(torch.float32)

    # ---- step -----------------------------------------------------------------------------------------------
    def _check_actions(self, actions) -> torch.Tensor:
        actions = torch.as_tensor(actions, device=self.device)
        if actions.shape != (self.num_rows, self.num_actions):
            raise ValueError(f"actions must have shape ({self.num_rows}, {self.num_actions}), got {tuple(actions.shape)}")
        finite = torch.isfinite(actions).all(dim=1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten().tolist()
            raise ValueError(f"actions contain NaN or infinity in rows {bad[:10]}{'...' if len(bad) > 10 else ''}")
        actions = actions.to(self.dtype)
        return actions.clamp(-1.0, 1.0) if self.cfg.clip_actions else actions

    def default_pose_action(self) -> torch.Tensor:
        """The action [28] whose PD targets are the humanoid's default (standing) pose."""
        default = self.engine.default_state(1).humanoid.dof_pos.reshape(-1, self.num_actions)[0]
        return (default - self.action_offset) / self.action_scale

    def pd_targets(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions [rows, 28] -> PD targets [rows, 28]."""
        return self.action_offset + self.action_scale * actions

    def _fall(self) -> torch.Tensor:
        e = self.engine
        return fallen(self.rows(e.body_pos), self.rows(e.contact_forces), self.contact_body_mask, self.fall_heights,
                      self.cfg.fall_contact_force)

    def step(self, actions):
        """Advance one policy step; see the env API. Finished environments are reset before returning."""
        actions = self._check_actions(actions)
        e = self.engine
        e.set_pd_targets(self.pd_targets(actions).view(self.num_envs, self.num_agents, self.num_actions))
        e.step()
        self.progress += 1
        unstable_env = e.unstable.clone()
        unstable_row = self.per_row(unstable_env)

        previous_hist = self.amp_hist
        self.amp_hist = torch.cat((self.amp_frame().unsqueeze(1), previous_hist[:, :-1]), dim=1)
        amp_obs = self.amp_hist.flatten(1).to(torch.float32)  # unstable rows are restored below

        self._after_physics()
        reward, terms = self._task_reward()
        reward = torch.where(unstable_row, torch.zeros_like(reward), torch.nan_to_num(reward))
        terms = {k: torch.where(unstable_row, torch.zeros_like(v), torch.nan_to_num(v)).to(torch.float32)
                 for k, v in terms.items()}

        reasons = {"fall": self._fall()} if self.cfg.enable_early_termination else {}
        reasons.update(self._task_terminated())
        may_end = self.progress > self.cfg.termination_grace_steps
        reasons = {k: v.view(self.num_envs, self.num_agents).any(dim=1) & may_end & ~unstable_env
                   for k, v in reasons.items()}
        terminated_env = torch.zeros_like(unstable_env)
        for v in reasons.values():
            terminated_env |= v
        truncated_env = (timed_out(self.progress, self.max_episode_length) & ~terminated_env) | unstable_env

        episode: dict[str, float] = {}
        done_env = terminated_env | truncated_env
        num_unstable = 0
        if bool(done_env.any()):  # the one host sync of a step without resets
            finished = torch.nonzero(done_env & ~unstable_env).flatten()
            if finished.numel():
                episode = self._record_episodes(finished, reasons)
            num_unstable = int(unstable_env.sum())
            if num_unstable:
                # A world that blew up keeps its last valid history: the discriminator never sees NaN. (Unstable
                # worlds always end the episode, so this needs no host sync of its own.)
                bad_rows = torch.nonzero(unstable_row).flatten()
                self.amp_hist[bad_rows] = previous_hist[bad_rows]
                amp_obs[bad_rows] = previous_hist[bad_rows].flatten(1).to(torch.float32)
                self.unstable_resets_total += num_unstable
                log.warning("physics became unstable in %d environment(s) %s; resetting them (%d so far)",
                            num_unstable, torch.nonzero(unstable_env).flatten().tolist()[:10],
                            self.unstable_resets_total)
            self.reset_envs(torch.nonzero(done_env).flatten())
        obs = self.observe()
        info = {"amp_obs": amp_obs, "reward_terms": terms, "episode": episode, "reset_unstable": num_unstable,
                "terminated_reasons": {k: self.per_row(v) for k, v in reasons.items()}}
        return (obs, reward.to(torch.float32), self.per_row(terminated_env), self.per_row(truncated_env), info)

    def _record_episodes(self, finished: torch.Tensor, reasons: dict[str, torch.Tensor]) -> dict[str, float]:
        """Per-episode values of the episodes that end now: kept for episode_summary(), means returned."""
        values = {"episode_length": self.progress[finished].to(torch.float64)}
        values.update({f"{name}_rate": v[finished].to(torch.float64) for name, v in reasons.items()})
        values.update(self._episode_metrics(finished))
        stacked = torch.stack(list(values.values())).detach().to("cpu", torch.float64)  # [metrics, episodes]
        for key, v in zip(values, stacked):
            self._summary.setdefault(key, []).append(v)
        episode = {"num_episodes": float(finished.numel())}
        # Means of the metrics that apply to some of these episodes (one host transfer for all of them).
        for key, any_finite, mean in zip(values, torch.isfinite(stacked).any(dim=1).tolist(),
                                         stacked.nanmean(dim=1).tolist()):
            if any_finite:
                episode[key] = mean
        return episode

    def episode_summary(self, clear: bool = True) -> dict[str, float]:
        """Means over the episodes that ended since the last call (e.g. one epoch); metrics that apply only to
        some episodes (precision: successes) average over those. Also num_episodes."""
        out = {}
        for key, chunks in self._summary.items():
            v = torch.cat(chunks)
            if key == "episode_length":
                out["num_episodes"] = float(v.numel())
            if bool(torch.isfinite(v).any()):
                out[key] = float(v.nanmean())
        if clear:
            self._summary = {}
        return out
