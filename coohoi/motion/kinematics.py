"""Forward kinematics of the humanoid in torch, from the same MJCF the engines simulate.

Joint rotations: a 3-DoF group is an x, y, z hinge chain (intrinsic xyz Euler angles); a 1-DoF group is a hinge
about y. These helpers are the one place that turns DoF angles into joint rotations and back.
"""

from __future__ import annotations

from functools import lru_cache

import mujoco
import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.rotations import (
    quat_from_axis_angle,
    quat_from_euler_xyz,
    quat_mul,
    quat_rotate,
    quat_to_euler_xyz,
)

_Y_AXIS = (0.0, 1.0, 0.0)


def dof_to_joint_quats(dof_pos: torch.Tensor) -> torch.Tensor:
    """DoF angles [..., 28] to the 12 joint-group rotations [..., 12, 4] (child relative to parent)."""
    quats = []
    for g, (_, _, axes) in enumerate(hum.JOINT_GROUPS):
        start = hum.DOF_OFFSETS[g]
        if len(axes) == 3:
            quats.append(quat_from_euler_xyz(dof_pos[..., start:start + 3]))
        else:
            axis = torch.tensor(_Y_AXIS, dtype=dof_pos.dtype, device=dof_pos.device).expand(dof_pos.shape[:-1] + (3,))
            quats.append(quat_from_axis_angle(axis, dof_pos[..., start]))
    return torch.stack(quats, dim=-2)


def joint_quats_to_dof(joint_quats: torch.Tensor) -> torch.Tensor:
    """Inverse of dof_to_joint_quats: 3-DoF groups by xyz Euler decomposition, 1-DoF groups by the twist about y."""
    dofs = []
    for g, (_, _, axes) in enumerate(hum.JOINT_GROUPS):
        q = joint_quats[..., g, :]
        if len(axes) == 3:
            dofs.append(quat_to_euler_xyz(q))
        else:
            dofs.append((2.0 * torch.atan2(q[..., 2], q[..., 0])).unsqueeze(-1))
    dof = torch.cat(dofs, dim=-1)
    return torch.atan2(torch.sin(dof), torch.cos(dof))  # wrap to (-pi, pi]


@lru_cache(maxsize=None)
def _skeleton() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parent index, offset in parent, and DoF group per body (-1 for the root), in reference body order."""
    model = mujoco.MjModel.from_xml_path(str(hum.MJCF_PATH))
    ids = [model.body(n).id for n in hum.BODY_NAMES]
    parents = np.array([ids.index(model.body_parentid[i]) if i != ids[0] else -1 for i in ids])
    offsets = np.array([model.body_pos[i] for i in ids])
    assert np.allclose([model.body_quat[i] for i in ids], [1, 0, 0, 0]), "body frames must be unrotated"
    group_of_body = np.full(hum.NUM_BODIES, -1)
    for g, body in enumerate(hum.JOINT_GROUP_BODY_IDS):
        group_of_body[body] = g
    return parents, offsets, group_of_body


class ForwardKinematics:
    """Body positions and rotations [..., 15, 3|4] from root pose and DoF angles, batched on any device."""

    def __init__(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        parents, offsets, group_of_body = _skeleton()
        self.parents = parents.tolist()
        self.group_of_body = group_of_body.tolist()
        self.offsets = torch.as_tensor(offsets, dtype=dtype, device=device)

    def __call__(self, root_pos: torch.Tensor, root_quat: torch.Tensor, dof_pos: torch.Tensor):
        joint_quats = dof_to_joint_quats(dof_pos)
        pos, rot = [root_pos], [root_quat]
        for b in range(1, hum.NUM_BODIES):
            p = self.parents[b]
            offset = self.offsets[b].to(root_pos.dtype).expand_as(root_pos)
            pos.append(pos[p] + quat_rotate(rot[p], offset))
            g = self.group_of_body[b]
            rot.append(rot[p] if g < 0 else quat_mul(rot[p], joint_quats[..., g, :]))
        return torch.stack(pos, dim=-2), torch.stack(rot, dim=-2)
