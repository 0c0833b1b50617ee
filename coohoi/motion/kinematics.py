"""Forward kinematics of the humanoid in torch, from the same MJCF the engines simulate.

Joint rotations: a 3-DoF group is an x, y, z hinge chain (intrinsic xyz Euler angles); a 1-DoF group is a hinge
about y. These helpers are the one place that turns DoF angles into joint rotations and back.
"""

from __future__ import annotations

import math
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


def joint_quats_to_dof(joint_quats: torch.Tensor, continuous: bool = False,
                       limits: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of dof_to_joint_quats: 3-DoF groups by xyz Euler decomposition, 1-DoF groups by the twist about y.

    Per frame on its own, angles are wrapped to (-pi, pi] and a 3-DoF group takes the solution with the y angle in
    [-pi/2, pi/2]. `continuous=True` reads the first dimension as time and makes each joint's angles continuous
    instead (see continuous_euler_dofs); `limits` [28, 2] (default: our joint ranges) choose among the equivalent
    continuous solutions."""
    dofs = []
    for g, (_, _, axes) in enumerate(hum.JOINT_GROUPS):
        q = joint_quats[..., g, :]
        if len(axes) == 3:
            dofs.append(quat_to_euler_xyz(q))
        else:
            dofs.append((2.0 * torch.atan2(q[..., 2], q[..., 0])).unsqueeze(-1))
    dof = _wrap(torch.cat(dofs, dim=-1))
    if continuous:
        dof = continuous_euler_dofs(dof, dof_limits().to(dof) if limits is None else limits.to(dof))
    return dof


def _wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.atan2(torch.sin(x), torch.cos(x))  # to (-pi, pi]


def _flip(euler: torch.Tensor) -> torch.Tensor:
    """The other xyz Euler solution of the same rotation: (a, b, c) -> (a + pi, pi - b, c + pi)."""
    return torch.stack((euler[..., 0] + math.pi, math.pi - euler[..., 1], euler[..., 2] + math.pi), -1)


def _unwrap(x: torch.Tensor) -> torch.Tensor:
    """Angles [T, ...] made continuous along time: each step taken as its equivalent in (-pi, pi]."""
    return torch.cat((x[:1], x[:1] + _wrap(x.diff(dim=0)).cumsum(0)))


def continuous_euler_dofs(dof: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """DoF angles [T, 28] (any per-frame solution) made continuous in time and fitted to `limits` [28, 2].

    Per frame, each 3-DoF group takes whichever of its two Euler solutions, (a, b, c) or (a + pi, pi - b, c + pi),
    is nearer the previous frame's choice, and every angle is unwrapped (2 pi multiples) toward the previous
    frame. This is done cumulatively: a frame flips branch where the other solution is nearer the previous
    frame's, and the running parity of the flips gives the continuous branch. Continuity leaves two equivalent
    sequences per group (start on either solution) and 2 pi shifts per angle; the one with the least joint-limit
    violation over the clip is kept (ties: the one nearer the rest pose)."""
    dof = dof.to(torch.float64)
    limits = limits.to(dof)
    out = _unwrap(dof)  # 1-DoF groups need nothing more than unwrapping and a shift
    lo, hi = limits[:, 0], limits[:, 1]
    idx = _EULER_DOF_INDEX[[g for g, (_, _, axes) in enumerate(hum.JOINT_GROUPS) if len(axes) == 3]].to(dof.device)
    e = dof[:, idx]  # [T, G, 3]
    dist = lambda a, b: _wrap(a - b).norm(dim=-1)  # noqa: E731
    flips = dist(e[1:], _flip(e[:-1])) < dist(e[1:], e[:-1])  # [T - 1, G]
    parity = torch.cat((torch.zeros_like(flips[:1]), flips.long().cumsum(0).remainder(2).bool()))
    branch = _unwrap(torch.where(parity[..., None], _flip(e), e))
    candidates = torch.stack((branch, _flip(branch)))  # [2, T, G, 3], both continuous
    shifts = torch.tensor([0.0, -2 * math.pi, 2 * math.pi], dtype=dof.dtype, device=dof.device)
    shifted = candidates[None] + shifts[:, None, None, None, None]  # [3, 2, T, G, 3]
    over = (torch.relu(shifted - hi[idx]) + torch.relu(lo[idx] - shifted)).sum(2)  # [3, 2, G, 3]
    cost = over + _TIE_WEIGHT * shifted.abs().mean(2)
    best_cost, best_shift = cost.min(0)  # per branch and angle [2, G, 3]
    best_branch = best_cost.sum(-1).argmin(0)  # [G]
    g = torch.arange(len(idx), device=dof.device)
    euler = candidates[best_branch, :, g].transpose(0, 1)  # [T, G, 3]
    euler = euler + shifts[best_shift[best_branch, g]]
    out[:, idx.flatten()] = euler.flatten(1)
    single = [hum.DOF_OFFSETS[g] for g, (_, _, axes) in enumerate(hum.JOINT_GROUPS) if len(axes) == 1]
    x = out[:, single][None] + shifts[:, None, None]  # [3, T, S]
    over = (torch.relu(x - hi[single]) + torch.relu(lo[single] - x)).sum(1) + _TIE_WEIGHT * x.abs().mean(1)
    out[:, single] = x.gather(0, over.argmin(0)[None, None].expand(1, x.shape[1], -1))[0]
    return out


# Tie-break among equally valid solutions (rad): far below any joint-limit violation the cost should notice.
_TIE_WEIGHT = 1e-6


@lru_cache(maxsize=None)
def _dof_limits_array() -> np.ndarray:
    model = mujoco.MjModel.from_xml_path(str(hum.MJCF_PATH))
    return np.array([model.jnt_range[model.joint(n).id] for n in hum.DOF_NAMES], dtype=np.float64)


@lru_cache(maxsize=None)
def _sole_corners(device: str, dtype: torch.dtype) -> torch.Tensor:
    """The 4 bottom corners [4, 3] of the foot box in the foot frame, from our MJCF's foot geom."""
    from coohoi.motion.gait import FootGeometry

    corners = FootGeometry.from_model(mujoco.MjModel.from_xml_path(str(hum.MJCF_PATH))).sole_corners()
    return torch.as_tensor(corners, dtype=dtype, device=device)


def lowest_foot_z(body_pos: torch.Tensor, body_quat: torch.Tensor) -> torch.Tensor:
    """Height [...] of the lowest sole corner of either foot, from body poses [..., 15, 3|4] on any device: each
    foot's rotation-matrix z row (from its quaternion) times the corners, plus the foot's height."""
    feet = list(hum.FOOT_BODY_IDS)
    w, x, y, z = body_quat[..., feet, :].unbind(-1)  # [..., 2] each
    row = torch.stack((2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)), -1)  # [..., 2, 3]
    corners = _sole_corners(str(body_pos.device), body_pos.dtype)
    return (body_pos[..., feet, 2:] + row @ corners.T).flatten(-2).amin(-1)


def dof_limits() -> torch.Tensor:
    """Joint ranges [28, 2] in radians, in DoF order, from our MJCF."""
    return torch.from_numpy(_dof_limits_array().copy())


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
    """Body positions and rotations [..., 15, 3|4] from root pose and DoF angles, batched on any device.

    All bodies of one tree depth are computed in one batched step (out of place, so gradients flow: the
    retargeting fits DoF angles through FK). `offsets` [15, 3] may be replaced, e.g. to model other proportions."""

    def __init__(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        parents, offsets, group_of_body = _skeleton()
        self.parents = parents.tolist()
        self.group_of_body = group_of_body.tolist()
        self.offsets = torch.tensor(offsets, dtype=dtype, device=device)  # a copy: offsets is a cached array
        depth = [0] * hum.NUM_BODIES
        for b in range(1, hum.NUM_BODIES):  # parents precede their children in the body order
            depth[b] = depth[self.parents[b]] + 1
        as_index = lambda x: torch.tensor(x, dtype=torch.long, device=device)  # noqa: E731
        # Per depth >= 1: the bodies, their parents' slots in the previous depth's batch, and their joint groups
        # (NUM_JOINT_GROUPS for a body without a joint: an identity rotation is appended for it).
        self.levels = []
        previous = [0]
        for d in range(1, max(depth) + 1):
            bodies = [b for b in range(hum.NUM_BODIES) if depth[b] == d]
            groups = [self.group_of_body[b] if self.group_of_body[b] >= 0 else hum.NUM_JOINT_GROUPS for b in bodies]
            self.levels.append((as_index(bodies), as_index([previous.index(self.parents[b]) for b in bodies]),
                                as_index(groups)))
            previous = bodies
        by_depth = [b for d in range(max(depth) + 1) for b in range(hum.NUM_BODIES) if depth[b] == d]
        self.body_order = as_index([by_depth.index(b) for b in range(hum.NUM_BODIES)])  # slot of each body

    def __call__(self, root_pos: torch.Tensor, root_quat: torch.Tensor, dof_pos: torch.Tensor):
        joint_quats = dof_to_joint_quats(dof_pos)
        identity = torch.zeros_like(joint_quats[..., :1, :])
        identity[..., 0] = 1.0
        joint_quats = torch.cat((joint_quats, identity), dim=-2)
        offsets = self.offsets.to(root_pos.dtype)
        bodies = -2  # the body dimension (index_select: the cheapest gather for these small batches)
        pos, rot = root_pos.unsqueeze(bodies), root_quat.unsqueeze(bodies)
        all_pos, all_rot = [pos], [rot]
        for body, parent, group in self.levels:
            parent_rot = rot.index_select(bodies, parent)
            offset = offsets.index_select(0, body).expand(parent_rot.shape[:-1] + (3,))
            pos = pos.index_select(bodies, parent) + quat_rotate(parent_rot, offset)
            rot = quat_mul(parent_rot, joint_quats.index_select(bodies, group))
            all_pos.append(pos)
            all_rot.append(rot)
        return (torch.cat(all_pos, dim=bodies).index_select(bodies, self.body_order),
                torch.cat(all_rot, dim=bodies).index_select(bodies, self.body_order))
