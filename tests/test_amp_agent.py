"""The AMP agent on rl-games, the adapters and checkpoints, driven by a tiny fake task env (fast)."""

import re

import pytest
import torch

from coohoi.agents.adapter import GymnasiumVectorEnv, RlGamesVecEnv
from coohoi.agents.amp_modules import style_reward
from coohoi.agents.checkpoint import CheckpointError
from coohoi.agents.config import train_config
from coohoi.agents.train import derive_minibatch_size, make_agent
from coohoi.cli import compose
from fake_task_env import FakeTaskEnv

SMALL = ["train.network.mlp_units=[64,64]", "train.network.disc_units=[64,64]", "train.amp.demo_buffer_size=4000",
         "train.amp.replay_buffer_size=4000", "torch_threads=1"]


def _cfg(tmp_path, *overrides):
    return compose(["task=amp_locomotion", f"output_dir={tmp_path}", *SMALL, *overrides])


def _agent(tmp_path, *overrides, env=None, rows=None):
    rows = [] if rows is None else rows
    agent, _ = make_agent(_cfg(tmp_path, *overrides), env=env or FakeTaskEnv(16),
                          on_epoch_end=lambda _a, m: rows.append(m))
    return agent, rows


def test_minibatch_is_a_divisor_of_the_batch():
    assert derive_minibatch_size(16384, 4096 * 32) == 16384
    assert derive_minibatch_size(16384, 256 * 32) == 8192
    assert derive_minibatch_size(16384, 8 * 32) == 256
    assert derive_minibatch_size(100, 96) == 96
    assert derive_minibatch_size(40, 96) == 32


def test_train_config_follows_reference_and_cpu_overrides(tmp_path):
    t = train_config(compose(["task=carry_box", "engine=warp", "train.max_epochs=7"]).train)  # no CPU changes
    assert t.max_epochs == 7 and t.algo == "ppo"
    p = t.ppo
    assert (p.learning_rate, p.gamma, p.tau, p.e_clip, p.horizon_length, p.mini_epochs) == (2e-5, 0.99, 0.95, 0.2, 32, 6)
    assert (p.critic_coef, p.bounds_loss_coef, p.entropy_coef, p.grad_norm, p.sigma_init) == (5.0, 10.0, 0.0, 1.0, -2.9)
    assert t.network.mlp_units == [1024, 512] and t.network.disc_units == [1024, 512]
    assert (t.task_reward_weight, t.style_reward_weight) == (0.5, 0.5)
    amp = t.amp
    assert (amp.disc_coef, amp.disc_grad_penalty, amp.disc_logit_reg, amp.disc_weight_decay) == (5.0, 5.0, 0.01, 1e-4)
    assert (amp.batch_size, amp.minibatch_size, amp.replay_keep_prob, amp.demo_buffer_size) == (512, 4096, 0.01, 200000)
    cfg = compose(["task=carry_box", "engine=mujoco"])
    cpu = train_config(cfg.train)
    assert cpu.network.mlp_units == [256, 128] and cpu.ppo.learning_rate == 1e-4 and cpu.amp.demo_buffer_size == 50000
    assert cpu.ppo.gamma == 0.99 and cpu.max_epochs == 400
    assert cfg.train.cpu_applied["network.mlp_units"] == [256, 128]
    # An explicit setting wins over the CPU adjustment, whichever level it is given at.
    assert train_config(compose(["train.ppo.learning_rate=3e-4"]).train).ppo.learning_rate == 3e-4
    assert train_config(compose(["train.network={mlp_units:[32],disc_units:[16]}"]).train).network.mlp_units == [32]
    assert train_config(compose(["train.cpu_overrides=null"]).train).network.mlp_units == [1024, 512]
    loco = train_config(compose(["task=amp_locomotion"]).train)
    assert (loco.task_reward_weight, loco.style_reward_weight) == (0.0, 1.0)
    assert train_config(compose(["task=amp_locomotion", "train=td3"]).train).algo == "td3"


def test_bad_training_settings_are_refused_naming_the_key():
    from hydra.errors import ConfigCompositionException

    from coohoi.agents.config import TrainConfigError

    with pytest.raises(TrainConfigError, match="bogus"):
        train_config(compose(["+train.bogus=1"]).train)
    with pytest.raises(ConfigCompositionException, match="learnig_rate"):
        compose(["train.ppo.learnig_rate=1e-3"])
    for override, message in (("train.ppo.learning_rate=nan", "train.ppo.learning_rate must be a finite number"),
                              ("train.td3.gamma=inf", "train.td3.gamma must be a finite number"),
                              ("train.ppo.learning_rate=-1", "train.ppo.learning_rate must be > 0"),
                              ("train.algo=sac", "train.algo must be one of ppo, td3"),
                              ("train.network.mlp_units=[]", "train.network.mlp_units must be a non-empty list"),
                              ("train.td3.noise_std_min=0.5", "train.td3.noise_std_min must be > 0 and <=")):
        with pytest.raises(TrainConfigError, match=re.escape(message)):
            train_config(compose([override]).train)


def test_network_has_fixed_std_and_discriminator(tmp_path):
    agent, _ = _agent(tmp_path, "train.max_epochs=1")
    net = agent.model.a2c_network
    assert not net.sigma.requires_grad
    assert torch.allclose(net.sigma, torch.full((4,), -2.9))
    assert net.disc.input_size == 6 and agent.model.amp_mean_std.mean.shape == (6,)
    assert agent.minibatch_size == 16 * 32
    assert any(p is net.disc.logit.weight for g in agent.optimizer.param_groups for p in g["params"])


def test_rollout_combines_task_and_style_rewards(tmp_path):
    agent, _ = _agent(tmp_path, "train.task_reward_weight=0.3", "train.style_reward_weight=0.7")
    agent.init_tensors()
    agent.obs = agent.env_reset()
    agent.set_eval()
    with torch.no_grad():
        batch = agent.play_steps()
    t = agent.experience_buffer.tensor_dict
    with torch.no_grad():
        expected_style = style_reward(agent.model.disc_logits(t["amp_obs"].reshape(-1, 6))).reshape(32, 16, 1)
    assert torch.allclose(t["style_rewards"], expected_style)
    assert t["style_rewards"].std() > 0
    expected = 0.3 * t["task_rewards"] + 0.7 * t["style_rewards"]
    expected = expected + agent.gamma * t["values"] * t["time_outs"].unsqueeze(-1)
    assert torch.allclose(t["rewards"], expected)
    assert t["time_outs"].sum() > 0  # 20-step episodes end inside a 32-step rollout
    assert batch["amp_obs"].shape == (32 * 16, 6) and batch["returns"].shape == (32 * 16, 1)


def test_training_on_fake_env_improves_style(tmp_path):
    """Pure AMP (task weight 0): the discriminator first wins (style reward drops), then the policy moves toward
    the demo actions, which the fake task reward (not trained on) also measures."""
    agent, rows = _agent(tmp_path, "train.ppo.learning_rate=1e-3", "train.max_epochs=30",
                         "train.ppo.sigma_init=-1.5", "train.task_reward_weight=0.0",
                         "train.style_reward_weight=1.0", "train.eval.every=0")
    agent.train()
    assert [r["epoch"] for r in rows] == list(range(1, 31))
    style = [r["rewards/style_per_step"] for r in rows]
    task = [r["rewards/task_per_step"] for r in rows]
    late_style = sum(style[-5:]) / 5
    assert late_style > min(style[:6]) + 0.5, style
    assert sum(task[-5:]) / 5 > sum(task[:3]) / 3 + 0.2, task
    assert rows[-1]["amp/demo_accuracy"] > 0.5
    assert (tmp_path / "amp_locomotion" / "nn" / "last.pth").is_file()
    assert 0.0 <= rows[-1]["episodes/success_rate"] <= 1.0


def test_resume_continues_epoch_counter_and_restores_state(tmp_path):
    agent, _ = _agent(tmp_path, "train.max_epochs=2")
    agent.train()
    path = agent.last_checkpoint
    saved = torch.load(path, weights_only=False)
    assert saved["epoch"] == 2 and saved["coohoi"]["task"] == "amp_locomotion"
    resumed, rows = _agent(tmp_path, "train.max_epochs=3")
    resumed.restore(path, set_epoch=True)
    assert resumed.epoch_num == 2 and resumed.frame == agent.frame
    for a, b in zip(resumed.model.state_dict().values(), agent.model.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.model.amp_mean_std.count.item() > 0
    assert resumed.optimizer.state_dict()["state"]  # Adam moments restored
    resumed.train()
    assert [r["epoch"] for r in rows] == [3]
    assert torch.load(path, weights_only=False)["epoch"] == 3


def test_bad_checkpoints_stop_with_clear_errors(tmp_path):
    agent, _ = _agent(tmp_path, "train.max_epochs=1")
    with pytest.raises(CheckpointError, match="does not exist"):
        agent.restore(str(tmp_path / "nope.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="is not a torch checkpoint"):
        agent.restore(str(garbage))
    agent.train()
    good = open(agent.last_checkpoint, "rb").read()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="is not a torch checkpoint"):
        agent.restore(str(truncated))
    other, _ = _agent(tmp_path, "train.max_epochs=1", env=FakeTaskEnv(16, amp_history=3))
    with pytest.raises(CheckpointError, match=r"does not fit.*disc.*\(1024|does not fit.*disc"):
        other.restore(agent.last_checkpoint)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    agent, _ = _agent(tmp_path, "train.max_epochs=1")
    agent.train()
    before = open(agent.last_checkpoint, "rb").read()

    def failing_save(obj, f, *args, **kwargs):
        open(f, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        agent.save_last()
    assert open(agent.last_checkpoint, "rb").read() == before  # the old checkpoint is intact
    assert not [p for p in (tmp_path / "amp_locomotion" / "nn").iterdir() if p.name.startswith(".")]


def test_rlgames_adapter_stays_on_device_and_flags_time_outs():
    env = FakeTaskEnv(4, max_episode_length=3)
    vec = RlGamesVecEnv(env)
    obs = vec.reset()
    assert isinstance(obs, torch.Tensor) and obs.shape == (4, 8)
    info_keys = vec.get_env_info()
    assert info_keys["amp_observation_space"].shape == (6,) and info_keys["agents"] == 1
    actions = torch.full((4, 4), 0.5)
    for step in range(3):
        obs, reward, dones, info = vec.step(actions)
    assert dones.dtype == torch.uint8 and dones.tolist() == [1, 1, 1, 1]
    assert info["time_outs"].tolist() == [True] * 4
    assert vec.episode_summary()["success_rate"] == 1.0
    assert vec.episode_summary() == {"num_episodes": 0.0}


def test_gymnasium_vector_env_interface():
    env = GymnasiumVectorEnv(FakeTaskEnv(3), numpy=True)
    obs, info = env.reset(seed=1)
    assert obs.shape == (3, 8) and env.observation_space.shape == (3, 8) and env.action_space.shape == (3, 4)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (3, 8) and reward.shape == (3,) and terminated.dtype == bool
    assert info["amp_obs"].shape == (3, 6)
    torch_env = GymnasiumVectorEnv(FakeTaskEnv(3))
    obs, _ = torch_env.reset()
    assert isinstance(obs, torch.Tensor)


def test_env_is_registered_with_rlgames_factories():
    from rl_games.common import vecenv

    from coohoi.agents.adapter import RLGAMES_ENV_NAME, register_rlgames_env

    register_rlgames_env(lambda: FakeTaskEnv(5))
    vec = vecenv.create_vec_env(RLGAMES_ENV_NAME, 5)
    assert isinstance(vec, RlGamesVecEnv) and vec.env.num_rows == 5
    assert vec.fetch_amp_demo(7).shape == (7, 6)


def test_mean_action_can_start_at_the_standing_pose(tmp_path):
    agent, _ = make_agent(_cfg(tmp_path, "engine.num_envs=2", "train.ppo.mu_init_bias=default_pose"))
    env = agent.vec_env.env
    bias = agent.model.a2c_network.mu.bias.detach().to(env.dtype)
    standing = env.engine.default_state(1).humanoid.dof_pos.reshape(-1)
    assert torch.allclose(env.pd_targets(bias), standing, atol=1e-6)
    assert not torch.allclose(env.pd_targets(torch.zeros_like(bias)), standing, atol=0.1)  # the published zero
    with pytest.raises(ValueError, match="mu_init_bias must be one of zero, default_pose, got 'stand'"):
        make_agent(_cfg(tmp_path, "engine.num_envs=2", "train.ppo.mu_init_bias=stand"))


def test_discriminator_step_size_can_stay_fixed_under_an_adaptive_schedule(tmp_path):
    shared, _ = _agent(tmp_path, "train.max_epochs=1")
    assert len(shared.optimizer.param_groups) == 1  # published: one optimizer and one step size
    agent, _ = _agent(tmp_path, "train.max_epochs=1", "train.amp.disc_learning_rate=3.0e-4")
    policy_group, disc_group = agent.optimizer.param_groups
    assert {id(p) for p in disc_group["params"]} == {id(p) for p in agent.model.disc.parameters()}
    assert len(policy_group["params"]) + len(disc_group["params"]) == len(list(agent.model.parameters()))
    agent.update_lr(5.0e-3)
    assert policy_group["lr"] == 5.0e-3 and disc_group["lr"] == 3.0e-4
