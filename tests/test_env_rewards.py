"""Carry reward terms (reference §4) at hand-made states: each term's value where it is known exactly."""

from __future__ import annotations

import math

import pytest
import torch

from coohoi.envs.config import CarryEnvConfig
from coohoi.envs.observations import place_handle, whole_box_handle
from coohoi.envs.rewards import REWARD_TERMS, carry_reward, carry_rewards, carry_state, held_reward, walk_rewards
from coohoi.rotations import yaw_quat

CFG = CarryEnvConfig()
HALF = torch.tensor([[0.25, 0.25, 0.25]], dtype=torch.float64)


def t(*v):
    return torch.tensor([list(v)], dtype=torch.float64)


def yaw(a):
    return yaw_quat(torch.tensor([a], dtype=torch.float64))


def handle_at(pos, yaw_angle=0.0):
    return place_handle(t(*pos), yaw(yaw_angle), whole_box_handle(HALF), CFG.stand_offset)


def test_standing_point_is_outside_the_minus_x_face_on_the_ground():
    h = handle_at((2.0, 1.0, 0.25))
    assert torch.allclose(h.stand_point, t(2.0 - 0.25 - CFG.stand_offset, 1.0, 0.0))
    h = handle_at((2.0, 1.0, 0.25), math.pi / 2)  # box x axis along world +y: stand point on the -y side
    assert torch.allclose(h.stand_point, t(2.0, 1.0 - 0.45, 0.0), atol=1e-12)


def test_walk_terms_far_from_standing_point():
    box = handle_at((5.0, 0.0, 0.25))  # stand point at (4.55, 0)
    d = 4.55
    # facing +x, walking toward it at 0.4 m/s
    r = walk_rewards(t(0.0, 0.0, 0.9), yaw(0.0), t(0.4, 0.0, 0.0), box.stand_point, CFG)
    assert r["walk_pos"].item() == pytest.approx(math.exp(-2.0 * d * d))
    assert r["walk_vel"].item() == pytest.approx(math.exp(-2.0 * 0.6 ** 2))
    assert r["walk_face"].item() == pytest.approx(1.0)
    # faster than the target speed: full velocity reward
    assert walk_rewards(t(0.0, 0.0, 0.9), yaw(0.0), t(1.5, 0.0, 0.0), box.stand_point, CFG)["walk_vel"].item() == 1.0
    # moving away: 0; facing 60 degrees off: cos 60; facing away: 0
    away = walk_rewards(t(0.0, 0.0, 0.9), yaw(math.pi), t(-0.5, 0.0, 0.0), box.stand_point, CFG)
    assert away["walk_vel"].item() == 0.0 and away["walk_face"].item() == 0.0
    side = walk_rewards(t(0.0, 0.0, 0.9), yaw(math.pi / 3), t(0.0, 0.0, 0.0), box.stand_point, CFG)
    assert side["walk_face"].item() == pytest.approx(0.5)
    assert side["walk_vel"].item() == 0.0


def test_walk_terms_are_one_within_arrival_distance():
    box = handle_at((5.0, 0.0, 0.25))
    near = t(4.55 - 0.15, 0.1, 0.9)  # 0.18 m from the standing point, facing away and standing still
    r = walk_rewards(near, yaw(math.pi), t(0.0, 0.0, 0.0), box.stand_point, CFG)
    assert all(r[k].item() == 1.0 for k in ("walk_pos", "walk_vel", "walk_face"))
    out = t(4.55 - 0.25, 0.0, 0.9)  # 0.25 m away: ordinary values
    r = walk_rewards(out, yaw(math.pi), t(0.0, 0.0, 0.0), box.stand_point, CFG)
    assert r["walk_pos"].item() == pytest.approx(math.exp(-2.0 * 0.0625))
    assert r["walk_face"].item() == 0.0


def test_held_is_one_with_hands_at_held_point_and_decays():
    box, target = handle_at((1.0, 2.0, 0.7)), handle_at((5.0, 2.0, 0.25))
    placed = carry_state(box, target, CFG)["placed"]
    hands = torch.tensor([[[1.0, 1.75, 0.7], [1.0, 2.25, 0.7]]], dtype=torch.float64)  # either side of the box
    assert held_reward(hands, box, placed, CFG).item() == pytest.approx(1.0)
    hands_off = hands + torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64)
    assert held_reward(hands_off, box, placed, CFG).item() == pytest.approx(math.exp(-5.0 * 0.09))


def test_held_is_one_once_the_box_is_placed_at_the_target():
    target = handle_at((5.0, 2.0, 0.25))
    placed_box = handle_at((5.1, 2.0, 0.25))  # xy error 0.1 m (near), at resting height
    hands_far = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.3, 1.0]]], dtype=torch.float64)
    state = carry_state(placed_box, target, CFG)
    assert state["placed"].item() and state["near"].item()
    assert held_reward(hands_far, placed_box, state["placed"], CFG).item() == 1.0
    lifted = handle_at((5.1, 2.0, 0.6))  # near in xy but held up: not placed
    state = carry_state(lifted, target, CFG)
    assert state["near"].item() and not state["placed"].item()
    assert held_reward(hands_far, lifted, state["placed"], CFG).item() < 1e-3


def test_carry_terms_are_zero_while_box_low_and_far():
    box, target = handle_at((1.0, 0.0, 0.25)), handle_at((4.0, 0.0, 0.25))
    state = carry_state(box, target, CFG)
    r = carry_rewards(t(0.0, 0.0, 0.9), yaw(0.0), box, target, state, CFG)
    assert all(r[k].item() == 0.0 for k in ("carry_far", "carry_near", "carry_face", "carry_dir", "putdown"))


def test_carry_terms_while_lifted_and_far():
    box, target = handle_at((1.0, 0.0, 0.8)), handle_at((4.0, 1.0, 0.25))
    state = carry_state(box, target, CFG)
    assert state["active"].item() and not state["near"].item()
    root = t(0.5, 0.0, 0.9)
    r = carry_rewards(root, yaw(0.0), box, target, state, CFG)
    xy_sq, xyz_sq = 9.0 + 1.0, 9.0 + 1.0 + 0.55 ** 2
    assert r["carry_far"].item() == pytest.approx(math.exp(-0.5 * xy_sq))
    assert r["carry_near"].item() == pytest.approx(math.exp(-10.0 * xyz_sq))
    to_target = torch.tensor([3.5, 1.0]) / math.hypot(3.5, 1.0)
    assert r["carry_face"].item() == pytest.approx(to_target[0].item())
    # walking backward toward the target counts as well
    back = carry_rewards(root, yaw(math.pi), box, target, state, CFG)
    assert back["carry_face"].item() == pytest.approx(to_target[0].item())
    assert r["carry_dir"].item() == 0.0 and r["putdown"].item() == 0.0  # only near the target


def test_near_terms_at_the_target():
    target = handle_at((4.0, 1.0, 0.25), 0.3)
    box = handle_at((4.1, 1.0, 0.45), 0.3 + math.pi / 3)  # near (xy error 0.1), 0.2 m high, turned 60 degrees
    state = carry_state(box, target, CFG)
    assert state["near"].item() and state["active"].item() and not state["placed"].item()
    r = carry_rewards(t(3.5, 1.0, 0.9), yaw(0.0), box, target, state, CFG)
    assert r["carry_dir"].item() == pytest.approx(0.5)
    assert r["putdown"].item() == pytest.approx(math.exp(-5.0 * 0.04))
    assert r["carry_near"].item() == pytest.approx(math.exp(-10.0 * (0.01 + 0.04)))
    exact = carry_rewards(t(3.5, 1.0, 0.9), yaw(0.0), target, target, carry_state(target, target, CFG), CFG)
    for k in ("carry_far", "carry_near", "carry_dir", "putdown"):
        assert exact[k].item() == pytest.approx(1.0)
    opposite = handle_at((4.0, 1.0, 0.25), 0.3 + math.pi)
    r = carry_rewards(t(3.5, 1.0, 0.9), yaw(0.0), opposite, target, carry_state(opposite, target, CFG), CFG)
    assert r["carry_dir"].item() == 0.0


def test_weighted_sum_and_batch():
    target = handle_at((4.0, 1.0, 0.25))
    total, terms = carry_reward(t(0.0, 0.0, 0.9), yaw(0.0), t(0.0, 0.0, 0.0),
                                torch.zeros(1, 2, 3, dtype=torch.float64), target, target, CFG)
    assert tuple(terms) == REWARD_TERMS
    assert total.item() == pytest.approx(sum(CFG.reward_weights[k] * terms[k].item() for k in REWARD_TERMS))
    # a box exactly placed at its target with the humanoid at the standing point: every term is 1
    stand = target.stand_point.clone()
    stand[:, 2] = 0.9
    total, terms = carry_reward(stand, yaw(0.0), t(0.0, 0.0, 0.0), torch.zeros(1, 2, 3, dtype=torch.float64),
                                target, target, CFG)
    assert all(v.item() == pytest.approx(1.0) for v in terms.values())
    assert total.item() == pytest.approx(sum(CFG.reward_weights.values()))
    # rows are independent
    a, b = handle_at((1.0, 0.0, 0.8)), handle_at((3.0, 0.0, 0.25))
    cat = lambda x, y: type(x)(*(torch.cat((u, v)) for u, v in zip(vars(x).values(), vars(y).values())))  # noqa: E731
    roots = torch.cat((t(0, 0, 0.9), t(2, 0, 0.9)))
    quats = torch.cat((yaw(0.0), yaw(1.0)))
    vels = torch.zeros(2, 3, dtype=torch.float64)
    hands = torch.zeros(2, 2, 3, dtype=torch.float64)
    both, _ = carry_reward(roots, quats, vels, hands, cat(a, b), cat(target, target), CFG)
    one, _ = carry_reward(roots[1:], quats[1:], vels[1:], hands[1:], b, target, CFG)
    assert both[1].item() == pytest.approx(one.item())
