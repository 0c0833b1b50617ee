"""The environment step never synchronises the host with the device (so that it can be captured as one graph): the
check (coohoi.sync_check) on Warp's CPU device, and that it would catch a step that does.
COOHOI_TEST_WARP_DEVICE=cuda:0 runs the env steps on a GPU under torch's own sync debug mode."""

from __future__ import annotations

import os

import pytest
import torch
from _env_helpers import env_config

from coohoi.envs import make_env
from coohoi.envs.humanoid_env import START_POOL_REFILL_STEPS
from coohoi.sync_check import HostSyncError, forbid_host_sync

pytest.importorskip("mujoco_warp")
N = 4
WARP_DEVICE = os.environ.get("COOHOI_TEST_WARP_DEVICE", "cpu")


def test_the_check_catches_host_reads_and_data_dependent_shapes():
    x = torch.arange(6.0)
    mask = x > 2
    for op in (lambda: x.sum().item(), lambda: x.tolist(), lambda: bool(mask.any()), lambda: float(x[0]),
               lambda: torch.nonzero(mask), lambda: x[mask], lambda: x.nonzero(), lambda: x.numpy(),
               lambda: x.masked_select(mask), lambda: x.__setitem__(mask, 0.0)):
        with forbid_host_sync(), pytest.raises(HostSyncError):
            op()
    with forbid_host_sync():  # fixed-shape device work passes
        y = torch.where(mask, x, torch.zeros_like(x)).cumsum(0)
        x[torch.tensor([1, 2])] = y[:2]
    assert x.sum().item() == 12.0  # and everything is restored afterwards


# A team task too: three slots, team sizes 1-3 drawn per environment at every reset.
TEAM = ("task.scene.num_humanoids=3", "task.env.team_size_range=[1,3]")


@pytest.fixture(scope="module", params=["amp_locomotion", "carry_box", "team_carry_table"])
def warp_env(request, dataset):
    extra = TEAM if request.param == "team_carry_table" else ()
    return make_env(env_config(request.param, dataset, N, "engine=warp", f"engine.device={WARP_DEVICE}",
                               "task.env.reset_mode=mix", *extra))


def test_env_steps_with_resets_and_faults_do_not_synchronise(warp_env):
    env = warp_env
    env.reset()
    env.set_assist(type("Assist", (), dict(enabled=True, height=None, height_kp=2000.0, height_kd=200.0,
                                           max_force=600.0, upright_kp=600.0, upright_kd=60.0, max_torque=300.0))())
    g = torch.Generator().manual_seed(0)
    ended = 0
    for i in range(2 * START_POOL_REFILL_STEPS + 1):  # two refills of the start pool
        actions = torch.randn(env.num_rows, 28, generator=g).to(env.device)
        if i == 3:
            actions[0, 4] = float("nan")  # a faulted world (slot 0 is always active), reset in the same step
        if i == 5:
            env.progress[2] = env.max_episode_length - 1  # a time-out
        with forbid_host_sync(env.device):
            obs, reward, terminated, truncated, info = env.step(actions)
        ended += int((terminated | truncated).sum())
        assert torch.isfinite(obs).all()
    assert ended >= 2
    summary = env.episode_summary()
    assert summary["faults/nonfinite_actions"] == 1.0 and summary["num_episodes"] >= 1.0


def test_the_check_fails_on_a_step_that_reads_a_value(warp_env, monkeypatch):
    env = warp_env
    env.reset()
    reward = env._task_reward

    def reward_with_item():
        r, terms = reward()
        r.mean().item()  # e.g. a debug print of the mean reward
        return r, terms

    monkeypatch.setattr(env, "_task_reward", reward_with_item)
    with forbid_host_sync(env.device), pytest.raises((HostSyncError, RuntimeError), match="item|synchroniz"):
        env.step(torch.zeros(env.num_rows, 28, device=env.device))
