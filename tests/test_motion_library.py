"""MotionLib: interpolation, finite-difference velocities, looping, clamping, sampling and dataset loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.kinematics import ForwardKinematics
from coohoi.motion.library import MotionDatasetError, MotionLib
from motion_clips import ROOT_SPEED, dof_vel_at, looping_clip, root_at, sinusoid_clip

F64 = torch.float64


def _t(values):
    return torch.as_tensor(values, dtype=F64)


def _analytic_root_velocity(t: np.ndarray, h: float = 1e-6):
    """Root linear and world angular velocity of the analytic root motion, by a tiny central difference."""
    p0, q0 = root_at(t - h)
    p1, q1 = root_at(t + h)
    lin = (p1 - p0) / (2 * h)
    from coohoi.rotations import quat_angular_velocity
    ang = quat_angular_velocity(torch.from_numpy(q0), torch.from_numpy(q1), 2 * h).numpy()
    return lin, ang


def test_frames_are_reproduced_and_interpolated():
    clip = sinusoid_clip()
    lib = MotionLib([clip], dtype=F64)
    frames = np.array([0, 5, 17, clip.num_frames - 1])
    s = lib.state(torch.zeros(4, dtype=torch.long), _t(frames / clip.fps))
    np.testing.assert_allclose(s.dof_pos.numpy(), clip.dof_pos[frames], atol=1e-12)
    np.testing.assert_allclose(s.root_pos.numpy(), clip.root_pos[frames], atol=1e-12)
    np.testing.assert_allclose(np.abs((s.root_quat.numpy() * clip.root_quat[frames]).sum(-1)), 1.0, atol=1e-12)
    # Half way between frames: DoFs are the mean, the root rotation is close to the analytic one.
    t_mid = (frames[:3] + 0.5) / clip.fps
    s = lib.state(torch.zeros(3, dtype=torch.long), _t(t_mid))
    np.testing.assert_allclose(s.dof_pos.numpy(), 0.5 * (clip.dof_pos[frames[:3]] + clip.dof_pos[frames[:3] + 1]),
                               atol=1e-12)
    _, q_true = root_at(t_mid)
    assert np.all(np.abs((s.root_quat.numpy() * q_true).sum(-1)) > 1 - 1e-5)
    # Bodies come from forward kinematics of the interpolated pose.
    body_pos, _ = ForwardKinematics(dtype=F64)(s.root_pos, s.root_quat, s.dof_pos)
    torch.testing.assert_close(s.body_pos, body_pos)


def test_finite_difference_velocities_match_analytic_sinusoid():
    clip = sinusoid_clip(duration=3.0)
    lib = MotionLib([clip], dtype=F64)
    t = np.linspace(0.1, clip.duration - 0.1, 57)
    s = lib.state(torch.zeros(len(t), dtype=torch.long), _t(t))
    dof_scale = np.abs(dof_vel_at(t)).max()
    # Central differences at 30 fps: errors of order (h w)^2 / 6, well under 2% of the peak speed here.
    assert np.abs(s.dof_vel.numpy() - dof_vel_at(t)).max() < 0.02 * dof_scale
    lin, ang = _analytic_root_velocity(t)
    assert np.abs(s.root_lin_vel.numpy() - lin).max() < 0.01
    assert np.abs(s.root_ang_vel.numpy() - ang).max() < 0.01
    # A wrong frame rate or a sign error would be far off.
    assert np.abs(ang).max() > 0.2 and np.abs(lin).max() > 1.0


def test_clip_ends_use_one_sided_differences_and_clamp():
    clip = sinusoid_clip()
    lib = MotionLib([clip], dtype=F64)
    d, fps, last = lib.clip_durations[0].item(), clip.fps, clip.num_frames - 1
    s = lib.state(torch.zeros(4, dtype=torch.long), _t([0.0, -0.5, d, d + 1.0]))
    np.testing.assert_allclose(s.dof_vel[0].numpy(), (clip.dof_pos[1] - clip.dof_pos[0]) * fps, atol=1e-10)
    np.testing.assert_allclose(s.dof_vel[2].numpy(), (clip.dof_pos[last] - clip.dof_pos[last - 1]) * fps, atol=1e-10)
    np.testing.assert_allclose(s.root_lin_vel[2].numpy(), (clip.root_pos[last] - clip.root_pos[last - 1]) * fps,
                               atol=1e-10)
    # Times outside the clip clamp to its first and last frames.
    torch.testing.assert_close(s.dof_pos[1], s.dof_pos[0])
    torch.testing.assert_close(s.root_pos[3], s.root_pos[2])
    torch.testing.assert_close(s.dof_vel[3], s.dof_vel[2])
    np.testing.assert_allclose(s.root_pos[3].numpy(), clip.root_pos[last], atol=1e-12)


def test_looping_clip_wraps_with_root_displacement():
    clip = looping_clip(num_frames=40)
    lib = MotionLib([clip], dtype=F64)
    period = lib.clip_durations[0].item()
    assert period == pytest.approx(40 / clip.fps)
    ids = torch.zeros(3, dtype=torch.long)
    t = _t([0.31, 0.31 + period, 0.31 - 2 * period])
    s = lib.state(ids, t)
    torch.testing.assert_close(s.dof_pos[1], s.dof_pos[0])
    torch.testing.assert_close(s.dof_vel[2], s.dof_vel[0])
    np.testing.assert_allclose((s.root_pos[1] - s.root_pos[0]).numpy(), [ROOT_SPEED * period, 0, 0], atol=1e-9)
    np.testing.assert_allclose((s.root_pos[2] - s.root_pos[0]).numpy(), [-2 * ROOT_SPEED * period, 0, 0], atol=1e-9)

    # Across the seam (last frame -> first frame) positions interpolate and velocities are wrapped differences.
    seam = _t([period - 0.5 / clip.fps, 0.0, period - 1 / clip.fps])
    s = lib.state(ids, seam)
    np.testing.assert_allclose(s.dof_pos[0].numpy(), 0.5 * (clip.dof_pos[-1] + clip.dof_pos[0]), atol=1e-12)
    np.testing.assert_allclose(s.dof_vel[1].numpy(), (clip.dof_pos[1] - clip.dof_pos[-1]) * clip.fps / 2, atol=1e-10)
    np.testing.assert_allclose(s.root_lin_vel[:, 0].numpy(), ROOT_SPEED, atol=1e-9)
    # The periodic motion's analytic DoF velocity at phase 0 is matched by the wrapped central difference.
    w = 2 * np.pi / period
    from motion_clips import DOF_AMPLITUDE, DOF_PHASE
    assert np.abs(s.dof_vel[1].numpy() - DOF_AMPLITUDE * w * np.cos(DOF_PHASE)).max() < 0.02 * (DOF_AMPLITUDE * w).max()


def test_weighted_sampling_frequencies_and_times():
    clips = [sinusoid_clip(name="a"), sinusoid_clip(duration=1.0, name="b"), looping_clip(name="c")]
    lib = MotionLib(clips, weights=[1.0, 3.0, 0.0], dtype=F64)
    gen = torch.Generator().manual_seed(3)
    ids = lib.sample_clips(40000, gen)
    freq = torch.bincount(ids, minlength=3).double() / ids.numel()
    np.testing.assert_allclose(freq.numpy(), [0.25, 0.75, 0.0], atol=0.01)
    again = lib.sample_clips(10, torch.Generator().manual_seed(5))
    assert torch.equal(again, lib.sample_clips(10, torch.Generator().manual_seed(5)))
    times = lib.sample_times(ids, gen, truncate=0.25)
    limit = lib.clip_durations[ids] - 0.25
    assert bool((times >= 0).all()) and bool((times <= limit).all())
    assert times[ids == 0].max() > 0.9 * limit[ids == 0].max()  # uniform, not stuck at 0


def test_objects_and_mask():
    lib = MotionLib([sinusoid_clip(with_object=True), sinusoid_clip()], dtype=F64)
    s = lib.state(torch.tensor([0, 1]), _t([0.5, 0.5]))
    assert s.has_object.tolist() == [True, False]
    np.testing.assert_allclose((s.object_pos[0] - s.root_pos[0]).numpy(), [0.4, 0.0, 0.1], atol=1e-9)
    assert MotionLib([sinusoid_clip()]).state(torch.tensor([0]), torch.tensor([0.1])).object_pos is None


def test_float32_library_matches_float64():
    clips = [sinusoid_clip(), looping_clip()]
    ids, t = torch.tensor([0, 1, 1]), torch.tensor([0.3, 1.0, -0.4])
    f32 = MotionLib(clips).amp_features(ids, t, 3, 1 / 30)
    f64 = MotionLib(clips, dtype=F64).amp_features(ids, t.double(), 3, 1 / 30)
    assert f32.dtype == torch.float32
    assert (f32.double() - f64).abs().max() < 1e-3


def test_dataset_yaml(tmp_path):
    sinusoid_clip().save(tmp_path / "a.npz")
    looping_clip().save(tmp_path / "b.npz")
    (tmp_path / "sub").mkdir()
    good = tmp_path / "sub" / "dataset.yaml"
    good.write_text("clips:\n  - {file: ../a.npz, weight: 1.5}\n  - {file: ../b.npz}\n")
    lib = MotionLib.from_dataset(good, dtype=F64)
    assert lib.num_clips == 2 and lib.clip_names == ["a", "b"]
    np.testing.assert_allclose(lib.clip_weights.numpy(), [0.6, 0.4])

    cases = {
        "clips:\n  - {file: missing.npz}\n": "missing.npz",
        "clips:\n  - {file: ../a.npz, weight: -1}\n": "weight",
        "clips:\n  - {file: ../a.npz, weight: zero}\n": "weight",
        "clips:\n  - {file: ../a.npz, weight: 0}\n": "all zero",
        "clips:\n  - {file: ../a.npz, wieght: 1}\n": "wieght",
        "motions: []\n": "clips",
    }
    for text, expected in cases.items():
        good.write_text(text)
        with pytest.raises(MotionDatasetError, match=expected):
            MotionLib.from_dataset(good)
    with pytest.raises(MotionDatasetError, match="not found"):
        MotionLib.from_dataset(tmp_path / "nope.yaml")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    good.write_text("clips:\n  - {file: ../bad.npz}\n")
    with pytest.raises(MotionFormatError, match="bad.npz"):
        MotionLib.from_dataset(good)


def test_bad_construction_arguments():
    with pytest.raises(ValueError, match="weights"):
        MotionLib([sinusoid_clip()], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="not all zero"):
        MotionLib([sinusoid_clip()], weights=[0.0])
    bad = sinusoid_clip()
    bad.dof_pos[3, 4] = np.nan
    with pytest.raises(MotionFormatError, match="NaN"):
        MotionLib([bad])
    assert isinstance(MotionClip, type)
