"""Episode metrics of carrying (reference §8) on hand-built trajectories, where each value is known exactly."""

from __future__ import annotations

import math

import pytest
import torch

from coohoi.envs.metrics import (
    Outline,
    TeamMetricsTracker,
    distance_to_outline,
    hands_cooperating,
    load_share,
    outline_points,
)
from coohoi.rotations import yaw_quat

F64 = {"dtype": torch.float64}
DT = 1.0 / 30.0
G = 9.81
REST = 0.4  # the object centre's resting height
P = 12


def tensor(*rows):
    return torch.tensor(rows, **F64)


def identity(n):
    q = torch.zeros(n, 4, **F64)
    q[:, 0] = 1.0
    return q


def table(n):
    """Rectangular rims 1.6 m x 0.8 m at 0.05 m above the object centre (perimeter 4.8 m)."""
    return Outline.rectangle(torch.tensor([[0.8, 0.4]] * n, **F64), torch.full((n,), 0.05, **F64))


class Driver:
    """Feeds a tracker one hand-built step at a time: agents' hands sit on the rim (at the ends of the x axis)
    unless told otherwise, every agent present and in contact, no forces."""

    def __init__(self, n=1, k=2, **kw):
        self.n, self.k = n, k
        self.tracker = TeamMetricsTracker(n, k, P, DT, dtype=torch.float64, **kw)
        self.outline = table(n)
        self.progress = torch.zeros(n, dtype=torch.long)

    def step(self, pos, target=None, *, hands=None, contact=None, forces=None, mask=None, mass=None, quat=None):
        n, k = self.n, self.k
        pos = torch.as_tensor(pos, **F64).view(n, 3)
        target = torch.tensor([[0.0, 0.0, REST]] * n, **F64) if target is None else \
            torch.as_tensor(target, **F64).view(n, 3)
        quat = identity(n) if quat is None else quat
        if hands is None:
            side = torch.tensor([[0.8, 0.0, 0.05], [-0.8, 0.0, 0.05]], **F64)  # both hands of agent i on one end
            hands = pos[:, None, None, :] + side[torch.arange(k) % 2][None, :, None, :].expand(n, k, 2, 3)
        contact = torch.ones(n, k, 2, dtype=torch.bool) if contact is None else contact
        forces = torch.zeros(n, k, 2, 3, **F64) if forces is None else forces
        mask = torch.ones(n, k, dtype=torch.bool) if mask is None else mask
        mass = torch.full((n,), 20.0, **F64) if mass is None else mass
        rim = outline_points(pos, quat, self.outline, P)
        dist = distance_to_outline(hands.reshape(n, k * 2, 3), pos, quat, self.outline).view(n, k, 2)
        self.progress += 1
        self.tracker.update(pos, torch.full((n,), REST, **F64), target, rim, hands, contact, forces, mass, mask,
                            self.progress.clone(), hand_rim_distance=dist)

    def values(self):
        return self.tracker.episode_values()


# ---- outline ------------------------------------------------------------------------------------------------------
def test_rectangle_rim_points_are_evenly_spaced_by_arc_length_on_the_turned_rim():
    pos, quat = tensor([1.0, -2.0, 0.4]), yaw_quat(tensor(0.7))
    points = outline_points(pos, quat, table(1), P)  # perimeter 4.8 m, 12 points: 0.4 m apart, corners included
    gaps = (points.roll(-1, dims=1) - points).norm(dim=-1)
    assert torch.allclose(gaps, torch.full_like(gaps, 0.4))
    assert torch.allclose(points[..., 2], torch.full_like(points[..., 2], 0.45))
    assert distance_to_outline(points, pos, quat, table(1)).abs().max() < 1e-12


def test_circle_rim_points_lie_on_the_circle_at_equal_chords():
    outline = Outline.circle(tensor(0.5), tensor(0.1))
    pos = tensor([0.0, 1.0, 0.3])
    points = outline_points(pos, identity(1), outline, 8)
    radius = (points[..., :2] - pos[:, None, :2]).norm(dim=-1)
    assert torch.allclose(radius, torch.full_like(radius, 0.5))
    gaps = (points.roll(-1, dims=1) - points).norm(dim=-1)
    assert torch.allclose(gaps, torch.full_like(gaps, 2 * 0.5 * math.sin(math.pi / 8)))
    assert torch.allclose(points[..., 2], torch.full_like(points[..., 2], 0.4))


def test_distance_to_outline_is_exact_inside_outside_and_above_the_rim():
    pos, quat = tensor([2.0, 0.0, 0.4]), yaw_quat(tensor(math.pi / 2))  # object x axis along world y
    query = tensor([[2.0, 0.0, 0.45],          # centre of the top: 0.4 to the long sides
                    [2.0 - 0.5, 0.9, 0.45],     # 0.1 beyond the (+x, +y) corner in both directions (turned)
                    [2.0, 0.8, 0.45 + 0.3]])    # 0.3 above the middle of a short side
    d = distance_to_outline(query, pos, quat, table(1))[0]
    assert torch.allclose(d, tensor(0.4, math.hypot(0.1, 0.1), 0.3))
    circle = Outline.circle(tensor(0.5), tensor(0.0))
    d = distance_to_outline(tensor([[0.0, 0.0, 0.4 + 0.12]]), tensor([0.0, 0.0, 0.4]), identity(1), circle)
    assert torch.allclose(d, tensor([math.hypot(0.5, 0.12)]))


# ---- CooHOI -------------------------------------------------------------------------------------------------------
def test_coohoi_success_needs_the_object_put_down_within_twenty_centimetres_in_3d():
    d = Driver(n=2)
    # env 0 ends above the target (0.3 m up: xy exact, 3D too far); env 1 is put down 5 cm off, first within at step 3
    paths = [[(1.0, 0.0, 0.7), (0.5, 0.0, 0.7), (0.0, 0.0, 0.7), (0.0, 0.0, 0.7)],
             [(1.0, 0.0, 0.7), (0.5, 0.0, 0.7), (0.15, 0.0, 0.4), (0.05, 0.0, 0.4)]]
    for a, b in zip(*paths):
        d.step([a, b])
    v = d.values()
    assert v["success"].tolist() == [0.0, 1.0]
    assert math.isnan(v["precision_cm"][0]) and math.isclose(v["precision_cm"][1], 5.0)
    assert math.isnan(v["completion_time_s"][0]) and math.isclose(v["completion_time_s"][1], 3 * DT)
    assert v["sticky_success"].tolist() == [1.0, 0.0]


def test_sticky_success_counts_a_single_step_within_three_centimetres():
    d = Driver(n=2)
    # env 0 passes 2 cm from the target once and leaves to 0.5 m; env 1 never comes nearer than 4 cm
    for a, b in [(0.3, 0.3), (0.02, 0.04), (0.5, 0.5)]:
        d.step([(a, 0.0, REST), (b, 0.0, REST)])
    v = d.values()
    assert v["sticky_success"].tolist() == [1.0, 0.0]
    assert v["success"].tolist() == [0.0, 0.0]  # CooHOI looks at the end only
    assert torch.allclose(v["final_distance_m"], tensor(0.5, 0.5))
    assert math.isclose(v["arrival_time_s"][0], 2 * DT) and math.isnan(v["arrival_time_s"][1])


def test_final_distance_is_horizontal():
    d = Driver()
    d.step([0.3, 0.4, REST + 1.0])
    assert math.isclose(d.values()["final_distance_m"][0], 0.5)


# ---- cooperation --------------------------------------------------------------------------------------------------
def test_cooperation_fraction_counts_the_steps_one_of_two_agents_lets_go_between_lift_and_arrival():
    d = Driver()
    up, down = REST + 0.2, REST
    let_go = torch.ones(1, 2, 2, dtype=torch.bool)
    let_go[0, 1, 1] = False  # agent 1 takes its right hand off
    # 2 steps on the ground (agent 1 off: before lift, not counted), 10 lifted steps of which 3 with agent 1 off,
    # then arrival (excluded) and 2 more steps with agent 1 off (after arrival, not counted)
    for _ in range(2):
        d.step([1.0, 0.0, down], contact=let_go)
    for i in range(10):
        d.step([1.0 - 0.05 * i, 0.0, up], contact=let_go if i in (2, 3, 7) else None)
    for _ in range(3):
        d.step([0.01, 0.0, up], contact=let_go)
    assert math.isclose(d.values()["cooperation_fraction"][0], 7 / 10)


def test_cooperation_fraction_is_nan_before_lift():
    d = Driver()
    d.step([1.0, 0.0, REST + 0.04])  # below the 5 cm lift threshold
    assert math.isnan(d.values()["cooperation_fraction"][0])
    d.step([1.0, 0.0, REST + 0.06])
    assert d.values()["cooperation_fraction"][0] == 1.0


def test_cooperation_needs_both_hands_within_twelve_centimetres_of_the_rim():
    d = Driver()
    pos = tensor([1.0, 0.0, REST + 0.2])
    hands = pos[:, None, None, :] + tensor([0.8, 0.0, 0.05], [-0.8, 0.0, 0.05])[None, :, None, :].repeat(1, 1, 2, 1)
    near, far = hands.clone(), hands.clone()
    near[0, 0, 0, 0] += 0.11
    far[0, 0, 0, 0] += 0.13  # in contact (as told) but 13 cm off the rim
    d.step(pos, hands=near)
    d.step(pos, hands=far)
    assert math.isclose(d.values()["cooperation_fraction"][0], 0.5)


def test_a_masked_agent_is_ignored_by_cooperation_and_gets_no_load_share():
    d = Driver(k=3)
    mask = torch.tensor([[True, True, False]])
    contact = torch.ones(1, 3, 2, dtype=torch.bool)
    contact[0, 2] = False  # the absent agent touches nothing
    forces = torch.zeros(1, 3, 2, 3, **F64)
    forces[0, :2, :, 2] = -20.0 * G / 4
    forces[0, 2, :, 2] = -1000.0  # garbage in the absent agent's slot
    d.step([1.0, 0.0, REST + 0.2], contact=contact, forces=forces, mask=mask)
    v = d.values()
    assert v["cooperation_fraction"][0] == 1.0
    assert math.isclose(v["load_share_0"][0], 0.5) and math.isclose(v["load_share_1"][0], 0.5)
    assert math.isnan(v["load_share_2"][0]) and math.isnan(d.tracker.step_load_share[0, 2])
    assert math.isclose(v["load_imbalance"][0], 0.0, abs_tol=1e-12)


def test_no_active_agent_is_no_cooperation():
    ok = hands_cooperating(torch.zeros(1, 2, 2, **F64), torch.ones(1, 2, 2, dtype=torch.bool),
                           torch.zeros(1, 2, dtype=torch.bool), 0.12)
    assert ok.tolist() == [False]


def test_default_hand_distance_uses_the_nearest_rim_point():
    tracker = TeamMetricsTracker(1, 1, P, DT, dtype=torch.float64)
    pos = tensor([0.0, 0.0, REST + 0.2])
    rim = outline_points(pos, identity(1), table(1), P)  # a rim point at (0.8, -0.4) and one at (0.8, 0.0)
    for hand_y in (0.0, 0.2):  # on a rim point; then half-way between two, 0.2 m from either
        hands = pos[:, None, None] + tensor([0.8, hand_y, 0.05])[:, None, None].expand(1, 1, 2, 3)
        tracker.update(pos, tensor(REST), tensor([5.0, 0.0, REST]), rim, hands, torch.ones(1, 1, 2, dtype=torch.bool),
                       torch.zeros(1, 1, 2, 3, **F64), tensor(20.0), torch.ones(1, 1, dtype=torch.bool),
                       torch.tensor([1]))
    assert math.isclose(tracker.episode_values()["cooperation_fraction"][0], 0.5)


# ---- jerk ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-9), (torch.float32, 1e-2)])
def test_jerk_of_an_object_moved_along_a_cubic_is_six_times_its_leading_coefficient(dtype, rtol):
    a = torch.tensor([0.5, -2.0, 0.0], **F64)  # env 2 moves along a parabola: no jerk
    d = Driver(n=3)
    d.tracker = TeamMetricsTracker(3, 2, P, DT, dtype=dtype)
    direction = tensor([0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0])
    for i in range(20):
        t = i * DT
        s = a * t ** 3 + 0.7 * t ** 2 - 0.3 * t
        d.step(tensor([1.0, 0.0, REST]) + s[:, None] * direction)
        if i < 3:
            assert torch.isnan(d.values()["jerk"]).all()  # fewer than 4 positions
    jerk = d.values()["jerk"].to(torch.float64)
    assert torch.allclose(jerk, 6 * a.abs(), rtol=rtol, atol=1e-2 if dtype == torch.float32 else 1e-9)


def test_jerk_counts_the_rim_points_of_a_turning_object():
    # Spinning about z at angle(t) = c t^3: the rim point at radius r has |third derivative| 6 c r at t = 0 only
    # (other terms vanish there), so feed exactly 4 positions t = 0..3 dt and compare with the third difference.
    c, r = 2.0, 0.5
    tracker = TeamMetricsTracker(1, 1, 4, DT, dtype=torch.float64)
    outline = Outline.circle(tensor(r), tensor(0.0))
    pos = tensor([0.0, 0.0, REST])
    points = []
    for i in range(4):
        rim = outline_points(pos, yaw_quat(tensor(c * (i * DT) ** 3)), outline, 4)
        points.append(rim)
        tracker.update(pos, tensor(REST), pos, rim, torch.zeros(1, 1, 2, 3, **F64),
                       torch.ones(1, 1, 2, dtype=torch.bool), torch.zeros(1, 1, 2, 3, **F64), tensor(1.0),
                       torch.ones(1, 1, dtype=torch.bool), torch.tensor([i + 1]))
    p = torch.stack(points)
    expected = ((p[3] - 3 * p[2] + 3 * p[1] - p[0]).norm(dim=-1).mean() / DT ** 3).item()
    assert math.isclose(tracker.episode_values()["jerk"][0], expected)
    assert math.isclose(expected, 6 * c * r, rel_tol=1e-3)  # the small-angle limit


# ---- load share ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", [(0.5, 0.5), (0.75, 0.25)])
def test_load_share_of_a_static_object_is_each_agents_part_of_its_weight(split):
    m = 12.0
    forces = torch.zeros(1, 2, 2, 3, **F64)
    for k, part in enumerate(split):
        forces[0, k, :, 2] = -part * m * G / 2  # each hand half of the agent's part
    forces[0, :, :, 0] = 30.0  # horizontal squeeze carries no weight
    share = load_share(forces, tensor(m), torch.ones(1, 2, dtype=torch.bool))
    assert torch.allclose(share, tensor(list(split)))
    d = Driver()
    for _ in range(3):
        d.step([1.0, 0.0, REST + 0.2], forces=forces, mass=tensor(m))
    v = d.values()
    assert math.isclose(v["load_share_0"][0], split[0]) and math.isclose(v["load_share_1"][0], split[1])
    assert math.isclose(v["load_imbalance"][0], split[0] - split[1], abs_tol=1e-12)


def test_an_upward_force_on_the_hands_carries_no_load():
    forces = torch.zeros(1, 2, 2, 3, **F64)
    forces[0, 0, :, 2] = 50.0  # pressed up by the object: pushing it down, not carrying
    forces[0, 1, :, 2] = -G  # 2 g of 1 kg: carrying twice the weight
    assert torch.allclose(load_share(forces, tensor(1.0), torch.ones(1, 2, dtype=torch.bool)), tensor([0.0, 2.0]))


def test_mean_load_share_counts_only_the_steps_while_lifted():
    d = Driver()
    half = torch.zeros(1, 2, 2, 3, **F64)
    half[0, :, :, 2] = -20.0 * G / 4
    all_on_0 = torch.zeros(1, 2, 2, 3, **F64)
    all_on_0[0, 0, :, 2] = -20.0 * G / 2
    d.step([1.0, 0.0, REST], forces=all_on_0)  # on the ground: not counted
    d.step([1.0, 0.0, REST + 0.2], forces=half)
    d.step([1.0, 0.0, REST + 0.2], forces=all_on_0)
    v = d.values()
    assert math.isclose(v["load_share_0"][0], 0.75) and math.isclose(v["load_share_1"][0], 0.25)
    assert torch.allclose(d.tracker.step_load_share, tensor([1.0, 0.0]))


# ---- reset --------------------------------------------------------------------------------------------------------
def test_reset_by_mask_clears_the_chosen_environments_and_leaves_the_others_untouched():
    d = Driver(n=2)
    forces = torch.zeros(2, 2, 2, 3, **F64)
    forces[..., 2] = -20.0 * G / 4
    for i in range(6):
        x = 1.0 - 0.1 * i ** 3
        d.step([(x, 0.0, REST + 0.2), (0.02 * i, 0.0, REST + 0.2)], forces=forces)
    before = d.values()
    before_state = {name: getattr(d.tracker, name).clone() for name in d.tracker._init}
    d.tracker.reset(torch.tensor([True, False]))
    after = d.values()
    for name, value in after.items():
        assert torch.equal(value[1:], before[name][1:]) or (value[1:].isnan() & before[name][1:].isnan()).all(), name
        if name in ("success", "sticky_success"):
            assert value[0] == 0.0, name
        else:
            assert math.isnan(value[0]), name
    for name, value in before_state.items():
        now = getattr(d.tracker, name)
        assert torch.equal(now[1:].nan_to_num(), value[1:].nan_to_num()), name
    assert not torch.equal(before_state["history"][0], d.tracker.history[0])
    # env 0 restarts from scratch: jerk needs 4 fresh positions again, the window restarts at the next lift
    for _ in range(3):
        d.step([(1.0, 0.0, REST), (0.0, 0.0, REST + 0.2)], forces=forces)
    v = d.values()
    assert math.isnan(v["jerk"][0]) and math.isnan(v["cooperation_fraction"][0])
    assert math.isnan(v["load_share_0"][0])
