"""`coohoi bench`: the table it prints and the settings it accepts (tiny sizes; the real numbers are in docs)."""

from __future__ import annotations

import re

import pytest

from coohoi import bench
from coohoi.agents import throughput
from coohoi.cli import compose, main


def test_bench_prints_engine_raw_and_ratios_per_scene(capsys):
    cfg = compose(["bench.num_envs=[2]", "bench.seconds=0.05", "bench.rounds=1", "bench.warmup_steps=1",
                   "engine.nthread=1", "bench.training_num_envs=[]", "bench.task_num_envs=[]"])
    assert bench.run(cfg) == 0
    out = capsys.readouterr().out
    assert "1 humanoid + box" in out and "2 humanoids + long box" in out
    rows = re.findall(r"^\s+2\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)%\s+([\d,]+)\s+([\d.]+)%$", out, flags=re.M)
    assert len(rows) == 2, out
    for engine_rate, raw_rate, ratio, raw_state_rate, state_ratio in rows:
        engine_rate, raw_rate, raw_state_rate = (float(x.replace(",", "")) for x in (engine_rate, raw_rate,
                                                                                     raw_state_rate))
        assert engine_rate > 0 and raw_rate > 0 and raw_state_rate > 0
        assert float(ratio) == pytest.approx(100 * engine_rate / raw_rate, abs=1.0)
        assert float(state_ratio) == pytest.approx(100 * engine_rate / raw_state_rate, abs=1.0)


def test_training_throughput_is_printed_next_to_env_only(capsys):
    cfg = compose(["task=amp_locomotion", "bench.num_envs=[2]", "bench.seconds=0.05", "bench.rounds=1",
                   "bench.warmup_steps=1", "bench.scenes=[box1]", "bench.raw=false", "engine.nthread=1",
                   "bench.training_num_envs=[4]", "bench.training_epochs=1", "bench.task_num_envs=[]"])
    assert throughput.bench(cfg) == 0
    out = capsys.readouterr().out
    assert "training task=amp_locomotion" in out
    row = re.search(r"^\s+4\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)$", out, flags=re.M)
    assert row, out
    env_only, total = (float(x.replace(",", "")) for x in row.groups()[:2])
    assert 0 < total < env_only  # learning costs time on top of stepping


def test_bad_bench_settings_are_named(capsys):
    assert main(["bench", "bench.scenes=[nope]", "bench.num_envs=[1]"]) == 2
    assert "bench.scenes" in capsys.readouterr().err
    assert main(["bench", "+bench.typo=1"]) == 2
    assert "typo" in capsys.readouterr().err


def test_task_env_steps_are_printed_for_one_two_and_four_agents_next_to_raw_physics(capsys):
    cfg = compose(["bench.seconds=0.05", "bench.rounds=1", "bench.warmup_steps=1", "bench.scenes=[box1]",
                   "bench.num_envs=[1]", "engine.nthread=1", "bench.training_num_envs=[]", "bench.task_num_envs=[2]"])
    assert bench.run(cfg) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+(\d)\s+(\w+)\s+2\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)%$", out, flags=re.M)
    assert [(a, t) for a, t, *_ in rows] == [("1", "carry_box"), ("2", "team_carry_long_box"),
                                             ("4", "team_carry_table")], out
    for agents, _, env_rate, agent_rate, raw_rate, ratio in rows:
        env_rate, agent_rate, raw_rate = (float(x.replace(",", "")) for x in (env_rate, agent_rate, raw_rate))
        assert agent_rate == pytest.approx(int(agents) * env_rate, rel=0.01)
        assert float(ratio) == pytest.approx(100 * env_rate / raw_rate, abs=1.0)


def test_the_simulation_core_never_imports_the_learners():
    """coohoi/ (the engines, scene, bench, motion) stands alone: importing it loads no coohoi.agents module."""
    import subprocess
    import sys

    code = ("import sys, coohoi.bench, coohoi.render, coohoi.motion.cli, coohoi.envs; "
            "print([m for m in sys.modules if m.startswith('coohoi.agents')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
