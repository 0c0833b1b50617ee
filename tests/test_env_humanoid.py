"""The humanoid task base through the AMP locomotion env: shapes, actions, resets, AMP history, auto-reset,
falls, timeouts, unstable worlds and config errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from _env_helpers import env_config

from coohoi import humanoid as hum
from coohoi.assets import ASSET_DIR
from coohoi.cli import compose
from coohoi.envs import AmpLocomotionEnv, EnvConfigError, make_env
from coohoi.envs.humanoid_env import START_POOL_SIZE, pd_action_offset_scale
from coohoi.motion.amp_features import AMP_FEATURE_SIZE
from coohoi.rotations import quat_from_axis_angle

torch.set_num_threads(1)
N = 4


@pytest.fixture(scope="module")
def env(dataset):
    return make_env(env_config("amp_locomotion", dataset, N))


def test_sizes_and_spaces(env):
    assert isinstance(env, AmpLocomotionEnv)
    assert (env.num_envs, env.num_agents, env.num_rows) == (N, 1, N)
    assert env.num_obs == 223 and env.num_actions == 28
    assert env.amp_history == 10 and env.num_amp_obs == 10 * AMP_FEATURE_SIZE == 1250
    assert env.observation_space.shape == (223,) and env.action_space.shape == (28,)
    assert env.action_space.low.min() == -1.0 and env.action_space.high.max() == 1.0
    assert env.policy_dt == pytest.approx(1.0 / 30.0)
    obs = env.reset()
    assert obs.shape == (N, 223) and obs.dtype == torch.float32
    obs, rew, term, trunc, info = env.step(torch.zeros(N, 28))
    assert obs.shape == (N, 223) and obs.dtype == torch.float32
    assert rew.shape == (N,) and rew.dtype == torch.float32 and (rew == 0).all()  # style reward only
    assert term.dtype == torch.bool and trunc.dtype == torch.bool and term.shape == trunc.shape == (N,)
    assert info["amp_obs"].shape == (N, 1250) and info["amp_obs"].dtype == torch.float32
    assert info["reward_terms"] == {} and info["episode_metrics"]["episode_length"].shape == (N,)
    assert info["faulted"].dtype == torch.bool and not info["faulted"].any() and "final_obs" not in info
    assert env.cfg.reset_mode == "reference"  # published for AMP locomotion
    demo = env.fetch_amp_demo(7)
    assert demo.shape == (7, 1250) and demo.dtype == torch.float32 and torch.isfinite(demo).all()


def test_action_mapping_matches_reference_rule(env):
    limits = env.engine.scene.dof_limits
    offset, scale = pd_action_offset_scale(limits, env.cfg)
    deg = math.radians
    names = list(hum.DOF_NAMES)
    # abdomen: largest |limit| 90 deg -> 1.2 * 90 = 108 deg, symmetric about 0 for all three hinges
    for axis in "xyz":
        i = names.index(f"abdomen_{axis}")
        assert offset[i] == 0.0 and scale[i] == pytest.approx(deg(108.0))
    # shoulders reach 180 deg: capped at pi
    assert scale[names.index("right_shoulder_y")] == pytest.approx(math.pi)
    # ankles: 1.2 * 55 deg
    assert scale[names.index("left_ankle_z")] == pytest.approx(deg(66.0))
    # elbow [-160, 0]: mid -80 deg, +- 0.7 * 160 deg; knee [0, 160]: mid 80 deg
    i = names.index("right_elbow")
    assert offset[i] == pytest.approx(deg(-80.0)) and scale[i] == pytest.approx(deg(112.0))
    i = names.index("left_knee")
    assert offset[i] == pytest.approx(deg(80.0)) and scale[i] == pytest.approx(deg(112.0))
    # the env applies it, clamping actions to [-1, 1]
    env.reset()
    a = torch.zeros(N, 28)
    a[0] = 1.0
    a[1] = -1.0
    a[2] = 7.0  # clamped to 1
    env.step(a)
    targets = env.engine.pd_targets[:, 0]
    off, sc = torch.as_tensor(offset), torch.as_tensor(scale)
    assert torch.allclose(targets[0], off + sc) and torch.allclose(targets[1], off - sc)
    assert torch.allclose(targets[2], off + sc) and torch.allclose(targets[3], off)


def test_nonfinite_actions_reset_their_world_and_are_counted(env, caplog):
    env.reset()
    env.step(torch.zeros(N, 28))
    env.episode_summary()
    a = torch.zeros(N, 28)
    a[2, 5] = float("nan")
    obs, rew, term, trunc, info = env.step(a)
    assert info["faulted"].tolist() == [False, False, True, False] and trunc[2].item() and rew[2].item() == 0.0
    assert env.progress.tolist() == [2, 2, 0, 2] and torch.isfinite(obs).all()
    assert torch.isfinite(env.engine.pd_targets).all()
    with caplog.at_level("WARNING"):
        summary = env.episode_summary()
    assert summary["faults/nonfinite_actions"] == 1.0 and summary["num_episodes"] == 0.0
    assert "1 nonfinite_actions" in caplog.text
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(N, 27))


def test_amp_history_equals_motion_library_for_reference_starts(env):
    lib = env.motion_lib
    clip_ids = torch.tensor([0, 1, 0, 1])
    times = torch.tensor([0.0, 0.05, 1.0, lib.clip_durations[1].item() - 0.01], dtype=torch.float64)
    env.reset_envs(torch.arange(N), reference=(clip_ids, times))
    expected = lib.amp_features(clip_ids, times, env.amp_history, env.policy_dt).to(torch.float32)
    assert expected.shape == (N, 10, 125)
    # frame 0 comes from the simulator's state (random heading and position), the rest is back-filled
    assert torch.allclose(env.amp_hist, expected, atol=1e-4)
    assert torch.allclose(env.amp_frame().float(), expected[:, 0], atol=1e-4)
    # at time 0 the past is the first frame repeated (non-looping clip)
    assert torch.allclose(env.amp_hist[0, 1:], expected[0, :1].expand(9, -1), atol=1e-4)
    # a step pushes a new frame in front and shifts the history
    before = env.amp_hist.clone()
    _, _, term, trunc, info = env.step(torch.zeros(N, 28))
    hist = info["amp_obs"].view(N, 10, 125)
    keep = ~(term | trunc)
    assert torch.allclose(hist[keep, 1:], before[keep, :-1], atol=1e-5)
    assert not torch.allclose(hist[keep, 0], before[keep, 0], atol=1e-3)


def test_reference_start_is_seen_the_same_from_any_heading(dataset):
    env = make_env(env_config("amp_locomotion", dataset, N, "task.env.random_heading=true"))
    env.reset_envs(torch.arange(N), reference=(torch.zeros(N, dtype=torch.long), torch.full((N,), 0.7)))
    quats = env.engine.root_quat[:, 0]
    assert (quats[1:] - quats[:1]).abs().max() > 0.1  # headings differ...
    obs = env.observe()
    assert torch.allclose(obs, obs[:1].expand_as(obs), atol=1e-5)  # ...observations do not


def test_default_start_back_fills_with_the_start_frame(dataset):
    env = make_env(env_config("amp_locomotion", dataset, N, "task.env.reset_mode=default"))
    env.reset()
    assert torch.allclose(env.engine.dof_pos, torch.zeros_like(env.engine.dof_pos))
    assert torch.allclose(env.engine.root_pos[:, 0, 2], torch.full((N,), hum.SPAWN_ROOT_HEIGHT, dtype=torch.float64))
    assert torch.allclose(env.amp_hist, env.amp_hist[:, :1].expand_as(env.amp_hist))
    assert torch.allclose(env.amp_hist[:, 0], env.amp_frame().float(), atol=1e-6)


def test_mix_reset_uses_both_kinds_of_start(dataset):
    env = make_env(env_config("amp_locomotion", dataset, 16, "task.env.reset_mode=mix",
                              "task.env.reference_reset_prob=0.5"))
    env.reset()
    is_default = (env.engine.dof_pos[:, 0].abs().sum(-1) == 0)
    assert 0 < int(is_default.sum()) < 16


def test_subset_auto_reset(env):
    env.reset()
    env.step(torch.zeros(N, 28))
    env.progress[1] = env.max_episode_length - 1
    before = env.engine.get_state()
    _, _, term, trunc, info = env.step(torch.zeros(N, 28))
    assert trunc.tolist() == [False, True, False, False] and not term.any()
    assert env.progress.tolist() == [2, 0, 2, 2]
    # the ended env starts afresh; amp_obs still judges the transition that happened before the reset
    assert torch.allclose(env.amp_hist[1, 0], env.amp_frame()[1].float(), atol=1e-6)
    assert not torch.allclose(info["amp_obs"][1, :125], env.amp_hist[1, 0], atol=1e-3)
    assert info["episode_metrics"]["episode_length"][1] == env.max_episode_length
    # the others went on from where they were (not reset): their root moved continuously
    moved = (env.engine.root_pos[:, 0] - before.humanoid.root_pos[:, 0]).norm(dim=-1)
    assert (moved[[0, 2, 3]] < 0.2).all()
    summary = env.episode_summary()
    assert summary["num_episodes"] == 1.0 and summary["episode_length"] == env.max_episode_length
    assert env.episode_summary()["num_episodes"] == 0.0


def test_each_ending_environment_takes_its_own_next_start_and_reuse_is_counted(env):
    """Environment i owns the pool's starts i * START_POOL_SIZE ... (i + 1) * START_POOL_SIZE - 1 and takes them in
    turn, so that one environment's resets never change another's starts; past its own, it takes its first again,
    counted as reused_starts."""
    env.reset()
    env.episode_summary()
    env._refill_pool()
    pool_root = env._pool.take(torch.arange(START_POOL_SIZE * N)).humanoid.root_pos[:, 0]
    assert START_POOL_SIZE == 2 and pool_root.shape[0] == START_POOL_SIZE * N == 8
    env._reset_ended(torch.tensor([False, True, False, True]))  # their first starts: 2 and 6
    assert torch.equal(env.engine.root_pos[[1, 3], 0], pool_root[[2, 6]])
    for _ in range(2):
        env._reset_ended(torch.ones(N, dtype=torch.bool))  # 0, 3, 4, 7; then 1, 2 (again), 5, 6 (again)
    assert torch.equal(env.engine.root_pos[:, 0], pool_root[[1, 2, 5, 6]])
    assert env.episode_summary()["reused_starts"] == 2.0 and env.episode_summary()["reused_starts"] == 0.0


def test_timeout_after_episode_length(dataset):
    env = make_env(env_config("amp_locomotion", dataset, N, f"task.env.episode_length_s={5 / 30}",
                              "task.env.enable_early_termination=false"))
    assert env.max_episode_length == 5
    env.reset()
    speeds = []
    engine_step = env.engine.step

    def recording_step():  # the root speed of every state the episode reaches
        engine_step()
        speeds.append(env.engine.root_lin_vel[:, 0, :2].norm(dim=-1).clone())

    env.engine.step = recording_step
    for _ in range(4):
        _, _, term, trunc, _ = env.step(torch.zeros(N, 28))
        assert not trunc.any() and not term.any()
    _, _, term, trunc, info = env.step(torch.zeros(N, 28))
    del env.engine.step
    assert trunc.all() and not term.any()
    assert (info["episode_metrics"]["episode_length"] == 5.0).all()
    expected = torch.stack(speeds).mean(0).float()
    assert torch.allclose(info["episode_metrics"]["root_speed_mps"], expected, rtol=1e-5)
    assert expected.max() > 0.01  # reference starts move
    assert (env.progress == 0).all()


def _lying_state(env, n):
    state = env.engine.default_state(n)
    # lying on the back at ground level
    q = quat_from_axis_angle(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), torch.tensor(-math.pi / 2,
                                                                                              dtype=torch.float64))
    state.humanoid.root_quat[:] = q
    state.humanoid.root_pos[..., 2] = 0.12
    return state


def test_fall_terminates_after_grace(env):
    env.reset()
    lying = _lying_state(env, 1)
    env.engine.reset(torch.tensor([2]), lying)
    env.progress[:] = 3
    _, _, term, trunc, info = env.step(torch.zeros(N, 28))
    assert term[2].item() and info["terminated_reasons"]["fall"][2].item()
    assert info["episode_metrics"]["fall_rate"][2] == 1.0
    assert env.progress[2].item() == 0 and env.engine.root_pos[2, 0, 2].item() > 0.5  # restarted standing
    # right after a reset (within the grace steps) the same state does not end the episode
    env.engine.reset(torch.tensor([2]), lying)
    env.progress[:] = 0
    _, _, term, _, _ = env.step(torch.zeros(N, 28))
    assert not term[2].item()


def test_unstable_world_is_reset_and_counted(env, caplog, monkeypatch):
    env.reset()
    engine = env.engine
    physics_step = engine._step_physics

    def blow_up_world_0():  # the physics of world 0 turns to NaN during this step
        failed = physics_step()
        engine._qvel[0, 3] = float("nan")
        return failed

    monkeypatch.setattr(engine, "_step_physics", blow_up_world_0)
    total = env.faults_total
    env.episode_summary()
    obs, rew, term, trunc, info = env.step(torch.zeros(N, 28))
    monkeypatch.undo()
    assert info["faulted"].tolist() == [True, False, False, False]
    assert trunc[0].item() and not term[0].item() and rew[0].item() == 0.0
    assert torch.isfinite(obs).all() and torch.isfinite(info["amp_obs"]).all()
    assert torch.isfinite(engine._qvel).all() and env.progress[0].item() == 0
    with caplog.at_level("WARNING"):  # counted on the device, logged once per epoch
        summary = env.episode_summary()
    assert summary["faults/nonfinite"] == 1.0 and env.faults_total == total + 1
    assert summary["faults/velocity"] == summary["faults/penetration"] == summary["faults/overflow"] == 0.0
    assert "1 nonfinite" in caplog.text
    assert summary["num_episodes"] == 0.0  # a blown-up episode is not a result


def test_config_errors_name_the_setting(dataset):
    with pytest.raises(EnvConfigError, match="task.env.*no_such_key"):
        make_env(env_config("amp_locomotion", dataset, N, "+task.env.no_such_key=1"))
    with pytest.raises(EnvConfigError, match="reset_mode"):
        make_env(env_config("amp_locomotion", dataset, N, "task.env.reset_mode=sometimes"))
    with pytest.raises(EnvConfigError, match="contact_bodies"):
        make_env(env_config("amp_locomotion", dataset, N, "task.env.contact_bodies=[tail]"))
    with pytest.raises(EnvConfigError, match="motion_dataset"):
        make_env(env_config("amp_locomotion", dataset.parent / "missing.yaml", N))
    cfg = env_config("amp_locomotion", dataset, N)
    cfg.task.env_type = "juggling"
    with pytest.raises(EnvConfigError, match="juggling"):
        make_env(cfg)
    for override, key in (("task.env.fall_height=nan", "task.env.fall_height"),
                          ("task.scene.physics_dt=inf", "task.scene.physics_dt")):
        with pytest.raises(ValueError, match=f"{key} must be a finite number"):
            make_env(env_config("amp_locomotion", dataset, N, override))


def test_wrongly_typed_setting_names_it(dataset):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="episode_length_s"):  # the typed task.env stops it
        env_config("amp_locomotion", dataset, N, "task.env.episode_length_s=long")
    with pytest.raises(EnvConfigError, match="task.scene"):
        make_env(env_config("amp_locomotion", dataset, N, "+task.scene.gravity=1"))


SHIPPED = Path(ASSET_DIR) / "motions" / "dataset.yaml"


@pytest.mark.skipif(not SHIPPED.exists(), reason="shipped motions not generated")
@pytest.mark.parametrize("task", ["amp_locomotion", "carry_box"])
def test_shipped_clips_give_library_amp_features(task):
    """With the default config (the shipped dataset): every clip, at random times, started in the simulator,
    gives the discriminator the motion library's own features."""
    env = make_env(compose([f"task={task}", "engine.num_envs=8", "engine.nthread=1"]))
    lib = env.motion_lib
    g = torch.Generator().manual_seed(0)
    for first in range(0, lib.num_clips, 8):
        clip_ids = (torch.arange(8) + first) % lib.num_clips
        times = torch.rand(8, generator=g, dtype=torch.float64) * lib.clip_durations[clip_ids]
        env.reset_envs(torch.arange(8), reference=(clip_ids, times))
        expected = lib.amp_features(clip_ids, times, env.amp_history, env.policy_dt).to(torch.float32)
        assert torch.allclose(env.amp_hist, expected, atol=1e-4)
    _, _, _, _, info = env.step(torch.zeros(8, 28))
    assert info["amp_obs"].shape == (8, env.num_amp_obs)
