"""The assistance curriculum: the pelvis forces (analytic values), their schedule, that they hold a humanoid up, and
that they vanish at the end of the curriculum and in evaluation."""

from __future__ import annotations


import pytest
import torch
from _env_helpers import env_config

from coohoi.agents.config import AssistConfig
from coohoi.agents.curriculum import AssistCurriculum
from coohoi.agents.evaluation import evaluate, zero_action
from coohoi.envs import make_env
from coohoi.envs.assist import assist_wrench
from coohoi.rotations import quat_from_axis_angle

N = 4


def test_wrench_lifts_and_rights_the_pelvis_with_pd_values():
    cfg = AssistConfig(enabled=True)
    pos = torch.tensor([[0.0, 0.0, 0.79], [0.0, 0.0, 0.0], [0.0, 0.0, 1.2]], dtype=torch.float64)
    tilt = 0.3  # radians about +x
    quat = torch.stack([quat_from_axis_angle(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                                             torch.tensor(a, dtype=torch.float64)) for a in (tilt, 0.0, 0.0)])
    lin = torch.tensor([[0.0, 0.0, -0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    ang = torch.tensor([[0.2, 0.0, 5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    force, torque = assist_wrench(pos, quat, lin, ang, 0.89, cfg)
    # 0.1 m low and sinking at 0.5 m/s: 2000 * 0.1 + 200 * 0.5 = 300 N up; on the floor: clamped at 600 N;
    # above the height: no pull down.
    assert force[:, 2].tolist() == pytest.approx([300.0, 600.0, 0.0])
    assert (force[:, :2] == 0).all()
    # Tilted 0.3 rad about +x, spinning 0.2 rad/s about +x: -600 * 0.3 - 60 * 0.2 = -192 N m about x; yaw spin is
    # left alone.
    assert torque[0].tolist() == pytest.approx([-192.0, 0.0, 0.0])
    assert torque[1].abs().max() == 0
    # A large tilt is clamped to the torque limit.
    flipped = quat_from_axis_angle(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), torch.tensor(2.5, dtype=torch.float64))
    _, big = assist_wrench(pos[:1], flipped[None], lin[:1] * 0, ang[:1] * 0, 0.89, cfg)
    assert big.norm().item() == pytest.approx(cfg.max_torque) and big[0, 1] < 0


def test_schedules_reach_zero():
    linear = AssistCurriculum(AssistConfig(enabled=True, schedule="linear", anneal_frames=1000), 300)
    assert [linear.update(e, f, None) for e, f in ((1, 0), (2, 250), (3, 1000), (4, 5000))] == [1.0, 0.75, 0.0, 0.0]
    adaptive = AssistCurriculum(AssistConfig(enabled=True, threshold=0.5, step=0.25, patience=2), 300)
    levels = [adaptive.update(epoch, 0, length) for epoch, length in
              enumerate([100.0, 160.0, 160.0, 160.0, 120.0, 200.0, 200.0, 200.0, 300.0, 300.0, 300.0], start=1)]
    # drops when the episode length reaches 150 steps, at most once every 2 epochs, and stays at 0
    assert levels == [1.0, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0]
    stalled = AssistCurriculum(AssistConfig(enabled=True, anneal_frames=1000, patience=1), 300)
    # a policy that never gets there: the linear schedule still ends the assistance
    assert [stalled.update(e, f, 30.0) for e, f in ((1, 0), (2, 600), (3, 1000))] == [1.0, 0.4, 0.0]
    assert AssistCurriculum(AssistConfig(enabled=False), 300).update(1, 0, 300.0) == 0.0


@pytest.fixture(scope="module")
def env(dataset):
    return make_env(env_config("amp_locomotion", dataset, N, "task.env.reset_mode=reference"))


def test_full_assistance_holds_the_humanoid_up_and_none_is_applied_at_level_zero(env):
    env.set_assist(AssistConfig(enabled=True))
    assert env.assist_level == 1.0
    env.seed(0)
    held = evaluate(env, zero_action(env))
    assert held["full_episode_rate"] == 1.0  # never falls while held
    env.set_assist_level(0.5)
    lift = []
    for _ in range(10):  # a start above the assistance height gets no lift until it sinks
        env.step(torch.zeros(N, 28))
        lift.append(env.engine._root_wrench[..., 2].max().item())
    assert max(lift) > 0
    env.set_assist_level(0.0)  # the end of the curriculum: no force at all from now on, reset or not
    assert env.engine._root_wrench.abs().max() == 0
    env.step(torch.zeros(N, 28))
    assert env.engine._root_wrench.abs().max() == 0
    env.seed(0)
    alone = evaluate(env, zero_action(env))
    assert alone["full_episode_rate"] == 0.0 and alone["episode_length"] < 0.2 * held["episode_length"]


def test_evaluation_env_has_no_assistance(dataset, tmp_path):
    from coohoi.agents.train import TrainingSession
    from coohoi.agents.config import train_config

    cfg = env_config("amp_locomotion", dataset, N, "train.assist.enabled=true", "train.eval.num_envs=2",
                     f"output_dir={tmp_path}")
    env = make_env(cfg)
    session = TrainingSession(cfg, train_config(cfg.train), env, None)
    assert env.assist_level == 1.0 and session.eval_env.assist is None and session.eval_env.assist_level == 0.0
    env.reset()
    env.step(torch.zeros(N, 28))
    assert env.engine._root_wrench[..., 2].max() > 0  # the training env pushes...
    session.eval_env.reset()
    session.eval_env.step(torch.zeros(2, 28))
    assert session.eval_env.engine._root_wrench.abs().max() == 0  # ...the evaluation env never does
    session.close()
