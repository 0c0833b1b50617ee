"""`coohoi export` and `coohoi eval`: a tiny trained policy exported to ONNX and TorchScript, checked for parity,
and evaluated as a checkpoint and as an ONNX file on the same seeds."""

from __future__ import annotations

import csv
import json

import onnx
import pytest
import torch

from coohoi.agents.policy import load_policy
from coohoi.cli import main

TINY_TRAIN = ["engine.num_envs=4", "train.max_epochs=2", "train.eval.every=0", "train.eval.baselines=false",
              "engine.nthread=1"]


@pytest.fixture(scope="module")
def carry_run(tmp_path_factory):
    """A carry_box PPO checkpoint after two epochs, exported beside itself."""
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "task=carry_box", *TINY_TRAIN, f"output_dir={out}", "experiment=carry"]) == 0
    checkpoint = out / "carry" / "nn" / "last.pth"
    assert main(["export", f"checkpoint={checkpoint}"]) == 0
    return checkpoint


def _eval(capsys, source, out, *extra):
    assert main(["eval", f"checkpoint={source}", "eval.episodes=6", "engine.num_envs=4", "engine.nthread=1",
                 f"eval.out={out}", *extra]) == 0
    printed = capsys.readouterr()
    with (out / "episodes.csv").open() as f:
        rows = list(csv.DictReader(f))
    return json.loads((out / "metrics.json").read_text()), rows, printed


def test_export_writes_onnx_torchscript_and_metadata_that_match_the_checkpoint(carry_run):
    stem = carry_run.with_suffix("")
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["task"] == "carry_box" and meta["algo"] == "ppo"
    parts = meta["observation"]["groups"]["policy"]
    assert [p["name"] for p in parts][:2] == ["root_height", "body_pos"] and parts[-1]["name"] == "object_ang_vel"
    assert sum(p["size"] for p in parts) == meta["observation"]["policy_size"] == 299
    assert meta["action"]["size"] == len(meta["action"]["scale"]) == len(meta["joints"]) == 28
    assert len(meta["pd"]["kp"]) == 28 and meta["pd"]["kp"][0] == pytest.approx(1000.0)  # abdomen_x, kp=1000
    assert meta["control"]["policy_dt"] == pytest.approx(1 / 30)
    assert meta["quaternion"].startswith("wxyz")
    assert meta["config"]["task"]["name"] == "carry_box" and meta["source"]["commit"]
    assert meta["parity"]["max_abs_diff"] == {"onnxruntime": 0.0, "torchscript": 0.0}
    embedded = {p.key: p.value for p in onnx.load(str(stem.with_suffix(".onnx"))).metadata_props}
    assert json.loads(embedded["coohoi"])["action"]["offset"] == meta["action"]["offset"]

    # The three forms act alike on observations the parity check never saw.
    checkpoint, exported = load_policy(carry_run), load_policy(stem.with_suffix(".onnx"))
    scripted = torch.jit.load(str(stem.with_suffix(".pt")))
    obs = torch.randn(64, 299, generator=torch.Generator().manual_seed(5)) * 4
    expected = checkpoint.act(obs)
    assert torch.equal(exported.act(obs), expected) and torch.equal(scripted(obs), expected)
    assert expected.abs().max() <= 1.0  # the action clamp is in the graph


def test_the_checkpoint_and_its_onnx_file_score_the_same_on_the_same_seeds(carry_run, tmp_path, capsys):
    from_checkpoint, rows_c, printed = _eval(capsys, carry_run, tmp_path / "pth")
    from_onnx, rows_o, _ = _eval(capsys, carry_run.with_suffix(".onnx"), tmp_path / "onnx")
    assert len(rows_c) == len(rows_o) == 6 and [r["seed"] for r in rows_c] == ["0"] * 4 + ["1"] * 2
    assert rows_c == rows_o  # every metric of every episode, to the digit: the two act alike to the bit
    for group in ("coohoi", "teamhoi", "episode"):
        assert from_checkpoint[group].keys() == from_onnx[group].keys()
        for name, value in from_checkpoint[group].items():
            assert value["episodes"] == from_onnx[group][name]["episodes"]
    assert from_checkpoint["coohoi"]["success_rate"]["episodes"] == 6
    assert from_checkpoint["teamhoi"]["sticky_success_rate"]["mean"] is None  # a single-agent task
    assert "success_rate" in printed.out and "6/6 episodes" in printed.err


def test_eval_refuses_a_policy_made_for_another_task_naming_what_differs(carry_run, tmp_path, capsys):
    for source in (carry_run, carry_run.with_suffix(".onnx")):
        assert main(["eval", f"checkpoint={source}", "task=amp_locomotion", "engine.num_envs=2",
                     f"eval.out={tmp_path}"]) == 2
        err = capsys.readouterr().err
        assert "does not match" in err and "299/28 in the policy, 223/28 here" in err
    # Same sizes, different action mapping: the metadata names the key.
    stem = carry_run.with_suffix("")
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta["action"]["scale"][0] *= 2
    tampered = tmp_path / "tampered"
    tampered.with_suffix(".onnx").write_bytes(stem.with_suffix(".onnx").read_bytes())
    tampered.with_suffix(".json").write_text(json.dumps(meta))
    assert main(["eval", f"checkpoint={tampered.with_suffix('.onnx')}", "engine.num_envs=2",
                 f"eval.out={tmp_path}"]) == 2
    assert "action.scale" in capsys.readouterr().err


def test_an_export_that_fails_its_parity_check_writes_nothing(carry_run, tmp_path, capsys, monkeypatch):
    """An exporter that writes a slightly different graph (here: one bias off by 1e-3) is caught, and no file is
    left behind."""
    import copy

    original = torch.onnx.export

    def exports_a_perturbed_graph(model, args, f, **kwargs):
        perturbed = copy.deepcopy(model)
        with torch.no_grad():
            perturbed.net[0].bias += 1e-3
        return original(perturbed, args, f, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", exports_a_perturbed_graph)
    assert main(["export", f"checkpoint={carry_run}", f"export.out={tmp_path / 'strict'}"]) == 2
    err = capsys.readouterr().err
    assert "parity" in err and "onnxruntime" in err and "torchscript" not in err
    assert not list(tmp_path.iterdir())


def test_a_cooperative_policy_exports_with_its_team_metadata(tmp_path, capsys):
    assert main(["train", "task=team_carry_long_box", *TINY_TRAIN, "engine.num_envs=2", f"output_dir={tmp_path}",
                 "experiment=team"]) == 0
    checkpoint = tmp_path / "team" / "nn" / "last.pth"
    assert main(["export", f"checkpoint={checkpoint}", f"export.out={tmp_path / 'team_policy'}"]) == 0
    meta = json.loads((tmp_path / "team_policy.json").read_text())
    assert meta["num_agents"] == 2 and meta["task"] == "team_carry_long_box"
    assert meta["observation"]["groups"]["critic"][-1]["name"] == "team_state"
    assert meta["observation"]["policy_size"] == 299  # one agent's observation: the phase-1 layout
    policy = load_policy(tmp_path / "team_policy.onnx")
    assert policy.act(torch.zeros(3, 299)).shape == (3, 28)
    # The exported team policy evaluates with a team size it was not trained with (eval.team_size).
    assert main(["eval", f"checkpoint={tmp_path / 'team_policy.onnx'}", "eval.team_size=3", "eval.episodes=2",
                 "engine.num_envs=2", f"eval.out={tmp_path / 'eval3'}", "eval.progress=false"]) == 0
    report = json.loads((tmp_path / "eval3" / "metrics.json").read_text())
    assert report["num_agents"] == 3 and report["episodes"] == 2
    assert report["teamhoi"]["sticky_success_rate"]["episodes"] == 2


def test_an_off_policy_checkpoint_exports_its_tanh_actor_and_normaliser(tmp_path):
    assert main(["train", "task=amp_locomotion", "train=td3", *TINY_TRAIN, "train.td3.steps_per_epoch=4",
                 "train.td3.learning_starts=2", "train.td3.batch_size=64", f"output_dir={tmp_path}",
                 "experiment=td3"]) == 0
    checkpoint = tmp_path / "td3" / "nn" / "last.pth"
    assert main(["export", f"checkpoint={checkpoint}"]) == 0
    meta = json.loads(checkpoint.with_suffix(".json").read_text())
    assert meta["algo"] == "td3" and meta["parity"]["max_abs_diff"]["onnxruntime"] <= 1e-5
    obs = torch.randn(16, 223, generator=torch.Generator().manual_seed(1)) * 3
    exported, trained = load_policy(checkpoint.with_suffix(".onnx")), load_policy(checkpoint)
    assert (exported.act(obs) - trained.act(obs)).abs().max() <= 1e-5


def test_the_loaded_policy_acts_as_the_trained_ppo_agent_does(carry_run):
    """The one loading path folds rl-games' normaliser and clamp exactly: the same deterministic actions as the
    learner restored from the same checkpoint."""
    from coohoi.agents.train import make_agent

    policy = load_policy(carry_run)
    agent, _ = make_agent(policy.config)
    agent.restore(str(carry_run), set_epoch=False)
    obs = torch.randn(32, 299, generator=torch.Generator().manual_seed(2)) * 3
    torch.testing.assert_close(policy.act(obs), agent.act(obs, True), rtol=0, atol=1e-6)


def test_task_settings_on_the_command_line_apply_to_the_policy_s_own_task(carry_run, capsys):
    """The default task is amp_locomotion; a carry policy's command line may still set carry settings, checked
    against its own task, and they land on top of its run's settings."""
    assert main(["eval", f"checkpoint={carry_run}", "task.env.box_distance_range=[1,3]", "--cfg"]) == 0
    printed = capsys.readouterr().out
    assert "name: carry_box" in printed and "box_distance_range:\n    - 1\n    - 3" in printed
    assert main(["eval", f"checkpoint={carry_run}", "task.env.box_distnce_range=[1,3]", "--cfg"]) == 2
    assert "box_distnce_range" in capsys.readouterr().err


def test_playback_export_and_evaluation_never_load_rl_games():
    import subprocess
    import sys

    code = ("import sys, coohoi.agents.play, coohoi.agents.export, coohoi.agents.evaluation, coohoi.agents.policy; "
            "print([m for m in sys.modules if m.startswith('rl_games')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_eval_shorthands_show_in_the_config_as_the_task_settings_they_stand_for(capsys):
    assert main(["eval", "task=team_carry_table", "eval.policy=zero", "eval.team_size=4",
                 "eval.object_kind=round_table", "--cfg"]) == 0
    printed = capsys.readouterr().out
    assert "num_humanoids: 4" in printed and "team_size_range:\n    - 4\n    - 4" in printed
    assert "kind: round_table" in printed
