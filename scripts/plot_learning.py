"""Learning curves of training runs from their metrics.jsonl, as one PNG and as markdown tables.

For each run: the training episode length (stochastic) against the zero action plus the same action noise, the
deterministic evaluation against the deterministic zero action, the style reward per step and the discriminator's
mean logits on demo and policy samples, each against frames and against wall-clock minutes. Carry runs add the
rates of episodes that reached the box, held it for a second and succeeded; team runs the task and held rewards per
agent step and TeamHOI's sticky success. Needs matplotlib
(`pip install -e ".[plot]"`).

    python scripts/plot_learning.py runs/loco_ppo runs/loco_td3 --out docs/learning/loco.png [--table-every 50]
    python scripts/plot_learning.py runs/* --summary 15      # one row per run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(run_dir: Path) -> tuple[dict, list[dict]]:
    """The run's baselines and its per-epoch rows (a resumed run appends to the same file)."""
    baselines, rows = {}, []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "baselines" in row:
            baselines = baselines or row["baselines"]
        elif "epoch" in row:
            rows.append(row)
    return baselines, rows


def wall_minutes(rows: list[dict]) -> list[float]:
    """Minutes since the run started, continued across resumes (time/elapsed_s restarts at a resume)."""
    out, offset, previous = [], 0.0, 0.0
    for r in rows:
        t = r.get("time/elapsed_s", 0.0)
        if t < previous:
            offset += previous
        previous = t
        out.append((offset + t) / 60.0)
    return out


PANELS = (
    ("episodes/length", "training episode length (steps)", "baseline/zero_noise/episode_length"),
    ("eval/episode_length", "deterministic evaluation (steps)", "baseline/zero/episode_length"),
    ("rewards/style_per_step", "style reward per step", None),
    ("amp/demo_logit", "discriminator logits (demo solid, policy dashed)", None),
)
CARRY_PANELS = (("episodes/reached_rate", "training episodes that reached the box", None),
                ("episodes/held_rate", "training episodes that held the box for 1 s", None),
                ("episodes/success_rate", "training episodes that succeeded", None))
# Team runs (coohoi.envs.team_carry) add the team task reward, the held reward and TeamHOI's sticky success.
TEAM_PANELS = (("rewards/task_per_step", "task reward per agent step", None),
               ("reward_terms/held", "held reward per agent step", None),
               ("episodes/sticky_success_rate", "training episodes with sticky success (TeamHOI)", None))


def plot(runs: list[Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {run.name: load(run) for run in runs}
    panels = list(PANELS)
    if any("episodes/held_rate" in r for _, rows in data.values() for r in rows):
        panels += CARRY_PANELS
    if any("episodes/sticky_success_rate" in r for _, rows in data.values() for r in rows):
        panels += TEAM_PANELS
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, 2.6 * len(panels)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, (baselines, rows)) in enumerate(data.items()):
        color = colors[i % len(colors)]
        frames = [r["frames"] / 1e6 for r in rows]
        minutes = wall_minutes(rows)
        for p, (key, title, baseline_key) in enumerate(panels):
            for col, xs in enumerate((frames, minutes)):
                ax = axes[p][col]
                pts = [(x, r[key]) for x, r in zip(xs, rows) if key in r]
                if pts:
                    ax.plot(*zip(*pts), color=color, label=name, lw=1.2)
                if key == "amp/demo_logit":
                    pts = [(x, r["amp/policy_logit"]) for x, r in zip(xs, rows) if "amp/policy_logit" in r]
                    if pts:
                        ax.plot(*zip(*pts), color=color, ls="--", lw=1.0)
                if baseline_key and rows and baseline_key in rows[0]:
                    ax.axhline(rows[0][baseline_key], color=color, ls=":", lw=1.0)
                ax.set_title(title + (" (dotted: matched baseline)" if baseline_key else ""), fontsize=9)
                ax.set_xlabel("frames (millions)" if col == 0 else "wall-clock minutes", fontsize=8)
                ax.tick_params(labelsize=8)
    for p, (key, _, _) in enumerate(panels):
        if key == "rewards/style_per_step":  # the untrained discriminator's first epoch would set the scale
            values = sorted(r[key] for _, rows in data.values() for r in rows[3:] if key in r)
            if values:
                for col in range(2):
                    axes[p][col].set_ylim(0.0, 1.1 * values[int(0.99 * (len(values) - 1))])
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


def _speed(row: dict) -> str:
    return f"{row['eval/root_speed_mps']:.2f} m/s" if "eval/root_speed_mps" in row else "-"


def summary(runs: list[Path], last_minutes: float) -> str:
    """One row per run: its budget, baselines, and deterministic evaluations at the end, averaged over the last
    `last_minutes` (single evaluations of 64 episodes fluctuate) and at their best."""
    lines = [f"| run | minutes | frames | zero action / + noise | final eval (full episodes) | mean eval, last {last_minutes:.0f} min "
             "| best eval | final root speed | final style / step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        baselines, rows = load(run)
        minutes = wall_minutes(rows)
        evals = [(m, r) for m, r in zip(minutes, rows) if "eval/episode_length" in r]
        if not evals:
            continue
        end, last = evals[-1]
        window = [r["eval/episode_length"] for m, r in evals if m >= end - last_minutes]
        z, zn = baselines.get("zero", {}), baselines.get("zero_noise", {})
        lines.append(f"| {run.name} | {minutes[-1]:.0f} | {rows[-1]['frames'] / 1e6:.2f} M "
                     f"| {z.get('episode_length', float('nan')):.1f} / {zn.get('episode_length', float('nan')):.1f} "
                     f"| {last['eval/episode_length']:.1f} ({100 * last.get('eval/full_episode_rate', 0):.0f}%) "
                     f"| {sum(window) / len(window):.1f} | {max(r['eval/episode_length'] for _, r in evals):.1f} "
                     f"| {_speed(last)} | {rows[-1].get('rewards/style_per_step', float('nan')):.3f} |")
    return "\n".join(lines)


def table(run: Path, every: int) -> str:
    """Markdown table of every `every`-th evaluated epoch (and the last)."""
    baselines, rows = load(run)
    minutes = wall_minutes(rows)
    keep = [i for i, r in enumerate(rows) if "eval/episode_length" in r]
    keep = [i for n, i in enumerate(keep) if n % max(every, 1) == 0 or i == keep[-1]] if keep else []
    z, zn = baselines.get("zero", {}), baselines.get("zero_noise", {})
    carry = any("eval/held_rate" in r for r in rows)
    carry_head = " reached (train / eval) | held 1 s (train / eval) | success (train / eval) |"
    lines = [f"{run.name}: baselines zero action {z.get('episode_length', float('nan')):.1f} steps, zero action + noise "
             f"{zn.get('episode_length', float('nan')):.1f} steps",
             "| epoch | frames | minutes | training ep len | eval ep len (full episodes) | eval root speed | style / step | "
             "disc logits demo / policy |" + (carry_head if carry else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if carry else "")]
    for i in keep:
        r = rows[i]
        line = (f"| {r['epoch']} | {r['frames'] / 1e6:.2f} M | {minutes[i]:.0f} | {r.get('episodes/length', float('nan')):.1f} "
                f"| {r['eval/episode_length']:.1f} ({100 * r.get('eval/full_episode_rate', 0):.0f}%) "
                f"| {_speed(r)} "
                f"| {r['rewards/style_per_step']:.3f} | {r.get('amp/demo_logit', float('nan')):.2f} / "
                f"{r.get('amp/policy_logit', float('nan')):.2f} |")
        if carry:
            for key in ("reached_rate", "held_rate", "success_rate"):
                line += f" {100 * r.get('episodes/' + key, 0):.1f}% / {100 * r.get('eval/' + key, 0):.1f}% |"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="PNG to write")
    parser.add_argument("--table-every", type=int, default=1, help="print every n-th evaluation in the tables")
    parser.add_argument("--summary", type=float, metavar="MINUTES",
                        help="print one row per run instead, averaging evaluations over the last MINUTES")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.runs, args.summary))
        return
    for run in args.runs:
        print(table(run, args.table_every), "\n")
    if args.out:
        plot(args.runs, args.out)


if __name__ == "__main__":
    main()
