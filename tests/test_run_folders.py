"""A run folder holds one run: rotating epoch snapshots and the best evaluation's checkpoint, a second start into
the same experiment refused before anything is written, resumes that continue metrics.jsonl, Ctrl-C that saves and
exits with 130, and a resume of a finished run that says how to extend it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import coohoi.agents.train as train_module
from coohoi.cli import main

TINY = ["engine.num_envs=4", "torch_threads=1", "train.eval.every=1", "train.eval.num_envs=4",
        "train.eval.baselines=false", "train.save_frequency=1", "train.snapshot_frequency=1", "train.keep_last=2",
        "train.amp.demo_buffer_size=2000", "train.amp.replay_buffer_size=2000"]
LEARNERS = {"ppo": [], "td3": ["train=td3", "task=amp_locomotion", "train.td3.steps_per_epoch=4",
                               "train.td3.learning_starts=2", "train.td3.batch_size=64"]}


def _args(tmp, algo, *extra, epochs=3):
    return ["train", *TINY, *LEARNERS[algo], f"train.max_epochs={epochs}", f"output_dir={tmp}", "experiment=x", *extra]


def _epochs(run_dir):
    return [row["epoch"] for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "epoch" in row]


def _files(run_dir):
    """Every file of a run folder with its bytes and modification time."""
    return {p.relative_to(run_dir): (p.read_bytes(), p.stat().st_mtime_ns) for p in run_dir.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 3-epoch run of each learner (tests copy it before changing it)."""
    runs = {}
    for algo in LEARNERS:
        tmp = tmp_path_factory.mktemp(algo)
        assert main(_args(tmp, algo)) == 0
        runs[algo] = tmp
    return runs


def _copy(finished, algo, tmp_path):
    shutil.copytree(finished[algo] / "x", tmp_path / "x")
    return tmp_path / "x"


@pytest.mark.parametrize("algo", LEARNERS)
def test_each_learner_keeps_its_newest_snapshots_and_its_best_evaluation(finished, algo):
    run_dir = finished[algo] / "x"
    nn = run_dir / "nn"
    assert sorted(p.name for p in nn.glob("*.pth")) == ["best.pth", "epoch_000002.pth", "epoch_000003.pth",
                                                         "last.pth"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    lengths = {row["epoch"]: row["eval/episode_length"] for row in rows if "epoch" in row}
    best_epoch = max(lengths, key=lambda e: (lengths[e], -e))  # the first of equal evaluations
    best = torch.load(nn / "best.pth", weights_only=False)
    assert best["coohoi"]["best"] == {"metric": "episode_length", "value": pytest.approx(lengths[best_epoch]),
                                      "episode_length": pytest.approx(lengths[best_epoch]), "epoch": best_epoch}
    assert best["epoch"] == best_epoch and torch.load(nn / "last.pth", weights_only=False)["epoch"] == 3


def test_a_second_run_into_the_same_experiment_stops_and_leaves_the_first_untouched(finished, tmp_path, capsys):
    run_dir = _copy(finished, "ppo", tmp_path)
    before = _files(run_dir)
    assert main(_args(tmp_path, "ppo", epochs=2)) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"coohoi train: {run_dir} already holds a run: start a new one with experiment=NAME, or continue "
                   f"it with checkpoint={run_dir / 'nn' / 'last.pth'} resume=true")
    assert _files(run_dir) == before


def test_a_resume_into_another_run_folder_is_refused(finished, tmp_path, capsys):
    run_dir = _copy(finished, "ppo", tmp_path)
    shutil.copytree(run_dir, tmp_path / "y")
    before = _files(run_dir)
    args = [a.replace("experiment=x", "experiment=y") for a in _args(tmp_path, "ppo", epochs=5)]
    assert main([*args, f"checkpoint={run_dir / 'nn' / 'last.pth'}", "resume=true"]) == 2
    assert f"holds another run: give output_dir={tmp_path} experiment=x" in capsys.readouterr().err
    assert _files(run_dir) == before


@pytest.mark.parametrize("algo", LEARNERS)
def test_a_resume_continues_metrics_with_continuous_epochs_and_keeps_the_config(finished, algo, tmp_path):
    run_dir = _copy(finished, algo, tmp_path)
    config = (run_dir / "config.yaml").read_bytes()
    assert main([*_args(tmp_path, algo, epochs=5), f"checkpoint={run_dir / 'nn' / 'last.pth'}", "resume=true"]) == 0
    assert _epochs(run_dir) == [1, 2, 3, 4, 5] and (run_dir / "config.yaml").read_bytes() == config
    assert sorted(p.name for p in (run_dir / "nn").glob("epoch_*.pth")) == ["epoch_000004.pth", "epoch_000005.pth"]


def test_a_resume_from_an_earlier_save_drops_the_metrics_of_later_epochs(finished, tmp_path, capsys):
    run_dir = _copy(finished, "ppo", tmp_path)
    assert main([*_args(tmp_path, "ppo", epochs=4), f"checkpoint={run_dir / 'nn' / 'epoch_000002.pth'}",
                 "resume=true"]) == 0
    assert "dropped 1 lines of epochs after the checkpoint's epoch 2" in capsys.readouterr().out
    assert _epochs(run_dir) == [1, 2, 3, 4]


@pytest.mark.parametrize("algo", LEARNERS)
def test_resuming_a_finished_run_says_it_is_finished_and_how_to_extend_it(finished, algo, tmp_path, capsys):
    run_dir = _copy(finished, algo, tmp_path)
    before = _files(run_dir)
    last = run_dir / "nn" / "last.pth"
    assert main([*_args(tmp_path, algo), f"checkpoint={last}", "resume=true"]) == 0
    assert capsys.readouterr().out.strip() == (f"{last} is finished: epoch 3 of train.max_epochs=3; to train on, "
                                               f"resume with a larger train.max_epochs (e.g. train.max_epochs=6)")
    assert _files(run_dir) == before


def _interrupt_in_epoch(monkeypatch, epoch, again_while_saving=False):
    """Make the session raise KeyboardInterrupt at the start of its epoch_end for `epoch` (inside the epoch), and
    optionally once more when the learner then saves."""
    original = train_module.TrainingSession.epoch_end

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    def epoch_end(self, learner, metrics):
        if metrics["epoch"] == epoch:
            if again_while_saving:
                learner.save = interrupt
            raise KeyboardInterrupt
        return original(self, learner, metrics)

    monkeypatch.setattr(train_module.TrainingSession, "epoch_end", epoch_end)


@pytest.mark.parametrize("algo", LEARNERS)
def test_ctrl_c_inside_an_epoch_saves_the_last_completed_epoch_and_exits_with_130(algo, tmp_path, monkeypatch,
                                                                                  capsys):
    _interrupt_in_epoch(monkeypatch, 2)
    args = [a.replace("save_frequency=1", "save_frequency=10") for a in _args(tmp_path, algo, epochs=4)]
    assert main(args) == 130
    last = tmp_path / "x" / "nn" / "last.pth"
    out = capsys.readouterr().out.strip().splitlines()
    resume_args = [*args[1:], f"checkpoint={last}", "resume=true"]
    assert out[-1] == f"interrupted at epoch 1: saved {last}; resume with: coohoi train {' '.join(resume_args)}"
    state = torch.load(last, weights_only=False)
    assert state["epoch"] == 1 and state["frame"] == _frames_per_epoch(algo)
    monkeypatch.undo()
    assert main(["train", *resume_args]) == 0
    assert _epochs(tmp_path / "x") == [1, 2, 3, 4]


def _frames_per_epoch(algo):
    return 4 * (32 if algo == "ppo" else 4)


def test_a_second_ctrl_c_while_saving_stops_at_once_and_keeps_the_previous_save(tmp_path, monkeypatch, capsys):
    _interrupt_in_epoch(monkeypatch, 3, again_while_saving=True)
    assert main(_args(tmp_path, "td3", epochs=4)) == 130
    last = tmp_path / "x" / "nn" / "last.pth"
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"interrupted again while saving: {last} is the previous save")
    assert torch.load(last, weights_only=False)["epoch"] == 2  # the learner's own save after epoch 2


def test_sigint_to_a_training_process_saves_and_exits_with_130_without_a_traceback(tmp_path):
    args = [a.replace("eval.every=1", "eval.every=0") for a in _args(tmp_path, "td3", epochs=100000)]
    proc = subprocess.Popen([sys.executable, "-m", "coohoi.cli", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    metrics = tmp_path / "x" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and out.strip().splitlines()[-1].startswith("interrupted at epoch ")
    state = torch.load(tmp_path / "x" / "nn" / "last.pth", weights_only=False)
    recorded = max(_epochs(tmp_path / "x"))  # a signal between a metrics line and its count may leave one more line
    assert recorded - 1 <= state["epoch"] <= recorded and recorded >= 2


def test_a_first_ctrl_c_is_taken_at_the_next_step_and_a_second_at_once():
    with train_module.StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt here (inside whatever code runs)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            stop.check()  # ... but at the learner's next step
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # a second one stops at once
            time.sleep(1.0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    train_module.NO_STOP_REQUEST.check()  # a learner built outside `coohoi train` is never stopped
