"""Observations as pure batched tensor functions, all in the humanoid's heading frame (yaw-only rotation of the
root). Rows are controlled humanoids; every argument has a leading row dimension.

Proprioception (reference §3), PROPRIO_SIZE = 223 numbers:
    root height 1 | 14 non-root body positions relative to the root 42 | 15 body rotations as 6D 90 |
    15 body linear velocities 45 | 15 body angular velocities 45

Carry task observation, TASK_OBS_SIZE = 76 numbers, computed from a per-agent *handle* of the object so that
the cooperative phase reuses the layout unchanged (several agents, one object: each sees the object from its own
handle, i.e. its own held point and standing point, and "the object" as the small box at its end). For a single
agent the handle is the whole box. Layout (slices in TASK_OBS_LAYOUT):
    density 1 | target handle-box corners 24 | target held point 3 | target handle rotation 6D 6 |
    standing point 3 (z = 0) | handle-box corners 24 | held point 3 | handle rotation 6D 6 |
    object linear velocity 3 | object angular velocity 3
Positions are relative to the root, rotations and velocities are in the heading frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from coohoi import humanoid as hum
from coohoi.rotations import heading_quat_inverse, quat_mul, quat_rotate, quat_rotate_yaw, quat_to_tan_norm, yaw_quat

PROPRIO_SIZE = 1 + 3 * (hum.NUM_BODIES - 1) + 6 * hum.NUM_BODIES + 3 * hum.NUM_BODIES + 3 * hum.NUM_BODIES
assert PROPRIO_SIZE == 223


def _layout(parts: tuple[tuple[str, int], ...]) -> dict[str, slice]:
    out, start = {}, 0
    for name, size in parts:
        out[name] = slice(start, start + size)
        start += size
    return out


PROPRIO_LAYOUT = _layout((("root_height", 1), ("body_pos", 3 * (hum.NUM_BODIES - 1)), ("body_rot", 6 * hum.NUM_BODIES),
                          ("body_lin_vel", 3 * hum.NUM_BODIES), ("body_ang_vel", 3 * hum.NUM_BODIES)))
TASK_OBS_LAYOUT = _layout((
    ("density", 1), ("target_corners", 24), ("target_pos", 3), ("target_rot", 6), ("stand_point", 3),
    ("object_corners", 24), ("object_pos", 3), ("object_rot", 6), ("object_lin_vel", 3), ("object_ang_vel", 3),
))
TASK_OBS_SIZE = TASK_OBS_LAYOUT["object_ang_vel"].stop
assert TASK_OBS_SIZE == 76
# The task-observation parts that take observation noise (positions of the object and target).
TASK_OBS_NOISY_PARTS = ("target_corners", "target_pos", "stand_point", "object_corners", "object_pos")

# The 8 corners of a unit box, as signs of the half extents.
BOX_CORNER_SIGNS = torch.tensor([[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)])


@dataclass
class Handle:
    """Where one agent takes hold of an object, in the object's frame (rows = agents).

    center: the handle box's centre (also the held point: the mean of the hands goes there) [R, 3]
    quat: the handle box's rotation relative to the object (the far-end agent's is turned by pi about z) [R, 4]
    half_extents: the handle box's half size [R, 3]
    The standing point lies `stand_offset` outside the handle box's -x face, on the ground."""

    center: torch.Tensor
    quat: torch.Tensor
    half_extents: torch.Tensor


@dataclass
class HandlePose:
    """A handle placed in the world by an object pose: held point, rotation, corners [R, 8, 3], standing point."""

    held_point: torch.Tensor
    quat: torch.Tensor
    corners: torch.Tensor
    stand_point: torch.Tensor


def whole_box_handle(half_extents: torch.Tensor) -> Handle:
    """The single-agent handle: the whole box, held at its centre."""
    rows = half_extents.shape[0]
    identity = torch.zeros(rows, 4, dtype=half_extents.dtype, device=half_extents.device)
    identity[:, 0] = 1.0
    return Handle(torch.zeros_like(half_extents), identity, half_extents)


def team_handles(half_extents: torch.Tensor, agent_index: torch.Tensor, team_size: torch.Tensor,
                 round_outline: bool, grip_z: torch.Tensor, grip_half_height: torch.Tensor,
                 handle_half_size: float) -> Handle:
    """Handles for teams of any size (rows = agents): agent k of a team of m holds the object at arc length k/m of
    its outline, starting at the middle of the -x end, so two agents hold the two short ends (CooHOI, reference
    §3) and larger teams spread evenly around a table's rim (TeamHOI). A team of one holds the whole object.

    half_extents [R, 3] of the object's bounding box; agent_index, team_size [R] long; round_outline: the outline is
    a circle of radius half_extents x (else the bounding rectangle); grip_z [R]: height of the gripped part's centre
    in the object frame (0 for boxes, the top's centre for tables); grip_half_height [R]: its half thickness.
    Each handle is a square sub-box of half size min(handle_half_size, half width) inside the outline at the agent's
    rim point (moved along the side where that point is nearer a corner than the box's half size, so that the box
    stays inside), turned so that its +x axis points inward (its -x face, where the agent stands, faces out)."""
    dtype = half_extents.dtype
    hx, hy = half_extents[:, 0], half_extents[:, 1]
    s = agent_index.to(dtype) / team_size.clamp_min(1).to(dtype)  # fraction of the outline
    # Rectangle: the rim from (-hx, 0) along -x side to (-hx, -hy), then the -y, +x, +y sides and back.
    lengths = torch.stack((hy, 2 * hx, 2 * hy, 2 * hx, hy), dim=-1)  # [R, 5]
    ends = lengths.cumsum(dim=-1)
    arc = s * ends[:, -1]
    seg = (arc.unsqueeze(-1) >= ends).sum(dim=-1).clamp_max(4)
    along = arc - (ends.gather(1, seg[:, None])[:, 0] - lengths.gather(1, seg[:, None])[:, 0])
    zero = torch.zeros_like(hx)
    starts_x = torch.stack((-hx, -hx, hx, hx, -hx), dim=-1).gather(1, seg[:, None])[:, 0]
    starts_y = torch.stack((zero, -hy, -hy, hy, hy), dim=-1).gather(1, seg[:, None])[:, 0]
    # Side k's inward normal has yaw k pi / 2 (+x, +y, -x, -y, +x); the rim runs along (sin, -cos) of it.
    rect_yaw = seg.to(dtype) * (0.5 * math.pi)
    rect_xy = torch.stack((starts_x + along * torch.sin(rect_yaw), starts_y - along * torch.cos(rect_yaw)), dim=-1)
    if round_outline:  # from angle pi (the -x side) around
        theta = math.pi + 2.0 * math.pi * s
        rim = hx.unsqueeze(-1) * torch.stack((torch.cos(theta), torch.sin(theta)), dim=-1)
        yaw = theta - math.pi
    else:
        rim, yaw = rect_xy, rect_yaw
    depth = torch.minimum(hy, hx).clamp_max(handle_half_size)
    inward = torch.stack((torch.cos(yaw), torch.sin(yaw)), dim=-1)
    center_xy = rim + depth.unsqueeze(-1) * inward
    if not round_outline:  # the whole handle box inside the rectangle
        limit = torch.stack((hx, hy), dim=-1) - depth.unsqueeze(-1)
        center_xy = torch.maximum(torch.minimum(center_xy, limit), -limit)
    center = torch.cat((center_xy, grip_z.unsqueeze(-1)), dim=-1)
    half = torch.stack((depth, depth, grip_half_height), dim=-1)
    quat = yaw_quat(yaw)
    whole = (team_size <= 1)[:, None]  # one agent: the whole object, held at its centre
    alone = whole_box_handle(half_extents)
    return Handle(torch.where(whole, alone.center, center), torch.where(whole, alone.quat, quat),
                  torch.where(whole, alone.half_extents, half))


def box_corners(center: torch.Tensor, quat: torch.Tensor, half_extents: torch.Tensor) -> torch.Tensor:
    """World corners [R, 8, 3] of boxes with the given centres, rotations and half extents."""
    signs = BOX_CORNER_SIGNS.to(dtype=center.dtype, device=center.device)
    local = signs * half_extents.unsqueeze(1)
    return center.unsqueeze(1) + quat_rotate(quat.unsqueeze(1).expand(-1, 8, -1), local)


def place_handle(object_pos: torch.Tensor, object_quat: torch.Tensor, handle: Handle,
                 stand_offset: float) -> HandlePose:
    """The handle in the world when its object is at (object_pos, object_quat)."""
    held = object_pos + quat_rotate(object_quat, handle.center)
    quat = quat_mul(object_quat, handle.quat)
    corners = box_corners(held, quat, handle.half_extents)
    behind = torch.zeros_like(held)
    behind[:, 0] = -(handle.half_extents[:, 0] + stand_offset)
    stand = held + quat_rotate(quat, behind)
    stand = torch.cat((stand[:, :2], torch.zeros_like(stand[:, 2:])), dim=-1)
    return HandlePose(held, quat, corners, stand)


def _to_heading(heading_inv: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors [R, ..., 3] by per-row yaw-only quaternions [R, 4]."""
    return quat_rotate_yaw(heading_inv.view(heading_inv.shape[:1] + (1,) * (v.dim() - 2) + (4,)), v)


def proprioception(root_pos, root_quat, body_pos, body_quat, body_lin_vel, body_ang_vel) -> torch.Tensor:
    """The 223-number proprioception [R, 223] from root [R, 3|4] and body [R, 15, 3|4] states (world frame)."""
    heading_inv = heading_quat_inverse(root_quat)
    # The body positions (relative to the root) and velocities, turned into the heading frame in one batch.
    vectors = _to_heading(heading_inv, torch.cat((body_pos[:, 1:] - root_pos.unsqueeze(1), body_lin_vel,
                                                  body_ang_vel), dim=1))
    rel_pos, lin_vel, ang_vel = vectors.split((body_pos.shape[1] - 1, body_lin_vel.shape[1], body_ang_vel.shape[1]),
                                              dim=1)
    local_rot = quat_mul(heading_inv.unsqueeze(1).expand_as(body_quat), body_quat)
    return torch.cat((
        root_pos[:, 2:3],
        rel_pos.flatten(1),
        quat_to_tan_norm(local_rot).flatten(1),
        lin_vel.flatten(1),
        ang_vel.flatten(1),
    ), dim=-1)


def carry_task_obs(root_pos, root_quat, current: HandlePose, target: HandlePose, object_lin_vel, object_ang_vel,
                   density_obs: torch.Tensor) -> torch.Tensor:
    """The 76-number carry observation [R, 76] of each agent's handle (layout in TASK_OBS_LAYOUT).

    density_obs [R] is the already scaled density; the standing point is seen at z = 0 (on the ground)."""
    heading_inv = heading_quat_inverse(root_quat)
    one = lambda v: v.unsqueeze(1)  # noqa: E731
    # Every point relative to the root, and the object's velocities, turned into the heading frame in one batch.
    points = torch.cat((target.corners, one(target.held_point), one(current.stand_point), current.corners,
                        one(current.held_point)), dim=1) - one(root_pos)
    vectors = _to_heading(heading_inv, torch.cat((points, one(object_lin_vel), one(object_ang_vel)), dim=1))
    target_corners, target_held, stand, current_corners, current_held, velocities = vectors.split(
        (8, 1, 1, 8, 1, 2), dim=1)
    rot6 = quat_to_tan_norm(quat_mul(one(heading_inv), torch.stack((target.quat, current.quat), dim=1)))
    stand = torch.cat((stand[:, 0, :2], torch.zeros_like(stand[:, 0, 2:])), dim=-1)
    return torch.cat((
        density_obs.unsqueeze(-1),
        target_corners.flatten(1),
        target_held.flatten(1),
        rot6[:, 0],
        stand,
        current_corners.flatten(1),
        current_held.flatten(1),
        rot6[:, 1],
        velocities.flatten(1),
    ), dim=-1)
