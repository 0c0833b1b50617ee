"""`coohoi motion` command line: import, info, and clear failures."""

from __future__ import annotations

import numpy as np

from coohoi.cli import main as coohoi_main
from coohoi.motion.clip import MotionClip
from motion_clips import sinusoid_clip
from test_importers import _ase_dict, _write_bvh


def test_import_ase_and_info(tmp_path, capsys):
    clip = sinusoid_clip(duration=0.5)
    np.save(tmp_path / "m.npy", _ase_dict(clip), allow_pickle=True)
    out = tmp_path / "m.npz"
    assert coohoi_main(["motion", "import", "ase", str(tmp_path / "m.npy"), "--out", str(out), "--loop"]) == 0
    loaded = MotionClip.load(out)
    assert loaded.loop and np.abs(loaded.dof_pos - clip.dof_pos).max() < 1e-4
    assert coohoi_main(["motion", "info", str(out)]) == 0
    assert "16 frames at 30 fps" in capsys.readouterr().out


def test_import_bvh_with_resampling(tmp_path, capsys):
    clip = sinusoid_clip(duration=0.5)
    _write_bvh(tmp_path / "m.bvh", clip)
    out = tmp_path / "m.npz"
    assert coohoi_main(["motion", "import", "bvh", str(tmp_path / "m.bvh"), "--out", str(out), "--resample-fps", "15",
                        "--iterations", "60"]) == 0
    loaded = MotionClip.load(out)
    assert loaded.fps == 15 and loaded.num_frames == 8
    assert "fit error" in capsys.readouterr().out


def test_bad_input_fails_with_message(tmp_path, capsys):
    (tmp_path / "bad.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")
    assert coohoi_main(["motion", "import", "bvh", str(tmp_path / "bad.bvh"), "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "bad.bvh" in err and "ends early" in err
    assert not (tmp_path / "o.npz").exists()
