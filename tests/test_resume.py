"""Resuming from nn/last.pth continues a run whole: a run killed with SIGKILL mid-epoch resumes, loses at most that
epoch and keeps a continuous step counter; a resumed learner makes the same update as the uninterrupted run.

The worlds themselves are not saved (HumanoidEnv.get_state says why): a resumed run starts new episodes, so its
rollouts differ from the uninterrupted run's. The PPO test therefore gives the resumed run the uninterrupted run's
epoch-3 rollout (the resumed run still steps its own worlds, which draws the same random numbers); everything else
(weights, optimiser and learning rate, normalisers, discriminator, demo and replay buffers, random streams, counters)
comes from the checkpoint."""

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from coohoi.agents.amp_modules import ReplayBuffer
from coohoi.agents.checkpoint import load_checkpoint, nested_tensors, resume_state
from coohoi.agents.replay import TransitionReplay
from coohoi.agents.train import make_agent
from coohoi.cli import compose
from coohoi.envs import make_env

SMALL = ["task=amp_locomotion", "engine.num_envs=4", "engine.nthread=1", "torch_threads=1",
         "train.eval.every=0", "train.eval.baselines=false", "train.amp.demo_buffer_size=1000",
         "train.amp.replay_buffer_size=1000", "train.amp.batch_size=64"]
TD3 = ["train=td3", "train.td3.steps_per_epoch=6", "train.td3.learning_starts=2", "train.td3.batch_size=32",
       "train.td3.buffer_steps=64"]


def _assert_same(a: dict, b: dict):
    a, b = dict(nested_tensors(a)), dict(nested_tensors(b))
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differ: {different[:5]}"


def test_a_resumed_ppo_run_makes_the_same_update_as_the_uninterrupted_run(tmp_path):
    cfg = compose([*SMALL, "train.max_epochs=3", f"output_dir={tmp_path}", "experiment=a"])
    saved, recorded = tmp_path / "epoch2_last.pth", {}

    def keep_epoch_2_checkpoint(learner, metrics):
        if metrics["epoch"] == 3:  # nn/last.pth still holds epoch 2 (it is written after this call)
            shutil.copy(Path(learner.nn_dir) / "last.pth", saved)

    a, _ = make_agent(cfg, env=make_env(cfg), on_epoch_end=keep_epoch_2_checkpoint)
    play_a = a.play_steps

    def record_epoch_3():
        batch = play_a()
        if a.epoch_num == 3:
            recorded["batch"] = copy.deepcopy(batch)
            recorded["buffer"] = {k: v.clone() for k, v in a.experience_buffer.tensor_dict.items()}
        return batch

    a.play_steps = record_epoch_3
    a.train()
    assert load_checkpoint(saved)["epoch"] == 2

    cfg_b = compose([*SMALL, "train.max_epochs=3", f"output_dir={tmp_path}", "experiment=b"])
    b, _ = make_agent(cfg_b, env=make_env(cfg_b))
    b.restore(str(saved), set_epoch=True)
    assert b.epoch_num == 2 and b.frame == 2 * 4 * 32
    play_b = b.play_steps

    def replay_a_rollout():
        play_b()  # steps the resumed run's own worlds (the same random draws as a's rollout)
        for key, value in recorded["buffer"].items():
            b.experience_buffer.tensor_dict[key].copy_(value)
        return copy.deepcopy(recorded["batch"])

    b.play_steps = replay_a_rollout
    b.train()
    assert b.epoch_num == a.epoch_num == 3
    _assert_same(a.model.state_dict(), b.model.state_dict())
    _assert_same(a.optimizer.state_dict(), b.optimizer.state_dict())
    assert a.last_lr == b.last_lr
    assert torch.equal(a.replay_buffer.data, b.replay_buffer.data) and a.replay_buffer.count == b.replay_buffer.count
    assert torch.equal(a.demo_buffer.data, b.demo_buffer.data)


def test_a_resumed_td3_learner_makes_the_same_first_update(tmp_path):
    cfg = compose([*SMALL, *TD3, "train.max_epochs=2", f"output_dir={tmp_path}", "experiment=a"])
    a, _ = make_agent(cfg, env=make_env(cfg))
    a.train()  # ends with nn/last.pth of epoch 2: a's state is the saved one
    rng_a = torch.get_rng_state()
    cfg_b = compose([*SMALL, *TD3, "train.max_epochs=2", f"output_dir={tmp_path}", "experiment=b"])
    b, _ = make_agent(cfg_b, env=make_env(cfg_b))
    b.restore(str(a.nn_dir / "last.pth"), set_epoch=True)
    assert torch.equal(torch.get_rng_state(), rng_a)
    assert (b.epoch_num, b.frame, b.updates, b.replay.count) == (a.epoch_num, a.frame, a.updates, a.replay.count)
    assert torch.equal(a.generator.get_state(), b.generator.get_state()) and torch.equal(a._std, b._std)
    for learner in (a, b):
        learner.update()
        learner.update()  # the second also steps the actor (policy_delay 2)
    _assert_same(a.state_dict()["model"], b.state_dict()["model"])
    _assert_same(a.state_dict()["optimizer"], b.state_dict()["optimizer"])


def test_buffers_larger_than_the_limit_keep_a_sample_or_start_anew(capsys):
    amp = ReplayBuffer(100, 4, "cpu")
    amp.store(torch.arange(400.0).view(100, 4))
    replay = TransitionReplay(rows=2, steps=8, num_obs=3, num_actions=2, amp_history=2, feature_size=4, device="cpu")
    state = resume_state({"demo": ReplayBuffer(100, 4, "cpu"), "replay_amp": amp, "transitions": replay},
                         max_bytes=40 * 4 * 4, sampled=("replay_amp",))
    assert state["buffers"]["replay_amp"]["count"] == 40 and state["buffers"]["replay_amp"]["held"] == 100
    rows = state["buffers"]["replay_amp"]["data"]
    assert len({tuple(r.tolist()) for r in rows}) == 40 and set(rows[:, 0].tolist()) <= set(range(0, 400, 4))
    assert state["buffers"]["transitions"] is None  # 2 x 8 transitions and 2 x 16 frames: over 640 bytes
    assert state["buffers"]["demo"] is not None  # empty, so it fits
    assert "rng" in state


def _metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").exists() else []
    return [row for row in map(json.loads, lines) if "epoch" in row]


EPOCHS = 8  # the kill comes after epoch 2, with room for a slow poll before the run would end


@pytest.mark.parametrize("learner", ["ppo", "td3"])
def test_a_run_killed_mid_epoch_resumes_losing_at_most_that_epoch_with_a_continuous_step_counter(tmp_path, learner):
    extra = TD3 if learner == "td3" else []
    args = [sys.executable, "-m", "coohoi.cli", "train", *SMALL, *extra, f"train.max_epochs={EPOCHS}",
            f"output_dir={tmp_path}", "experiment=k"]
    run_dir = tmp_path / "k"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while len(_metrics(run_dir)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # inside epoch 3 (or later)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    done = len(_metrics(run_dir))
    assert 2 <= done < EPOCHS
    saved = load_checkpoint(run_dir / "nn" / "last.pth")["epoch"]
    assert saved >= done - 1  # at most the epoch in progress (and one whose save the kill cut short) is lost
    resumed = subprocess.run([*args, f"checkpoint={run_dir / 'nn' / 'last.pth'}", "resume=true"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming {run_dir / 'nn' / 'last.pth'} at epoch {saved}" in resumed.stdout
    rows = _metrics(run_dir)
    assert [row["epoch"] for row in rows] == list(range(1, EPOCHS + 1))
    per_epoch = rows[0]["frames"]
    assert [row["frames"] for row in rows] == [per_epoch * e for e in range(1, EPOCHS + 1)]
    assert load_checkpoint(run_dir / "nn" / "last.pth")["epoch"] == EPOCHS
