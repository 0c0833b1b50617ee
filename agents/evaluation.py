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


def summarize(episodes: dict[str, torch.Tensor]) -> dict[str, float]:
    """Means over episodes ([E] each, as first_episodes gives): every metric over the episodes where it is finite,
    faulted episodes left out; num_episodes (not faulted), faulted, and full_episode_rate."""
    faulted = episodes["faulted"].nan_to_num(0.0) > 0
    counted = ~faulted & ~torch.isnan(episodes["faulted"])
    keys = [k for k in episodes if k not in ("faulted", "full")]
    stacked = torch.stack([episodes[k] for k in keys])  # [metrics, E]
    valid = counted & torch.isfinite(stacked)
    sums = torch.where(valid, stacked, torch.zeros_like(stacked)).sum(dim=1)
    counts = valid.sum(dim=1)
    totals = torch.stack((sums, counts.to(sums.dtype))).tolist()  # one host transfer
    out = {k: s / c for k, s, c in zip(keys, totals[0], totals[1]) if c > 0}
    num = float(counted.sum())
    out["num_episodes"] = num
    out["faulted"] = float(faulted.sum())
    out["full_episode_rate"] = float((episodes["full"].nan_to_num(0.0) > 0)[counted].sum()) / num if num else 0.0
    return out


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
# The published metric sets (reference §8) by the env's metric names; a task without a metric reports it as null.
METRIC_SETS = {
    "coohoi": ("success_rate", "precision_cm", "completion_time_s"),
    "teamhoi": ("sticky_success_rate", "final_distance_xy_m", "cooperation_fraction", "jerk_mps3"),
    "episode": ("episode_length", "full_episode_rate", "final_distance_m", "reached_rate", "held_rate",
                "placed_rate", "load_imbalance"),
}
PROGRESS_WIDTH = 30


class ProgressBar:
    """`[#####.....] done/total episodes` on one line of a stream, redrawn when the count changes."""

    def __init__(self, total: int, stream):
        self.total, self.stream, self.shown = total, stream, -1

    def __call__(self, done: int, _total: int | None = None) -> None:
        if done != self.shown:
            filled = PROGRESS_WIDTH * done // max(1, self.total)
            self.stream.write(f"\r[{'#' * filled}{'.' * (PROGRESS_WIDTH - filled)}] {done}/{self.total} episodes")
            self.stream.flush()
            self.shown = done

    def close(self) -> None:
        self.stream.write("\n")


def eval_overrides(settings) -> list[str]:
    """The task settings that eval's shorthands stand for (object kind, a fixed team size)."""
    extra = []
    if settings.object_kind is not None:
        extra.append(f"task.scene.object.kind={settings.object_kind}")
    if settings.team_size is not None:
        n = int(settings.team_size)
        extra += [f"task.env.team_size_range=[{n},{n}]", f"task.scene.num_humanoids={n}"]
    return extra


def run_episodes(env, act, episodes: int, seed: int, progress=None) -> tuple[list[dict[str, float]], list[str]]:
    """`episodes` episodes, engine.num_envs at a time: round r re-seeds the env with seed + r and plays one episode
    per environment from a fresh start (first_episodes). progress(episodes done, episodes) is called as they end.
    Returns one row per episode and the metric names."""
    rows: list[dict[str, float]] = []
    rounds = -(-episodes // env.num_envs)
    for r in range(rounds):
        env.seed(seed + r)
        base = len(rows)
        on_step = None if progress is None else (lambda _step, done: progress(min(episodes, base + done), episodes))
        result = first_episodes(env, act, on_step)
        keys = list(result)
        columns = torch.stack([result[k] for k in keys]).T.tolist()  # [num_envs, metrics], one transfer
        for i, values in enumerate(columns[:episodes - base]):
            rows.append({"episode": base + i, "round": r, "seed": seed + r, "env": i, **dict(zip(keys, values))})
        if progress is not None:
            progress(len(rows), episodes)
    return rows, keys


def _finite_mean(values: list[float]) -> tuple[float | None, int]:
    good = [v for v in values if v == v and abs(v) != float("inf")]
    return (sum(good) / len(good) if good else None), len(good)


def metric_report(rows: list[dict[str, float]], keys: list[str]) -> dict:
    """Both published metric sets and ours, as means over the episodes where each applies (faulted episodes left
    out), with the number of episodes behind each."""
    counted = [r for r in rows if not r.get("faulted", 0) > 0]
    report: dict = {}
    for group, names in METRIC_SETS.items():
        report[group] = {}
        for name in names:
            if name == "full_episode_rate":
                values = [float(r["full"] > 0) for r in counted]
            elif name in keys:
                values = [r[name] for r in counted]
            else:
                report[group][name] = {"mean": None, "episodes": 0, "note": "not measured by this task"}
                continue
            mean, n = _finite_mean(values)
            report[group][name] = {"mean": mean, "episodes": n}
    report["faulted_episodes"] = len(rows) - len(counted)
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
    extra = eval_overrides(settings)
    if extra:
        from coohoi.agents.policy import apply_overrides

        cfg = apply_overrides(cfg, extra)
    cfg, env, act, policy = policy_and_env(cfg, [*overrides, *extra], settings.policy, settings.deterministic)
    name = Path(policy.source).stem if policy is not None else "zero_action"
    out = Path(settings.out) if settings.out else Path(str(cfg.output_dir)) / "eval" / f"{cfg.task.name}_{name}"
    progress = ProgressBar(int(settings.episodes), sys.stderr) if settings.progress else None
    rows, keys = run_episodes(env, act, int(settings.episodes), int(settings.seed), progress)
    if progress is not None:
        progress.close()
    report = metric_report(rows, keys)
    summary = {"policy": policy.source if policy else "zero action", "kind": policy.kind if policy else "zero",
               "task": str(cfg.task.name), "engine": str(cfg.engine.name), "num_envs": env.num_envs,
               "num_agents": env.num_agents, "episodes": len(rows), "seed": int(settings.seed),
               "deterministic": bool(settings.deterministic), **report}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    with (out / "episodes.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    title = (f"coohoi eval: {summary['policy']} on {summary['task']} ({summary['engine']}, {env.num_agents} agent"
             f"{'s' if env.num_agents > 1 else ''}), {len(rows)} episodes, seeds {settings.seed}.."
             f"{settings.seed + rows[-1]['round']}")
    print(format_report(report, title), flush=True)
    print(f"wrote {out / 'metrics.json'} and {out / 'episodes.csv'}", flush=True)
    return 0
