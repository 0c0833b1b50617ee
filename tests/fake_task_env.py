"""A tiny stand-in for a coohoi task env (the env contract of coohoi.envs.humanoid_env), for fast agent tests.

Demo motion: AMP features (the first 3 action numbers of this step and the last) near +0.5. The task reward is
highest when the first two actions are near +0.6. Episodes end early when the first state number drops
below FALL_LEVEL (pushing action 0 negative "falls"), and are cut at max_episode_length.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

FALL_LEVEL = -0.3
DEMO_MEAN = 0.5
DEMO_STD = 0.1
TASK_TARGET = 0.6


class FakeTaskEnv:
    def __init__(self, num_envs: int = 8, num_obs: int = 8, num_actions: int = 4, amp_history: int = 2,
                 max_episode_length: int = 20, seed: int = 0):
        self.num_envs = num_envs
        self.num_agents = 1
        self.num_rows = num_envs
        self.device = torch.device("cpu")
        self.num_obs, self.num_actions = num_obs, num_actions
        self.amp_history = amp_history
        self.num_amp_obs = 3 * amp_history
        self.max_episode_length = max_episode_length
        self.policy_dt = 1.0 / 30.0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (num_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (num_actions,), dtype=np.float32)
        self.generator = torch.Generator().manual_seed(seed)
        self.state = torch.zeros(num_envs, num_obs)
        self.amp_hist = torch.zeros(num_envs, amp_history, 3)
        self.progress = torch.zeros(num_envs, dtype=torch.long)
        self.steps_taken = 0
        self.keep_final_obs = False
        self.assist_level = 0.0
        self._sums: dict[str, float] = {}
        self._count = 0

    def reset(self) -> torch.Tensor:
        self._reset(torch.arange(self.num_envs))
        return self.state.clone()

    def _reset(self, ids: torch.Tensor) -> None:
        self.state[ids] = 0.1 * torch.randn(len(ids), self.num_obs, generator=self.generator)
        self.amp_hist[ids] = 0.0
        self.progress[ids] = 0

    def step(self, actions: torch.Tensor):
        assert actions.shape == (self.num_rows, self.num_actions) and actions.dtype == torch.float32
        a = actions.clamp(-1.0, 1.0)
        self.steps_taken += 1
        self.progress += 1
        drive = torch.zeros_like(self.state)
        drive[:, : self.num_actions] = a
        self.state = 0.7 * self.state + 0.3 * drive
        self.amp_hist = torch.cat((a[:, None, :3], self.amp_hist[:, :-1]), dim=1)
        amp_obs = self.amp_hist.flatten(1).clone()
        terms = {"track": torch.exp(-4.0 * (a[:, :2] - TASK_TARGET).square().sum(-1))}
        reward = terms["track"].clone()
        terminated = self.state[:, 0] < FALL_LEVEL
        truncated = (self.progress >= self.max_episode_length) & ~terminated
        done = terminated | truncated
        metrics = {"episode_length": self.progress.float(), "success_rate": truncated.float()}
        for key, value in metrics.items():
            self._sums[key] = self._sums.get(key, 0.0) + float(value[done].sum())
        self._count += int(done.sum())
        info = {"amp_obs": amp_obs, "reward_terms": terms, "episode_metrics": metrics,
                "faulted": torch.zeros(self.num_envs, dtype=torch.bool), "terminated_reasons": {"fall": terminated}}
        if self.keep_final_obs:
            info["final_obs"] = self.state.clone()
        self._reset(torch.nonzero(done).flatten())
        return self.state.clone(), reward, terminated, truncated, info

    def episode_summary(self) -> dict[str, float]:
        out = {"num_episodes": float(self._count)}
        out.update({k: v / self._count for k, v in self._sums.items() if self._count})
        self._sums, self._count = {}, 0
        return out

    def set_assist(self, cfg) -> None:
        self.assist_level = 1.0 if cfg is not None and cfg.enabled else 0.0

    def set_assist_level(self, level: float) -> None:
        self.assist_level = level

    def fetch_amp_demo(self, n: int) -> torch.Tensor:
        return DEMO_MEAN + DEMO_STD * torch.randn(n, self.num_amp_obs, generator=self.generator)
