"""`coohoi bench`: the table it prints and the settings it accepts (tiny sizes; the real numbers are in docs)."""

from __future__ import annotations

import re

import pytest

from coohoi import bench
from coohoi.cli import compose, main


def test_bench_prints_engine_raw_and_ratio_per_scene(capsys):
    cfg = compose(["bench.num_envs=[2]", "bench.seconds=0.05", "bench.rounds=1", "bench.warmup_steps=1",
                   "engine.nthread=1"])
    assert bench.run(cfg) == 0
    out = capsys.readouterr().out
    assert "1 humanoid + box" in out and "2 humanoids + long box" in out
    rows = re.findall(r"^\s+2\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)%$", out, flags=re.M)
    assert len(rows) == 2, out
    for engine_rate, raw_rate, ratio in rows:
        engine_rate, raw_rate = float(engine_rate.replace(",", "")), float(raw_rate.replace(",", ""))
        assert engine_rate > 0 and raw_rate > 0
        assert float(ratio) == pytest.approx(100 * engine_rate / raw_rate, abs=1.0)


def test_training_throughput_hook_adds_a_column(capsys, monkeypatch):
    calls = []

    def fake_training(env_factory, num_envs, seconds):
        env = env_factory(num_envs)  # the factory builds what the benchmark measured, at any size
        calls.append((env.num_envs, num_envs))
        return 123.0

    monkeypatch.setattr(bench, "TRAINING_THROUGHPUT", fake_training)
    cfg = compose(["bench.num_envs=[2]", "bench.seconds=0.05", "bench.rounds=1", "bench.warmup_steps=1",
                   "bench.scenes=[box1]", "bench.raw=false", "engine.nthread=1"])
    bench.run(cfg)
    out = capsys.readouterr().out
    assert calls == [(2, 2)]
    assert "training" in out and re.search(r"^\s+2\s+[\d,]+\s+-\s+-\s+123$", out, flags=re.M), out


def test_bad_bench_settings_are_named(capsys):
    assert main(["bench", "bench.scenes=[nope]", "bench.num_envs=[1]"]) == 2
    assert "bench.scenes" in capsys.readouterr().err
    assert main(["bench", "+bench.typo=1"]) == 2
    assert "typo" in capsys.readouterr().err
