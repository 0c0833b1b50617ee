"""Physics faults during training: NaN actions and huge external forces in some worlds reset those worlds alone,
their transitions are left out of learning, the other worlds run bit for bit as without the faults, and the counts
reach metrics.jsonl and the progress line."""

import json

import pytest
import torch

import coohoi.envs as envs_module
from coohoi.cli import main
from coohoi.envs import make_env
from tests._env_helpers import env_config

N = 4
HUGE_FORCE = 1e7  # N on the pelvis: about 5000 m/s within one policy step, far past engine.max_speed
NAN_STEP, FORCE_STEP = 3, 6  # NaN actions in world 1, then the force on world 2


class FaultInjector:
    """Wraps an env's step: NaN actions for world 1 at NAN_STEP and a huge upward force on world 2's pelvis during
    FORCE_STEP (counted from the first step). Records every step's observations."""

    def __init__(self, env, inject: bool):
        self.env, self.inject, self.steps, self.observations = env, inject, 0, []
        self._step = env.step
        env.step = self.step

    def step(self, actions):
        self.steps += 1
        actions = actions.clone()
        force = torch.zeros_like(self.env.engine.root_pos)
        if self.inject and self.steps == NAN_STEP:
            actions[self._rows(1)] = float("nan")
        if self.inject and self.steps == FORCE_STEP:
            force[2, :, 2] = HUGE_FORCE
        self.env.engine.set_root_wrench(force, torch.zeros_like(force))
        out = self._step(actions)
        self.observations.append(out[0].clone())
        return out

    def _rows(self, world):
        k = self.env.num_agents
        return slice(world * k, (world + 1) * k)


def _run(dataset, inject: bool, steps: int = 12):
    env = make_env(env_config("carry_box", dataset, N))
    env.seed(0)
    env.reset()
    env.episode_summary()
    injector = FaultInjector(env, inject)
    actions = 0.05 * torch.sin(torch.arange(env.num_actions, dtype=torch.float32))[None].expand(env.num_rows, -1)
    faulted = []
    for _ in range(steps):
        _, _, _, _, info = env.step(actions)
        faulted.append(info["faulted"].clone())
    return torch.stack(injector.observations), torch.stack(faulted), env.episode_summary()


def test_faulted_worlds_are_reset_alone_and_the_others_run_bit_identical(dataset):
    clean_obs, clean_faulted, clean = _run(dataset, inject=False)
    obs, faulted, summary = _run(dataset, inject=True)
    assert not clean_faulted.any() and clean["num_episodes"] == 0  # no world ended in the clean run
    assert faulted[:, 1].tolist() == [i + 1 == NAN_STEP for i in range(len(faulted))]
    assert faulted[:, 2].tolist() == [i + 1 == FORCE_STEP for i in range(len(faulted))]
    assert not faulted[:, [0, 3]].any()
    assert summary["faults/nonfinite_actions"] == 1.0 and summary["faults/velocity"] == 1.0
    assert summary["faults/nonfinite"] == summary["faults/penetration"] == summary["faults/overflow"] == 0.0
    assert summary["num_episodes"] == 0.0  # a faulted episode is no result
    assert torch.isfinite(obs).all()
    assert torch.equal(obs[:, [0, 3]], clean_obs[:, [0, 3]])  # bit for bit
    assert torch.equal(obs[:NAN_STEP - 1, 1], clean_obs[:NAN_STEP - 1, 1])
    assert not torch.equal(obs[NAN_STEP - 1:, 1], clean_obs[NAN_STEP - 1:, 1])  # world 1 started anew


@pytest.mark.parametrize("algo", ["ppo", "td3"])
def test_training_goes_on_through_faults_learns_nothing_from_them_and_logs_their_counts(
        dataset, tmp_path, monkeypatch, capsys, algo):
    injectors = []

    def make_env_with_faults(cfg, **kwargs):  # the training env only (the first built), not the evaluation env
        env = make_env(cfg, **kwargs)
        if not injectors:
            injectors.append(FaultInjector(env, inject=True))
        return env

    monkeypatch.setattr(envs_module, "make_env", make_env_with_faults)
    learner = {"ppo": ["train.ppo.horizon_length=8"],
               "td3": ["train=td3", "train.td3.steps_per_epoch=8", "train.td3.learning_starts=2",
                       "train.td3.batch_size=32"]}[algo]
    assert main(["train", "task=carry_box", f"engine.num_envs={N}", "engine.nthread=1", "torch_threads=1",
                 f"task.env.motion_dataset={dataset}", "train.max_epochs=2", "train.eval.every=0",
                 "train.eval.baselines=false", "train.amp.demo_buffer_size=512", "train.amp.replay_buffer_size=512",
                 *learner, f"output_dir={tmp_path}", "experiment=faults"]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "faults" / "metrics.jsonl").read_text().splitlines()]
    first, second = (row for row in rows if "epoch" in row)
    assert first["faults/nonfinite_actions"] == 1.0 and first["faults/velocity"] == 1.0
    assert second["faults/nonfinite_actions"] == second["faults/velocity"] == 0.0
    assert "| faults 2 |" in out and "| faults 0 |" in out
    assert injectors[0].steps == 16 and all(torch.isfinite(o).all() for o in injectors[0].observations)


def test_a_faulted_transition_has_no_weight_and_no_advantage_in_ppo(dataset, tmp_path):
    """Its loss weight is 0 and its return is its state's value (advantage 0), so that the steps before it bootstrap
    from the last valid state, as at a time-out."""
    from coohoi.agents.train import make_agent

    cfg = env_config("carry_box", dataset, N, "train.ppo.horizon_length=8", "torch_threads=1",
                     "train.amp.demo_buffer_size=512", "train.amp.replay_buffer_size=512", f"output_dir={tmp_path}")
    env = make_env(cfg)
    FaultInjector(env, inject=True)
    agent, _ = make_agent(cfg, env=env)
    agent.init_tensors()
    agent.obs = agent.env_reset()
    batch = agent.play_steps()
    tensors = agent.experience_buffer.tensor_dict
    mask = tensors["agent_mask"]  # [horizon, rows]
    assert mask[NAN_STEP - 1, 1] == 0 and mask[FORCE_STEP - 1, 2] == 0 and int((mask == 0).sum()) == 2
    assert tensors["rewards"][NAN_STEP - 1, 1, 0] == tensors["values"][NAN_STEP - 1, 1, 0]
    returns = batch["returns"].view(N, -1)  # rows then steps (rl-games' swap_and_flatten01)
    values = batch["values"].view(N, -1)
    assert returns[1, NAN_STEP - 1] == pytest.approx(values[1, NAN_STEP - 1].item(), abs=1e-6)
    assert returns[2, FORCE_STEP - 1] == pytest.approx(values[2, FORCE_STEP - 1].item(), abs=1e-6)
