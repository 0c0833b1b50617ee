"""The env contract: what learners, adapters, export and evaluation rely on. Every task env (coohoi.envs) and the
test fake (tests/fake_task_env.py) implement it; `check_env_contract(env)` checks an env against it.

Rows are controlled humanoids: row = env * num_agents + agent. `num_agents` is the number of humanoid slots per
environment (the scene's `scene.num_humanoids`, which only configures the scene); a cooperative task may use fewer
of them per episode, and `agent_mask` says which.

Attributes: num_envs, num_agents, num_rows (= num_envs * num_agents), num_obs, num_actions, num_amp_obs,
amp_history, policy_dt, max_episode_length (policy steps), device, observation_space and action_space (one row's,
gymnasium), motion_lib (the reference clips), amp_hist [rows, amp_history, 125] (the AMP history of the current
state, float32), and `observation_groups` {group: size}:
  - "policy": what the actor sees (num_obs numbers; the same layout for one agent or a team);
  - "critic": what a critic sees (num_critic_obs numbers): the policy observation, plus a global state in
    cooperative tasks; the policy observation itself in single-agent tasks.

Methods:
- `reset()` -> the policy observation [rows, num_obs] (float32): every environment starts a new episode;
- `observations()` -> {group: [rows, size]} of the current state;
- `step(actions [rows, num_actions])` -> (obs, reward [rows], terminated [rows], truncated [rows], info). Finished
  environments are reset inside the step (a team resets together); `obs` is then the first policy observation of the
  new episode. The info keys are the INFO_* names below;
- `agent_mask` [rows] bool: the rows active in the current episodes (after this step's resets); an inactive row's
  observations (every group) are a copy of its team's first agent's, which is always active, so that normalisers
  and networks only see states that exist;
- `episode_summary()`: means over the episodes that ended since the last call, and fault counts (one host sync);
- `fetch_amp_demo(n)` -> [n, num_amp_obs]: demo samples from the motion library;
- `seed(seed)`; `get_state()` -> {name: tensor} and `set_state(state)`: the env's random streams, which a resumed
  training run continues (the worlds themselves are not saved);
- `default_pose_action()` -> [num_actions]; `set_assist(cfg)`, `set_assist_level(level)`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

POLICY = "policy"
CRITIC = "critic"
OBSERVATION_GROUPS = (POLICY, CRITIC)

# step() info keys.
# [rows, num_amp_obs]: the AMP feature history of the state reached (before any reset), newest frame first.
INFO_AMP_OBS = "amp_obs"
# {group: [rows, size]}: every observation group of the returned (after reset) state; "policy" is `obs` itself.
INFO_OBSERVATIONS = "observations"
# [rows] bool: the rows that acted in this step's episodes (before its resets). Learners leave the others out of
# rewards, advantages, losses, discriminator samples and metrics.
INFO_AGENT_MASK = "agent_mask"
# {term: [rows]}: the task reward's terms (0 for masked rows and failed worlds).
INFO_REWARD_TERMS = "reward_terms"
# {reason: [rows] bool}: why episodes terminated (fall, kicked, ...); time-outs are `truncated & ~terminated`.
INFO_TERMINATED_REASONS = "terminated_reasons"
# {metric: [num_envs]}: values of the episodes that end at this step, meaningful where they end; NaN where a
# metric does not apply (precision of a failed episode); among them episode_length.
INFO_EPISODE_METRICS = "episode_metrics"
# [num_envs] bool: worlds reset because their physics failed or their actions were not finite (learn nothing from
# these transitions).
INFO_FAULTED = "faulted"
# [rows, num_obs] (only with env.keep_final_obs = True): the policy observation of the state reached, before any
# reset, for learners that bootstrap time-outs; zeros for faulted worlds.
INFO_FINAL_OBS = "final_obs"
def faulted_rows(info: dict) -> torch.Tensor:
    """[rows] bool: info[INFO_FAULTED] per row (every humanoid of a faulted world)."""
    faulted, rows = info[INFO_FAULTED], info[INFO_AGENT_MASK].shape[0]
    return faulted if rows == faulted.shape[0] else faulted.repeat_interleave(rows // faulted.shape[0])


INFO_KEYS = (INFO_AMP_OBS, INFO_OBSERVATIONS, INFO_AGENT_MASK, INFO_REWARD_TERMS, INFO_TERMINATED_REASONS,
             INFO_EPISODE_METRICS, INFO_FAULTED)


@runtime_checkable
class TaskEnv(Protocol):
    num_envs: int
    num_agents: int
    num_rows: int
    num_obs: int
    num_actions: int
    num_amp_obs: int
    amp_history: int
    policy_dt: float
    max_episode_length: int
    observation_groups: dict[str, int]
    observation_space: Any
    action_space: Any
    device: torch.device
    agent_mask: torch.Tensor
    keep_final_obs: bool

    def reset(self) -> torch.Tensor: ...

    def observations(self) -> dict[str, torch.Tensor]: ...

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                   dict[str, Any]]: ...

    def episode_summary(self) -> dict[str, float]: ...

    def fetch_amp_demo(self, n: int) -> torch.Tensor: ...

    def seed(self, seed: int) -> None: ...

    def get_state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...

    def default_pose_action(self) -> torch.Tensor: ...

    # What a trained policy needs to know about the env, as JSON values (HumanoidEnv.policy_metadata): the
    # observation groups' named parts, the action's mapping to PD targets, joint order, PD gains, control period.
    def policy_metadata(self) -> dict[str, Any]: ...

    def set_assist(self, cfg) -> None: ...

    def set_assist_level(self, level: float) -> None: ...


def check_env_contract(env, actions: torch.Tensor | None = None) -> dict[str, Any]:
    """Reset and step `env` once (with `actions`, zeros by default) and check shapes, dtypes and info keys against
    the contract; raises AssertionError naming what differs. Returns the step's info."""
    assert isinstance(env, TaskEnv), f"{type(env).__name__} lacks part of the TaskEnv protocol"
    assert env.num_rows == env.num_envs * env.num_agents, "num_rows must be num_envs * num_agents"
    assert set(env.observation_groups) == set(OBSERVATION_GROUPS), f"groups {sorted(env.observation_groups)}"
    rows = env.num_rows
    obs = env.reset()
    assert obs.shape == (rows, env.observation_groups[POLICY]) and obs.dtype == torch.float32, tuple(obs.shape)
    for name, t in env.observations().items():
        assert t.shape == (rows, env.observation_groups[name]), f"group {name}: {tuple(t.shape)}"
    assert env.agent_mask.shape == (rows,) and env.agent_mask.dtype == torch.bool, "agent_mask must be [rows] bool"
    if actions is None:
        actions = torch.zeros(rows, env.num_actions, device=obs.device)
    obs, reward, terminated, truncated, info = env.step(actions)
    assert reward.shape == terminated.shape == truncated.shape == (rows,), "reward and dones must be [rows]"
    missing = [k for k in INFO_KEYS if k not in info]
    assert not missing, f"info lacks {missing}"
    assert info[INFO_AMP_OBS].shape == (rows, env.num_amp_obs)
    assert info[INFO_AGENT_MASK].shape == (rows,) and info[INFO_AGENT_MASK].dtype == torch.bool
    assert info[INFO_OBSERVATIONS][POLICY] is obs or torch.equal(info[INFO_OBSERVATIONS][POLICY], obs)
    assert info[INFO_FAULTED].shape == (env.num_envs,)
    for name, v in info[INFO_EPISODE_METRICS].items():
        assert v.shape == (env.num_envs,), f"episode metric {name}: {tuple(v.shape)}"
    return info
