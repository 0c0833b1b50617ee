"""MAPPO on rl-games: teams as rows of the batch, agent masks, the central critic and phase-1 initialisation, driven
by the fake task env with teams (fast)."""

import re

import pytest
import torch

from coohoi.agents.amp_modules import Discriminator, discriminator_loss
from coohoi.agents.checkpoint import CheckpointError
from coohoi.agents.train import make_agent
from coohoi.cli import compose
from fake_task_env import INACTIVE_AMP, FakeTaskEnv

SMALL = ["train.network.mlp_units=[32,32]", "train.network.disc_units=[32,32]", "train.amp.demo_buffer_size=2000",
         "train.amp.replay_buffer_size=2000", "torch_threads=1", "train.max_epochs=1"]


def _agent(tmp_path, env, *overrides):
    cfg = compose(["task=amp_locomotion", f"output_dir={tmp_path}", *SMALL, *overrides])
    agent, _ = make_agent(cfg, env=env)
    return agent


def test_masked_discriminator_loss_equals_the_loss_on_the_active_samples_alone():
    torch.manual_seed(0)
    disc = Discriminator(6, (16,), "relu")
    demo = torch.randn(10, 6).requires_grad_(True)
    policy = torch.randn(12, 6)
    mask = torch.tensor([True, False] * 6)
    masked = discriminator_loss(disc(demo), disc(policy), demo, disc, policy_mask=mask)
    alone = discriminator_loss(disc(demo), disc(policy[mask]), demo, disc)
    for key in ("loss", "bce", "policy_accuracy", "policy_logit"):
        assert torch.allclose(masked[key], alone[key]), key


def test_inactive_team_slots_add_nothing_to_rewards_advantages_replay_or_discriminator(tmp_path):
    env = FakeTaskEnv(8, num_agents=3, team_size=2)  # the third slot of every environment is inactive
    agent = _agent(tmp_path, env)
    dataset = {}
    prepare = agent.prepare_dataset

    def keep(batch_dict):  # the dataset is cleared after each epoch: keep a copy
        prepare(batch_dict)
        dataset.update(agent.dataset.values_dict)

    agent.prepare_dataset = keep
    agent.train()
    inactive = ~env.agent_mask
    tensors = agent.experience_buffer.tensor_dict
    assert torch.equal(tensors["agent_mask"][0] > 0, env.agent_mask)
    assert torch.all(tensors["rewards"][:, inactive] == 0.0) and torch.all(tensors["style_rewards"][:, inactive] == 0)
    rows_first = lambda t: t.view(env.num_rows, -1).T  # noqa: E731  the batch is flattened row by row
    advantages = rows_first(dataset["advantages"])
    assert torch.all(advantages[:, inactive] == 0.0) and torch.any(advantages[:, ~inactive] != 0.0)
    # Normalised over the active rows alone: mean 0, std 1 there.
    active_adv = advantages[:, ~inactive]
    assert abs(float(active_adv.mean())) < 1e-5 and abs(float(active_adv.std()) - 1.0) < 1e-3
    # The value normaliser saw the first agent's values and returns in place of the inactive rows'.
    returns = rows_first(dataset["returns"].flatten())
    assert torch.equal(returns[:, 2::3], returns[:, 0::3])
    weights = rows_first(dataset["rnn_masks"])
    assert torch.all(weights[:, inactive] == 0) and torch.allclose(weights.mean(), torch.tensor(1.0))
    # The inactive rows' AMP features (INACTIVE_AMP everywhere) never reach the policy replay buffer.
    stored = agent.replay_buffer.sample(len(agent.replay_buffer))
    assert len(agent.replay_buffer) == 2 * 8 * agent.horizon_length
    assert not torch.any((stored == INACTIVE_AMP).all(dim=1))


def test_central_critic_reads_the_critic_group(tmp_path):
    env = FakeTaskEnv(8, num_agents=2)
    agent = _agent(tmp_path, env, "train.ppo.critic=central")
    assert agent.has_central_value and not agent.has_value_loss  # the model's own value head is not trained
    assert agent.central_value_net.state_shape == (env.observation_groups["critic"],)
    metrics = agent.train()
    assert metrics["losses/critic"] > 0  # the central value network's loss
    states = agent.experience_buffer.tensor_dict["states"]
    assert states.shape[-1] == env.observation_groups["critic"] and torch.any(states != 0)


def test_a_phase1_checkpoint_initialises_the_team_policy_and_a_mismatch_names_both_layouts(tmp_path):
    solo = _agent(tmp_path / "solo", FakeTaskEnv(8), "train.network.mlp_units=[24,24]")
    solo.train()
    phase1 = solo.last_checkpoint
    team_env = FakeTaskEnv(8, num_agents=2)
    team = _agent(tmp_path / "team", team_env, f"train.init_from={phase1}")
    # The checkpoint's network sizes are taken, and its actor weights loaded unchanged.
    saved = torch.load(phase1, weights_only=False)["model"]
    mine = team.model.state_dict()
    assert mine["a2c_network.actor_mlp.0.weight"].shape[0] == 24
    for key in ("a2c_network.mu.weight", "a2c_network.disc.logit.weight", "running_mean_std.running_mean"):
        assert torch.equal(mine[key], saved[key]), key
    with pytest.raises(CheckpointError, match=re.escape("'num_obs': 8") + ".*" + re.escape("'num_obs': 10")):
        _agent(tmp_path / "other", FakeTaskEnv(8, num_obs=10, num_agents=2), f"train.init_from={phase1}")


def test_the_off_policy_learner_starts_from_a_phase1_checkpoint_and_refuses_masked_teams(tmp_path):
    small = ["train=td3", "train.td3.actor_units=[16]", "train.td3.critic_units=[16]", "train.td3.batch_size=64",
             "train.td3.buffer_steps=64", "train.td3.learning_starts=1", "train.td3.steps_per_epoch=4"]
    solo = _agent(tmp_path / "solo", FakeTaskEnv(4), *small)
    solo.train()
    team = _agent(tmp_path / "team", FakeTaskEnv(4, num_agents=2), *small, f"train.init_from={solo.last_checkpoint}")
    saved = torch.load(solo.last_checkpoint, weights_only=False)["model"]["actor"]
    assert all(torch.equal(v, saved[k]) for k, v in team.actor.state_dict().items())
    env = FakeTaskEnv(4, num_agents=3, team_size=2)
    env.cfg = type("Cfg", (), {"team_size_range": [2, 3]})()
    with pytest.raises(ValueError, match="does not mask inactive team slots"):
        _agent(tmp_path / "masked", env, *small)


def test_a_carry_checkpoint_loads_into_the_two_agent_task_and_a_locomotion_one_is_refused(tmp_path):
    """The real layouts: the single-agent carry policy (299 observations) starts the long-box team unchanged; an
    AMP-locomotion checkpoint (223) is refused naming both layouts."""
    common = [*SMALL, "engine.num_envs=2", "train.eval.every=0", "train.ppo.horizon_length=4"]

    def agent(task, *overrides, path):
        cfg = compose([f"task={task}", f"output_dir={path}", *common, *overrides])
        return make_agent(cfg)[0]

    carry = agent("carry_box", path=tmp_path / "carry")
    carry.train()
    team = agent("team_carry_long_box", f"train.init_from={carry.last_checkpoint}", path=tmp_path / "team")
    saved = torch.load(carry.last_checkpoint, weights_only=False)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in team.model.state_dict().items())
    loco = agent("amp_locomotion", path=tmp_path / "loco")
    loco.train()
    with pytest.raises(CheckpointError, match=re.escape("'num_obs': 223") + ".*" + re.escape("'num_obs': 299")):
        agent("team_carry_long_box", f"train.init_from={loco.last_checkpoint}", path=tmp_path / "bad")
