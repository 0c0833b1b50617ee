"""The AMP history update of env.step: stable rows shift in the new frame, a blown-up world shifts in its last valid
frame again (never NaN, without a host sync), and is then reset."""

from __future__ import annotations

import pytest
import torch
from _env_helpers import env_config, write_dataset

from coohoi.envs import make_env
from coohoi.motion.amp_features import AMP_FEATURE_SIZE

torch.set_num_threads(1)
N = 3


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_env(env_config("amp_locomotion", write_dataset(tmp_path_factory.mktemp("motions")), N))


def test_history_shifts_and_unstable_world_repeats_its_last_valid_frame(env, monkeypatch):
    env.reset()
    for _ in range(3):
        env.step(torch.zeros(N, 28))
    before = env.amp_hist.clone()
    engine = env.engine
    physics_step = engine._step_physics

    def blow_up_world_0():
        failed = physics_step()
        engine._qvel[0, 3] = float("nan")
        return failed

    monkeypatch.setattr(engine, "_step_physics", blow_up_world_0)
    _, _, terminated, truncated, info = env.step(torch.zeros(N, 28))
    monkeypatch.undo()
    amp_obs = info["amp_obs"].view(N, env.amp_history, AMP_FEATURE_SIZE)
    assert amp_obs.dtype == torch.float32
    # World 0 blew up: its AMP observation is the history before the step with its newest frame repeated.
    assert truncated[0].item()
    torch.testing.assert_close(amp_obs[0], torch.cat((before[0, :1], before[0, :-1])), atol=0, rtol=0)
    # The others shifted by one frame; their newest frame is the state just reached.
    assert not (terminated[1:] | truncated[1:]).any()
    torch.testing.assert_close(amp_obs[1:, 1:], before[1:, :-1], atol=0, rtol=0)
    torch.testing.assert_close(amp_obs[1:, 0], env.amp_frame()[1:].float(), atol=0, rtol=0)
    assert (amp_obs[1:, 0] - before[1:, 0]).abs().amax() > 1e-6
    # World 0 was reset: its history is back-filled from its new start and finite.
    assert torch.isfinite(env.amp_hist).all() and env.progress[0].item() == 0
