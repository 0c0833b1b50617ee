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
    quat_from_euler_xyz,
    quat_mul,
    quat_rotate,
    quat_to_euler_xyz,
)


def _euler_dof_index() -> torch.Tensor:
    """[12, 3] DoF index of each joint group's (x, y, z) Euler angles; NUM_DOFS (a zero slot) where a group has no
    such hinge. A 1-DoF group hinges about y, and a y-only Euler rotation is exactly that hinge."""
    index = torch.full((hum.NUM_JOINT_GROUPS, 3), hum.NUM_DOFS, dtype=torch.long)
    for g, (_, _, axes) in enumerate(hum.JOINT_GROUPS):
        start = hum.DOF_OFFSETS[g]
        for i, axis in enumerate(axes):
            index[g, "xyz".index(axis)] = start + i
    return index


_EULER_DOF_INDEX = _euler_dof_index()


@lru_cache(maxsize=None)
def _euler_dof_index_on(device: torch.device) -> torch.Tensor:
    return _EULER_DOF_INDEX.to(device)


def dof_to_joint_quats(dof_pos: torch.Tensor) -> torch.Tensor:
    """DoF angles [..., 28] to the 12 joint-group rotations [..., 12, 4] (child relative to parent)."""
    padded = torch.nn.functional.pad(dof_pos, (0, 1))  # the zero slot for hinges a group does not have
    euler = padded[..., _euler_dof_index_on(dof_pos.device)]  # [..., 12, 3]
    return quat_from_euler_xyz(euler)


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
        self.offsets = torch.tensor(offsets, dtype=dtype, device=device)  # a copy: offsets is a cached array

    def __call__(self, root_pos: torch.Tensor, root_quat: torch.Tensor, dof_pos: torch.Tensor):
        # Body by body (not batched per tree depth, which is ~2x faster at a few hundred rows): the retargeting
        # fits DoF angles through this, and its fits depend on the gradient's summation order.
        joint_quats = dof_to_joint_quats(dof_pos)
        pos, rot = [root_pos], [root_quat]
        for b in range(1, hum.NUM_BODIES):
            p = self.parents[b]
            offset = self.offsets[b].to(root_pos.dtype).expand_as(root_pos)
            pos.append(pos[p] + quat_rotate(rot[p], offset))
            g = self.group_of_body[b]
            rot.append(rot[p] if g < 0 else quat_mul(rot[p], joint_quats[..., g, :]))
        return torch.stack(pos, dim=-2), torch.stack(rot, dim=-2)
