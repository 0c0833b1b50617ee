"""Observation functions: sizes, layout, known values and invariance to the heading frame."""

from __future__ import annotations

import math

import pytest
import torch

from coohoi import humanoid as hum
from coohoi.envs.observations import (
    PROPRIO_LAYOUT,
    PROPRIO_SIZE,
    TASK_OBS_LAYOUT,
    TASK_OBS_SIZE,
    Handle,
    box_corners,
    carry_task_obs,
    place_handle,
    proprioception,
    team_handles,
    whole_box_handle,
)
from coohoi.motion.kinematics import ForwardKinematics
from coohoi.rotations import normalize, quat_mul, quat_rotate, yaw_quat

D = torch.float64


def random_state(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    fk = ForwardKinematics(dtype=D)
    root_pos = torch.randn(n, 3, generator=g, dtype=D) + torch.tensor([0.0, 0.0, 1.0], dtype=D)
    root_quat = normalize(torch.randn(n, 4, generator=g, dtype=D))
    dof = 0.5 * torch.randn(n, hum.NUM_DOFS, generator=g, dtype=D)
    body_pos, body_quat = fk(root_pos, root_quat, dof)
    lin = torch.randn(n, hum.NUM_BODIES, 3, generator=g, dtype=D)
    ang = torch.randn(n, hum.NUM_BODIES, 3, generator=g, dtype=D)
    return root_pos, root_quat, body_pos, body_quat, lin, ang


def turn_about_z(angle: float, shift, root_pos, root_quat, body_pos, body_quat, lin, ang):
    """The same state seen after turning the world by `angle` about z and moving it by `shift` (xy)."""
    n = root_pos.shape[0]
    q = yaw_quat(torch.full((n,), angle, dtype=D))
    qb = q.unsqueeze(1).expand(-1, hum.NUM_BODIES, -1)
    s = torch.tensor([shift[0], shift[1], 0.0], dtype=D)
    return (quat_rotate(q, root_pos) + s, quat_mul(q, root_quat), quat_rotate(qb, body_pos) + s,
            quat_mul(qb, body_quat), quat_rotate(qb, lin), quat_rotate(qb, ang))


def test_layout_sizes():
    assert PROPRIO_SIZE == 223 and TASK_OBS_SIZE == 76
    sizes = {k: s.stop - s.start for k, s in TASK_OBS_LAYOUT.items()}
    assert sizes == {"density": 1, "target_corners": 24, "target_pos": 3, "target_rot": 6, "stand_point": 3,
                     "object_corners": 24, "object_pos": 3, "object_rot": 6, "object_lin_vel": 3,
                     "object_ang_vel": 3}
    assert [s.stop - s.start for s in PROPRIO_LAYOUT.values()] == [1, 42, 90, 45, 45]


def test_proprioception_is_invariant_to_heading_and_position():
    state = random_state(5)
    obs = proprioception(*state)
    assert obs.shape == (5, 223)
    for angle, shift in ((0.7, (3.0, -2.0)), (-2.5, (0.0, 10.0)), (math.pi, (-1.0, 0.5))):
        turned = proprioception(*turn_about_z(angle, shift, *state))
        assert torch.allclose(obs, turned, atol=1e-10)
    # a non-yaw rotation of the world (tilting) must change it: the heading frame is yaw only
    tilt = torch.tensor([math.cos(0.2), math.sin(0.2), 0.0, 0.0], dtype=D).expand(5, 4)
    tilted_root = quat_mul(tilt, state[1])
    assert not torch.allclose(obs, proprioception(state[0], tilted_root, *state[2:]), atol=1e-3)


def test_proprioception_known_values():
    n = 1
    root_pos = torch.tensor([[1.0, 2.0, 0.9]], dtype=D)
    root_quat = yaw_quat(torch.tensor([math.pi / 2], dtype=D))  # facing +y
    body_pos = root_pos.unsqueeze(1).repeat(1, hum.NUM_BODIES, 1)
    body_pos[0, 2] += torch.tensor([0.0, 0.5, 0.3], dtype=D)  # head 0.5 m along +y (straight ahead), 0.3 up
    body_quat = root_quat.unsqueeze(1).repeat(1, hum.NUM_BODIES, 1)
    lin = torch.zeros(n, hum.NUM_BODIES, 3, dtype=D)
    lin[0, 0] = torch.tensor([0.0, 1.0, 0.0], dtype=D)  # root moving forward
    ang = torch.zeros_like(lin)
    ang[0, 0, 2] = 0.5
    obs = proprioception(root_pos, root_quat, body_pos, body_quat, lin, ang)[0]
    assert obs[0].item() == pytest.approx(0.9)
    pos = obs[PROPRIO_LAYOUT["body_pos"]].view(14, 3)
    assert torch.allclose(pos[1], torch.tensor([0.5, 0.0, 0.3], dtype=D), atol=1e-12)  # head: body index 2
    rot = obs[PROPRIO_LAYOUT["body_rot"]].view(15, 6)
    assert torch.allclose(rot, torch.tensor([1.0, 0, 0, 0, 0, 1.0], dtype=D).expand(15, 6), atol=1e-12)
    assert torch.allclose(obs[PROPRIO_LAYOUT["body_lin_vel"]][:3], torch.tensor([1.0, 0.0, 0.0], dtype=D), atol=1e-12)
    assert obs[PROPRIO_LAYOUT["body_ang_vel"]][2].item() == pytest.approx(0.5)


def test_box_corners():
    c = box_corners(torch.tensor([[1.0, 0.0, 0.5]], dtype=D), yaw_quat(torch.tensor([math.pi / 2], dtype=D)),
                    torch.tensor([[1.0, 0.2, 0.5]], dtype=D))[0]
    assert c.shape == (8, 3)
    # turned 90 degrees: the long (x) side now runs along y
    assert torch.allclose(c.min(0).values, torch.tensor([0.8, -1.0, 0.0], dtype=D), atol=1e-12)
    assert torch.allclose(c.max(0).values, torch.tensor([1.2, 1.0, 1.0], dtype=D), atol=1e-12)


def _task_obs(root_pos, root_quat, obj_pos, obj_quat, tgt_pos, tgt_quat, half, lin, ang, handle=None):
    handle = handle or whole_box_handle(half)
    cur = place_handle(obj_pos, obj_quat, handle, 0.2)
    tgt = place_handle(tgt_pos, tgt_quat, handle, 0.2)
    return carry_task_obs(root_pos, root_quat, cur, tgt, lin, ang, torch.ones(root_pos.shape[0], dtype=D))


def test_carry_task_obs_known_values_and_invariance():
    root_pos = torch.tensor([[0.0, 0.0, 0.9]], dtype=D)
    root_quat = yaw_quat(torch.tensor([0.0], dtype=D))
    half = torch.tensor([[0.25, 0.25, 0.25]], dtype=D)
    obj_pos, obj_quat = torch.tensor([[2.0, 0.0, 0.25]], dtype=D), yaw_quat(torch.tensor([0.0], dtype=D))
    tgt_pos, tgt_quat = torch.tensor([[2.0, 3.0, 0.25]], dtype=D), yaw_quat(torch.tensor([math.pi / 2], dtype=D))
    lin, ang = torch.tensor([[0.5, 0.0, 0.0]], dtype=D), torch.tensor([[0.0, 0.0, 1.0]], dtype=D)
    obs = _task_obs(root_pos, root_quat, obj_pos, obj_quat, tgt_pos, tgt_quat, half, lin, ang)[0]
    L = TASK_OBS_LAYOUT
    assert obs.shape == (76,)
    assert obs[L["density"]].item() == 1.0
    assert torch.allclose(obs[L["object_pos"]], torch.tensor([2.0, 0.0, -0.65], dtype=D))
    assert torch.allclose(obs[L["target_pos"]], torch.tensor([2.0, 3.0, -0.65], dtype=D))
    assert torch.allclose(obs[L["stand_point"]], torch.tensor([1.55, 0.0, 0.0], dtype=D))
    assert torch.allclose(obs[L["object_rot"]], torch.tensor([1.0, 0, 0, 0, 0, 1], dtype=D), atol=1e-12)
    assert torch.allclose(obs[L["target_rot"]], torch.tensor([0.0, 1, 0, 0, 0, 1], dtype=D), atol=1e-12)
    assert torch.allclose(obs[L["object_lin_vel"]], lin[0]) and torch.allclose(obs[L["object_ang_vel"]], ang[0])
    corners = obs[L["object_corners"]].view(8, 3)
    assert torch.allclose(corners.mean(0), obs[L["object_pos"]], atol=1e-12)
    assert torch.allclose(corners.max(0).values - corners.min(0).values, 2 * half[0], atol=1e-12)

    # the humanoid turned to face +y, standing at (2, -2): the object is now 2 m straight ahead
    obs2 = _task_obs(torch.tensor([[2.0, -2.0, 0.9]], dtype=D), yaw_quat(torch.tensor([math.pi / 2], dtype=D)),
                     obj_pos, obj_quat, tgt_pos, tgt_quat, half, lin, ang)[0]
    assert torch.allclose(obs2[L["object_pos"]], torch.tensor([2.0, 0.0, -0.65], dtype=D), atol=1e-12)
    assert torch.allclose(obs2[L["object_lin_vel"]], torch.tensor([0.0, -0.5, 0.0], dtype=D), atol=1e-12)

    # turning and moving the whole world leaves the observation unchanged
    q = yaw_quat(torch.tensor([1.1], dtype=D))
    s = torch.tensor([[4.0, -1.0, 0.0]], dtype=D)
    moved = _task_obs(quat_rotate(q, root_pos) + s, quat_mul(q, root_quat), quat_rotate(q, obj_pos) + s,
                      quat_mul(q, obj_quat), quat_rotate(q, tgt_pos) + s, quat_mul(q, tgt_quat), half,
                      quat_rotate(q, lin), quat_rotate(q, ang))[0]
    assert torch.allclose(moved, obs, atol=1e-10)


def test_handles_of_a_long_box_see_their_own_end_the_same_way():
    """Two agents at the two ends of a long box, each facing its end, see the same task observation: the layout
    is reusable by the cooperative phase without resizing."""
    half = torch.tensor([[1.0, 0.25, 0.25]], dtype=D).repeat(2, 1)
    end = torch.tensor([[1.0 - 0.25, 0.0, 0.0], [-(1.0 - 0.25), 0.0, 0.0]], dtype=D)
    flip = yaw_quat(torch.tensor([math.pi, 0.0], dtype=D))  # the +x end's handle faces back along -x
    handle = Handle(end, flip, torch.tensor([[0.25, 0.25, 0.25]], dtype=D).repeat(2, 1))
    obj_pos = torch.tensor([[0.0, 0.0, 0.25]], dtype=D).repeat(2, 1)
    obj_quat = yaw_quat(torch.zeros(2, dtype=D))
    tgt_pos = torch.tensor([[0.0, 5.0, 0.25]], dtype=D).repeat(2, 1)
    tgt_quat = obj_quat.clone()
    cur = place_handle(obj_pos, obj_quat, handle, 0.2)
    # standing points outside each end of the long box
    assert torch.allclose(cur.stand_point, torch.tensor([[1.2, 0.0, 0.0], [-1.2, 0.0, 0.0]], dtype=D), atol=1e-12)
    # agent 0 stands at its standing point facing -x; agent 1 at its own facing +x
    root_pos = torch.tensor([[1.2, 0.0, 0.9], [-1.2, 0.0, 0.9]], dtype=D)
    root_quat = yaw_quat(torch.tensor([math.pi, 0.0], dtype=D))
    lin = torch.zeros(2, 3, dtype=D)
    obs = _task_obs(root_pos, root_quat, obj_pos, obj_quat, tgt_pos, tgt_quat, half, lin, lin, handle)
    L = TASK_OBS_LAYOUT
    for part in ("object_pos", "object_rot", "object_corners", "stand_point", "density"):
        assert torch.allclose(obs[0, L[part]], obs[1, L[part]], atol=1e-12), part
    assert torch.allclose(obs[0, L["object_pos"]], torch.tensor([0.45, 0.0, -0.65], dtype=D), atol=1e-12)
    # the target lies to the right of agent 0 (facing -x) and to the left of agent 1
    assert obs[0, L["target_pos"]][1].item() == pytest.approx(-5.0)
    assert obs[1, L["target_pos"]][1].item() == pytest.approx(5.0)


def _handles(half, team, round_outline=False, grip_z=0.0, grip_half=None):
    half = torch.tensor(half, dtype=D).expand(team, 3)
    grip_half = half[:, 2] if grip_half is None else torch.full((team,), grip_half, dtype=D)
    return team_handles(half, torch.arange(team), torch.full((team,), team), round_outline,
                        torch.full((team,), grip_z, dtype=D), grip_half, 0.25)


def test_a_team_of_one_holds_the_whole_object_at_its_centre():
    h = _handles([1.0, 0.25, 0.25], 1)
    whole = whole_box_handle(torch.tensor([[1.0, 0.25, 0.25]], dtype=D))
    for got, want in zip((h.center, h.quat, h.half_extents), (whole.center, whole.quat, whole.half_extents)):
        assert torch.equal(got, want)


def test_two_agents_hold_the_long_box_by_width_sized_ends_turned_by_pi():
    """CooHOI (reference §3): held points inside each short end at the centre of a width-sized end region; the far
    agent's rotation turned by pi, so each sees its end as the single-agent box."""
    h = _handles([1.0, 0.25, 0.25], 2)
    assert torch.allclose(h.center, torch.tensor([[-0.75, 0.0, 0.0], [0.75, 0.0, 0.0]], dtype=D))
    assert torch.allclose(h.half_extents, torch.full((2, 3), 0.25, dtype=D))
    assert torch.allclose(h.quat[0], torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=D))
    assert torch.allclose(h.quat[1].abs(), torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=D), atol=1e-12)
    placed = place_handle(torch.zeros(2, 3, dtype=D), yaw_quat(torch.zeros(2, dtype=D)), h, 0.2)
    assert torch.allclose(placed.stand_point, torch.tensor([[-1.2, 0.0, 0.0], [1.2, 0.0, 0.0]], dtype=D))


@pytest.mark.parametrize("team", [3, 4, 8])
def test_team_members_are_spread_evenly_around_a_rectangular_rim_facing_inward(team):
    hx, hy = 1.0, 0.6
    h = _handles([hx, hy, 0.43], team, grip_z=0.41, grip_half=0.02)
    inward = quat_rotate(h.quat, torch.tensor([1.0, 0.0, 0.0], dtype=D).expand(team, 3))
    rim = h.center - 0.25 * inward  # each handle's rim point: its depth back along its inward axis
    on_rim = torch.minimum((rim[:, 0].abs() - hx).abs(), (rim[:, 1].abs() - hy).abs())
    assert torch.all(on_rim < 1e-9) and torch.allclose(h.center[:, 2], torch.full((team,), 0.41, dtype=D))
    # Consecutive rim points are a perimeter / team apart along the rim: 4 agents sit at the four side middles.
    if team == 4:
        assert torch.allclose(rim[:, :2], torch.tensor([[-hx, 0.0], [0.0, -hy], [hx, 0.0], [0.0, hy]], dtype=D),
                              atol=1e-12)
    assert torch.all((inward[:, :2] * rim[:, :2]).sum(-1) < 0)  # pointing into the object


def test_team_members_on_a_round_rim_are_equally_spaced_and_face_the_centre():
    h = _handles([1.0, 1.0, 0.43], 8, round_outline=True)
    inward = quat_rotate(h.quat, torch.tensor([1.0, 0.0, 0.0], dtype=D).expand(8, 3))
    assert torch.allclose(h.center[:, :2].norm(dim=-1), torch.full((8,), 0.75, dtype=D))
    assert torch.allclose(inward[:, :2], -h.center[:, :2] / 0.75)
    angles = torch.atan2(h.center[:, 1], h.center[:, 0])
    gaps = (angles.diff() + 2 * math.pi) % (2 * math.pi)
    assert torch.allclose(gaps, torch.full((7,), 2 * math.pi / 8, dtype=D))
