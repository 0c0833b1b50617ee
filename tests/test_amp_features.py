"""AMP features: a simulator state set from a library frame gives the features the library computes for it."""

from __future__ import annotations

import torch

from coohoi import humanoid as hum
from coohoi.config import EngineConfig, SceneConfig
from coohoi.engine import HumanoidState, SimState, make_engine
from coohoi.motion.amp_features import AMP_FEATURE_SIZE, amp_features
from coohoi.motion.library import MotionLib
from motion_clips import looping_clip, sinusoid_clip

NUM_ENVS = 6
TOLERANCE = 1e-4


def _engine():
    return make_engine(SceneConfig(), EngineConfig(num_envs=NUM_ENVS, nthread=1))


def _set_engine(engine, state):
    objects = engine.default_state(NUM_ENVS).object
    humanoid = HumanoidState(state.root_pos[:, None], state.root_quat[:, None], state.root_lin_vel[:, None],
                             state.root_ang_vel[:, None], state.dof_pos[:, None], state.dof_vel[:, None])
    engine.reset(None, SimState(humanoid, objects))


def _live_features(engine):
    return amp_features(engine.root_pos[:, 0], engine.root_quat[:, 0], engine.root_lin_vel[:, 0],
                        engine.root_ang_vel[:, 0], engine.dof_pos[:, 0], engine.dof_vel[:, 0],
                        engine.body_pos[:, 0, list(hum.KEY_BODY_IDS)])


def _library():
    return MotionLib([sinusoid_clip(), looping_clip()], dtype=torch.float64)


def test_simulator_state_from_clip_gives_library_features():
    lib, engine = _library(), _engine()
    clip_ids = torch.tensor([0, 0, 0, 1, 1, 1])
    # Clip start, inside, between frames, clip end; loop start, between the loop's last and first frame, inside.
    times = torch.tensor([0.0, 0.77, 1.2345, float(lib.clip_durations[0]), float(lib.clip_durations[1]) - 0.01, 0.4],
                         dtype=torch.float64)
    state = lib.state(clip_ids, times)
    _set_engine(engine, state)

    # The engine's own forward kinematics agrees with the library's.
    torch.testing.assert_close(engine.body_pos[:, 0], state.body_pos, atol=1e-6, rtol=0)
    cos = (engine.body_quat[:, 0] * state.body_quat).sum(-1).abs()
    assert torch.all(cos > 1 - 1e-9)

    live = _live_features(engine)
    demo = lib.amp_features(clip_ids, times, history=1, dt=1 / 30)[:, 0]
    assert live.shape == demo.shape == (NUM_ENVS, AMP_FEATURE_SIZE)
    assert (live - demo).abs().max() < TOLERANCE
    # The comparison is sensitive: a frame 0.1 s later differs clearly.
    later = lib.amp_features(clip_ids, times + 0.1, history=1, dt=1 / 30)[:, 0]
    assert (live - later).abs().amax(dim=1).min() > 1e-2


def test_history_order_matches_simulator_frames():
    lib, engine = _library(), _engine()
    history, dt = 4, 1 / 30
    clip_ids = torch.tensor([0, 0, 1, 1, 0, 1])
    times = torch.tensor([1.0, 0.05, 0.05, 1.3, 1.9, 0.0], dtype=torch.float64)
    demo = lib.amp_features(clip_ids, times, history=history, dt=dt)
    assert demo.shape == (NUM_ENVS, history, AMP_FEATURE_SIZE)
    for k in range(history):  # index 0 is the newest frame
        _set_engine(engine, lib.state(clip_ids, times - k * dt))
        assert (_live_features(engine) - demo[:, k]).abs().max() < TOLERANCE
    # Before the start, a non-looping clip back-fills with its first frame; a looping clip runs on backwards.
    torch.testing.assert_close(demo[1, 2], demo[1, 3])
    assert (demo[5, 1] - demo[5, 0]).abs().max() > 1e-3


def test_features_layout():
    lib = _library()
    state = lib.state(torch.tensor([0]), torch.tensor([0.5], dtype=torch.float64))
    feats = lib.amp_features(torch.tensor([0]), torch.tensor([0.5], dtype=torch.float64), 1, 1 / 30)[0, 0]
    assert torch.isclose(feats[0], state.root_pos[0, 2])
    torch.testing.assert_close(feats[85:113], state.dof_vel[0])
    demo = lib.sample_amp_demo(5, history=3, dt=1 / 30, generator=torch.Generator().manual_seed(0))
    assert demo.shape == (5, 3 * AMP_FEATURE_SIZE) and torch.isfinite(demo).all()
