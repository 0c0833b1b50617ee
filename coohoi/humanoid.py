"""The one place that holds the humanoid's layout: body order, DoF order, joint groups and key bodies.

The order is the reference humanoid's (ASE / CooHOI / TeamHOI), so motion data made for it maps one to one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coohoi.assets import asset_path

MJCF_PATH: Path = asset_path("mjcf/humanoid.xml")

BODY_NAMES: tuple[str, ...] = (
    "pelvis", "torso", "head",
    "right_upper_arm", "right_lower_arm", "right_hand",
    "left_upper_arm", "left_lower_arm", "left_hand",
    "right_thigh", "right_shin", "right_foot",
    "left_thigh", "left_shin", "left_foot",
)
NUM_BODIES = len(BODY_NAMES)

# (joint group, body it moves, hinge axes). 3-DoF groups are x, y, z hinge triples (an intrinsic xyz Euler chain).
JOINT_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("abdomen", "torso", "xyz"),
    ("neck", "head", "xyz"),
    ("right_shoulder", "right_upper_arm", "xyz"),
    ("right_elbow", "right_lower_arm", "y"),
    ("left_shoulder", "left_upper_arm", "xyz"),
    ("left_elbow", "left_lower_arm", "y"),
    ("right_hip", "right_thigh", "xyz"),
    ("right_knee", "right_shin", "y"),
    ("right_ankle", "right_foot", "xyz"),
    ("left_hip", "left_thigh", "xyz"),
    ("left_knee", "left_shin", "y"),
    ("left_ankle", "left_foot", "xyz"),
)
NUM_JOINT_GROUPS = len(JOINT_GROUPS)


def _dof_name(group: str, axis: str, num_axes: int) -> str:
    return group if num_axes == 1 else f"{group}_{axis}"


DOF_NAMES: tuple[str, ...] = tuple(
    _dof_name(group, axis, len(axes)) for group, _, axes in JOINT_GROUPS for axis in axes
)
NUM_DOFS = len(DOF_NAMES)
# Start of each joint group in the DoF vector, plus the end: 0, 3, 6, 9, 10, ..., 28.
DOF_OFFSETS: tuple[int, ...] = tuple(np.cumsum([0] + [len(axes) for _, _, axes in JOINT_GROUPS]).tolist())
# Body index moved by each joint group (the AMP features' "12 joint rotations").
JOINT_GROUP_BODY_IDS: tuple[int, ...] = tuple(BODY_NAMES.index(body) for _, body, _ in JOINT_GROUPS)

KEY_BODY_NAMES: tuple[str, ...] = ("right_hand", "left_hand", "right_foot", "left_foot")
KEY_BODY_IDS: tuple[int, ...] = tuple(BODY_NAMES.index(n) for n in KEY_BODY_NAMES)
HAND_BODY_IDS: tuple[int, ...] = (BODY_NAMES.index("right_hand"), BODY_NAMES.index("left_hand"))
FOOT_BODY_IDS: tuple[int, ...] = (BODY_NAMES.index("right_foot"), BODY_NAMES.index("left_foot"))
HEAD_BODY_ID = BODY_NAMES.index("head")

# Root (pelvis) height at spawn, standing in the default pose.
SPAWN_ROOT_HEIGHT = 0.89
# Free joint: 7 qpos (pos, quat wxyz) and 6 qvel (world linear, local angular) before the 28 hinges.
QPOS_SIZE = 7 + NUM_DOFS
QVEL_SIZE = 6 + NUM_DOFS
