"""Import clean-up (issue 12): ASE skeletons with extra bodies, grounding (also of reference starts), continuous
Euler conversion, T-pose and trim cuts, repeated frames, DoF speed limits, and the ASE export round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _env_helpers import env_config
from motion_clips import sinusoid_clip

from coohoi import humanoid as hum
from coohoi.assets import ASSET_DIR
from coohoi.envs import make_env
from coohoi.envs.humanoid_env import START_FLOOR_TOLERANCE
from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.importers.ase import export_ase, import_ase
from coohoi.motion.importers.cleanup import (MAX_DOF_SPEED, ImportSettings, body_poses, dof_speeds, finish_clip,
                                             ground_clip, select_frames)
from coohoi.motion.kinematics import lowest_foot_z
from coohoi.motion.kinematics import ForwardKinematics, dof_limits, dof_to_joint_quats, joint_quats_to_dof
from coohoi.rotations import quat_from_euler_xyz

torch.set_num_threads(1)
F64 = torch.float64
SHIPPED = sorted((ASSET_DIR / "motions").glob("*.npz"))
SINK = 0.06  # m: datasets that come with the feet 6 cm inside the floor in every frame


def _grounded_clip(duration: float = 2.0) -> MotionClip:
    return ground_clip(sinusoid_clip(duration=duration))[0]


def _lowest(clip: MotionClip) -> np.ndarray:
    return lowest_foot_z(*body_poses(clip)).numpy()


def _load_dict(path: Path) -> dict:
    return np.load(path, allow_pickle=True).item()


def _ase_file(path: Path, clip: MotionClip, is_local: bool = True) -> dict:
    """Our clip as an ASE file (export_ase), with global rotations on request; returns its dictionary."""
    export_ase(clip, path)
    d = _load_dict(path)
    if not is_local:
        _, quat = body_poses(clip)
        d["rotation"]["arr"] = quat.numpy()[..., [1, 2, 3, 0]].astype(np.float32)
        d["is_local"] = False
        np.save(path, np.array(d, dtype=object), allow_pickle=True)
    return d


@pytest.mark.parametrize("is_local", [True, False])
def test_ase_skeleton_with_a_sword_and_a_shield_imports_exactly_with_a_note(tmp_path, is_local):
    clip = _grounded_clip(1.0)
    d = _ase_file(tmp_path / "plain.npy", clip, is_local)
    ours = list(hum.BODY_NAMES)
    names = ours[:6] + ["sword"] + ours[6:] + ["shield"]  # the sword right after the right hand: indices shift
    parents = {"sword": "right_hand", "shield": "left_hand"}
    our_parents = d["skeleton_tree"]["parent_indices"]["arr"]
    parents.update({n: ours[p] for n, p in zip(ours, our_parents) if p >= 0})
    t = clip.num_frames
    prop = quat_from_euler_xyz(torch.rand(t, 3, dtype=F64)).numpy()[:, None, [1, 2, 3, 0]]
    rot = {n: d["rotation"]["arr"][:, i:i + 1] for i, n in enumerate(ours)} | {"sword": prop, "shield": prop}
    d["rotation"]["arr"] = np.concatenate([rot[n] for n in names], 1).astype(np.float32)
    offsets = dict(zip(ours, d["skeleton_tree"]["local_translation"]["arr"])) | {"sword": np.ones(3, np.float32),
                                                                               "shield": np.ones(3, np.float32)}
    d["skeleton_tree"] = {"node_names": names,
                          "parent_indices": {"arr": np.array([names.index(parents[n]) if n in parents else -1
                                                              for n in names])},
                          "local_translation": {"arr": np.stack([offsets[n] for n in names])}}
    np.save(tmp_path / "armed.npy", np.array(d, dtype=object), allow_pickle=True)
    plain, _ = import_ase(tmp_path / "plain.npy")
    out, stats = import_ase(tmp_path / "armed.npy")
    assert any("dropped" in n and "sword" in n and "shield" in n for n in stats["notes"])
    assert np.abs(out.dof_pos - plain.dof_pos).max() < 1e-6
    assert np.abs(out.dof_pos - clip.dof_pos).max() < 1e-4
    assert (body_poses(out)[0] - body_poses(clip)[0]).abs().max() < 1e-4


def test_ase_skeleton_missing_a_body_is_refused_naming_it(tmp_path):
    d = _ase_file(tmp_path / "walk.npy", _grounded_clip(0.5))
    keep = [i for i, n in enumerate(hum.BODY_NAMES) if n != "left_shin"]
    d["rotation"]["arr"] = d["rotation"]["arr"][:, keep]
    tree = d["skeleton_tree"]
    tree["node_names"] = [tree["node_names"][i] for i in keep]
    tree.pop("parent_indices")
    np.save(tmp_path / "walk.npy", np.array(d, dtype=object), allow_pickle=True)
    with pytest.raises(MotionFormatError, match=r"walk.npy.*lacks bodies.*left_shin"):
        import_ase(tmp_path / "walk.npy")


def test_a_clip_sunk_into_the_floor_is_grounded_and_its_reference_starts_are_not_inside_the_floor(tmp_path):
    clip = _grounded_clip()
    sunk = select_frames(clip, slice(None))
    sunk.root_pos = clip.root_pos - [0.0, 0.0, SINK]
    assert _lowest(sunk).min() == pytest.approx(-SINK, abs=1e-9)
    out, notes = finish_clip(sunk)
    assert abs(_lowest(out).min()) < 1e-3 and any("grounded" in n and "+6.0 cm" in n for n in notes)
    assert np.allclose(out.root_pos, clip.root_pos, atol=1e-9)
    out, _ = finish_clip(sunk, ImportSettings(ground="frame"))
    assert np.abs(_lowest(out)).max() < 1e-3
    out, notes = finish_clip(sunk, ImportSettings(ground="none"))
    assert np.array_equal(out.root_pos, sunk.root_pos) and not any("grounded" in n for n in notes)

    folder = tmp_path / "motions"
    folder.mkdir()
    sunk.save(folder / "sunk.npz")
    (folder / "dataset.yaml").write_text("clips:\n  - {file: sunk.npz, weight: 1.0}\n")
    env = make_env(env_config("amp_locomotion", folder / "dataset.yaml", 2))
    n = 16
    times = torch.linspace(0.0, sunk.duration - 0.01, n, dtype=F64)
    starts = env.sample_starts(n, reference=(torch.zeros(n, dtype=torch.long), times))
    h = starts.humanoid
    as64 = lambda x: x.flatten(0, 1).to(F64)  # noqa: E731
    lowest = lowest_foot_z(*ForwardKinematics(dtype=F64)(as64(h.root_pos), as64(h.root_quat), as64(h.dof_pos)))
    assert lowest.min() > -START_FLOOR_TOLERANCE  # the sunk clip's starts are lifted out of the floor ...
    assert lowest.max() - lowest.min() > 0.01 and (lowest.abs() < 1e-4).sum() >= 2  # ... to it, no higher
    # The AMP history is lifted with the start: its root heights run on into the start's.
    heights = starts.amp_history.flatten(0, 1)[:, :, 0]
    assert torch.allclose(heights[:, 0], h.root_pos.flatten(0, 1)[:, 2].float(), atol=1e-5)
    assert (heights[:, 0] - heights[:, 1]).abs().max() < 0.05


def test_a_rotation_sequence_crossing_the_equivalent_euler_solution_gives_continuous_angles_within_limits():
    t = torch.linspace(0.0, 1.0, 61, dtype=F64)
    dof = torch.zeros(len(t), hum.NUM_DOFS, dtype=F64)
    i = hum.DOF_NAMES.index("right_shoulder_x")  # the arm raised forward past the Euler singularity (y = -pi/2)
    dof[:, i], dof[:, i + 1], dof[:, i + 2] = -0.5 - 0.3 * t, -1.2 - 0.8 * t, 0.3 * torch.sin(3 * t)
    dof[:, hum.DOF_NAMES.index("left_knee")] = 2.0 + 0.5 * t  # a 1-DoF joint too
    quats = dof_to_joint_quats(dof)
    per_frame = joint_quats_to_dof(quats)
    assert per_frame.diff(dim=0).abs().max() > 1.0  # the per-frame solution jumps (and leaves the limits)
    out = joint_quats_to_dof(quats, continuous=True)
    assert out.diff(dim=0).abs().max() < 0.05
    limits = dof_limits()
    assert ((out >= limits[:, 0] - 1e-9) & (out <= limits[:, 1] + 1e-9)).all()
    assert torch.allclose(out, dof, atol=1e-9)
    # An angle running past pi is unwrapped, not wrapped back by 2 pi.
    dof[:, hum.DOF_NAMES.index("right_elbow")] = -2.7 - 0.8 * t
    out = joint_quats_to_dof(dof_to_joint_quats(dof), continuous=True)
    assert torch.allclose(out, dof, atol=1e-9)


def _tpose_clip() -> tuple[MotionClip, MotionClip]:
    clip = _grounded_clip(1.0)
    tpose = np.zeros((2, hum.NUM_DOFS))
    tpose[:, hum.DOF_NAMES.index("right_shoulder_x")] = -math.pi / 2
    tpose[:, hum.DOF_NAMES.index("left_shoulder_x")] = math.pi / 2
    calibrated = select_frames(clip, np.r_[0, 0, np.arange(clip.num_frames)])
    calibrated.dof_pos[:2] = tpose
    return clip, calibrated


def test_a_tpose_start_is_detected_and_trimmed():
    clip, calibrated = _tpose_clip()
    out, notes = finish_clip(calibrated)
    assert out.num_frames == clip.num_frames and np.allclose(out.dof_pos, clip.dof_pos)
    assert any("T-pose" in n and "2 frame" in n for n in notes)
    out, notes = finish_clip(calibrated, ImportSettings(trim_tpose=False))
    assert out.num_frames == calibrated.num_frames and not any("T-pose" in n for n in notes)
    out, notes = finish_clip(clip)
    assert out.num_frames == clip.num_frames and not any("T-pose" in n for n in notes)


def test_trim_cuts_frames_or_seconds_at_either_end():
    clip = _grounded_clip(2.0)
    out, notes = finish_clip(clip, ImportSettings(trim=("3", "0.5s")))
    assert np.array_equal(out.dof_pos, clip.dof_pos[3:-15]) and any("trimmed 3" in n and "15" in n for n in notes)
    out, _ = finish_clip(clip, ImportSettings(trim=("0.1s", "2")))
    assert np.array_equal(out.dof_pos, clip.dof_pos[3:-2])
    for trim, match in ((("x", "0"), "neither frames"), (("40", "1.5s"), "fewer than 2"), (("-1", "0"), "negative")):
        with pytest.raises(MotionFormatError, match=match):
            finish_clip(clip, ImportSettings(trim=trim))


@pytest.mark.parametrize("phase", [0, 1])
def test_a_30_fps_clip_stored_as_60_fps_with_repeated_frames_is_collapsed(tmp_path, phase):
    clip = _grounded_clip(2.0)
    doubled = select_frames(clip, np.repeat(np.arange(clip.num_frames), 2)[phase:])
    doubled.fps = 60.0
    speed = dof_speeds(doubled).max(-1)
    assert (speed[phase::2] == 0).all() and (speed[1 - phase::2] > 0.5).all()  # velocities alternate
    export_ase(doubled, tmp_path / "doubled.npy")
    out, stats = import_ase(tmp_path / "doubled.npy")
    assert out.fps == 30.0 and out.num_frames == clip.num_frames
    assert np.abs(out.dof_pos - clip.dof_pos).max() < 1e-5
    assert (dof_speeds(out).max(-1) > 0.5).all()  # no longer alternating
    assert any("repeated" in n for n in stats["notes"])
    out, stats = import_ase(tmp_path / "doubled.npy", settings=ImportSettings(collapse_repeats=False))
    assert out.num_frames == doubled.num_frames
    out, stats = import_ase(tmp_path / "doubled.npy", settings=ImportSettings(fps=50.0, collapse_repeats=False))
    assert out.fps == 50.0 and any("50 fps" in n and "says 60" in n for n in stats["notes"])


def test_an_impossible_dof_speed_spike_is_refused_or_filtered():
    clip = _grounded_clip(2.0)
    knee = hum.DOF_NAMES.index("right_knee")
    spiked = select_frames(clip, slice(None))
    spiked.dof_pos = clip.dof_pos.copy()
    spiked.dof_pos[20, knee] += 2.0  # 60 rad/s in and out of the frame at 30 fps
    with pytest.raises(MotionFormatError, match=r"DoF speeds above 50 rad/s: right_knee 6\d rad/s at frame (19|20)"):
        finish_clip(spiked)
    out, notes = finish_clip(spiked, ImportSettings(filter_speed=True))
    assert dof_speeds(out).max() <= MAX_DOF_SPEED
    assert np.abs(out.dof_pos[:, knee] - clip.dof_pos[:, knee]).max() < 0.01  # the spike replaced by the motion
    assert np.array_equal(np.delete(out.dof_pos, knee, 1), np.delete(clip.dof_pos, knee, 1))
    assert any("filtered" in n and "right_knee (1 frames)" in n for n in notes)
    # A step (an Euler flip that stays) is spread over enough frames to keep under the limit.
    stepped = select_frames(clip, slice(None))
    stepped.dof_pos = clip.dof_pos.copy()
    stepped.dof_pos[30:, knee] += math.pi
    out, _ = finish_clip(stepped, ImportSettings(filter_speed=True, max_dof_speed=30.0))
    assert dof_speeds(out).max() <= 30.0 and np.array_equal(out.dof_pos[:20], clip.dof_pos[:20])
    _, notes = finish_clip(clip)
    assert len(notes) == 1 and notes[0].startswith(f"largest DoF speed {dof_speeds(clip).max():.1f} rad/s (")


def test_every_shipped_clip_round_trips_through_the_ase_format(tmp_path):
    assert len(SHIPPED) == 16
    for path in SHIPPED:
        clip = MotionClip.load(path)
        export_ase(clip, tmp_path / "clip.npy")
        out, stats = import_ase(tmp_path / "clip.npy", loop=clip.loop)
        assert out.num_frames == clip.num_frames and out.fps == clip.fps, path.name
        assert (body_poses(out)[0] - body_poses(clip)[0]).abs().max() < 1e-3, path.name
        assert np.abs(out.dof_pos - clip.dof_pos).max() < 0.02, path.name
        assert dof_speeds(out).max() <= dof_speeds(clip).max() + 0.01, path.name
        assert [n for n in stats["notes"] if not n.startswith("largest DoF speed")] == [], path.name
