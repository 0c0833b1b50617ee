"""The off-policy AMP learner: replay with AMP histories built by index, n-step returns on a hand-made trajectory,
the style reward recomputed by the current discriminator, and training, checkpoints, resume and play."""

from __future__ import annotations

import math

import pytest
import torch
from _env_helpers import env_config
from fake_task_env import FakeTaskEnv

from coohoi.agents.amp_modules import style_reward
from coohoi.agents.checkpoint import CheckpointError
from coohoi.agents.replay import TransitionReplay
from coohoi.agents.policy import load_policy
from coohoi.agents.train import make_agent
from coohoi.cli import compose
from coohoi.envs import make_env

SMALL = ["train=td3", "train.td3.actor_units=[32,32]", "train.td3.critic_units=[32,32]",
         "train.network.disc_units=[32,32]", "train.amp.demo_buffer_size=2000", "train.td3.batch_size=64",
         "train.td3.buffer_steps=64", "train.td3.steps_per_epoch=8", "train.td3.learning_starts=4",
         "train.eval.every=0", "torch_threads=1"]


def _cfg(tmp_path, *overrides):
    return compose(["task=amp_locomotion", f"output_dir={tmp_path}", "experiment=td3", *SMALL, *overrides])


def test_amp_histories_built_by_index_equal_the_envs(dataset):
    """Every stored transition's AMP history, rebuilt from frames stored once, equals the env's info["amp_obs"],
    across resets from reference states (back-filled histories) and from the default pose."""
    env = make_env(env_config("amp_locomotion", dataset, 6, "task.env.reset_mode=mix",
                              f"task.env.episode_length_s={12 / 30}"))
    env.keep_final_obs = True
    obs = env.reset()
    replay = TransitionReplay(env.num_rows, 40, env.num_obs, env.num_actions, env.amp_history, 125, env.device)
    replay.start(env.amp_hist.float())
    g = torch.Generator().manual_seed(0)
    seen, ends = [], 0
    for _ in range(30):
        action = 0.3 * torch.randn(6, 28, generator=g)
        next_obs, reward, term, trunc, info = env.step(action)
        replay.add(obs, action, reward, info["final_obs"], term, term | trunc, info["amp_obs"][:, :125],
                   env.amp_hist.float())
        seen.append(info["amp_obs"].clone())
        ends += int((term | trunc).sum())
        obs = next_obs
    assert ends >= 6  # 12-step episodes: every row started over at least once
    rows = torch.arange(6)
    for t, expected in enumerate(seen):
        built = replay.amp_obs(rows, replay.frame_index[:, t])
        torch.testing.assert_close(built, expected, atol=0, rtol=0)


def _hand_made_replay(rewards, ended, terminated, faulted=None):
    """One row, one-number observations equal to the step index, frames equal to the step index."""
    steps = len(rewards)
    faulted = faulted or [False] * steps
    replay = TransitionReplay(1, steps, 1, 1, 1, 1, "cpu")
    replay.start(torch.zeros(1, 1, 1))
    for t in range(steps):
        replay.add(torch.tensor([[float(t)]]), torch.tensor([[0.0]]), torch.tensor([rewards[t]]),
                   torch.tensor([[float(t + 1)]]), torch.tensor([terminated[t]]), torch.tensor([ended[t]]),
                   torch.tensor([[float(t + 1)]]), torch.full((1, 1, 1), -1.0), torch.tensor([faulted[t]]))
    return replay


def test_n_step_windows_stop_at_episode_ends_and_at_the_newest_step():
    rewards = [1.0, 2.0, 4.0, 8.0, 16.0]
    ended = [False, True, False, False, False]  # step 1 ends an episode by termination
    replay = _hand_made_replay(rewards, ended, terminated=[False, True, False, False, False])
    replay.generator = torch.Generator().manual_seed(0)
    batch = replay.sample(200, n_step=3)
    first = batch.obs[:, 0].long()
    for t in range(5):
        pick = first == t
        assert pick.any()
        counts = batch.counts[pick][0].tolist()
        expected = {0: [True, True, False], 1: [True, False, False], 2: [True, True, True],
                    3: [True, True, False], 4: [True, False, False]}[t]
        assert counts == expected, t
        n = sum(expected)
        assert (batch.num_steps[pick] == n).all()
        assert (batch.next_obs[pick, 0] == t + n).all()  # the observation after the last counted step
        assert (batch.terminated[pick] == (t + n - 1 == 1)).all()
        assert (batch.task_reward[pick][0, :n] == torch.tensor(rewards[t:t + n])).all()
    assert batch.valid.all()


def test_failed_physics_is_never_learned_from():
    """Step 2's world blew up (a faulted transition ends its episode): windows stop before it, and one that starts
    there is not used at all."""
    replay = _hand_made_replay([1.0] * 5, [False, False, True, False, False], [False] * 5,
                               faulted=[False, False, True, False, False])
    replay.generator = torch.Generator().manual_seed(0)
    batch = replay.sample(200, n_step=3)
    first = batch.obs[:, 0].long()
    assert (batch.num_steps[first == 0] == 2).all() and (batch.num_steps[first == 1] == 1).all()
    assert (~batch.valid[first == 2]).all() and batch.valid[first != 2].all()
    assert (batch.next_obs[first == 1, 0] == 2).all()  # bootstraps from the state before the failed step


def test_n_step_target_on_a_hand_made_trajectory(tmp_path):
    """returns = sum_k gamma^k r_k + gamma^n min(Q1', Q2')(s_n, a'), with r = task weight * task + style weight *
    style(D(history)) recomputed now, and no bootstrap after a termination."""
    agent, _ = make_agent(_cfg(tmp_path, "train.task_reward_weight=0.5", "train.style_reward_weight=0.25"),
                          env=FakeTaskEnv(1, amp_history=1))
    gamma = agent.c.gamma
    rewards = [1.0, 2.0, 4.0, 8.0]
    replay = _hand_made_replay(rewards, [False, False, True, False], terminated=[False, False, True, False])
    replay.generator = torch.Generator().manual_seed(1)
    batch = replay.sample(64, n_step=3)
    # Make the fake networks simple: the critics read the observation, the discriminator its input.
    agent.obs_norm.count.zero_()
    batch.obs = batch.obs.expand(-1, 8).contiguous()
    batch.next_obs = batch.next_obs.expand(-1, 8).contiguous()
    batch.amp_obs = batch.amp_obs.expand(-1, -1, 3).contiguous()
    batch.action = torch.zeros(64, 4)
    agent._stats = __import__("collections").defaultdict(list)
    target = agent.compute_returns(batch)
    with torch.no_grad():
        style = style_reward(agent.disc(agent.amp_norm.normalize(batch.amp_obs.flatten(0, 1)))).view(64, 3)
        next_obs = agent._normalized(batch.next_obs)
        q = torch.minimum(*agent.critic_target(next_obs, agent.actor(next_obs)))
    for i in range(64):
        t, n = int(batch.obs[i, 0]), int(batch.num_steps[i])
        expected = sum(gamma**k * (0.5 * rewards[t + k] + 0.25 * float(style[i, k])) for k in range(n))
        if not batch.terminated[i]:
            expected += gamma**n * float(q[i])
        assert target[i].item() == pytest.approx(expected, rel=1e-4, abs=1e-3), (t, n)
    assert (batch.terminated == (batch.obs[:, 0] + batch.num_steps - 1 == 2)).all()


def test_style_reward_is_recomputed_by_the_current_discriminator(tmp_path):
    agent, _ = make_agent(_cfg(tmp_path), env=FakeTaskEnv(8))
    obs = agent.env.reset()
    agent.replay.start(agent.env.amp_hist.float())
    for _ in range(10):
        action = agent.act(obs, deterministic=False)
        next_obs, reward, term, trunc, info = agent.env.step(action)
        agent.process_step(obs, action, reward, term, trunc, info)
        obs = next_obs
    agent.replay.generator = torch.Generator().manual_seed(3)
    batch = agent.replay.sample(32, agent.c.n_step)
    agent._stats = __import__("collections").defaultdict(list)
    before = agent.compute_returns(batch)
    with torch.no_grad():  # a different discriminator now: the same stored transitions get other rewards
        agent.disc.logit.bias += 3.0
    after = agent.compute_returns(batch)
    with torch.no_grad():
        style = style_reward(agent.disc(agent.amp_norm.normalize(batch.amp_obs[:, 0])))
    assert (after > before).all()
    assert agent._stats["rewards/style_replay"][-1].item() == pytest.approx(style.mean().item(), rel=1e-5)


def test_training_checkpoints_resume_and_play(tmp_path):
    rows = []
    agent, _ = make_agent(_cfg(tmp_path, "train.max_epochs=3"), env=FakeTaskEnv(8),
                          on_epoch_end=lambda _a, m: rows.append(m))
    agent.train()
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[-1]["frames"] == 3 * 8 * 8
    assert rows[-1]["info/updates"] > 0 and "losses/critic" in rows[-1] and "amp/demo_accuracy" in rows[-1]
    assert math.isfinite(rows[-1]["rewards/style_per_step"]) and "episodes/length" in rows[-1]
    state = torch.load(agent.last_checkpoint, weights_only=False)
    assert state["coohoi"]["algo"] == "td3" and state["epoch"] == 3
    resumed, _ = make_agent(_cfg(tmp_path, "train.max_epochs=4"), env=FakeTaskEnv(8))
    resumed.restore(agent.last_checkpoint, set_epoch=True)
    assert (resumed.epoch_num, resumed.frame, resumed.updates) == (3, agent.frame, agent.updates)
    for a, b in zip(resumed.actor.state_dict().values(), agent.actor.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.actor_opt.state_dict()["state"]  # optimiser moments restored
    resumed.train()
    assert resumed.epoch_num == 4
    # The saved actor (the resumed run's last.pth) plays back through the common policy loader, deterministically.
    env = FakeTaskEnv(8)
    policy = load_policy(resumed.last_checkpoint)
    obs = env.reset()
    torch.testing.assert_close(policy.act(obs), resumed.act(obs, deterministic=True))


def test_a_checkpoint_of_another_learner_or_network_is_refused(tmp_path):
    agent, _ = make_agent(_cfg(tmp_path, "train.max_epochs=1"), env=FakeTaskEnv(8))
    agent.train()
    bigger, _ = make_agent(_cfg(tmp_path, "train.td3.actor_units=[64,64]"), env=FakeTaskEnv(8))
    with pytest.raises(CheckpointError, match=r"actor_units \[32, 32\] in the checkpoint, \[64, 64\] here"):
        bigger.restore(agent.last_checkpoint)
    ppo, _ = make_agent(compose(["task=amp_locomotion", f"output_dir={tmp_path}", "experiment=ppo",
                                 "train.network.mlp_units=[16]", "train.network.disc_units=[16]",
                                 "train.amp.demo_buffer_size=500", "train.amp.replay_buffer_size=500",
                                 "train.max_epochs=1", "train.eval.every=0"]), env=FakeTaskEnv(8))
    ppo.train()
    with pytest.raises(CheckpointError, match="written by learner 'ppo', this run uses 'td3'"):
        agent.restore(ppo.last_checkpoint)


def test_learned_exploration_noise_is_per_environment_and_log_uniform(tmp_path):
    agent, _ = make_agent(_cfg(tmp_path, "train.td3.noise_std_min=0.01", "train.td3.noise_std_max=0.4"),
                          env=FakeTaskEnv(2000))
    std = agent._std.flatten()
    assert std.min() >= 0.01 and std.max() <= 0.4
    log_std = std.log()
    assert log_std.mean().item() == pytest.approx(0.5 * (math.log(0.01) + math.log(0.4)), abs=0.05)
    fixed, _ = make_agent(_cfg(tmp_path), env=FakeTaskEnv(4))
    assert fixed.noise_std(10).tolist() == [pytest.approx(0.055)]
