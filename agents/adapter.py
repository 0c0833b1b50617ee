"""Adapters from a coohoi task env (coohoi.envs.make_env) to learning libraries.

- `RlGamesVecEnv`: an rl-games vecenv that stays on the engine's device: observations, rewards and dones are torch
  tensors (rl-games then skips its numpy conversions). `register_rlgames_env()` registers it with rl-games'
  `vecenv` and `env_configurations` under the name "coohoi".
- `GymnasiumVectorEnv`: the gymnasium VectorEnv interface (reset/step with terminations and truncations) for users
  of other RL libraries; torch tensors by default, numpy arrays with `numpy=True`.

Rows are num_envs * num_agents: one row per controlled humanoid, each an actor for the learner (rl-games sees one
agent per row, so every row has its own value; MAPPO's central critic reads the env's critic group per row).
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from rl_games.common import env_configurations, vecenv
from rl_games.common.ivecenv import IVecEnv

from coohoi.envs.contract import CRITIC, INFO_OBSERVATIONS, POLICY

RLGAMES_ENV_NAME = "coohoi"
RLGAMES_VECENV_TYPE = "COOHOI"


def amp_observation_space(env) -> gymnasium.spaces.Box:
    return gymnasium.spaces.Box(-np.inf, np.inf, (env.num_amp_obs,), dtype=np.float32)


class RlGamesVecEnv(IVecEnv):
    """rl-games view of a coohoi env. step() returns (obs, reward, dones, info) as device tensors.

    info gains "time_outs" (episodes cut by the time limit rather than a failure) so rl-games bootstraps their
    value; everything else the env reports (coohoi.envs.contract) passes through. With central_value=True the
    observations are rl-games' {"obs": policy group, "states": critic group}, for its central value network.
    """

    def __init__(self, env, central_value: bool = False):
        self.env = env
        self.central_value = central_value

    def _obs(self, groups: dict[str, torch.Tensor]):
        return {"obs": groups[POLICY], "states": groups[CRITIC]} if self.central_value else groups[POLICY]

    def step(self, actions: torch.Tensor):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        info["time_outs"] = truncated & ~terminated
        dones = (terminated | truncated).to(torch.uint8)
        return self._obs(info[INFO_OBSERVATIONS]), reward, dones, info

    def reset(self):
        self.env.reset()
        return self._obs(self.env.observations())

    def episode_summary(self) -> dict[str, float]:
        """Means of the per-episode metrics (success rate, final distance, ...) since the last call."""
        return self.env.episode_summary()

    def get_number_of_agents(self) -> int:
        return 1  # agents are already flattened into rows (num_actors = env.num_rows)

    def get_env_info(self) -> dict[str, Any]:
        info = {
            "observation_space": self.env.observation_space,
            "action_space": self.env.action_space,
            "amp_observation_space": amp_observation_space(self.env),
            "agents": 1,
            "value_size": 1,
        }
        if self.central_value:
            size = self.env.observation_groups[CRITIC]
            info["state_space"] = gymnasium.spaces.Box(-np.inf, np.inf, (size,), dtype=np.float32)
        return info

    def fetch_amp_demo(self, num_samples: int) -> torch.Tensor:
        return self.env.fetch_amp_demo(num_samples)

    def set_train_info(self, env_frames, *args, **kwargs):
        hook = getattr(self.env, "set_train_info", None)
        if hook is not None:
            hook(env_frames, *args, **kwargs)

    def get_env_state(self):
        return self.env.get_state()

    def set_env_state(self, env_state):
        if env_state is not None:  # checkpoints written before the env saved its random streams hold None
            self.env.set_state(env_state)


def register_rlgames_env(env_factory: Callable[[], Any], central_value: bool = False) -> None:
    """Make `env_name: coohoi` work in rl-games configs; env_factory() builds the coohoi env."""
    vecenv.register(
        RLGAMES_VECENV_TYPE,
        lambda config_name, num_actors, **kwargs: RlGamesVecEnv(
            env_configurations.configurations[config_name]["env_creator"](**kwargs), central_value
        ),
    )
    env_configurations.register(
        RLGAMES_ENV_NAME, {"vecenv_type": RLGAMES_VECENV_TYPE, "env_creator": lambda **kwargs: env_factory()}
    )


class GymnasiumVectorEnv(VectorEnv):
    """Gymnasium VectorEnv over a coohoi env (rows = num_envs * num_agents).

    Autoreset is same-step: a finished row is reset inside step() and the returned observation is the first of its
    new episode (metadata["autoreset_mode"] says so). Extra per-step data is in info (coohoi.envs.humanoid_env:
    the env contract): "amp_obs" (AMP features of the state reached, before any reset), "reward_terms",
    "episode_metrics", ...
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env, numpy: bool = False):
        self.env = env
        self.numpy = numpy
        self.num_envs = env.num_rows
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(env.observation_space, self.num_envs)
        self.action_space = batch_space(env.action_space, self.num_envs)

    def _out(self, x):
        return x.detach().cpu().numpy() if self.numpy and isinstance(x, torch.Tensor) else x

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.env.seed(seed) if hasattr(self.env, "seed") else torch.manual_seed(seed)
        obs = self.env.reset()
        return self._out(obs), {}

    def step(self, actions):
        if not isinstance(actions, torch.Tensor):
            actions = torch.as_tensor(np.asarray(actions), dtype=torch.float32, device=self.env.device)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if self.numpy:
            info = {k: ({kk: self._out(vv) for kk, vv in v.items()} if isinstance(v, dict) else self._out(v))
                    for k, v in info.items()}
        return self._out(obs), self._out(reward), self._out(terminated), self._out(truncated), info

    def close_extras(self, **kwargs):
        close = getattr(self.env, "close", None)
        if close is not None:
            close()
