"""The batched kinematics and rotation helpers agree with straightforward per-group / per-body references."""

from __future__ import annotations

import math

import pytest
import torch

from coohoi import humanoid as hum
from coohoi.motion.kinematics import ForwardKinematics, dof_to_joint_quats, joint_quats_to_dof
from coohoi.rotations import (
    heading_angle,
    normalize,
    quat_from_axis_angle,
    quat_from_euler_xyz,
    quat_mul,
    quat_rotate,
    quat_rotate_yaw,
    quat_to_tan_norm,
    yaw_quat,
)

D = torch.float64
AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def _axis(name: str, batch_shape) -> torch.Tensor:
    return torch.tensor(AXES[name], dtype=D).expand(tuple(batch_shape) + (3,))


def reference_joint_quats(dof_pos: torch.Tensor) -> torch.Tensor:
    """One group at a time: each hinge of a group as an axis-angle quaternion, chained in the group's axis order."""
    quats = []
    for g, (_, _, axes) in enumerate(hum.JOINT_GROUPS):
        q = None
        for i, axis in enumerate(axes):
            hinge = quat_from_axis_angle(_axis(axis, dof_pos.shape[:-1]), dof_pos[..., hum.DOF_OFFSETS[g] + i])
            q = hinge if q is None else quat_mul(q, hinge)
        quats.append(q)
    return torch.stack(quats, dim=-2)


def reference_fk(fk: ForwardKinematics, root_pos, root_quat, dof_pos):
    """Body by body, each from its parent."""
    joint = reference_joint_quats(dof_pos)
    pos, rot = [root_pos], [root_quat]
    for b in range(1, hum.NUM_BODIES):
        p, g = fk.parents[b], fk.group_of_body[b]
        pos.append(pos[p] + quat_rotate(rot[p], fk.offsets[b].expand_as(root_pos)))
        rot.append(rot[p] if g < 0 else quat_mul(rot[p], joint[..., g, :]))
    return torch.stack(pos, dim=-2), torch.stack(rot, dim=-2)


def _random_dofs(shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (2.0 * torch.rand(tuple(shape) + (hum.NUM_DOFS,), generator=g, dtype=D) - 1.0) * math.pi


@pytest.mark.parametrize("shape", [(), (7,), (3, 5)])
def test_dof_to_joint_quats_matches_per_group_reference(shape):
    dof = _random_dofs(shape)
    quats = dof_to_joint_quats(dof)
    assert quats.shape == tuple(shape) + (hum.NUM_JOINT_GROUPS, 4)
    torch.testing.assert_close(quats, reference_joint_quats(dof), atol=1e-12, rtol=0)
    # Also against quat_from_euler_xyz on the 3-DoF slices and the y hinge on the 1-DoF ones.
    for g, (_, _, axes) in enumerate(hum.JOINT_GROUPS):
        start = hum.DOF_OFFSETS[g]
        expected = (quat_from_euler_xyz(dof[..., start:start + 3]) if len(axes) == 3
                    else quat_from_axis_angle(_axis("y", shape), dof[..., start]))
        torch.testing.assert_close(quats[..., g, :], expected, atol=1e-12, rtol=0)
    # Round trip (angles inside (-pi/2, pi/2) for the middle Euler angle keep the decomposition unique).
    torch.testing.assert_close(joint_quats_to_dof(dof_to_joint_quats(0.45 * dof)), 0.45 * dof, atol=1e-9, rtol=0)


def test_dof_to_joint_quats_each_dof_moves_only_its_group():
    base = dof_to_joint_quats(torch.zeros(hum.NUM_DOFS, dtype=D))
    for d in range(hum.NUM_DOFS):
        dof = torch.zeros(hum.NUM_DOFS, dtype=D)
        dof[d] = 0.3
        changed = (dof_to_joint_quats(dof) - base).abs().amax(dim=-1) > 1e-6
        group = max(g for g in range(hum.NUM_JOINT_GROUPS) if hum.DOF_OFFSETS[g] <= d)
        assert changed.nonzero().flatten().tolist() == [group], hum.DOF_NAMES[d]


def test_forward_kinematics_matches_body_by_body_reference_and_has_gradients():
    fk = ForwardKinematics(dtype=D)
    g = torch.Generator().manual_seed(1)
    root_pos = torch.randn(6, 3, generator=g, dtype=D)
    root_quat = normalize(torch.randn(6, 4, generator=g, dtype=D))
    dof = _random_dofs((6,), seed=2).requires_grad_(True)
    pos, rot = fk(root_pos, root_quat, dof)
    ref_pos, ref_rot = reference_fk(fk, root_pos, root_quat, dof.detach())
    assert pos.shape == (6, hum.NUM_BODIES, 3) and rot.shape == (6, hum.NUM_BODIES, 4)
    torch.testing.assert_close(pos, ref_pos, atol=1e-12, rtol=0)
    torch.testing.assert_close(rot, ref_rot, atol=1e-12, rtol=0)
    # Any leading shape.
    more_pos, _ = fk(root_pos.expand(2, 6, 3), root_quat.expand(2, 6, 4), dof.detach().expand(2, 6, hum.NUM_DOFS))
    torch.testing.assert_close(more_pos[1], ref_pos, atol=1e-12, rtol=0)
    # The retargeting fits DoF angles through FK: a hand moves with its shoulder, not with a knee.
    hand = hum.BODY_NAMES.index("right_hand")
    pos[:, hand].sum().backward()
    grad = dof.grad.abs().sum(dim=0)
    assert grad[hum.DOF_NAMES.index("right_shoulder_x")] > 1e-3
    assert grad[hum.DOF_NAMES.index("right_knee")] == 0


def test_forward_kinematics_uses_replaced_offsets():
    """Other proportions (as the retargeting tests model them): a longer shin moves the foot, not the knee."""
    fk = ForwardKinematics(dtype=D)
    root_pos, root_quat = torch.zeros(1, 3, dtype=D), torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=D)
    dof = torch.zeros(1, hum.NUM_DOFS, dtype=D)
    before, _ = fk(root_pos, root_quat, dof)
    shin, foot = hum.BODY_NAMES.index("right_shin"), hum.BODY_NAMES.index("right_foot")
    fk.offsets = fk.offsets.clone()
    fk.offsets[foot] *= 1.5
    after, _ = fk(root_pos, root_quat, dof)
    torch.testing.assert_close(after[0, foot] - after[0, shin], 1.5 * (before[0, foot] - before[0, shin]))
    moved = (after - before).abs().amax(dim=-1)[0] > 1e-9
    assert moved.nonzero().flatten().tolist() == [foot]


def test_closed_form_rotation_helpers_match_their_definitions():
    g = torch.Generator().manual_seed(3)
    q = normalize(torch.randn(50, 4, generator=g, dtype=D))
    x_axis, z_axis = _axis("x", (50,)), _axis("z", (50,))
    torch.testing.assert_close(quat_to_tan_norm(q), torch.cat((quat_rotate(q, x_axis), quat_rotate(q, z_axis)), -1),
                               atol=1e-12, rtol=0)
    rotated = quat_rotate(q, x_axis)
    torch.testing.assert_close(heading_angle(q), torch.atan2(rotated[:, 1], rotated[:, 0]), atol=1e-12, rtol=0)
    angles = torch.randn(50, 3, generator=g, dtype=D) * 2.0
    chained = quat_mul(quat_mul(quat_from_axis_angle(x_axis, angles[:, 0]), quat_from_axis_angle(_axis("y", (50,)),
                       angles[:, 1])), quat_from_axis_angle(z_axis, angles[:, 2]))
    torch.testing.assert_close(quat_from_euler_xyz(angles), chained, atol=1e-12, rtol=0)
    yaw = yaw_quat(torch.randn(50, generator=g, dtype=D) * 3.0)
    v = torch.randn(50, 8, 3, generator=g, dtype=D)
    torch.testing.assert_close(quat_rotate_yaw(yaw[:, None], v), quat_rotate(yaw[:, None].expand(-1, 8, -1), v),
                               atol=1e-12, rtol=0)
