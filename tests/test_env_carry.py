"""The carry task env: observation size, placement, reward terms in info, kicked-box rule, metrics, curriculum."""

from __future__ import annotations

import math

import pytest
import torch
from _env_helpers import env_config

from coohoi.cli import compose
from coohoi.envs import CarryEnv, make_env, task_configs
from coohoi.envs.observations import PROPRIO_SIZE, TASK_OBS_LAYOUT
from coohoi.envs.rewards import REWARD_TERMS

torch.set_num_threads(1)
N = 8


@pytest.fixture(scope="module")
def env(dataset):  # without the published task-observation noise, so that observations can be checked exactly
    return make_env(env_config("carry_box", dataset, N, "task.env.task_obs_noise_std=0.0"))


def test_sizes_and_reward_terms(env):
    assert isinstance(env, CarryEnv)
    assert env.num_obs == 223 + 76 == env.observation_space.shape[0]
    assert env.max_episode_length == 600
    obs = env.reset()
    assert obs.shape == (N, 299) and obs.dtype == torch.float32
    obs, rew, term, trunc, info = env.step(torch.zeros(N, 28))
    assert obs.shape == (N, 299) and info["amp_obs"].shape == (N, 1250)
    terms = info["reward_terms"]
    assert tuple(terms) == REWARD_TERMS
    assert all(v.shape == (N,) and v.dtype == torch.float32 and (v >= 0).all() and (v <= 1).all()
               for v in terms.values())
    weights = env.cfg.reward_weights
    expected = sum(weights[k] * terms[k] for k in REWARD_TERMS)
    assert not info["faulted"].any()
    assert torch.allclose(rew, expected, atol=1e-6)


def test_published_placement_is_straight_ahead(env):
    """carry_box as released: the humanoid faces +x, the box 0.5-10 m ahead along +x, the target 1.5-10 m further
    along +x, box and target at yaw 0."""
    for _ in range(3):
        env.reset()
        e = env.engine
        assert torch.allclose(e.root_quat[:, 0], e.default_state(1).humanoid.root_quat[0, 0].expand(N, 4))
        offset = e.object_pos[:, :2] - e.root_pos[:, 0, :2]
        assert torch.allclose(offset[:, 1], torch.zeros(N, dtype=offset.dtype), atol=1e-9)
        assert ((offset[:, 0] >= 0.5 - 1e-9) & (offset[:, 0] <= 10.0 + 1e-9)).all() and offset[:, 0].std() > 0.5
        t_off = env.target_pos[:, :2] - e.object_pos[:, :2]
        assert torch.allclose(t_off[:, 1], torch.zeros(N, dtype=t_off.dtype), atol=1e-9)
        assert ((t_off[:, 0] >= 1.5 - 1e-9) & (t_off[:, 0] <= 10.0 + 1e-9)).all()
        identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=e.dtype).expand(N, 4)
        assert torch.allclose(e.object_quat, identity) and torch.allclose(env.target_quat, identity)
    assert env.cfg.reset_mode == "default"
    assert task_configs(compose(["task=carry_box"]))[1].task_obs_noise_std == 0.1


def test_anywhere_placement_ranges_and_sampled_angles(dataset):
    env = make_env(env_config("carry_box_anywhere", dataset, N))
    dirs, yaws, tdirs = [], [], []
    for _ in range(4):
        env.reset()
        e = env.engine
        root = e.root_pos[:, 0, :2]
        box = e.object_pos
        offset = box[:, :2] - root
        dist = offset.norm(dim=-1)
        assert ((dist >= 0.5 - 1e-9) & (dist <= 10.0 + 1e-9)).all()
        # never inside the humanoid: clearance between its low bodies and the box's bounding circle
        radius = e.object_half_extents[:, :2].norm(dim=-1)
        gap = (e.body_pos[:, 0, :, :2] - box[:, None, :2]).norm(dim=-1) - radius[:, None]
        low = e.body_pos[:, 0, :, 2] < 2 * e.object_half_extents[:, 2:3] + env.cfg.box_clearance
        assert (gap[low] >= env.cfg.box_clearance - 1e-6).all()
        t_off = env.target_pos[:, :2] - box[:, :2]
        t_dist = t_off.norm(dim=-1)
        assert ((t_dist >= 1.5 - 1e-9) & (t_dist <= 10.0 + 1e-9)).all()
        # on the ground, resting: box and target centre at the box's half height
        assert torch.allclose(box[:, 2], e.object_half_extents[:, 2])
        assert torch.allclose(env.target_pos[:, 2], e.object_half_extents[:, 2])
        dirs.append(torch.atan2(offset[:, 1], offset[:, 0]))
        tdirs.append(torch.atan2(t_off[:, 1], t_off[:, 0]))
        yaws.append(2 * torch.atan2(env.target_quat[:, 3], env.target_quat[:, 0]))
    for angles in (dirs, tdirs, yaws):
        a = torch.cat(angles)
        # sampled over the circle, not left at zero
        assert a.std() > 1.0 and torch.sin(a).abs().max() > 0.5


def test_curriculum_places_box_and_target_close(dataset):
    env = make_env(env_config("carry_box_curriculum", dataset, N))
    _, cfg, _, _ = task_configs(env_config("carry_box_curriculum", dataset, N))
    assert cfg.box_distance_range == [0.5, 2.0] and cfg.target_distance_range == [1.5, 3.0]
    assert cfg.episode_length_s == 20.0 and env.max_episode_length == 600  # everything else from carry_box
    for _ in range(3):
        env.reset()
        dist = (env.engine.object_pos[:, :2] - env.engine.root_pos[:, 0, :2]).norm(dim=-1)
        t_dist = (env.target_pos[:, :2] - env.engine.object_pos[:, :2]).norm(dim=-1)
        assert (dist <= 2.0 + 1e-9).all() and (t_dist <= 3.0 + 1e-9).all() and (t_dist >= 1.5 - 1e-9).all()


def test_task_observation_of_the_env_state(env):
    env.reset()
    obs = env.observe()
    task = obs[:, PROPRIO_SIZE:].double()
    L = TASK_OBS_LAYOUT
    # 5 kg / 0.125 m^3 = 40 kg/m^3, scaled by 1/40
    assert torch.allclose(task[:, L["density"]], torch.ones(N, 1, dtype=torch.float64), atol=1e-6)
    e = env.engine
    # distance to the box and the target is kept by the heading-frame transform
    box_rel = task[:, L["object_pos"]]
    assert torch.allclose(box_rel.norm(dim=-1), (e.object_pos - e.root_pos[:, 0]).norm(dim=-1), atol=1e-5)
    tgt_rel = task[:, L["target_pos"]]
    assert torch.allclose(tgt_rel.norm(dim=-1), (env.target_pos - e.root_pos[:, 0]).norm(dim=-1), atol=1e-5)
    assert (task[:, L["stand_point"]][:, 2] == 0).all()


def test_randomised_box_size_and_mass(dataset):
    env = make_env(env_config("carry_box", dataset, N, "task.scene.object.size_scale_range=[0.7,1.0]",
                              "task.scene.object.mass_scale_range=[0.5,2.0]", "task.env.task_obs_noise_std=0.0"))
    env.reset()
    e = env.engine
    half = e.object_half_extents[:, 0]
    assert half.min() >= 0.7 * 0.25 - 1e-9 and half.max() <= 0.25 + 1e-9 and half.std() > 0.005
    assert e.object_mass.std() > 0.1
    assert torch.allclose(e.object_pos[:, 2], e.object_half_extents[:, 2])
    density = e.object_mass / (2 * e.object_half_extents).prod(-1) / 40.0
    task = env.observe()[:, PROPRIO_SIZE:].double()
    assert torch.allclose(task[:, 0], density, atol=1e-5)
    corners = task[:, TASK_OBS_LAYOUT["object_corners"]].view(N, 8, 3)
    assert torch.allclose((corners.amax(1) - corners.amin(1))[:, 2], 2 * e.object_half_extents[:, 2], atol=1e-5)


def _set_object(env, env_id, pos, lin_vel=(0.0, 0.0, 0.0)):
    state = env.engine.get_state(torch.tensor([env_id]))
    state.object.pos[0] = torch.as_tensor(pos, dtype=torch.float64)
    state.object.quat[0] = env.target_quat[env_id]
    state.object.lin_vel[0] = torch.as_tensor(lin_vel, dtype=torch.float64)
    env.engine.reset(torch.tensor([env_id]), state)


def test_kicked_box_terminates(dataset):
    env = make_env(env_config("carry_box", dataset, 2, "task.env.reset_mode=default",
                              "task.env.box_distance_range=[3.0,3.0]"))
    env.reset()
    env.progress[:] = 5
    box = env.engine.object_pos[0].clone()
    _set_object(env, 0, box, lin_vel=(4.0, 0.0, 0.0))  # slid fast along the ground while the hands are up
    _, _, term, _, info = env.step(torch.zeros(2, 28))
    assert info["terminated_reasons"]["kicked"].tolist() == [True, False]
    assert term[0].item() and info["episode_metrics"]["kicked_rate"][0] == 1.0
    assert env.episode_summary()["kicked_rate"] == 1.0  # the one episode that ended


def test_success_metrics_at_episode_end(dataset):
    env = make_env(env_config("carry_box", dataset, 2, "task.env.reset_mode=default",
                              "task.env.enable_early_termination=false", "task.env.box_distance_range=[4.0,4.0]"))
    env.reset()
    # env 0: box put down 5 cm beside its target; env 1: box left where it was
    target = env.target_pos[0].clone()
    _set_object(env, 0, target + torch.tensor([0.05, 0.0, 0.0], dtype=torch.float64))
    env.progress[:] = 100
    env.step(torch.zeros(2, 28))  # first step within the success distance: 101
    env.progress[:] = env.max_episode_length - 1
    _, _, term, trunc, info = env.step(torch.zeros(2, 28))
    assert trunc.all() and not term.any()
    ep = {k: v.tolist() for k, v in info["episode_metrics"].items()}
    assert ep["success_rate"] == [1.0, 0.0] and ep["placed_rate"] == [1.0, 0.0]
    assert ep["precision_cm"][0] == pytest.approx(5.0, abs=1.0) and math.isnan(ep["precision_cm"][1])
    assert ep["completion_time_s"][0] == pytest.approx(101 / 30.0) and math.isnan(ep["completion_time_s"][1])
    assert ep["final_distance_m"][1] >= 1.5  # the other box is at least 1.5 m from its target
    summary = env.episode_summary()
    assert summary["success_rate"] == 0.5 and summary["num_episodes"] == 2.0
    assert summary["precision_cm"] == pytest.approx(5.0, abs=1.0)  # over the successful episode only
    assert summary["episode_length"] == env.max_episode_length


def test_reward_in_env_sees_the_placed_box(dataset):
    """A box resting exactly on its target: the near terms are 1 in the env's reward terms."""
    env = make_env(env_config("carry_box", dataset, 2, "task.env.reset_mode=default"))
    env.reset()
    _set_object(env, 0, env.target_pos[0].clone())
    _, _, _, _, info = env.step(torch.zeros(2, 28))
    terms = info["reward_terms"]
    assert terms["held"][0].item() == 1.0
    assert terms["carry_dir"][0].item() == pytest.approx(1.0, abs=1e-3)
    assert terms["putdown"][0].item() == pytest.approx(1.0, abs=1e-3)
    assert terms["carry_near"][0].item() > 0.99
    assert terms["carry_dir"][1].item() == 0.0  # env 1's box is far from its target


def test_carry_rejects_several_humanoids(dataset):
    with pytest.raises(ValueError, match="num_humanoids"):
        make_env(env_config("carry_box", dataset, 2, "task.scene.num_humanoids=2"))


def test_default_task_config_composes():
    cfg = compose(["task=carry_box", "engine.num_envs=2"])
    _, env_cfg, scene_cfg, engine_cfg = task_configs(cfg)
    assert cfg.task.name == "carry_box" and scene_cfg.object.kind == "box"
    assert env_cfg.success_distance == 0.2 and env_cfg.kicked_speed == 1.0 and env_cfg.carry_height == 0.6
    assert math.isclose(sum(env_cfg.reward_weights.values()), 1.4)


def test_observation_noise_only_where_configured(dataset):
    cfg = lambda *o: env_config("carry_box", dataset, N, "task.env.reset_mode=default", "seed=3", *o)  # noqa: E731
    clean_env = make_env(cfg("task.env.task_obs_noise_std=0.0"))
    noisy_env = make_env(cfg("task.env.proprio_noise_std=0.1", "task.env.task_obs_noise_std=0.05"))
    clean_env.reset()
    noisy_env.reset()
    # same seed, same starts: the only difference is the noise
    assert torch.allclose(clean_env.engine.root_pos, noisy_env.engine.root_pos)
    diff = (noisy_env.observe() - clean_env.observe()).double()
    assert diff[:, :PROPRIO_SIZE].std().item() == pytest.approx(0.1, rel=0.15)
    task = diff[:, PROPRIO_SIZE:]
    L = TASK_OBS_LAYOUT
    for part in ("target_corners", "target_pos", "stand_point", "object_corners", "object_pos"):
        assert task[:, L[part]].std().item() == pytest.approx(0.05, rel=0.3), part
    for part in ("density", "target_rot", "object_rot", "object_lin_vel", "object_ang_vel"):
        assert (task[:, L[part]] == 0).all(), part


def test_seed_makes_starts_repeatable(env):
    env.seed(11)
    env.reset()
    first = (env.engine.root_quat.clone(), env.engine.object_pos.clone(), env.target_pos.clone())
    env.reset()
    assert not torch.allclose(env.target_pos, first[2])
    env.seed(11)
    env.reset()
    assert torch.allclose(env.engine.root_quat, first[0]) and torch.allclose(env.engine.object_pos, first[1])
    assert torch.allclose(env.target_pos, first[2])


def test_reached_and_held_metrics_need_the_standing_point_and_a_second_of_holding(dataset, monkeypatch):
    """Episode metrics of progress toward a carry: reached (walk_pos was 1: at the standing point) and held (the held
    reward above 0.8 for 30 steps in a row, one second); a 29-step hold does not count."""
    import coohoi.envs.carry as carry

    env = make_env(env_config("carry_box", dataset, 3, "task.env.enable_early_termination=false",
                              "task.env.enable_kicked_termination=false"))
    real = carry.carry_reward
    held_steps = {0: 30, 1: 29, 2: 0}

    def scripted(*args):
        reward, terms = real(*args)
        step = int(env.progress[0]) - 1
        terms = dict(terms)
        terms["held"] = torch.tensor([0.9 if step < held_steps[i] else 0.5 for i in range(3)], dtype=reward.dtype)
        terms["walk_pos"] = torch.tensor([1.0, 0.5, 0.5], dtype=reward.dtype)
        return reward, terms

    monkeypatch.setattr(carry, "carry_reward", scripted)
    env.reset()
    for _ in range(35):
        env.step(torch.zeros(3, 28))
    env.progress[:] = env.max_episode_length - 1
    _, _, _, trunc, info = env.step(torch.zeros(3, 28))
    assert trunc.all()
    assert info["episode_metrics"]["reached_rate"].tolist() == [1.0, 0.0, 0.0]
    assert info["episode_metrics"]["held_rate"].tolist() == [1.0, 0.0, 0.0]
    assert not env.held.any() and not env.reached.any()  # the new episodes start afresh
