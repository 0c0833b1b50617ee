"""A tiny stand-in for a coohoi task env (the env contract of coohoi.envs.contract), for fast agent tests.

Demo motion: AMP features (the first 3 action numbers of this step and the last) near +0.5. The task reward is
highest when the first two actions are near +0.6. Episodes end early when the first state number drops
below FALL_LEVEL (pushing action 0 negative "falls"), and are cut at max_episode_length.

Teams: with num_agents > 1 every environment has num_agents rows, of which the first `team_size` are active; the
critic group adds the environment's mean state and the agent's index. Inactive rows earn nothing, their actions are
ignored, their observations are their team's first agent's (as the contract says) and their AMP features are the
constant INACTIVE_AMP (a test can see whether a learner used them).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

FALL_LEVEL = -0.3
DEMO_MEAN = 0.5
DEMO_STD = 0.1
TASK_TARGET = 0.6
INACTIVE_AMP = -5.0


class FakeTaskEnv:
    def __init__(self, num_envs: int = 8, num_obs: int = 8, num_actions: int = 4, amp_history: int = 2,
                 max_episode_length: int = 20, seed: int = 0, num_agents: int = 1, team_size: int | None = None):
        self.num_envs = num_envs
        self.num_agents = num_agents
        self.num_rows = num_envs * num_agents
        team = num_agents if team_size is None else team_size
        self.agent_mask = (torch.arange(num_agents) < team).repeat(num_envs)
        self.observation_groups = {"policy": num_obs, "critic": num_obs + (num_obs + 1 if num_agents > 1 else 0)}
        self.device = torch.device("cpu")
        self.num_obs, self.num_actions = num_obs, num_actions
        self.amp_history = amp_history
        self.num_amp_obs = 3 * amp_history
        self.max_episode_length = max_episode_length
        self.policy_dt = 1.0 / 30.0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (num_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (num_actions,), dtype=np.float32)
        self.generator = torch.Generator().manual_seed(seed)
        self.state = torch.zeros(self.num_rows, num_obs)
        self.amp_hist = torch.zeros(self.num_rows, amp_history, 3)
        self.progress = torch.zeros(num_envs, dtype=torch.long)
        self.steps_taken = 0
        self.keep_final_obs = False
        self.assist_level = 0.0
        self._sums: dict[str, float] = {}
        self._count = 0

    def reset(self) -> torch.Tensor:
        self._reset(torch.ones(self.num_envs, dtype=torch.bool))
        return self.observations()["policy"]

    def observations(self) -> dict[str, torch.Tensor]:
        first = self.state.view(self.num_envs, self.num_agents, -1)[:, :1].expand(-1, self.num_agents, -1)
        obs = torch.where(self.agent_mask[:, None], self.state, first.flatten(0, 1))
        if self.num_agents == 1:
            return {"policy": obs, "critic": obs}
        team_mean = self.state.view(self.num_envs, self.num_agents, -1).mean(dim=1)
        team_mean = team_mean.repeat_interleave(self.num_agents, 0)
        index = torch.arange(self.num_agents, dtype=obs.dtype).repeat(self.num_envs)[:, None]
        return {"policy": obs, "critic": torch.cat((obs, team_mean, index), dim=-1)}

    def _reset(self, env_mask: torch.Tensor) -> None:
        rows = env_mask.repeat_interleave(self.num_agents)
        fresh = 0.1 * torch.randn(self.num_rows, self.num_obs, generator=self.generator)
        self.state = torch.where(rows[:, None], fresh, self.state)
        self.amp_hist[rows] = 0.0
        self.progress[env_mask] = 0

    def step(self, actions: torch.Tensor):
        assert actions.shape == (self.num_rows, self.num_actions) and actions.dtype == torch.float32
        active = self.agent_mask
        a = torch.where(active[:, None], actions.clamp(-1.0, 1.0), torch.zeros_like(actions))
        self.steps_taken += 1
        self.progress += 1
        drive = torch.zeros_like(self.state)
        drive[:, : self.num_actions] = a
        self.state = 0.7 * self.state + 0.3 * drive
        frame = torch.where(active[:, None], a[:, :3], torch.full_like(a[:, :3], INACTIVE_AMP))
        self.amp_hist = torch.cat((frame[:, None], self.amp_hist[:, :-1]), dim=1)
        amp_obs = self.amp_hist.flatten(1).clone()
        track = torch.exp(-4.0 * (a[:, :2] - TASK_TARGET).square().sum(-1)) * active
        terms = {"track": track}
        reward = track.clone()
        fell = ((self.state[:, 0] < FALL_LEVEL) & active).view(self.num_envs, self.num_agents).any(dim=1)
        timed_out = (self.progress >= self.max_episode_length) & ~fell
        done = fell | timed_out
        terminated = fell.repeat_interleave(self.num_agents)
        truncated = timed_out.repeat_interleave(self.num_agents)
        metrics = {"episode_length": self.progress.float(), "success_rate": timed_out.float()}
        for key, value in metrics.items():
            self._sums[key] = self._sums.get(key, 0.0) + float(value[done].sum())
        self._count += int(done.sum())
        info = {"amp_obs": amp_obs, "reward_terms": terms, "episode_metrics": metrics, "agent_mask": active.clone(),
                "faulted": torch.zeros(self.num_envs, dtype=torch.bool), "terminated_reasons": {"fall": terminated}}
        if self.keep_final_obs:
            info["final_obs"] = self.state.clone()
        self._reset(done)
        groups = self.observations()
        info["observations"] = groups
        return groups["policy"], reward, terminated, truncated, info

    def episode_summary(self) -> dict[str, float]:
        out = {"num_episodes": float(self._count)}
        out.update({k: v / self._count for k, v in self._sums.items() if self._count})
        self._sums, self._count = {}, 0
        return out

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def get_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def default_pose_action(self) -> torch.Tensor:
        return torch.zeros(self.num_actions)

    def policy_metadata(self) -> dict:
        parts = {group: [{"name": "state" if group == "policy" else "state_and_team", "size": size}]
                 for group, size in self.observation_groups.items()}
        return {"observation": {"groups": parts, "policy_size": self.num_obs},
                "action": {"size": self.num_actions, "scale": [1.0] * self.num_actions,
                           "offset": [0.0] * self.num_actions, "clip": [-1.0, 1.0]},
                "joints": [f"joint_{i}" for i in range(self.num_actions)],
                "control": {"policy_dt": self.policy_dt}, "num_agents": self.num_agents}

    def set_assist(self, cfg) -> None:
        self.assist_level = 1.0 if cfg is not None and cfg.enabled else 0.0

    def set_assist_level(self, level: float) -> None:
        self.assist_level = level

    def fetch_amp_demo(self, n: int) -> torch.Tensor:
        return DEMO_MEAN + DEMO_STD * torch.randn(n, self.num_amp_obs, generator=self.generator)
