"""Importers: ASE .npy, AMASS .npz (synthetic SMPL-H model), BVH; retargeting; refusal of malformed files."""

from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest
import torch

from coohoi import humanoid as hum
from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.importers.amass import SMPL_JOINT_NAMES, import_amass, load_amass
from coohoi.motion.importers.ase import import_ase
from coohoi.motion.importers.cleanup import ImportSettings
from coohoi.motion.importers.bvh import BvhJoint, import_bvh, parse_bvh, write_bvh
from coohoi.motion.kinematics import lowest_foot_z
from coohoi.motion.importers.retarget import (MARKERS, RetargetConfig, _points, our_points_rest,
                                              retarget)
from coohoi.motion.importers.safe_load import UnsafePickleError, load_npy
from coohoi.motion.kinematics import ForwardKinematics, _skeleton, dof_to_joint_quats
from coohoi.rotations import quat_to_euler_xyz, quat_to_exp_map
from motion_clips import sinusoid_clip

F64 = torch.float64
FK = ForwardKinematics(dtype=F64)
# Retargeting fits our points to the source in least squares; a few cm is the acceptance bound of the issue.
POSITION_TOLERANCE = 0.03
FAST = RetargetConfig(iterations=80, ground="none")
# DoFs the source points pin down (others, like neck twist and ankle roll, are settled by regularisation).
DETERMINED_DOFS = [hum.DOF_NAMES.index(n) for n in (
    "abdomen_x", "abdomen_y", "right_shoulder_x", "right_shoulder_y", "right_elbow", "left_shoulder_x",
    "left_shoulder_y", "left_elbow", "right_hip_x", "right_hip_y", "right_knee", "left_hip_x", "left_hip_y",
    "left_knee")]


def _clip(duration=1.0):
    return sinusoid_clip(duration=duration)


def _body_pos(clip: MotionClip) -> np.ndarray:
    return FK(torch.from_numpy(clip.root_pos), torch.from_numpy(clip.root_quat),
              torch.from_numpy(clip.dof_pos))[0].numpy()


def _clip_points(clip: MotionClip) -> dict[str, np.ndarray]:
    pos, quat = FK(torch.from_numpy(clip.root_pos), torch.from_numpy(clip.root_quat), torch.from_numpy(clip.dof_pos))
    return {k: v.numpy() for k, v in _points(pos, quat).items()}


def _assert_reproduces(clip: MotionClip, out: MotionClip):
    ours, theirs = _body_pos(clip), _body_pos(out)
    assert np.abs(ours - theirs).max() < POSITION_TOLERANCE
    assert np.abs(clip.dof_pos[:, DETERMINED_DOFS] - out.dof_pos[:, DETERMINED_DOFS]).max() < 0.1


# ---- retargeting ------------------------------------------------------------------------------------------------
def test_retarget_identity_reproduces_clip_and_fixes_ground():
    clip = _clip()
    points = _clip_points(clip)
    out, stats = retarget(points, clip.fps, FAST)
    assert stats["scale"] == pytest.approx(1.0)
    assert stats["mean_error"] < 0.01
    _assert_reproduces(clip, out)
    # The same motion at twice the size (and lifted) comes back at our size, feet on the ground.
    big = {k: 2.0 * v + np.array([0.0, 0.0, 0.7]) for k, v in points.items()}
    out, stats = retarget(big, clip.fps, RetargetConfig(iterations=80, ground="clip"))
    assert stats["scale"] == pytest.approx(0.5, rel=1e-6)
    pos, quat = FK(torch.from_numpy(out.root_pos), torch.from_numpy(out.root_quat), torch.from_numpy(out.dof_pos))
    lowest = lowest_foot_z(pos, quat)
    assert abs(float(lowest.min())) < 1e-9 and float(lowest.max()) > 0.01
    out, _ = retarget(big, clip.fps, RetargetConfig(iterations=80, ground="frame"))
    pos, quat = FK(torch.from_numpy(out.root_pos), torch.from_numpy(out.root_quat), torch.from_numpy(out.dof_pos))
    assert float(lowest_foot_z(pos, quat).abs().max()) < 1e-9


def test_retarget_directions_keep_joint_angles_of_other_proportions():
    """A source with longer forearms, shorter shins and wider hips and shoulders, 1.7x our size: matching bone
    directions recovers the joint angles; matching positions would bend joints to make up for the proportions."""
    clip = _clip()
    fk = ForwardKinematics(dtype=F64)
    fk.offsets = fk.offsets.clone()  # the skeleton arrays are shared; never edit them in place
    stretch = {"right_lower_arm": 1.1, "right_hand": 1.1, "left_lower_arm": 1.1, "left_hand": 1.1,
               "right_shin": 0.93, "right_foot": 0.93, "left_shin": 0.93, "left_foot": 0.93,
               "right_thigh": 1.3, "left_thigh": 1.3}
    for body, factor in stretch.items():
        fk.offsets[hum.BODY_NAMES.index(body)] *= factor
    for arm in ("right_upper_arm", "left_upper_arm"):
        fk.offsets[hum.BODY_NAMES.index(arm)] *= torch.tensor([1.0, 1.15, 0.85], dtype=F64)
    pos, quat = fk(torch.from_numpy(clip.root_pos), torch.from_numpy(clip.root_quat), torch.from_numpy(clip.dof_pos))
    points = {k: 1.7 * v.numpy() for k, v in _points(pos, quat).items()}
    out, stats = retarget(points, clip.fps, FAST)
    assert stats["max_angle_error_deg"] < 1.0
    assert np.abs(clip.dof_pos[:, DETERMINED_DOFS] - out.dof_pos[:, DETERMINED_DOFS]).max() < 0.02
    by_position, _ = retarget(points, clip.fps, RetargetConfig(iterations=80, ground="none", match="positions"))
    assert np.abs(clip.dof_pos[:, DETERMINED_DOFS] - by_position.dof_pos[:, DETERMINED_DOFS]).max() > 0.1


def test_retarget_positions_mode_identity():
    clip = _clip(0.5)
    out, stats = retarget(_clip_points(clip), clip.fps, RetargetConfig(iterations=80, ground="none", match="positions"))
    assert stats["mean_error"] < 0.01
    _assert_reproduces(clip, out)


def test_retarget_refuses_bad_points():
    points = _clip_points(_clip(0.3))
    bad = dict(points, right_hand=points["right_hand"].copy())
    bad["right_hand"][2, 1] = np.nan
    with pytest.raises(MotionFormatError, match="right_hand.*NaN"):
        retarget(bad, 30.0, FAST)
    missing = {k: v for k, v in points.items() if k != "left_shin"}
    with pytest.raises(MotionFormatError, match="left_shin"):
        retarget(missing, 30.0, FAST)


# ---- ASE --------------------------------------------------------------------------------------------------------
def _ase_dict(clip: MotionClip, is_local=True) -> dict:
    """A SkeletonMotion dictionary as poselib's to_file writes it (x, y, z, w quaternions)."""
    parents, offsets, _ = _skeleton()
    local = torch.zeros(clip.num_frames, hum.NUM_BODIES, 4, dtype=F64)
    local[..., 0] = 1.0
    local[:, 0] = torch.from_numpy(clip.root_quat)
    local[:, list(hum.JOINT_GROUP_BODY_IDS)] = dof_to_joint_quats(torch.from_numpy(clip.dof_pos))
    rot = local
    if not is_local:
        _, rot = FK(torch.from_numpy(clip.root_pos), torch.from_numpy(clip.root_quat), torch.from_numpy(clip.dof_pos))
    tensor = lambda a: {"arr": np.asarray(a, dtype=np.float32), "context": {"dtype": "float32"}}  # noqa: E731
    return collections.OrderedDict([
        ("rotation", tensor(rot.numpy()[..., [1, 2, 3, 0]])),
        ("root_translation", tensor(clip.root_pos)),
        ("global_velocity", tensor(np.zeros((clip.num_frames, hum.NUM_BODIES, 3)))),
        ("global_angular_velocity", tensor(np.zeros((clip.num_frames, hum.NUM_BODIES, 3)))),
        ("skeleton_tree", collections.OrderedDict([
            ("node_names", list(hum.BODY_NAMES)),
            ("parent_indices", {"arr": parents.astype(np.int64), "context": {"dtype": "int64"}}),
            ("local_translation", tensor(offsets)),
        ])),
        ("is_local", is_local),
        ("fps", 30),
        ("__name__", "SkeletonMotion"),
    ])


@pytest.mark.parametrize("is_local", [True, False])
def test_ase_import_round_trip(tmp_path, is_local):
    clip = _clip()
    path = tmp_path / "walk.npy"
    np.save(path, _ase_dict(clip, is_local), allow_pickle=True)
    out, _ = import_ase(path, settings=ImportSettings(ground="none"))  # the clip's own height, as written
    assert out.fps == 30 and out.num_frames == clip.num_frames and out.name == "walk"
    # float32 in the file: agreement to float32 precision, in angles and in body positions.
    assert np.abs(out.dof_pos - clip.dof_pos).max() < 1e-4
    assert np.abs(_body_pos(out) - _body_pos(clip)).max() < 1e-4
    out.save(tmp_path / "walk.npz")
    assert np.allclose(MotionClip.load(tmp_path / "walk.npz").dof_pos, out.dof_pos)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch " + str(_Exploit.marker),))


def test_ase_refuses_code_running_pickle(tmp_path):
    _Exploit.marker = tmp_path / "pwned"
    d = _ase_dict(_clip(0.3))
    d["fps"] = _Exploit()
    path = tmp_path / "evil.npy"
    np.save(path, d, allow_pickle=True)
    with pytest.raises(UnsafePickleError, match=r"evil.npy.*(posix|os|nt)\.system"):
        import_ase(path)
    assert not _Exploit.marker.exists()
    # A raw pickle (not .npy) of the same payload is refused as well.
    raw = tmp_path / "raw.npy"
    raw.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(MotionFormatError):
        load_npy(raw)
    assert not _Exploit.marker.exists()


def test_ase_refuses_malformed_files(tmp_path):
    clip = _clip(0.3)

    def attempt(mutate, match):
        d = _ase_dict(clip)
        mutate(d)
        path = tmp_path / "bad.npy"
        np.save(path, d, allow_pickle=True)
        with pytest.raises(MotionFormatError, match=match) as info:
            import_ase(path)
        assert "bad.npy" in str(info.value)

    attempt(lambda d: d.pop("root_translation"), "missing keys.*root_translation")
    attempt(lambda d: d["rotation"].update(arr=d["rotation"]["arr"][:, :14]), "rotation.*shape")
    attempt(lambda d: d["root_translation"].update(arr=d["root_translation"]["arr"][:-1]), "root_translation.*shape")

    def nan(d):
        d["rotation"]["arr"][3, 4, 1] = np.nan
    attempt(nan, "NaN")
    attempt(lambda d: d.update(fps=-5), "fps")
    attempt(lambda d: d["skeleton_tree"].update(node_names=["a"] * 15), "skeleton lacks bodies")
    attempt(lambda d: d.update(__name__="SkeletonState"), "SkeletonState")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(MotionFormatError, match="junk.npy"):
        import_ase(tmp_path / "junk.npy")


# ---- AMASS ------------------------------------------------------------------------------------------------------
SMPL_BODY_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]


def _model_parents(model_type: str) -> list[int]:
    """SMPL-H: body, then 15 joints per hand. SMPL-X: body, jaw and two eyes (on the head), then the hands."""
    parents = list(SMPL_BODY_PARENTS) + ([15, 15, 15] if model_type == "smplx" else [])
    for wrist in (20, 21):  # 5 fingers of 3 joints per hand
        start = len(parents)
        for finger in range(5):
            parents += [wrist, start + 3 * finger, start + 3 * finger + 1]
    return parents


# Which of our rotations each SMPL body joint carries when the SMPL skeleton is built on ours.
SMPL_ROTATION_OF = {"spine2": "abdomen", "neck": "neck", "right_shoulder": "right_shoulder", "right_elbow": "right_elbow",
                    "left_shoulder": "left_shoulder", "left_elbow": "left_elbow", "right_hip": "right_hip",
                    "right_knee": "right_knee", "right_ankle": "right_ankle", "left_hip": "left_hip",
                    "left_knee": "left_knee", "left_ankle": "left_ankle"}


def _smpl_rest_joints(model_type: str = "smplh") -> np.ndarray:
    """Joint positions [52 | 55, 3] of a SMPL-H / SMPL-X skeleton built on our own (an identity-ish source)."""
    p = {k: v[0] for k, v in our_points_rest().items()}
    mid = lambda a, b: 0.5 * (a + b)  # noqa: E731
    body = {
        "pelvis": p["pelvis"], "left_hip": p["left_thigh"], "right_hip": p["right_thigh"],
        "spine1": mid(p["pelvis"], p["torso"]), "left_knee": p["left_shin"], "right_knee": p["right_shin"],
        "spine2": p["torso"], "left_ankle": p["left_foot"], "right_ankle": p["right_foot"],
        "spine3": mid(p["torso"], p["head"]), "left_foot": p["left_toe"], "right_foot": p["right_toe"],
        "neck": p["head"], "left_collar": mid(p["head"], p["left_upper_arm"]),
        "right_collar": mid(p["head"], p["right_upper_arm"]), "head": p["head_top"],
        "left_shoulder": p["left_upper_arm"], "right_shoulder": p["right_upper_arm"],
        "left_elbow": p["left_lower_arm"], "right_elbow": p["right_lower_arm"],
        "left_wrist": p["left_hand"], "right_wrist": p["right_hand"],
    }
    joints = [body[n] for n in SMPL_JOINT_NAMES]
    parents = _model_parents(model_type)
    for j in range(22, len(parents)):
        joints.append(joints[parents[j]] + np.array([0.02, 0.0, -0.02]))
    return np.array(joints)


def write_synthetic_model(path, model_type="smplh", num_extra_vertices=40, seed=0):
    """A body model file of the right shapes with small random shape and pose blend shapes; its first vertices
    sit on the joints, and J_regressor picks them."""
    rng = np.random.default_rng(seed)
    joints = _smpl_rest_joints(model_type)
    nj = len(joints)
    v = nj + num_extra_vertices
    v_template = np.concatenate((joints, rng.normal(0, 0.2, (num_extra_vertices, 3)) + [0, 0, 0.3]))
    weights = np.zeros((v, nj))
    weights[np.arange(nj), np.arange(nj)] = 1.0
    weights[nj:] = rng.dirichlet(np.ones(nj), num_extra_vertices)
    faces = rng.integers(0, v, (60, 3))
    model = dict(v_template=v_template, shapedirs=rng.normal(0, 1e-3, (v, 3, 16 if model_type == "smplh" else 20)),
                 posedirs=rng.normal(0, 1e-3, (v, 3, (nj - 1) * 9)), J_regressor=np.eye(nj, v), weights=weights,
                 kintree_table=np.stack((np.array(_model_parents(model_type)) % 2**32, np.arange(nj))).astype(np.int64),
                 f=faces, hands_componentsl=np.eye(45), hands_componentsr=np.eye(45), hands_meanl=np.zeros(45),
                 hands_meanr=np.zeros(45))
    if model_type == "smplx":
        model.update(lmk_faces_idx=np.arange(5), lmk_bary_coords=np.full((5, 3), 1 / 3))
    np.savez(path, **model)


def _amass_poses(clip: MotionClip, model_type: str = "smplh") -> np.ndarray:
    t = clip.num_frames
    joint_quats = dof_to_joint_quats(torch.from_numpy(clip.dof_pos))
    group = {name: g for g, (name, _, _) in enumerate(hum.JOINT_GROUPS)}
    poses = np.zeros((t, 156 if model_type == "smplh" else 165))
    poses[:, :3] = quat_to_exp_map(torch.from_numpy(clip.root_quat)).numpy()
    for smpl, ours in SMPL_ROTATION_OF.items():
        j = SMPL_JOINT_NAMES.index(smpl)
        poses[:, 3 * j:3 * j + 3] = quat_to_exp_map(joint_quats[:, group[ours]]).numpy()
    return poses


def _write_amass(path, clip, model_type="smplh", **overrides):
    data = dict(poses=_amass_poses(clip, model_type), trans=clip.root_pos - _smpl_rest_joints(model_type)[0],
                betas=np.full(16, 0.5), mocap_framerate=np.array(clip.fps), gender=np.array("male"))
    data.update(overrides)
    np.savez(path, **{k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize("model_type", ["smplh", "smplx"])
def test_amass_import_reproduces_motion(tmp_path, model_type):
    stem = f"{model_type.upper()}_MALE"
    (tmp_path / "models" / model_type).mkdir(parents=True)
    write_synthetic_model(tmp_path / "models" / model_type / f"{stem}.npz", model_type)
    clip = _clip()
    _write_amass(tmp_path / "walk_poses.npz", clip, model_type)
    out, stats = import_amass(tmp_path / "walk_poses.npz", tmp_path / "models", FAST)
    assert stats["model_file"].endswith(f"{stem}.npz")
    assert out.fps == clip.fps and out.num_frames == clip.num_frames
    assert stats["scale"] == pytest.approx(1.0, abs=0.01)
    _assert_reproduces(clip, out)


def test_amass_joints_match_smplx_body_model(tmp_path):
    """Our joint computation (rest shape + kinematic chain) equals smplx's full SMPL-H model output."""
    import smplx
    from smplx.utils import Struct

    from coohoi.motion.importers.amass import body_joints

    model_file = tmp_path / "SMPLH_MALE.npz"
    write_synthetic_model(model_file, "smplh", seed=3)
    rng = np.random.default_rng(1)
    motion = dict(poses=rng.normal(0, 0.4, (7, 156)), trans=rng.normal(0, 1, (7, 3)), betas=rng.normal(0, 2, 16),
                  fps=30.0, gender="male", model_type="smplh")
    ours = body_joints(motion, model_file)
    data = dict(np.load(model_file))
    model = smplx.SMPLH(str(model_file), data_struct=Struct(**data), use_pca=False, num_betas=16, batch_size=7,
                        vertex_ids={k: 0 for k in ("nose", "reye", "leye", "rear", "lear")},
                        use_feet_keypoints=False, use_hands=False, dtype=torch.float64)
    p = torch.from_numpy(motion["poses"])
    # smplx uses the first 10 betas of a 16-beta model; compare with the same 10.
    betas = torch.from_numpy(motion["betas"][:model.num_betas])[None].expand(7, -1)
    theirs = model(betas=betas, global_orient=p[:, :3], body_pose=p[:, 3:66], left_hand_pose=p[:, 66:111],
                   right_hand_pose=p[:, 111:156], transl=torch.from_numpy(motion["trans"])).joints[:, :22]
    motion["betas"] = motion["betas"][:model.num_betas]
    np.testing.assert_allclose(body_joints(motion, model_file), theirs.detach().numpy(), atol=1e-6)  # smplx adds 1e-8 to angles
    assert np.abs(ours - theirs.detach().numpy()).max() > 1e-4  # all 16 betas count in ours


def test_amass_pkl_model_plain_arrays_only(tmp_path):
    write_synthetic_model(tmp_path / "model.npz")
    arrays = dict(np.load(tmp_path / "model.npz"))
    (tmp_path / "SMPLH_MALE.pkl").write_bytes(pickle.dumps(arrays, protocol=2))
    clip = _clip(0.3)
    _write_amass(tmp_path / "m.npz", clip)
    out, stats = import_amass(tmp_path / "m.npz", tmp_path / "SMPLH_MALE.pkl", FAST)
    assert stats["model_file"].endswith(".pkl") and out.num_frames == clip.num_frames
    _Exploit.marker = tmp_path / "pwned"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(dict(arrays, v_template=_Exploit())))
    with pytest.raises(UnsafePickleError, match="evil.pkl"):
        import_amass(tmp_path / "m.npz", tmp_path / "evil.pkl", FAST)
    assert not _Exploit.marker.exists()


def test_amass_refuses_malformed(tmp_path):
    (tmp_path / "smplh").mkdir()
    write_synthetic_model(tmp_path / "smplh" / "SMPLH_MALE.npz")
    clip = _clip(0.3)
    path = tmp_path / "m.npz"
    cases = [
        (dict(poses=None), "missing keys.*poses"),
        (dict(mocap_framerate=None), "mocap_framerate"),
        (dict(poses=np.zeros((clip.num_frames, 100))), "width 100"),
        (dict(trans=np.zeros((3, 3))), "trans"),
        (dict(trans=np.full((clip.num_frames, 3), np.nan)), "NaN"),
        (dict(gender=np.array([{"a": 1}], dtype=object)), "pickled|readable"),
    ]
    for overrides, match in cases:
        _write_amass(path, clip, **overrides)
        with pytest.raises(MotionFormatError, match=match) as info:
            import_amass(path, tmp_path, FAST)
        assert "m.npz" in str(info.value)
    # No model for the gender and no neutral fallback; a model file with wrong shapes.
    _write_amass(path, clip, gender=np.array("female"))
    with pytest.raises(MotionFormatError, match="no smplh body model"):
        import_amass(path, tmp_path, FAST)
    bad_model = tmp_path / "SMPLH_MALE.npz"
    np.savez(bad_model, **{k: v for k, v in np.load(tmp_path / "smplh" / "SMPLH_MALE.npz").items() if k != "J_regressor"})
    _write_amass(path, clip)
    with pytest.raises(MotionFormatError, match="misses.*J_regressor"):
        import_amass(path, bad_model, FAST)
    assert load_amass(path)["gender"] == "male"


# ---- BVH --------------------------------------------------------------------------------------------------------
# Our skeleton written as a CMU-named, y-up BVH. Our hinge chain R = Rx(a) Ry(b) Rz(c) becomes, in y-up axes,
# Xrotation(a) Zrotation(-b) Yrotation(c): the channel order differs from xyz, which the parser must honour.
BVH_NAMES = {"pelvis": "Hips", "torso": "Spine", "head": "Neck1", "right_upper_arm": "RightArm",
             "right_lower_arm": "RightForeArm", "right_hand": "RightHand", "left_upper_arm": "LeftArm",
             "left_lower_arm": "LeftForeArm", "left_hand": "LeftHand", "right_thigh": "RightUpLeg",
             "right_shin": "RightLeg", "right_foot": "RightFoot", "left_thigh": "LeftUpLeg", "left_shin": "LeftLeg",
             "left_foot": "LeftFoot"}
Z_UP_TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
ROT_CHANNELS = ["Xrotation", "Zrotation", "Yrotation"]
INCHES = 1 / 0.0254


def _euler_channels(quat: torch.Tensor) -> np.ndarray:
    xyz = quat_to_euler_xyz(quat).numpy()
    return np.degrees(np.stack((xyz[:, 0], -xyz[:, 1], xyz[:, 2]), -1))


def _write_bvh(path, clip: MotionClip):
    parents, offsets, _ = _skeleton()
    joints = []
    for b, name in enumerate(hum.BODY_NAMES):
        channels = (["Xposition", "Yposition", "Zposition"] if b == 0 else []) + ROT_CHANNELS
        joints.append(BvhJoint(BVH_NAMES[name], int(parents[b]), Z_UP_TO_Y_UP @ offsets[b] * INCHES, channels))
    for marker, (body, offset) in MARKERS.items():
        name = {"right_toe": "RightToeBase", "left_toe": "LeftToeBase", "head_top": "Head"}[marker]
        joints.append(BvhJoint(name, hum.BODY_NAMES.index(body), Z_UP_TO_Y_UP @ np.array(offset) * INCHES,
                               list(ROT_CHANNELS)))
    joints.append(BvhJoint("Head/end", len(joints) - 1, np.array([0.0, 4.0, 0.0]), is_end=True))
    joint_quats = dof_to_joint_quats(torch.from_numpy(clip.dof_pos))
    values = []
    for b, j in enumerate(joints):
        if b == 0:
            values.append(np.concatenate((clip.root_pos @ Z_UP_TO_Y_UP.T * INCHES,
                                          _euler_channels(torch.from_numpy(clip.root_quat))), axis=1))
        elif j.is_end:
            values.append(None)
        elif b < hum.NUM_BODIES and b in hum.JOINT_GROUP_BODY_IDS:
            values.append(_euler_channels(joint_quats[:, hum.JOINT_GROUP_BODY_IDS.index(b)]))
        else:
            values.append(np.zeros((clip.num_frames, 3)))
    write_bvh(path, joints, 1.0 / clip.fps, values)
    return joints


def test_bvh_import_reproduces_motion(tmp_path):
    clip = _clip()
    path = tmp_path / "walk.bvh"
    _write_bvh(path, clip)
    bvh = parse_bvh(path)
    assert bvh.fps == pytest.approx(clip.fps, rel=1e-6) and bvh.motion.shape[0] == clip.num_frames
    out, stats = import_bvh(path, retarget_cfg=FAST)
    assert stats["scale"] == pytest.approx(0.0254, rel=1e-3)  # inches back to metres
    _assert_reproduces(clip, out)


def test_bvh_refuses_malformed(tmp_path):
    clip = _clip(0.3)
    good = tmp_path / "good.bvh"
    _write_bvh(good, clip)
    text = good.read_text()
    lines = text.splitlines()
    cases = {
        "truncated.bvh": ("\n".join(lines[:-2]) + "\n", "truncated"),
        "cut_hierarchy.bvh": (text[: text.index("LeftLeg")], "ends early"),
        "nan.bvh": (text.replace(lines[-1], " ".join(["nan"] * len(lines[-1].split()))), "NaN|not finite"),
        "channels.bvh": (text.replace("Xrotation Zrotation Yrotation", "Xrotation Wrotation Yrotation", 1), "channels"),
        "frames.bvh": (text.replace(f"Frames: {clip.num_frames}", "Frames: many"), "Frames"),
        "nohips.bvh": (text.replace("ROOT Hips", "ROOT Root"), "pelvis"),
        "empty.bvh": ("", "ends early"),
    }
    for name, (content, match) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(MotionFormatError, match=match) as info:
            import_bvh(tmp_path / name, retarget_cfg=FAST)
        assert name in str(info.value)
    (tmp_path / "binary.bvh").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MotionFormatError, match="binary.bvh"):
        import_bvh(tmp_path / "binary.bvh", retarget_cfg=FAST)
