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
(intrinsic Euler decomposition) and each 1-DoF joint takes the rotation's twist about y.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.importers.safe_load import load_npy
from coohoi.motion.kinematics import _skeleton, joint_quats_to_dof
from coohoi.rotations import normalize, quat_conjugate, quat_mul

ASE_CLASS_NAME = "SkeletonMotion"
REQUIRED_KEYS = ("rotation", "root_translation", "skeleton_tree", "fps")


def _array(d, key: str, source: str) -> np.ndarray:
    """A poselib tensor dictionary {arr: ndarray, ...} (or a bare array) as float64."""
    value = d.get(key) if isinstance(d, dict) else None
    if isinstance(value, dict):
        value = value.get("arr")
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise MotionFormatError(f"{source}: '{key}' must be a numeric array (or {{arr: array}}), got {type(value).__name__}")
    return value.astype(np.float64)


def load_ase_dict(path: str | Path) -> dict:
    path = Path(path)
    d = load_npy(path)
    if not isinstance(d, dict):
        raise MotionFormatError(f"{path}: expected a SkeletonMotion dictionary, got {type(d).__name__}")
    if "__name__" in d and str(d["__name__"]) != ASE_CLASS_NAME:
        raise MotionFormatError(f"{path}: holds a {d['__name__']!r}, not a {ASE_CLASS_NAME}")
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        raise MotionFormatError(f"{path}: missing keys {missing}")
    return d


def import_ase(path: str | Path, loop: bool = False, name: str | None = None) -> MotionClip:
    """Convert an ASE/CooHOI `.npy` motion (15-body AMP humanoid) to a MotionClip."""
    path = Path(path)
    source = str(path)
    d = load_ase_dict(path)
    rotation = _array(d, "rotation", source)
    root_translation = _array(d, "root_translation", source)
    tree = d["skeleton_tree"]
    if not isinstance(tree, dict) or "node_names" not in tree:
        raise MotionFormatError(f"{source}: 'skeleton_tree' must be a dictionary with 'node_names'")
    names = [str(n) for n in tree["node_names"]]
    if names != list(hum.BODY_NAMES):
        raise MotionFormatError(f"{source}: skeleton bodies {names} are not the 15-body AMP humanoid {list(hum.BODY_NAMES)}")
    t = rotation.shape[0] if rotation.ndim == 3 else -1
    if rotation.shape != (t, hum.NUM_BODIES, 4) or t < 2:
        raise MotionFormatError(f"{source}: 'rotation' must have shape [T >= 2, {hum.NUM_BODIES}, 4], got {rotation.shape}")
    if root_translation.shape != (t, 3):
        raise MotionFormatError(f"{source}: 'root_translation' must have shape ({t}, 3), got {root_translation.shape}")
    for key, value in (("rotation", rotation), ("root_translation", root_translation)):
        if not np.all(np.isfinite(value)):
            raise MotionFormatError(f"{source}: '{key}' contains NaN or infinity")
    norms = np.linalg.norm(rotation, axis=-1)
    if np.any(np.abs(norms - 1.0) > 1e-2):
        raise MotionFormatError(f"{source}: 'rotation' must hold unit quaternions (x, y, z, w)")
    try:
        fps = float(np.asarray(d["fps"]).item())
    except (TypeError, ValueError) as exc:
        raise MotionFormatError(f"{source}: 'fps' must be a number, got {d['fps']!r}") from exc
    if not np.isfinite(fps) or fps <= 0:
        raise MotionFormatError(f"{source}: 'fps' must be positive, got {fps}")
    parents = _array(tree, "parent_indices", source).astype(int) if "parent_indices" in tree else None
    ours = _skeleton()[0]  # parent index per body, from our MJCF
    if parents is not None:
        if parents.shape != ours.shape or np.any(parents != ours):
            raise MotionFormatError(f"{source}: skeleton parents {parents.tolist()} differ from ours {ours.tolist()}")

    quats = normalize(torch.from_numpy(rotation[..., [3, 0, 1, 2]]))  # xyzw -> wxyz
    is_local = bool(np.asarray(d.get("is_local", True)).item())
    if not is_local:  # global body rotations: local = parent^-1 * child
        parents_list = [int(p) for p in ours]
        local = quats.clone()
        for b in range(1, hum.NUM_BODIES):
            local[:, b] = quat_mul(quat_conjugate(quats[:, parents_list[b]]), quats[:, b])
        quats = local
    joint_quats = quats[:, list(hum.JOINT_GROUP_BODY_IDS)]
    dof_pos = joint_quats_to_dof(joint_quats).numpy()
    clip = MotionClip(fps=fps, root_pos=root_translation, root_quat=quats[:, 0].numpy(), dof_pos=dof_pos,
                      loop=loop, name=name or path.stem)
    return clip.validate(source)


def skeleton_offset_error(path: str | Path) -> float:
    """Largest difference (m) between the file's body offsets and our model's (informational)."""
    d = load_ase_dict(path)
    offsets = _array(d["skeleton_tree"], "local_translation", str(path))
    ours = _skeleton()[1]
    if offsets.shape != ours.shape:
        return float("inf")
    return float(np.abs(offsets[1:] - ours[1:]).max())
