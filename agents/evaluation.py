"""Evaluation: every environment plays one episode from a fresh start, and the means over those episodes.

Training logs the mean length of the episodes that end in an epoch, from a stochastic policy. A fair comparison
holds the noise fixed: the stochastic training metric against the zero action plus the same action noise, and a
deterministic evaluation against the deterministic zero action. `baselines()` measures both before training;
`evaluate()` runs a policy under the same protocol (one episode per environment, up to the episode length).

`coohoi eval` runs that protocol for N episodes with fixed seeds on a checkpoint, an exported ONNX file (no
rl-games involved: coohoi.agents.policy) or the zero action, and reports both published metric sets:

    coohoi eval checkpoint=runs/carry_box/nn/last.pth eval.episodes=256 engine.num_envs=64
    coohoi eval checkpoint=runs/carry_box/nn/last.onnx engine=warp engine.num_envs=4096 eval.episodes=4096
    coohoi eval checkpoint=runs/team/nn/last.pth eval.team_size=4 eval.object_kind=round_table
    coohoi eval checkpoint=runs/carry_box/nn/last.pth task.env.box_distance_range=[1,3]   # placement

It writes <out>/metrics.json (CooHOI: success, precision, completion time; TeamHOI: sticky success, xy distance,
cooperation, jerk; episode statistics) and <out>/episodes.csv (one row per episode: round, seed, environment and
every metric), prints the table and shows a progress bar on stderr.
"""

from __future__ import annotations

from typing import Callable

import torch

Act = Callable[[torch.Tensor], torch.Tensor]
# Steps between checks (a host sync) whether every environment's episode has ended.
EARLY_EXIT_CHECK = 10


def training_episode_metrics(summary: dict[str, float]) -> dict[str, float]:
    """The env's episode_summary() as both learners log it: episodes/<metric>, the episode length as
    episodes/length (faulted episodes left out), and the fault counts as they are (faults/<kind>)."""
    return {k if k.startswith("faults/") else f"episodes/{'length' if k == 'episode_length' else k}": v
            for k, v in summary.items()}


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
def first_episodes(env, act: Act, on_step: Callable[[int, int], None] | None = None) -> dict[str, torch.Tensor]:
    """Reset every environment and run until each has ended one episode (at most max_episode_length steps). Returns
    each environment's first episode [num_envs]: the env's per-episode metrics (info["episode_metrics"]: length,
    termination reasons, success, ...; NaN where a metric does not apply), `faulted` (cut short by a physics failure)
    and `full` (ran to the time limit). on_step(step, episodes ended) is called at every early-exit check."""
    obs = env.reset()
    ended_once = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    out: dict[str, torch.Tensor] = {}
    for step in range(env.max_episode_length):
        if step % EARLY_EXIT_CHECK == 0 and step:
            done = int(ended_once.sum())  # one host sync per check
            if on_step is not None:
                on_step(step, done)
            if done == env.num_envs:
                break
        obs, _, terminated, truncated, info = env.step(act(obs))
        ended = (terminated | truncated).view(env.num_envs, -1)[:, 0]
        new = ended & ~ended_once
        values = dict(info["episode_metrics"])
        values["faulted"] = info["faulted"]
        values["full"] = ~terminated.view(env.num_envs, -1)[:, 0]
        for key, value in values.items():
            value = value.to(torch.float64)
            out[key] = torch.where(new, value, out[key]) if key in out else torch.where(new, value, float("nan"))
        ended_once |= ended
    env.episode_summary()  # the evaluation's episodes are not training's
    return out


def episode_means(episodes: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, int], int, int]:
    """Over episodes ([E] each, as first_episodes gives), faulted episodes left out: each metric's mean over the
    episodes where it is finite and their number (`full`, 1 or 0, is a metric like the others), then the number of
    episodes counted and of faulted ones."""
    faulted = episodes["faulted"].nan_to_num(0.0) > 0
    counted = ~faulted & ~torch.isnan(episodes["faulted"])
    keys = [k for k in episodes if k != "faulted"]
    stacked = torch.stack([episodes[k] for k in keys])  # [metrics, E]
    valid = counted & torch.isfinite(stacked)
    sums = torch.where(valid, stacked, torch.zeros_like(stacked)).sum(dim=1)
    totals, counts = torch.stack((sums, valid.sum(dim=1).to(sums.dtype))).tolist()  # one host transfer
    means = {k: t / c for k, t, c in zip(keys, totals, counts) if c > 0}
    return means, {k: int(c) for k, c in zip(keys, counts)}, int(counted.sum()), int(faulted.sum())


def summarize(episodes: dict[str, torch.Tensor]) -> dict[str, float]:
    """The means of episode_means, with num_episodes (not faulted), faulted and full_episode_rate."""
    means, _, num, faulted = episode_means(episodes)
    full = means.pop("full", 0.0)
    return {**means, "num_episodes": float(num), "faulted": float(faulted), "full_episode_rate": full}


def evaluate(env, act: Act) -> dict[str, float]:
    """One episode per environment from a fresh start (first_episodes) and the means over them (summarize):
    episode_length, full_episode_rate, num_episodes, faulted and the env's per-episode metrics."""
    return summarize(first_episodes(env, act))


def baselines(env, noise_std: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, dict[str, float]]:
    """The two matched baselines: the deterministic zero action, and the zero action plus the learner's action
    noise of std `noise_std`."""
    zero = zero_action(env)
    return {"zero": evaluate(env, zero), "zero_noise": evaluate(env, with_noise(zero, noise_std, generator))}


# ---- `coohoi eval` ------------------------------------------------------------------------------------------------
# The published metric sets (reference §8) by the env's metric names (full_episode_rate: first_episodes' `full`); a
# task without a metric reports it as null.
METRIC_SETS = {
    "coohoi": ("success_rate", "precision_cm", "completion_time_s"),
    "teamhoi": ("sticky_success_rate", "final_distance_xy_m", "cooperation_fraction", "jerk_mps3"),
    "episode": ("episode_length", "full_episode_rate", "final_distance_m", "reached_rate", "held_rate",
                "placed_rate", "load_imbalance"),
}
PROGRESS_WIDTH = 30
EPISODE_COLUMNS = ("episode", "round", "seed", "env")  # episodes.csv: who each episode was, then its metrics


class ProgressBar:
    """`[#####.....] done/total episodes` on one line of a stream, redrawn when the count changes."""

    def __init__(self, total: int, stream):
        self.total, self.stream, self.shown = total, stream, -1

    def __call__(self, done: int) -> None:
        if done != self.shown:
            filled = PROGRESS_WIDTH * done // max(1, self.total)
            self.stream.write(f"\r[{'#' * filled}{'.' * (PROGRESS_WIDTH - filled)}] {done}/{self.total} episodes")
            self.stream.flush()
            self.shown = done

    def close(self) -> None:
        self.stream.write("\n")


def with_shorthands(cfg, overrides: list[str]):
    """The config and command line with eval's shorthands (eval.object_kind, eval.team_size) applied as the task
    settings they stand for (shared by `coohoi eval` and its --cfg)."""
    from coohoi.agents.config import section_config
    from coohoi.agents.policy import apply_overrides

    settings = section_config("eval", cfg.eval)
    extra = []
    if settings.object_kind is not None:
        extra.append(f"task.scene.object.kind={settings.object_kind}")
    if settings.team_size is not None:
        n = int(settings.team_size)
        extra += [f"task.env.team_size_range=[{n},{n}]", f"task.scene.num_humanoids={n}"]
    return apply_overrides(cfg, extra), [*overrides, *extra]


def run_episodes(env, act, episodes: int, seed: int, progress=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`episodes` episodes, engine.num_envs at a time: round r re-seeds the env with seed + r and plays one episode
    per environment from a fresh start (first_episodes); progress(episodes done) is called as they end. Returns
    each episode's EPISODE_COLUMNS [E, 4] and its metrics ({name: [E]})."""
    ids, parts = [], []
    rounds = -(-episodes // env.num_envs)
    for r in range(rounds):
        env.seed(seed + r)
        base, take = r * env.num_envs, min(env.num_envs, episodes - r * env.num_envs)
        on_step = None if progress is None else (lambda _step, done: progress(min(episodes, base + done)))
        parts.append({k: v[:take] for k, v in first_episodes(env, act, on_step).items()})
        index = torch.arange(take)
        ids.append(torch.stack((base + index, torch.full_like(index, r), torch.full_like(index, seed + r), index), 1))
        if progress is not None:
            progress(base + take)
    return torch.cat(ids), {k: torch.cat([part[k].cpu() for part in parts]) for k in parts[0]}


def metric_report(episodes: dict[str, torch.Tensor]) -> dict:
    """Both published metric sets and ours, as means over the episodes where each applies (faulted episodes left
    out), with the number of episodes behind each."""
    means, counts, _, faulted = episode_means(episodes)
    report: dict = {}
    for group, names in METRIC_SETS.items():
        report[group] = {}
        for name in names:
            key = "full" if name == "full_episode_rate" else name
            report[group][name] = ({"mean": means.get(key), "episodes": counts[key]} if key in counts else
                                   {"mean": None, "episodes": 0, "note": "not measured by this task"})
    report["faulted_episodes"] = faulted
    return report


def format_report(report: dict, title: str) -> str:
    lines = [title, f"{'set':<8} {'metric':<22} {'mean':>10} {'episodes':>9}"]
    for group in METRIC_SETS:
        for name, v in report[group].items():
            mean = "n/a" if v["mean"] is None else f"{v['mean']:.4g}"
            lines.append(f"{group:<8} {name:<22} {mean:>10} {v['episodes']:>9}")
    lines.append(f"faulted episodes (physics failures, left out): {report['faulted_episodes']}")
    return "\n".join(lines)


def evaluate_command(cfg, overrides: list[str] = ()) -> int:
    """`coohoi eval`: a checkpoint, an exported ONNX file or the zero action for eval.episodes episodes with fixed
    seeds, on either engine; writes metrics.json and episodes.csv and prints the table. A policy whose metadata does
    not match the task is refused, naming what differs."""
    import csv
    import json
    import sys
    from pathlib import Path

    from coohoi.agents.config import section_config
    from coohoi.agents.play import policy_and_env

    settings = section_config("eval", cfg.eval)
    cfg, overrides = with_shorthands(cfg, list(overrides))
    cfg, env, act, policy = policy_and_env(cfg, overrides, settings.policy, settings.deterministic)
    if settings.out:
        out = Path(settings.out)
    elif policy is not None:  # beside the policy: runs/<experiment>/nn/last_eval_<task>/
        out = Path(policy.source).parent / f"{Path(policy.source).stem}_eval_{cfg.task.name}"
    else:
        out = Path(str(cfg.output_dir)) / "eval" / f"zero_action_{cfg.task.name}"
    progress = ProgressBar(int(settings.episodes), sys.stderr) if settings.progress else None
    ids, episodes = run_episodes(env, act, int(settings.episodes), int(settings.seed), progress)
    if progress is not None:
        progress.close()
    report = metric_report(episodes)
    summary = {"policy": policy.source if policy else "zero action", "kind": policy.kind if policy else "zero",
               "task": str(cfg.task.name), "engine": str(cfg.engine.name), "num_envs": env.num_envs,
               "num_agents": env.num_agents, "episodes": len(ids), "seed": int(settings.seed),
               "deterministic": bool(settings.deterministic), **report}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    with (out / "episodes.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*EPISODE_COLUMNS, *episodes])
        writer.writerows([*i, *v] for i, v in zip(ids.tolist(), torch.stack(list(episodes.values()), 1).tolist()))
    title = (f"coohoi eval: {summary['policy']} on {summary['task']} ({summary['engine']}, {env.num_agents} agent"
             f"{'s' if env.num_agents > 1 else ''}), {len(ids)} episodes, seeds {settings.seed}.."
             f"{int(ids[-1, 2])}")
    print(format_report(report, title), flush=True)
    print(f"wrote {out / 'metrics.json'} and {out / 'episodes.csv'}", flush=True)
    return 0
