"""Batched rotation math in torch. The project's one quaternion convention: (w, x, y, z), unit norm.

Every function takes tensors with any leading batch shape and the rotation in the last dimension.
"""

from __future__ import annotations

import torch

_EPS = 1e-9


def normalize(v: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(eps)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a * b (apply b first, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def quat_conjugate(q: torch.Tensor) -> torch.Tensor:
    return torch.cat((q[..., :1], -q[..., 1:]), dim=-1)


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v by unit quaternions q."""
    w, xyz = q[..., :1], q[..., 1:]
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return v + w * t + torch.cross(xyz, t, dim=-1)


def quat_rotate_yaw(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v by yaw-only unit quaternions q = (w, 0, 0, z) (e.g. heading frames), broadcasting: a 2D
    rotation of (x, y), cheaper than quat_rotate; the same result for such q."""
    w, z = q[..., 0:1], q[..., 3:4]
    cos, sin = w * w - z * z, 2.0 * w * z
    x, y = v[..., 0:1], v[..., 1:2]
    return torch.cat((cos * x - sin * y, sin * x + cos * y, v[..., 2:3]), dim=-1)


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return quat_rotate(quat_conjugate(q), v)


def quat_from_axis_angle(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    half = 0.5 * angle.unsqueeze(-1)
    return torch.cat((torch.cos(half), normalize(axis) * torch.sin(half)), dim=-1)


def quat_from_exp_map(exp_map: torch.Tensor) -> torch.Tensor:
    """Axis-angle vector (axis * angle) to quaternion."""
    angle = exp_map.norm(dim=-1)
    half = 0.5 * angle
    # sin(half)/angle -> 0.5 as angle -> 0
    scale = torch.where(angle > 1e-6, torch.sin(half) / angle.clamp_min(1e-12), 0.5 - angle * angle / 48.0)
    return torch.cat((torch.cos(half).unsqueeze(-1), exp_map * scale.unsqueeze(-1)), dim=-1)


def quat_to_exp_map(q: torch.Tensor) -> torch.Tensor:
    """Quaternion to axis-angle vector with angle in [0, pi]."""
    q = torch.where(q[..., :1] < 0, -q, q)
    sin_half = q[..., 1:].norm(dim=-1)
    angle = 2.0 * torch.atan2(sin_half, q[..., 0])
    scale = torch.where(sin_half > 1e-6, angle / sin_half.clamp_min(1e-12), 2.0 + 0.0 * angle)
    return q[..., 1:] * scale.unsqueeze(-1)


def quat_from_euler_xyz(angles: torch.Tensor) -> torch.Tensor:
    """Intrinsic x-then-y-then-z rotation, i.e. three hinges x, y, z in a chain: q = qx * qy * qz.

    The product is written out (one pass over the batch instead of three axis-angle quaternions and two products)."""
    half = 0.5 * angles
    cx, cy, cz = torch.cos(half).unbind(-1)
    sx, sy, sz = torch.sin(half).unbind(-1)
    cy_cz, sy_sz, sy_cz, cy_sz = cy * cz, sy * sz, sy * cz, cy * sz
    return torch.stack(
        (
            cx * cy_cz - sx * sy_sz,
            sx * cy_cz + cx * sy_sz,
            cx * sy_cz - sx * cy_sz,
            cx * cy_sz + sx * sy_cz,
        ),
        dim=-1,
    )


def quat_to_euler_xyz(q: torch.Tensor) -> torch.Tensor:
    """Inverse of quat_from_euler_xyz: R = Rx(a) Ry(b) Rz(c). Returns (a, b, c), b in [-pi/2, pi/2]."""
    m = quat_to_matrix(q)
    b = torch.asin(m[..., 0, 2].clamp(-1.0, 1.0))
    a = torch.atan2(-m[..., 1, 2], m[..., 2, 2])
    c = torch.atan2(-m[..., 0, 1], m[..., 0, 0])
    return torch.stack((a, b, c), dim=-1)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        (
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ),
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))


def quat_to_tan_norm(q: torch.Tensor) -> torch.Tensor:
    """6D rotation feature: the rotated x axis (tangent) and z axis (normal), concatenated.

    These are the first and last columns of the rotation matrix, written out from the quaternion."""
    w, x, y, z = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    return torch.stack(
        (
            1 - 2 * (yy + zz), 2 * (xy + wz), 2 * (xz - wy),
            2 * (xz + wy), 2 * (yz - wx), 1 - 2 * (xx + yy),
        ),
        dim=-1,
    )


def heading_angle(q: torch.Tensor) -> torch.Tensor:
    """Yaw of the rotated x axis about world z (its x and y components written out from the quaternion)."""
    w, x, y, z = q.unbind(-1)
    return torch.atan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z))


def yaw_quat(angle: torch.Tensor) -> torch.Tensor:
    """Rotation by angle about world z."""
    half = 0.5 * angle
    zeros = torch.zeros_like(half)
    return torch.stack((torch.cos(half), zeros, zeros, torch.sin(half)), dim=-1)


def heading_quat(q: torch.Tensor) -> torch.Tensor:
    """The yaw-only part of q: the heading frame."""
    return yaw_quat(heading_angle(q))


def heading_quat_inverse(q: torch.Tensor) -> torch.Tensor:
    return yaw_quat(-heading_angle(q))


def quat_slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the short arc; t broadcasts against the batch shape."""
    t = t.unsqueeze(-1) if t.dim() == q0.dim() - 1 else t
    cos = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(cos < 0, -q1, q1)
    cos = cos.abs().clamp(max=1.0)
    angle = torch.acos(cos)
    sin = torch.sin(angle)
    near = sin < 1e-6
    w0 = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * angle) / sin.clamp_min(1e-12))
    w1 = torch.where(near, t, torch.sin(t * angle) / sin.clamp_min(1e-12))
    return normalize(w0 * q0 + w1 * q1)


def quat_angular_velocity(q0: torch.Tensor, q1: torch.Tensor, dt: float) -> torch.Tensor:
    """World-frame angular velocity that takes q0 to q1 in dt."""
    return quat_to_exp_map(quat_mul(q1, quat_conjugate(q0))) / dt
