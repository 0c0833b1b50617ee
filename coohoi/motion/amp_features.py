"""The per-frame AMP discriminator feature (125 numbers), one function for demo clips and live simulation alike.

Layout (reference §5): root height (1); root rotation in the heading frame as 6D (6); root linear and angular
velocity in the heading frame (3 + 3); the 12 joint rotations as 6D (72); the 28 DoF velocities (28); the 4 key
body positions relative to the root, in the heading frame (12).
"""

from __future__ import annotations

import torch

from coohoi import humanoid as hum
from coohoi.motion.kinematics import dof_to_joint_quats
from coohoi.rotations import heading_quat_inverse, quat_mul, quat_rotate_yaw, quat_to_tan_norm

AMP_FEATURE_SIZE = 1 + 6 + 3 + 3 + 6 * hum.NUM_JOINT_GROUPS + hum.NUM_DOFS + 3 * len(hum.KEY_BODY_IDS)
assert AMP_FEATURE_SIZE == 125


def amp_features(
    root_pos: torch.Tensor,
    root_quat: torch.Tensor,
    root_lin_vel: torch.Tensor,
    root_ang_vel: torch.Tensor,
    dof_pos: torch.Tensor,
    dof_vel: torch.Tensor,
    key_body_pos: torch.Tensor,
) -> torch.Tensor:
    """Features [..., 125] from states with any leading shape; key_body_pos is [..., 4, 3] in world frame."""
    heading_inv = heading_quat_inverse(root_quat)
    root_rot_local = quat_to_tan_norm(quat_mul(heading_inv, root_quat))
    lin_vel = quat_rotate_yaw(heading_inv, root_lin_vel)
    ang_vel = quat_rotate_yaw(heading_inv, root_ang_vel)
    joint_rot = quat_to_tan_norm(dof_to_joint_quats(dof_pos)).flatten(-2)
    rel_key = key_body_pos - root_pos.unsqueeze(-2)
    key_local = quat_rotate_yaw(heading_inv.unsqueeze(-2), rel_key).flatten(-2)
    return torch.cat(
        (root_pos[..., 2:3], root_rot_local, lin_vel, ang_vel, joint_rot, dof_vel, key_local), dim=-1
    )
