"""Termination rules (reference §2): fall, kicked box, timeout, as pure functions."""

from __future__ import annotations

import torch

from coohoi import humanoid as hum
from coohoi.envs.terminations import fall_heights, fallen, kicked, timed_out

FEET = torch.tensor([n in ("right_foot", "left_foot") for n in hum.BODY_NAMES])
HEIGHTS = fall_heights(0.2, 0.3, hum.HEAD_BODY_ID, hum.NUM_BODIES, torch.float64)


def standing():
    pos = torch.zeros(1, hum.NUM_BODIES, 3, dtype=torch.float64)
    pos[..., 2] = 0.8
    pos[0, list(hum.FOOT_BODY_IDS), 2] = 0.05
    return pos, torch.zeros(1, hum.NUM_BODIES, 3, dtype=torch.float64)


def test_fall_heights():
    assert HEIGHTS[hum.HEAD_BODY_ID].item() == 0.3
    assert (HEIGHTS[[i for i in range(hum.NUM_BODIES) if i != hum.HEAD_BODY_ID]] == 0.2).all()


def test_feet_on_the_ground_is_not_a_fall():
    pos, force = standing()
    force[0, list(hum.FOOT_BODY_IDS), 2] = 240.0
    assert not fallen(pos, force, FEET, HEIGHTS, 0.1).item()


def test_fall_needs_contact_and_low_body():
    right_hand = hum.BODY_NAMES.index("right_hand")
    torso = hum.BODY_NAMES.index("torso")
    pos, force = standing()
    pos[0, right_hand, 2] = 0.1  # low but touching nothing
    assert not fallen(pos, force, FEET, HEIGHTS, 0.1).item()
    force[0, right_hand, 0] = 5.0  # low and touching
    assert fallen(pos, force, FEET, HEIGHTS, 0.1).item()
    # the published rule: the touching body and the low body need not be the same
    pos, force = standing()
    pos[0, right_hand, 2] = 0.1
    force[0, torso, 2] = 5.0
    assert fallen(pos, force, FEET, HEIGHTS, 0.1).item()
    # hands are allowed to touch when carrying: the same state is no fall with hands in the contact set
    hands_too = FEET.clone()
    hands_too[list(hum.HAND_BODY_IDS)] = True
    pos, force = standing()
    pos[0, right_hand, 2] = 0.1
    force[0, right_hand, 0] = 5.0
    assert not fallen(pos, force, hands_too, HEIGHTS, 0.1).item()
    # force at the threshold does not count
    force = torch.zeros_like(force)
    force[0, torso, 2] = 0.1
    assert not fallen(pos, force, FEET, HEIGHTS, 0.1).item()


def test_head_threshold():
    pos, force = standing()
    force[0, hum.HEAD_BODY_ID, 0] = 3.0
    pos[0, hum.HEAD_BODY_ID, 2] = 0.25  # below the head's 0.3 m, above the others' 0.2 m
    assert fallen(pos, force, FEET, HEIGHTS, 0.1).item()
    pos[0, hum.HEAD_BODY_ID, 2] = 0.35
    assert not fallen(pos, force, FEET, HEIGHTS, 0.1).item()


def test_kicked_box():
    v = torch.tensor([[1.2, 0.0, 0.0], [0.6, 0.6, 0.0], [0.5, 0.5, 3.0], [1.2, 0.0, 0.0], [1.2, 0.0, 0.0]],
                     dtype=torch.float64)
    box_z = torch.tensor([0.25, 0.25, 0.25, 0.5, 0.25], dtype=torch.float64)
    hand_z = torch.tensor([0.9, 0.9, 0.9, 0.9, 0.4], dtype=torch.float64)
    out = kicked(v, box_z, hand_z, speed=1.0, box_height=0.3, min_hand_height=0.5)
    # fast on the ground with hands up | 0.85 m/s horizontal | vertical speed does not count | box up | hands low
    assert out.tolist() == [True, False, False, False, False]


def test_timeout():
    assert timed_out(torch.tensor([0, 599, 600, 601]), 600).tolist() == [False, False, True, True]
