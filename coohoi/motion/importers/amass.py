"""AMASS motions (`.npz` with SMPL-H or SMPL-X parameters), through `smplx` and the user's model files.

AMASS file keys: `poses` [T, 156] (SMPL-H: root, 21 body, 2 x 15 hand joints, axis-angle) or [T, 165] (SMPL-X:
root, 21 body, jaw, 2 eyes, 2 x 15 hand joints); `trans` [T, 3]; `betas` [>= 10] (optional, zeros if absent);
`mocap_framerate` or `mocap_frame_rate`; `gender` (optional); `surface_model_type` (optional, 'smplh' | 'smplx').
The world is z up, metres.

Body model files are licensed and supplied by the user (`--model-dir`): `.npz` (read without pickle) or `.pkl`
(read with the restricted unpickler, so files that need chumpy or other classes are refused: convert them to .npz).
Looked up as `{dir}/{type}/{gender}/model.npz` (AMASS layout), `{dir}/{type}/{TYPE}_{GENDER}.npz|pkl`,
`{dir}/{TYPE}_{GENDER}.npz|pkl`, falling back to the neutral model; or give the file itself.

Only the 22 body joints are used: their positions come from the model's rest shape (v_template, shapedirs,
J_regressor, kintree_table) and smplx's shape blending and kinematic chain; they are mapped to our points and
retargeted (coohoi.motion.importers.retarget). smplx's model classes are not used because they unpickle model
files (np.load(allow_pickle=True)) and skin the whole mesh, which joint positions do not need.
"""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from coohoi.motion.clip import MotionClip, MotionFormatError, read_npz
from coohoi.motion.importers.cleanup import ImportSettings, finish_clip, given_fps
from coohoi.motion.importers.retarget import RetargetConfig, retarget
from coohoi.motion.importers.safe_load import restricted_loads

NUM_BODY_JOINTS = 22  # root + 21 body joints, shared by SMPL-H and SMPL-X
POSE_WIDTH = {"smplh": 156, "smplx": 165}
# Model parameters that decide joint positions (the rest shape the mesh, which we do not need).
MODEL_KEYS = ("v_template", "shapedirs", "J_regressor", "kintree_table")
MODEL_JOINTS = {"smplh": 52, "smplx": 55}
SMPLX_SHAPE_DIM, SMPLX_EXPRESSION_DIM = 300, 100
# Our retarget points and the SMPL body joint supplying each (SMPL joint order).
SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
SMPL_TO_OURS = {
    "pelvis": "pelvis", "torso": "spine2", "head": "neck", "head_top": "head",
    "right_upper_arm": "right_shoulder", "right_lower_arm": "right_elbow", "right_hand": "right_wrist",
    "left_upper_arm": "left_shoulder", "left_lower_arm": "left_elbow", "left_hand": "left_wrist",
    "right_thigh": "right_hip", "right_shin": "right_knee", "right_foot": "right_ankle", "right_toe": "right_foot",
    "left_thigh": "left_hip", "left_shin": "left_knee", "left_foot": "left_ankle", "left_toe": "left_foot",
}
FRAMES_PER_CHUNK = 256


def load_amass(path: str | Path) -> dict:
    """The AMASS file's arrays, validated: poses, trans, betas, fps, gender, model_type."""
    path = Path(path)
    content = read_npz(path, "AMASS .npz without pickled objects")
    missing = [k for k in ("poses", "trans") if k not in content]
    if "mocap_framerate" not in content and "mocap_frame_rate" not in content:
        missing.append("mocap_framerate (or mocap_frame_rate)")
    if missing:
        raise MotionFormatError(f"{path}: missing keys {missing}")
    poses = np.asarray(content["poses"], dtype=np.float64)
    trans = np.asarray(content["trans"], dtype=np.float64)
    if poses.ndim != 2 or poses.shape[0] < 2:
        raise MotionFormatError(f"{path}: 'poses' must be [T >= 2, 156 | 165], got {poses.shape}")
    t = poses.shape[0]
    if trans.shape != (t, 3):
        raise MotionFormatError(f"{path}: 'trans' must have shape ({t}, 3), got {trans.shape}")
    model_type = str(content.get("surface_model_type", "")).lower() or None
    if model_type is None:
        model_type = next((k for k, w in POSE_WIDTH.items() if w == poses.shape[1]), None)
    if model_type not in POSE_WIDTH or poses.shape[1] != POSE_WIDTH[model_type]:
        raise MotionFormatError(f"{path}: 'poses' width {poses.shape[1]} fits no supported model "
                                f"({', '.join(f'{k}: {w}' for k, w in POSE_WIDTH.items())})")
    betas = np.asarray(content.get("betas", np.zeros(10)), dtype=np.float64).reshape(-1)
    fps = float(np.asarray(content.get("mocap_framerate", content.get("mocap_frame_rate"))).reshape(-1)[0])
    for key, value in (("poses", poses), ("trans", trans), ("betas", betas), ("mocap_framerate", np.array(fps))):
        if not np.all(np.isfinite(value)):
            raise MotionFormatError(f"{path}: '{key}' contains NaN or infinity")
    if fps <= 0:
        raise MotionFormatError(f"{path}: frame rate must be positive, got {fps}")
    gender = content.get("gender", np.array("neutral"))
    gender = gender.item() if isinstance(gender, np.ndarray) else gender
    gender = (gender.decode() if isinstance(gender, bytes) else str(gender)).strip().lower() or "neutral"
    return {"poses": poses, "trans": trans, "betas": betas, "fps": fps, "gender": gender, "model_type": model_type}


def find_model_file(model_path: str | Path, model_type: str, gender: str) -> Path:
    model_path = Path(model_path)
    if model_path.is_file():
        return model_path
    if not model_path.is_dir():
        raise MotionFormatError(f"{model_path}: body model file or folder not found")
    tried = []
    for g in dict.fromkeys((gender, "neutral")):
        stem = f"{model_type.upper()}_{g.upper()}"
        for cand in (model_path / model_type / g / "model.npz", model_path / g / "model.npz",
                     model_path / model_type / f"{stem}.npz", model_path / model_type / f"{stem}.pkl",
                     model_path / f"{stem}.npz", model_path / f"{stem}.pkl"):
            tried.append(str(cand))
            if cand.is_file():
                return cand
    raise MotionFormatError(f"no {model_type} body model for gender {gender!r} under {model_path}; tried {tried}")


def load_model_data(path: Path, model_type: str) -> dict[str, np.ndarray]:
    """Model parameters from a .npz (no pickle) or .pkl (restricted unpickler), checked for shape and NaN."""
    keys = MODEL_KEYS
    if path.suffix == ".pkl":
        data = restricted_loads(path.read_bytes(), str(path))
        if not isinstance(data, dict):
            raise MotionFormatError(f"{path}: expected a dictionary of model arrays, got {type(data).__name__}")
    else:
        try:
            npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise MotionFormatError(f"{path}: not a readable model .npz ({exc})") from exc
        data = {}
        for k in keys:
            if k in npz.files:
                try:
                    data[k] = npz[k]
                except ValueError as exc:
                    raise MotionFormatError(f"{path}: model key {k!r} needs pickled objects; refused ({exc})") from exc
    missing = [k for k in keys if k not in data]
    if missing:
        raise MotionFormatError(f"{path}: body model file misses {missing}")
    out = {k: np.asarray(data[k]) for k in keys}
    for k, v in out.items():
        if v.dtype.kind not in "fiu":
            raise MotionFormatError(f"{path}: model key {k!r} must be numeric, got dtype {v.dtype}")
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise MotionFormatError(f"{path}: model key {k!r} contains NaN or infinity")
    v = out["v_template"].shape[0]
    expected_joints = MODEL_JOINTS[model_type]
    checks = {"v_template": (v, 3), "J_regressor": (expected_joints, v), "kintree_table": (2, expected_joints)}
    for k, shape in checks.items():
        if out[k].shape != shape:
            raise MotionFormatError(f"{path}: model key {k!r} must have shape {shape} for {model_type}, got {out[k].shape}")
    if out["shapedirs"].ndim != 3 or out["shapedirs"].shape[:2] != (v, 3):
        raise MotionFormatError(f"{path}: 'shapedirs' must be [{v}, 3, B], got {out['shapedirs'].shape}")
    parents = out["kintree_table"][0, 1:NUM_BODY_JOINTS]
    if np.any(parents < 0) or np.any(parents >= np.arange(1, NUM_BODY_JOINTS)):
        raise MotionFormatError(f"{path}: 'kintree_table' does not list body joints after their parents")
    return out


def _shape_columns(model_type: str, shapedirs: np.ndarray) -> int:
    """How many shapedirs columns are body shape: SMPL-X files append expression directions (100, or 10 in
    reduced models) after the shape ones."""
    total = shapedirs.shape[-1]
    if model_type == "smplx":
        return total - (SMPLX_EXPRESSION_DIM if total >= SMPLX_SHAPE_DIM + SMPLX_EXPRESSION_DIM else 10)
    return total


def body_joints(motion: dict, model_file: Path) -> np.ndarray:
    """World positions [T, 22, 3] of the SMPL body joints for every frame, with smplx's shape blending, joint
    regression and kinematic chain. Joint positions do not depend on pose blend shapes or skinning, so the mesh
    is never posed."""
    from smplx.lbs import batch_rigid_transform, batch_rodrigues, blend_shapes, vertices2joints

    model_type = motion["model_type"]
    data = load_model_data(model_file, model_type)
    num_betas = min(len(motion["betas"]), _shape_columns(model_type, data["shapedirs"]))
    f64 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    betas = f64(motion["betas"][:num_betas])[None]
    v_shaped = f64(data["v_template"])[None] + blend_shapes(betas, f64(data["shapedirs"][:, :, :num_betas]))
    rest_joints = vertices2joints(f64(data["J_regressor"][:NUM_BODY_JOINTS]), v_shaped)  # [1, 22, 3]
    parents = torch.as_tensor(data["kintree_table"][0, :NUM_BODY_JOINTS].astype(np.int64))
    parents[0] = -1
    poses = torch.from_numpy(motion["poses"][:, :3 * NUM_BODY_JOINTS])
    trans = torch.from_numpy(motion["trans"])
    out = []
    for start in range(0, poses.shape[0], FRAMES_PER_CHUNK):
        p = poses[start:start + FRAMES_PER_CHUNK]
        b = p.shape[0]
        rot = batch_rodrigues(p.reshape(-1, 3)).view(b, NUM_BODY_JOINTS, 3, 3)
        joints, _ = batch_rigid_transform(rot, rest_joints.expand(b, -1, -1), parents, dtype=torch.float64)
        out.append(joints + trans[start:start + b, None])
    return torch.cat(out).numpy()


def import_amass(path: str | Path, model_path: str | Path, retarget_cfg: RetargetConfig | None = None,
                 loop: bool = False, name: str | None = None, settings: ImportSettings | None = None
                 ) -> tuple[MotionClip, dict]:
    """Convert an AMASS `.npz` to our clip, finished by cleanup.finish_clip; returns the clip and statistics (fit
    errors, model_file, `notes`). `settings.fps` overrides the file's frame rate; without settings, grounding
    follows retarget_cfg."""
    path = Path(path)
    cfg = retarget_cfg or RetargetConfig()
    settings = settings or ImportSettings(ground=cfg.ground)
    motion = load_amass(path)
    fps, notes = given_fps(motion["fps"], settings, str(path))
    model_file = find_model_file(model_path, motion["model_type"], motion["gender"])
    joints = body_joints(motion, model_file)
    points = {ours: joints[:, SMPL_JOINT_NAMES.index(smpl)] for ours, smpl in SMPL_TO_OURS.items()}
    clip, stats = retarget(points, fps, replace(cfg, ground=settings.ground), name=name or path.stem,
                           source=str(path))
    clip.loop = loop
    clip, finish_notes = finish_clip(clip, settings, str(path))
    stats["model_file"] = str(model_file)
    stats["notes"] = notes + list(finish_notes)
    return clip, stats
