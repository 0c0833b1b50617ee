"""`coohoi motion check` (the quality table of shipped and imported clips) and folder / clean-up options of
`coohoi motion import`. Every clip and file here is built by the test from the shipped synthetic clips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from coohoi import humanoid as hum
from coohoi.motion.cli import main, shipped_clips
from coohoi.motion.clip import MotionClip
from coohoi.motion.kinematics import _skeleton, dof_to_joint_quats
from coohoi.motion.library import MotionLib
from coohoi.motion.quality import TABLE_HEADER, ClipMeasure, measure_clip

COLUMNS = [c.strip() for c in TABLE_HEADER.strip("|").split("|")]
SINK = 0.03  # m: a walk this far into the floor fails the penetration check (limit 1 cm), its steps stay steps
JUMP_HEIGHT, JUMP_FRAMES = 0.06, 8  # a hop: the root lifted up to 6 cm over 8 frames, the feet off the ground


def shipped(name: str) -> MotionClip:
    return MotionClip.load(shipped_clips()[name])


def rows(out: str) -> dict[str, dict[str, str]]:
    """The table's rows by clip name, each by column."""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")]
    return {r[0]: dict(zip(COLUMNS, r)) for r in cells[1:]}


def write_ase(clip: MotionClip, path) -> None:
    """An ASE .npy of the clip (the ASE writer where it exists, else poselib's dictionary layout, ase.py)."""
    try:
        from coohoi.motion.importers.ase import export_ase
    except ImportError:
        rot = np.zeros((clip.num_frames, hum.NUM_BODIES, 4))
        rot[..., 0] = 1.0
        rot[:, 0] = clip.root_quat
        rot[:, list(hum.JOINT_GROUP_BODY_IDS)] = dof_to_joint_quats(torch.from_numpy(clip.dof_pos)).numpy()
        tree = {"node_names": list(hum.BODY_NAMES), "parent_indices": {"arr": _skeleton()[0]},
                "local_translation": {"arr": _skeleton()[1]}}
        np.save(path, {"rotation": {"arr": rot[..., [1, 2, 3, 0]]}, "root_translation": {"arr": clip.root_pos},
                       "skeleton_tree": tree, "is_local": True, "fps": clip.fps, "__name__": "SkeletonMotion"},
                allow_pickle=True)
    else:
        export_ase(clip, path)


@pytest.fixture(scope="module")
def measure():
    return ClipMeasure()


def test_check_of_shipped_clips_by_name_prints_every_column_and_passes(capsys):
    assert main(["check", "idle", "pickup", "walk_forward_1.6"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == TABLE_HEADER and "3 of 3 clips pass" in out
    table = rows(out)
    assert list(table) == ["idle", "pickup", "walk_forward_1.6"]
    for row in table.values():
        assert len(row) == len(COLUMNS) and row["checks"] == "pass" and row["airborne frames"] == "0"
    assert table["walk_forward_1.6"]["fastest DoF (rad/s)"].endswith("(right_knee)")
    assert table["pickup"]["hand-to-grip (cm)"].endswith("frames)")


def test_check_without_clips_checks_every_shipped_clip(capsys):
    assert main(["check"]) == 0
    assert list(rows(capsys.readouterr().out)) == list(shipped_clips())


def test_check_fails_a_clip_sunk_into_the_floor_on_penetration_not_on_its_travel(tmp_path, capsys):
    walk = shipped("walk_forward_1.2")
    path = tmp_path / "sunk.npz"
    dataclasses.replace(walk, root_pos=walk.root_pos - [0, 0, SINK]).save(path)
    assert main(["check", str(path), "idle"]) == 1
    captured = capsys.readouterr()
    assert "FAIL sunk: penetration 3.0 cm" in captured.err and "idle" not in captured.err
    assert "foot slide" not in captured.err  # its steps are measured from its own floor: no 4 m "slide"
    assert float(rows(captured.out)["sunk"]["foot slide (cm)"]) < 0.5
    assert "1 of 2 clips pass" in captured.out


def test_check_fails_a_dof_speed_spike_naming_the_dof(tmp_path, capsys):
    idle = shipped("idle")
    dof = idle.dof_pos.copy()
    dof[60, hum.DOF_NAMES.index("right_shoulder_y")] -= 2.0  # 60 rad/s in and out at 30 fps, inside its range
    path = tmp_path / "spike.npz"
    dataclasses.replace(idle, dof_pos=dof).save(path)
    assert main(["check", str(path)]) == 1
    assert "FAIL spike: DoF speed 60 rad/s at right_shoulder_y, frame 59 (limit 50 rad/s)\n" in capsys.readouterr().err


def test_a_hop_has_a_finite_centre_of_pressure_and_counts_its_airborne_frames(tmp_path, capsys, measure):
    idle = shipped("idle")
    lift = np.zeros(idle.num_frames)
    lift[40:40 + JUMP_FRAMES] = JUMP_HEIGHT * 0.5 * (1 - np.cos(2 * np.pi * np.arange(1, JUMP_FRAMES + 1)
                                                                 / (JUMP_FRAMES + 1)))
    hop = dataclasses.replace(idle, root_pos=idle.root_pos + lift[:, None] * [0, 0, 1], name="hop")
    q = measure_clip(hop, measure)
    assert np.isfinite(q.mean_cop_error) and q.mean_cop_error < 0.01
    assert q.airborne_frames == np.sum(lift > 0.02)  # the frames the soles are more than 2 cm up
    hop.save(tmp_path / "hop.npz")
    assert main(["check", str(tmp_path / "hop.npz")]) == 0
    row = rows(capsys.readouterr().out)["hop"]
    assert row["airborne frames"] == str(q.airborne_frames) and float(row["CoP off the feet, mean (cm)"]) < 1.0


def _ase_folder(tmp_path):
    src = tmp_path / "ase"
    src.mkdir()
    idle, turn = shipped("idle"), shipped("turn_left")
    write_ase(idle, src / "a_idle.npy")
    write_ase(turn, src / "b_turn.npy")
    return src, idle, turn


def test_folder_import_writes_clips_and_a_dataset_the_motion_library_loads(tmp_path, capsys):
    src, idle, turn = _ase_folder(tmp_path)
    (src / "notes.txt").write_text("not motion")  # other files are left alone
    out = tmp_path / "clips"
    assert main(["import", "ase", str(src), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_idle.npz", "b_turn.npz", "dataset.yaml"]
    assert "weights 1 per clip" in capsys.readouterr().out
    lib = MotionLib.from_dataset(out / "dataset.yaml")
    assert lib.clip_names == ["a_idle", "b_turn"]
    np.testing.assert_allclose(lib.clip_weights, [0.5, 0.5])
    np.testing.assert_allclose(MotionClip.load(out / "b_turn.npz").dof_pos, turn.dof_pos, atol=1e-4)
    assert main(["check", str(out / "dataset.yaml")]) == 0  # imported clips are checked like shipped ones
    assert list(rows(capsys.readouterr().out)) == ["a_idle", "b_turn"]


def test_a_failing_file_in_the_folder_is_reported_and_the_others_still_import(tmp_path, capsys):
    src, idle, turn = _ase_folder(tmp_path)
    np.save(src / "a_broken.npy", np.zeros(3))  # sorted first: the import goes on past it
    out = tmp_path / "clips"
    assert main(["import", "ase", str(src), "--out", str(out), "--weights", "duration"]) == 1
    err = capsys.readouterr().err
    assert "failed" in err and "a_broken.npy" in err and "1 of 3 files failed" in err
    entries = yaml.safe_load((out / "dataset.yaml").read_text())["clips"]
    assert entries == [{"file": f"{n}.npz", "weight": round(MotionClip.load(out / f"{n}.npz").duration, 3)}
                       for n in ("a_idle", "b_turn")]
    assert entries[0]["weight"] == round((idle.num_frames - 1) / idle.fps, 3)  # seconds (not marked looping here)
    assert MotionLib.from_dataset(out / "dataset.yaml").num_clips == 2


def test_trim_and_fps_reach_the_importer(tmp_path, capsys):
    idle = shipped("idle")  # 120 frames at 30 fps
    write_ase(idle, tmp_path / "idle.npy")
    out = tmp_path / "idle.npz"
    assert main(["import", "ase", str(tmp_path / "idle.npy"), "--out", str(out), "--fps", "60",
                 "--trim", "6", "0.25s"]) == 0
    clip = MotionClip.load(out)
    assert clip.fps == 60 and clip.num_frames == idle.num_frames - 6 - 15  # 0.25 s at the data's 60 fps
    np.testing.assert_allclose(clip.dof_pos, idle.dof_pos[6:-15], atol=1e-4)
    assert f"{clip.num_frames} frames at 60 fps" in capsys.readouterr().out


def test_joint_map_names_a_bvh_joint_the_defaults_do_not_know(tmp_path, capsys):
    from motion_clips import sinusoid_clip
    from test_importers import _write_bvh

    path = tmp_path / "m.bvh"
    _write_bvh(path, sinusoid_clip(duration=0.3))
    path.write_text(path.read_text().replace("ROOT Hips", "ROOT Becken"))
    argv = ["import", "bvh", str(path), "--out", str(tmp_path / "m.npz"), "--iterations", "20"]
    assert main(argv) == 2 and "pelvis" in capsys.readouterr().err
    (tmp_path / "map.yaml").write_text("pelvis: Becken\n")
    assert main(argv + ["--joint-map", str(tmp_path / "map.yaml")]) == 0
    assert MotionClip.load(tmp_path / "m.npz").num_frames == 10
