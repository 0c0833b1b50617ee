"""The `coohoi` command line: help and --cfg of every command, and that no setting is ever silently ignored
(unknown or deleted keys, NaN, out-of-range values, explicit values under the CPU defaults)."""

from __future__ import annotations

import contextlib
import io
import re

import pytest
import yaml

from coohoi import cli
from coohoi.cli import COMMANDS, Command, compose, explicit_keys, main

TINY_RUN = ["engine.num_envs=4", "engine.nthread=1", "train.max_epochs=2", "train.eval.every=0",
            "train.eval.baselines=false", "train.amp.demo_buffer_size=2000", "train.amp.replay_buffer_size=2000"]
RLGAMES_DEBUG = ("self.seed", "build mlp", "RunningMeanStd", "seq_length", "current training device",
                 "Exact experiment name")


@pytest.fixture
def nothing_runs(monkeypatch):
    """Every command's function replaced by one that cannot be imported: running any of them fails the test."""
    for name, spec in COMMANDS.items():
        monkeypatch.setitem(COMMANDS, name, Command("no_such_module_coohoi:run", spec.summary, spec.section,
                                                    spec.examples))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-epoch training run (its stdout, and its checkpoint, trained with a non-default task setting)."""
    out_dir = tmp_path_factory.mktemp("runs")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["train", *TINY_RUN, f"output_dir={out_dir}", "experiment=tiny", "task.env.fall_height=0.25"]) == 0
    return stdout.getvalue(), out_dir / "tiny" / "nn" / "last.pth"


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1, captured.err
    return captured.err


# ---- help and --cfg --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_of_every_command_lists_groups_choices_its_settings_and_examples(command, capsys, nothing_runs):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    section = COMMANDS[command].section
    for text in ("config groups", "carry_box", "team_carry_table", "warp", "td3", "round_table", "examples:",
                 f"{section} settings", f"coohoi {command} "):
        assert text in out, text
    assert re.search(rf"^  {section}\.\w+ = ", out, flags=re.M)


@pytest.mark.parametrize("argv", [["train", "-h"], ["help", "train"], ["train", "engine.num_envs=8", "--help"]])
def test_every_spelling_of_help_shows_the_command_help(argv, capsys, nothing_runs):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train.max_epochs = 400" in out and "examples:" in out


def test_help_shows_the_settings_as_the_command_line_sets_them(capsys, nothing_runs):
    assert main(["render", "render.width=320", "--help"]) == 0
    assert re.search(r"^  render\.width = 320$", capsys.readouterr().out, flags=re.M)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("flag", [["--cfg"], ["--cfg", "job"], ["--cfg", "all"]])
def test_cfg_prints_the_composed_config_as_yaml_without_running(command, flag, capsys, nothing_runs):
    assert main([command, "seed=3", *flag]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["seed"] == 3 and COMMANDS[command].section in printed and printed["task"]["name"] == "amp_locomotion"


def test_cfg_names_no_hydra_config(capsys, nothing_runs):
    assert main(["train", "--cfg", "hydra"]) == 2
    assert "--cfg job" in _error_line(capsys)


@pytest.mark.parametrize("command", ["play", "render", "eval"])
def test_cfg_of_a_checkpoint_shows_the_config_it_will_run_with(command, trained, capsys, nothing_runs):
    _, checkpoint = trained
    assert main([command, f"checkpoint={checkpoint}", "--cfg"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["task"]["env"]["fall_height"] == 0.25  # the run's own setting
    assert main([command, f"checkpoint={checkpoint}", "task.env.head_fall_height=0.4", "--cfg"]) == 0
    env = yaml.safe_load(capsys.readouterr().out)["task"]["env"]
    assert (env["fall_height"], env["head_fall_height"]) == (0.25, 0.4)  # the command line on top


@pytest.mark.parametrize("argv", [["motion", "--help"], ["help", "motion"], ["motion", "generate", "--help"],
                                  ["motion", "info", "-h"], ["motion", "list", "--help"], ["motion", "show", "--help"],
                                  ["motion", "render", "--help"], ["motion", "import", "--help"],
                                  ["motion", "import", "ase", "--help"], ["motion", "import", "amass", "--help"],
                                  ["motion", "import", "bvh", "--help"], ["motion", "check", "--help"]])
def test_motion_help_and_each_subcommand_help_exit_zero(argv, capsys):
    assert main(argv) == 0
    assert "usage: coohoi motion" in capsys.readouterr().out


def test_unknown_commands_and_options_are_refused(capsys):
    assert main(["trian"]) == 2 and "unknown command 'trian'" in capsys.readouterr().err
    assert main(["train", "--multirun"]) == 2 and "unknown option --multirun" in _error_line(capsys)


# ---- unknown, deleted and impossible settings -----------------------------------------------------------------------

@pytest.mark.parametrize("override, named", [
    ("+foo=1", "'foo'"), ("++foo=1", "'foo'"), ("+task.train.learnig_rate=1e-3", "task.train"),
    ("+task.foo=1", "task.foo"), ("+task.env.foo=1", "task.env.foo"),
    ("+train.ppo.learnig_rate=1", "train.ppo.learnig_rate (did you mean train.ppo.learning_rate?)"),
    ("train.ppo.learnig_rate=1", "did you mean train.ppo.learning_rate?"), ("seeed=1", "did you mean seed?"),
    ("+engine.foo=1", "engine.foo"), ("+render.foo=1", "render.foo"), ("+task.scene.object.foo=1", "object.foo"),
    ("+train.cpu_overrides.nope=1", "train.cpu_overrides.nope"),
    ("~seed", "~seed"), ("~train.ppo.gamma", "~train.ppo.gamma"), ("~task.env.fall_height", "~task.env.fall_height"),
    ("hydra.run.dir=x", "hydra's own settings"),
])
def test_unknown_and_deleted_keys_are_refused_in_every_written_form(override, named, capsys):
    assert main(["train", override]) == 2
    assert named in _error_line(capsys)


@pytest.mark.parametrize("overrides, key", [
    (["engine.policy_dt=nan"], "engine.policy_dt"), (["engine.max_speed=inf"], "engine.max_speed"),
    (["task.scene.physics_dt=inf"], "task.scene.physics_dt"), (["task.env.fall_height=nan"], "task.env.fall_height"),
    (["task.scene.object.size=[0.5,nan,0.5]"], "task.scene.object.size[1]"),
    (["task=carry_box", "task.env.reward_weights.held=inf"], "task.env.reward_weights.held"),
    (["task=carry_box", "task.env.box_distance_range=[0.5,inf]"], "task.env.box_distance_range[1]"),
    (["train.ppo.learning_rate=nan"], "train.ppo.learning_rate"), (["train.max_minutes=inf"], "train.max_minutes"),
    (["render.seconds=nan"], "render.seconds"), (["export.parity_tolerance=inf"], "export.parity_tolerance"),
    (["bench.seconds=nan"], "bench.seconds"),
])
def test_nan_and_infinity_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ValueError, match=re.escape(f"{key} must be a finite number")):
        compose(overrides)


@pytest.mark.parametrize("overrides, message", [
    (["task=carry_box", "task.env.reward_weights.held=-1"], "task.env.reward_weights.held must be >= 0"),
    (["task=carry_box", "task.env.held_coef=-5"], "task.env.held_coef must be >= 0"),
    (["task.env.fall_height=-0.1"], "task.env.fall_height must be >= 0"),
    (["task.env.episode_length_s=0"], "task.env.episode_length_s must be > 0"),
    (["task=carry_box", "task.env.walk_target_speed=0"], "task.env.walk_target_speed must be > 0"),
    (["task=carry_box", "task.env.target_distance_range=[3,1]"], "task.env.target_distance_range must be [low, high]"),
    (["task.scene.physics_dt=0"], "task.scene.physics_dt must be > 0"),
    (["task.scene.object.mass=-1"], "task.scene.object.mass must be > 0"),
    (["task.scene.object.size=[0.5,0,0.5]"], "task.scene.object.size must be all > 0"),
    (["task.scene.object.friction=-1"], "task.scene.object.friction must be >= 0"),
    (["task.scene.object.kind=sofaa"], "task.scene: unknown object kind 'sofaa'; choose one of box"),
    (["engine.num_envs=0"], "engine.num_envs must be >= 1"), (["engine.policy_dt=-1"], "engine.policy_dt must be > 0"),
    (["engine.max_speed=0"], "engine.max_speed must be > 0"), (["engine.name=bullet"], "engine.name must be one of"),
    (["train.ppo.entropy_coef=-1"], "train.ppo.entropy_coef must be >= 0"),
    (["train.amp.disc_coef=-1"], "train.amp.disc_coef must be >= 0"),
    (["render.seconds=0"], "render.seconds must be > 0"), (["render.width=8"], "render.width must be >= 16"),
    (["render.envs=[-1]"], "render.envs must be a non-empty list of indices >= 0"),
    (["render.follow=head"], "render.follow must be one of team, object"),
    (["play.policy=random"], "play.policy must be one of checkpoint, zero"),
    (["render.policy=random"], "render.policy must be one of"), (["eval.policy=random"], "eval.policy must be one of"),
    (["eval.episodes=0"], "eval.episodes must be >= 1"), (["eval.team_size=0"], "eval.team_size must be >= 1"),
    (["export.parity_tolerance=0"], "export.parity_tolerance must be > 0"),
    (["export.parity_samples=0"], "export.parity_samples must be >= 1"),
    (["export.opset=12"], "export.opset must be >= 13"),
    (["torch_threads=-1"], "torch_threads must be >= 0"), (["seed=1.5"], "seed must be an integer"),
    (["task.env=null"], "task.env is a section of settings"),
])
def test_values_that_cannot_work_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        compose(overrides)


def test_a_bad_value_stops_the_command_with_one_line_and_exit_code_2(capsys, nothing_runs):
    assert main(["train", "task.env.fall_height=nan"]) == 2
    assert _error_line(capsys) == "coohoi train: task.env.fall_height must be a finite number, got nan\n"


@pytest.mark.parametrize("error", ["value", "render"])
def test_errors_raised_by_a_command_become_one_line_with_exit_code_2(error, capsys, monkeypatch):
    from coohoi.render import RenderError

    def fail(cfg, overrides):
        raise (ValueError("checkpoint 'x' does not exist") if error == "value"
               else RenderError("no OpenGL backend could be loaded; set MUJOCO_GL=egl or osmesa"))

    module = type(cli)("fake_command")
    module.run = fail
    monkeypatch.setitem(__import__("sys").modules, "fake_command", module)
    monkeypatch.setitem(COMMANDS, "render", Command("fake_command:run", "", "render", []))
    assert main(["render"]) == 2
    assert ("does not exist" if error == "value" else "MUJOCO_GL=egl") in _error_line(capsys)


# ---- explicit settings beat the CPU defaults -----------------------------------------------------------------------

def test_explicit_keys_are_found_however_the_override_is_written():
    written = ["train.ppo.learning_rate=1e-3", "+train.amp.disc_coef=1", "++train.network.mlp_units=[64]",
               "~train.td3.tau", "train=td3", "task=carry_box", "trainer.x=1"]
    assert explicit_keys(written, "train") == {"ppo.learning_rate", "amp.disc_coef", "network.mlp_units", "td3.tau"}


@pytest.mark.parametrize("overrides", [
    ["train.ppo.learning_rate=1e-3", "train.network.mlp_units=[64]"],
    ["++train.ppo.learning_rate=1e-3", "++train.network.mlp_units=[64]"],
    ["task=carry_box", "train.ppo.learning_rate=1e-3", "train.network.mlp_units=[64]"],  # a task yaml with train keys
])
def test_an_explicit_learning_rate_and_network_survive_the_cpu_engine(overrides):
    cfg = compose(overrides)
    assert cfg.train.ppo.learning_rate == 1e-3 and list(cfg.train.network.mlp_units) == [64]
    applied = cfg.train.cpu_applied
    assert "ppo.learning_rate" not in applied and "network.mlp_units" not in applied
    assert list(applied["network.disc_units"]) == [256, 128]  # the settings left alone still get the CPU value


def test_a_whole_section_set_explicitly_keeps_every_key_below_it():
    cfg = compose(["train.network={mlp_units: [64], disc_units: [32], activation: elu}"])
    assert list(cfg.train.network.disc_units) == [32]
    assert not any(k.startswith("network.") for k in cfg.train.cpu_applied)


def test_appending_a_key_that_exists_is_refused_rather_than_ignored(capsys):
    assert main(["train", "+train.ppo.learning_rate=1e-3"]) == 2
    assert "++train.ppo.learning_rate" in _error_line(capsys)


# ---- a training run's console -------------------------------------------------------------------------------------

def test_a_training_run_prints_our_lines_only_and_the_cpu_adjustment_once(trained):
    out, checkpoint = trained
    assert checkpoint.is_file() and "epoch 2/2" in out
    assert out.count("CPU engine: using") == 1
    assert not [line for line in out.splitlines() if line.startswith(RLGAMES_DEBUG)], out


# ---- shipped motion clips by name -----------------------------------------------------------------------------------

def test_a_shipped_clip_name_works_for_info_and_show(capsys, monkeypatch):
    from coohoi.motion import playback

    shown = []
    monkeypatch.setattr(playback, "show_clip", lambda clip, speed, loop: shown.append((clip.num_frames, loop)))
    assert main(["motion", "info", "idle"]) == 0 and "idle" in capsys.readouterr().out
    assert main(["motion", "show", "idle", "--once"]) == 0
    assert shown and shown[0][0] > 1 and shown[0][1] is False


def test_a_shipped_clip_name_renders_headless(tmp_path, capsys):
    out = tmp_path / "pickup.mp4"  # the README's command, at 2 frames per second and thumbnail size
    assert main(["motion", "render", "pickup", "--out", str(out), "--fps", "2", "--width", "64", "--height", "48"]) == 0
    assert out.stat().st_size > 0 and re.search(r"\(\d+ frames\)", capsys.readouterr().out)


def test_an_unknown_clip_name_lists_the_shipped_ones(capsys):
    assert main(["motion", "show", "idel"]) == 2
    err = capsys.readouterr().err
    assert "'idel'" in err and "idle" in err and "pickup" in err
    assert main(["motion", "list"]) == 0 and "walk_forward_1.2" in capsys.readouterr().out
