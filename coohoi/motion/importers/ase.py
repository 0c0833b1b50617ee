"""ASE / CooHOI motion files: `.npy` dictionaries written by poselib's SkeletonMotion.to_file.

Layout (T frames, J = 15 bodies in the reference order, quaternions x, y, z, w):
    rotation                 {arr: [T, J, 4], context: {dtype}}   local (is_local) or global body rotations
    root_translation         {arr: [T, 3]}                        pelvis position, z up, metres
    global_velocity          {arr: [T, J, 3]}                     (not used: the motion library differentiates)
    global_angular_velocity  {arr: [T, J, 3]}                     (not used)
    skeleton_tree            {node_names: [J], parent_indices: {arr: [J]}, local_translation: {arr: [J, 3]}}
    is_local                 bool
    fps                      number
    __name__                 'SkeletonMotion'

The skeleton is ours, so no retargeting is needed: each 3-DoF joint's local rotation becomes x, y, z hinge angles
(intrinsic Euler decomposition, continuous in time and inside the joint limits where an equivalent solution is)
and each 1-DoF joint takes the rotation's twist about y. Extra bodies (props such as a sword and a shield on the
hands) are dropped by name, with a note; a skeleton lacking one of ours is refused. `export_ase` writes our clips
in this format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.importers.cleanup import ImportSettings, finish_clip, given_fps
from coohoi.motion.importers.safe_load import load_npy
from coohoi.motion.kinematics import _skeleton, dof_to_joint_quats, joint_quats_to_dof
from coohoi.rotations import normalize, quat_conjugate, quat_mul

ASE_CLASS_NAME = "SkeletonMotion"
REQUIRED_KEYS = ("rotation", "root_translation", "skeleton_tree", "fps")
SHOWN_CHARS = 60  # of a wrong value, in a message


def _shown(value) -> str:
    """A value as one short line, for a message."""
    text = " ".join(repr(value).split())
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def _array(d, key: str, source: str) -> np.ndarray:
    """A poselib tensor dictionary {arr: ndarray, ...} (or a bare array) as float64."""
    value = d.get(key) if isinstance(d, dict) else None
    if isinstance(value, dict):
        value = value.get("arr")
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise MotionFormatError(f"{source}: '{key}' must be a numeric array (or {{arr: array}}), "
                                f"got {type(value).__name__}")
    return value.astype(np.float64)


def load_ase_dict(path: str | Path) -> dict:
    path = Path(path)
    d = load_npy(path)
    if not isinstance(d, dict):
        raise MotionFormatError(f"{path}: expected a SkeletonMotion dictionary, got {type(d).__name__}")
    if "__name__" in d and str(d["__name__"]) != ASE_CLASS_NAME:
        raise MotionFormatError(f"{path}: holds a {_shown(d['__name__'])}, not a {ASE_CLASS_NAME}")
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        raise MotionFormatError(f"{path}: missing keys {missing}")
    return d


def _body_map(tree: dict, source: str) -> tuple[list[int], list[str]]:
    """Index in the file of each of our bodies, and the file's extra bodies; refuses a skeleton that lacks one of
    ours or whose tree connects ours differently."""
    node_names = tree["node_names"]
    if not isinstance(node_names, (list, tuple)) and not (isinstance(node_names, np.ndarray) and node_names.ndim == 1):
        raise MotionFormatError(f"{source}: skeleton 'node_names' must be a list of names, "
                                f"got {type(node_names).__name__}")
    names = [str(n) for n in node_names]
    missing = [n for n in hum.BODY_NAMES if n not in names]
    if missing:
        raise MotionFormatError(f"{source}: skeleton lacks bodies {missing} of the 15-body AMP humanoid "
                                f"(it has {names})")
    index = [names.index(n) for n in hum.BODY_NAMES]
    extra = [n for n in names if n not in hum.BODY_NAMES]
    if "parent_indices" in tree:
        parents = _array(tree, "parent_indices", source).astype(int)
        if parents.shape != (len(names),):
            raise MotionFormatError(f"{source}: skeleton has {len(names)} bodies but {parents.shape} parent indices")
        if np.any((parents < -1) | (parents >= len(names))):
            raise MotionFormatError(f"{source}: skeleton parent indices {parents.tolist()} out of range")
        ours = _skeleton()[0]  # parent index per body, from our MJCF
        theirs = lambda b: names[parents[index[b]]] if parents[index[b]] >= 0 else None  # noqa: E731
        mine = lambda b: hum.BODY_NAMES[ours[b]] if ours[b] >= 0 else None  # noqa: E731
        wrong = [f"{n} (file: {theirs(b)}, ours: {mine(b)})" for b, n in enumerate(hum.BODY_NAMES)
                 if theirs(b) != mine(b)]
        if wrong:
            raise MotionFormatError(f"{source}: skeleton parents differ from ours for {', '.join(wrong)}")
    return index, extra


def import_ase(path: str | Path, loop: bool = False, name: str | None = None,
               settings: ImportSettings | None = None) -> tuple[MotionClip, dict]:
    """Convert an ASE/CooHOI `.npy` motion (the 15-body AMP humanoid, possibly with extra bodies such as props,
    which are dropped) to a MotionClip, finished by cleanup.finish_clip. Returns the clip and {"notes": [...]}."""
    path = Path(path)
    source = str(path)
    d = load_ase_dict(path)
    rotation = _array(d, "rotation", source)
    root_translation = _array(d, "root_translation", source)
    tree = d["skeleton_tree"]
    if not isinstance(tree, dict) or "node_names" not in tree:
        raise MotionFormatError(f"{source}: 'skeleton_tree' must be a dictionary with 'node_names'")
    index, extra = _body_map(tree, source)
    j = len(tree["node_names"])
    t = rotation.shape[0] if rotation.ndim == 3 else -1
    if rotation.shape != (t, j, 4) or t < 2:
        raise MotionFormatError(f"{source}: 'rotation' must have shape [T >= 2, {j}, 4], got {rotation.shape}")
    if root_translation.shape != (t, 3):
        raise MotionFormatError(f"{source}: 'root_translation' must have shape ({t}, 3), got {root_translation.shape}")
    for key, value in (("rotation", rotation), ("root_translation", root_translation)):
        if not np.all(np.isfinite(value)):
            raise MotionFormatError(f"{source}: '{key}' contains NaN or infinity")
    rotation = rotation[:, index]  # our 15 bodies, in our order
    norms = np.linalg.norm(rotation, axis=-1)
    if np.any(np.abs(norms - 1.0) > 1e-2):
        raise MotionFormatError(f"{source}: 'rotation' must hold unit quaternions (x, y, z, w)")
    notes = [f"dropped bodies not in our skeleton: {', '.join(extra)}"] if extra else []
    try:
        fps = float(np.asarray(d["fps"]).item())
    except (TypeError, ValueError) as exc:
        raise MotionFormatError(f"{source}: 'fps' must be a number, got {_shown(d['fps'])}") from exc
    fps, fps_notes = given_fps(fps, settings, source)
    notes += fps_notes
    if not np.isfinite(fps) or fps <= 0:
        raise MotionFormatError(f"{source}: 'fps' must be positive, got {fps}")

    quats = normalize(torch.from_numpy(rotation[..., [3, 0, 1, 2]]))  # xyzw -> wxyz
    try:
        is_local = bool(np.asarray(d.get("is_local", True)).item())
    except (TypeError, ValueError) as exc:
        raise MotionFormatError(f"{source}: 'is_local' must be true or false, got {_shown(d['is_local'])}") from exc
    if not is_local:  # global body rotations: local = parent^-1 * child, with our parents
        parents = _skeleton()[0]
        local = quats.clone()
        local[:, 1:] = quat_mul(quat_conjugate(quats[:, parents[1:]]), quats[:, 1:])
        quats = local
    joint_quats = quats[:, list(hum.JOINT_GROUP_BODY_IDS)]
    dof_pos = joint_quats_to_dof(joint_quats, continuous=True).numpy()
    clip = MotionClip(fps=fps, root_pos=root_translation,
                      root_quat=quats[:, 0].numpy(), dof_pos=dof_pos, loop=loop, name=name or path.stem)
    clip, more = finish_clip(clip.validate(source), settings, source)
    return clip, {"notes": notes + more}


def export_ase(clip: MotionClip, path: str | Path) -> None:
    """Write a clip as a poselib-style SkeletonMotion dictionary `.npy` (local rotations, plain dicts and arrays,
    loadable by import_ase and by poselib's from_file)."""
    parents, offsets, _ = _skeleton()
    local = torch.zeros(clip.num_frames, hum.NUM_BODIES, 4, dtype=torch.float64)
    local[..., 0] = 1.0
    local[:, 0] = torch.from_numpy(np.asarray(clip.root_quat, dtype=np.float64))
    local[:, list(hum.JOINT_GROUP_BODY_IDS)] = dof_to_joint_quats(torch.from_numpy(np.asarray(clip.dof_pos,
                                                                                              dtype=np.float64)))
    tensor = lambda a: {"arr": np.ascontiguousarray(a, dtype=np.float32), "context": {"dtype": "float32"}}  # noqa: E731
    zeros = np.zeros((clip.num_frames, hum.NUM_BODIES, 3))
    d = {
        "rotation": tensor(local.numpy()[..., [1, 2, 3, 0]]),  # wxyz -> xyzw
        "root_translation": tensor(clip.root_pos),
        "global_velocity": tensor(zeros),  # not used by our importer; the motion library differentiates
        "global_angular_velocity": tensor(zeros),
        "skeleton_tree": {"node_names": list(hum.BODY_NAMES),
                          "parent_indices": {"arr": parents.astype(np.int64), "context": {"dtype": "int64"}},
                          "local_translation": tensor(offsets)},
        "is_local": True,
        "fps": float(clip.fps),
        "__name__": ASE_CLASS_NAME,
    }
    np.save(Path(path), np.array(d, dtype=object), allow_pickle=True)


def skeleton_offset_error(path: str | Path) -> float:
    """Largest difference (m) between the file's body offsets and our model's (informational)."""
    d = load_ase_dict(path)
    offsets = _array(d["skeleton_tree"], "local_translation", str(path))
    ours = _skeleton()[1]
    if offsets.shape != ours.shape:
        return float("inf")
    return float(np.abs(offsets[1:] - ours[1:]).max())
