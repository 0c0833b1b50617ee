"""Evaluation: every environment plays one episode from a fresh start, and the means over those episodes.

Training logs the mean length of the episodes that end in an epoch, from a stochastic policy. A fair comparison
holds the noise fixed: the stochastic training metric against the zero action plus the same action noise, and a
deterministic evaluation against the deterministic zero action. `baselines()` measures both before training;
`evaluate()` runs a policy under the same protocol (one episode per environment, up to the episode length).
"""

from __future__ import annotations

from typing import Callable

import torch

Act = Callable[[torch.Tensor], torch.Tensor]
# Steps between checks (a host sync) whether every environment's episode has ended.
EARLY_EXIT_CHECK = 10


def training_episode_metrics(summary: dict[str, float]) -> dict[str, float]:
    """The env's episode_summary() as both learners log it: episodes/<metric>, the episode length as
    episodes/length (faulted episodes left out)."""
    return {f"episodes/{'length' if k == 'episode_length' else k}": v for k, v in summary.items()}


def zero_action(env) -> Act:
    """The zero action: PD targets at the action offsets of reference §2."""
    return lambda obs: torch.zeros(env.num_rows, env.num_actions, device=obs.device)


def with_noise(act: Act, std: torch.Tensor, generator: torch.Generator | None = None) -> Act:
    """act plus Gaussian noise of the given std ([num_actions] or [rows, num_actions])."""
    def noisy(obs):
        a = act(obs)
        return a + std.to(a) * torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)

    return noisy


@torch.no_grad()
def evaluate(env, act: Act) -> dict[str, float]:
    """Reset every environment, run until each has ended one episode (at most max_episode_length steps), and
    return means over those first episodes: episode_length, full_episode_rate (episodes that ran to the time
    limit), num_episodes, faulted (episodes cut short by a physics failure, left out of the means) and the env's
    per-episode metrics (success_rate, ...; metrics that apply only to some episodes average over those)."""
    obs = env.reset()
    first = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, torch.Tensor] = {}
    faulted = torch.zeros((), dtype=torch.long, device=env.device)
    full = torch.zeros((), dtype=torch.long, device=env.device)
    for step in range(env.max_episode_length):
        if step % EARLY_EXIT_CHECK == 0 and step and bool(first.all()):  # every episode has ended
            break
        obs, _, terminated, truncated, info = env.step(act(obs))
        ended = (terminated | truncated).view(env.num_envs, -1)[:, 0]
        new = ended & ~first
        bad = info["faulted"] & new
        good = new & ~bad
        faulted += bad.sum()
        full += (good & ~terminated.view(env.num_envs, -1)[:, 0]).sum()
        for key, value in info["episode_metrics"].items():
            valid = good & torch.isfinite(value)
            sums[key] = sums.get(key, 0.0) + torch.where(valid, value, torch.zeros_like(value)).double().sum()
            counts[key] = counts.get(key, 0) + valid.sum()
        first |= ended
    env.episode_summary()  # the evaluation's episodes are not training's
    keys = list(sums)
    values = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=env.device) for v in
                          [sums[k] for k in keys] + [counts[k] for k in keys] + [faulted, full]]).tolist()
    n_keys = len(keys)
    out = {k: s / c for k, s, c in zip(keys, values[:n_keys], values[n_keys:2 * n_keys]) if c > 0}
    episodes = values[n_keys + keys.index("episode_length")] if "episode_length" in keys else 0.0
    out["num_episodes"] = episodes
    out["faulted"] = values[-2]
    out["full_episode_rate"] = values[-1] / episodes if episodes else 0.0
    return out


def baselines(env, noise_std: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, dict[str, float]]:
    """The two matched baselines: the deterministic zero action, and the zero action plus the learner's action
    noise of std `noise_std`."""
    zero = zero_action(env)
    return {"zero": evaluate(env, zero), "zero_noise": evaluate(env, with_noise(zero, noise_std, generator))}
