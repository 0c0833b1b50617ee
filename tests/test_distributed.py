"""Multi-process training on torch.distributed with the gloo backend (the CPU's): two ranks train in step (every
rank holds the same weights after every update), rank 0 alone writes the run folder, and a failing rank stops them
all."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.multiprocessing as mp

from coohoi.agents.amp_modules import RunningMeanStd
from coohoi.agents.distributed import SINGLE, Distributed, init_distributed

SMALL = ["task=amp_locomotion", "engine.num_envs=4", "engine.nthread=1", "torch_threads=1", "train.eval.every=0",
         "train.eval.baselines=false", "train.amp.demo_buffer_size=1000", "train.amp.replay_buffer_size=1000"]
LEARNERS = {
    "ppo": [],
    "td3": ["train=td3", "train.td3.steps_per_epoch=6", "train.td3.learning_starts=2", "train.td3.batch_size=32"],
    "mappo": ["task=team_carry_long_box", "train.ppo.critic=central"],
}


def _torchrun(args, script=None, timeout=240):
    target = [script] if script else ["-m", "coohoi.cli"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           *target, "train", *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("learner", LEARNERS)
def test_two_gloo_processes_train_three_epochs_holding_the_same_weights_after_every_update(tmp_path, learner):
    done = _torchrun([*SMALL, *LEARNERS[learner], "train.max_epochs=3", f"output_dir={tmp_path}", "experiment=d"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "training on 2 processes (gloo), 4 environments each" in done.stdout
    run_dir = tmp_path / "d"
    rows = [row for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "epoch" in row]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert [row["dist/weight_spread"] for row in rows] == [0.0, 0.0, 0.0]  # every weight equal on both ranks
    per_rank = rows[0]["frames"] // 2
    assert [row["frames"] for row in rows] == [2 * per_rank * e for e in (1, 2, 3)]  # both ranks' frames
    # Rank 0 alone writes: one config, one metrics file, one tensorboard file, its checkpoint.
    files = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    assert files[:3] == ["config.yaml", "metrics.jsonl", "nn/last.pth"] and len(files) == 4
    assert files[3].startswith("summaries/events.out.tfevents.")
    assert torch.load(run_dir / "nn" / "last.pth", weights_only=False)["epoch"] == 3


def test_a_two_process_run_resumes_on_two_processes(tmp_path):
    args = [*SMALL, f"output_dir={tmp_path}", "experiment=r"]
    assert _torchrun([*args, "train.max_epochs=2"]).returncode == 0
    last = tmp_path / "r" / "nn" / "last.pth"
    done = _torchrun([*args, "train.max_epochs=4", f"checkpoint={last}", "resume=true"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"resuming {last} at epoch 2" in done.stdout
    rows = [row for row in map(json.loads, (tmp_path / "r" / "metrics.jsonl").read_text().splitlines())]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert [row["dist/weight_spread"] for row in rows] == [0.0] * 4
    assert [row["frames"] for row in rows] == [rows[0]["frames"] * e for e in (1, 2, 3, 4)]


FAILING_RANK = textwrap.dedent('''
    import os
    import sys

    import coohoi.agents.rlgames.agent as agent
    from coohoi.cli import main

    if os.environ["RANK"] == "1":
        play_steps = agent.AMPAgent.play_steps

        def fail_after_the_rollout_of_epoch_2(self):  # rank 0 saved epoch 1 before its own epoch-2 rollout
            batch = play_steps(self)
            if self.epoch_num >= 2:
                raise RuntimeError("rank 1 fails on purpose")
            return batch

        agent.AMPAgent.play_steps = fail_after_the_rollout_of_epoch_2
    sys.exit(main())
''')


def test_a_failing_rank_stops_every_rank(tmp_path):
    script = tmp_path / "failing_rank.py"
    script.write_text(FAILING_RANK)
    done = _torchrun([*SMALL, "train.max_epochs=20", f"output_dir={tmp_path}", "experiment=f"], script=str(script),
                     timeout=120)  # no rank waits for the failed one
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "rank 1 fails on purpose" in out
    assert "Root Cause" in out and "rank      : 1" in out
    rows = (tmp_path / "f" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(row)["epoch"] for row in rows] == [1]  # rank 0 waited in epoch 2's update, then stopped
    assert torch.load(tmp_path / "f" / "nn" / "last.pth", weights_only=False)["epoch"] == 1  # work kept


def _pool_two_ranks(rank, store_path, result_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=2)
    ctx = Distributed(rank=rank, world_size=2)
    norm = RunningMeanStd(2)
    norm.update(torch.tensor([[0.0, 10.0], [2.0, 10.0]]))  # the same start on both ranks: mean (1, 10), var (1, 0)
    norm.update(torch.tensor([[4.0, 20.0], [4.0, 20.0]]) if rank == 0 else torch.tensor([[-2.0, 0.0], [-2.0, 0.0]]))
    ctx.sync_normalizers(norm)
    torch.save({"mean": norm.mean, "var": norm.var, "count": norm.count}, f"{result_path}.{rank}")
    dist.destroy_process_group()


def test_pooled_normaliser_statistics_weigh_every_rank_alike(tmp_path):
    """Rank 0 adds (4, 20) twice, rank 1 (-2, 0) twice to the same start [(0, 10), (2, 10)]: each rank's statistics
    then cover 4 samples; pooled, the mean is the mean of the two ranks' means and the variance the mean of their
    second moments less the squared mean (exactly those of the start plus both ranks' samples at half weight)."""
    mp.spawn(_pool_two_ranks, args=(str(tmp_path / "store"), str(tmp_path / "result")), nprocs=2)
    r0, r1 = (torch.load(f"{tmp_path / 'result'}.{r}") for r in (0, 1))
    for key in r0:
        assert torch.equal(r0[key], r1[key])
    # rank 0: samples 0, 2, 4, 4 / 10, 10, 20, 20 -> mean (2.5, 15); rank 1: 0, 2, -2, -2 / 10, 10, 0, 0 -> (-0.5, 5)
    assert r0["mean"].tolist() == pytest.approx([1.0, 10.0])
    second = [(0 + 4 + 16 + 16) / 4, (100 + 100 + 400 + 400) / 4], [(0 + 4 + 4 + 4) / 4, (100 + 100) / 4]
    expected_var = [(second[0][i] + second[1][i]) / 2 - [1.0, 10.0][i] ** 2 for i in range(2)]
    assert r0["var"].tolist() == pytest.approx(expected_var)
    assert r0["count"].item() == 4


def test_a_single_process_is_rank_0_of_1_and_changes_nothing(monkeypatch):
    from coohoi.cli import compose

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = compose(["seed=5"])
    assert init_distributed(cfg) is SINGLE and cfg.seed == 5 and SINGLE.is_main and not SINGLE.enabled
    assert SINGLE.broadcast_values([1.5, 2.0]) == [1.5, 2.0] and SINGLE.weight_spread([torch.ones(3)]) == 0.0
