"""The project's own reference motions: the shipped skills, written by `coohoi motion generate`.

Each skill is a plan of kinematic keyframes (coohoi.motion.synthesis.SkillPlan): the root's path, when each foot
swings, pelvis height and lean, a reference pose for the joints no target pins down (arm swing, spine, head), and
for the box skills the box's trajectory and when the hands grip it. coohoi.motion.synthesis turns a plan into a clip
(footsteps without skating, pelvis motion, whole-body IK).

Nothing is random, so the same code writes the same clips. `generate_all(out_dir)` writes every clip and a
dataset.yaml listing them with sampling weights (box skills 1.5, the rest 1.0, as in the published set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coohoi import humanoid as hum
from coohoi.motion.clip import MotionClip
from coohoi.motion.gait import min_jerk, smooth_step
from coohoi.motion.library import write_dataset
from coohoi.motion.synthesis import (  # noqa: F401  (FPS, BOX_SIZE, rest_pose: re-exported for users and tests)
    ARM_DOFS,
    ARM_SWING_GAIN,
    BOX_SIZE,
    FPS,
    PELVIS_TWIST_GAIN,
    PLAN_PAD,
    STANCE_HALF_WIDTH,
    TOE_OUT,
    WALK_HEIGHT,
    SkillPlan,
    dof_index,
    constant,
    periodic_swings,
    rest_pose,
    synthesize,
)

DATASET_FILE = "dataset.yaml"
LOCOMOTION_DATASET_FILE = "locomotion.yaml"
WALKING_DATASET_FILE = "walking.yaml"

BOX_SKILL_WEIGHT = 1.5  # pickup and carry clips, as in the published set
# Box held for carrying, relative to the pelvis in its heading frame: in front of the torso, hands at ~1 m.
CARRY_BOX_OFFSET = np.array([0.37, 0.0, 0.13])
# Box on the ground this far (centre, m) ahead of the final stance line in the pick-up and put-down clips.
GROUND_BOX_DISTANCE = 0.55
STAND_HEIGHT = 0.875  # pelvis height when standing at ease
IDLE_BREATH_PERIOD = 4.0  # s


def carry_arm_pose() -> np.ndarray:
    """Reference arm angles while holding the box (IK moves the hands onto its sides from here)."""
    q = np.zeros(hum.NUM_DOFS)
    for name, value in (("right_shoulder_x", -0.25), ("left_shoulder_x", 0.25), ("right_shoulder_y", -0.9),
                        ("left_shoulder_y", -0.9), ("right_shoulder_z", 0.3), ("left_shoulder_z", -0.3),
                        ("right_elbow", -0.6), ("left_elbow", -0.6)):
        q[dof_index(name)] = value
    return q


# ----------------------------------------------------------------------------------------------------------------
# Postures

CROUCH_HEIGHT = 0.6  # pelvis height at the bottom of the pick-up / put-down crouch
CROUCH_BACK = 0.18  # pelvis pushed back (m) while crouching
CROUCH_PELVIS_PITCH = 1.1  # rad (hips flexed: a stoop-and-squat lift)
CROUCH_SPINE_PITCH = 0.6  # rad, abdomen reference
# Free arms in the crouch hang down and a little out, clear of the knees. Their shoulder flexion is this multiple of
# the trunk's forward bend: past pointing straight ahead of the torso, on the same side of that singular direction
# as the grip pose, so that reaching for the box and letting go never cross it (there the shoulder's x hinge moves
# the arm outward with the opposite sign to standing, hence +x on the right).
CROUCH_ARM_HANG = 1.2
CROUCH_ARM_OUT = 0.3  # rad
# Hip x and z reference angles in the crouch (rad), signed per side so that the knees part. With the hips flexed
# past 90 degrees these hinges act opposite to standing abduction and outward rotation, hence the sign.
CROUCH_HIP_SPREAD = 0.3
CROUCH_TOE_OUT = 0.45  # rad, feet turned out for the crouch so that the knees can follow the toes apart
LIFT_STANCE_HALF_WIDTH = 0.22  # feet apart for the crouch


def walking_posture(lean: float = 0.0, arm_gain: float = ARM_SWING_GAIN, base: np.ndarray | None = None):
    """Reference pose for walking: arms swing opposite the legs, spine counter-twists the pelvis."""
    base_pose = rest_pose() if base is None else base

    def posture(t: np.ndarray, swing: np.ndarray) -> np.ndarray:
        q = np.tile(base_pose, (len(t), 1))
        q[:, dof_index("right_shoulder_y")] += -arm_gain * swing
        q[:, dof_index("left_shoulder_y")] += arm_gain * swing
        q[:, dof_index("right_elbow")] -= 0.4 * np.maximum(arm_gain * swing, 0.0)
        q[:, dof_index("left_elbow")] -= 0.4 * np.maximum(-arm_gain * swing, 0.0)
        q[:, dof_index("abdomen_z")] += 0.8 * PELVIS_TWIST_GAIN * swing
        q[:, dof_index("abdomen_y")] += lean
        return q

    return posture


def with_arms(base: np.ndarray, arms: np.ndarray) -> np.ndarray:
    q = base.copy()
    q[ARM_DOFS] = arms[ARM_DOFS]
    return q


def crouch_posture(crouch: Callable[[np.ndarray], np.ndarray], arms: Callable[[np.ndarray], np.ndarray]):
    """Reference pose blending from standing to crouched (crouch(t) in [0, 1]) and from hanging arms to holding
    arms (arms(t) in [0, 1])."""

    def posture(t: np.ndarray, swing: np.ndarray) -> np.ndarray:
        c, a = crouch(t)[:, None], arms(t)[:, None]
        standing = rest_pose()
        crouched = standing.copy()
        crouched[dof_index("abdomen_y")] = CROUCH_SPINE_PITCH
        crouched[dof_index("neck_y")] = -0.35
        # Free arms hang toward the ground, not along the bent trunk (see CROUCH_ARM_HANG).
        crouched[dof_index("right_shoulder_y")] = crouched[dof_index("left_shoulder_y")] = -CROUCH_ARM_HANG * (
            CROUCH_PELVIS_PITCH + CROUCH_SPINE_PITCH)
        crouched[dof_index("right_shoulder_x")], crouched[dof_index("left_shoulder_x")] = CROUCH_ARM_OUT, -CROUCH_ARM_OUT
        for side, sign in (("right", -1.0), ("left", 1.0)):
            crouched[dof_index(f"{side}_hip_x")] = -sign * CROUCH_HIP_SPREAD
            crouched[dof_index(f"{side}_hip_z")] = -sign * CROUCH_HIP_SPREAD
        q = standing + (crouched - standing) * c
        q[:, ARM_DOFS] += (carry_arm_pose()[ARM_DOFS] - q[:, ARM_DOFS]) * a
        return q

    return posture


def carried_box(offset: np.ndarray = CARRY_BOX_OFFSET):
    """Box held in front of the pelvis, turning with the planned heading."""

    def box(t, root_pos, path_yaw, root_quat):
        c, s = np.cos(path_yaw), np.sin(path_yaw)
        pos = root_pos + np.stack([c * offset[0] - s * offset[1], s * offset[0] + c * offset[1],
                                   np.full(len(t), offset[2])], axis=-1)
        return pos, path_yaw.copy()

    return box


# ----------------------------------------------------------------------------------------------------------------
# Skills


@dataclass(frozen=True)
class Locomotion:
    """A steady stepping skill: constant planned velocity, alternating steps."""

    name: str
    forward: float = 0.0  # m/s
    leftward: float = 0.0  # m/s
    turn: float = 0.0  # rad/s, counter-clockwise seen from above
    period: float = 1.0  # s per gait cycle (two steps)
    swing_fraction: float = 0.4  # of the cycle, per foot
    first: str = "right"  # the foot whose swing starts the cycle
    second_delay: float | None = None  # s from the first foot's lift-off to the other's (None: half a period)
    rolls: bool = True  # heel strike and toe off
    half_width: float = STANCE_HALF_WIDTH
    lean: float = 0.0  # rad of extra forward trunk lean
    arm_gain: float = ARM_SWING_GAIN
    carry: bool = False  # holding the box in front
    loop_cycles: int = 0  # > 0: the clip is this many gait cycles and loops (its last frame runs into the first)


CARRY_HALF_WIDTH = 0.1
LOCOMOTION_DURATION = 4.0  # s
LOCOMOTION_SKILLS = (
    Locomotion("walk_forward_0.8", forward=0.8, period=1.1, lean=0.03, loop_cycles=4),
    Locomotion("walk_forward_1.2", forward=1.2, period=0.95, swing_fraction=0.42, lean=0.03, loop_cycles=4),
    Locomotion("walk_forward_1.6", forward=1.6, period=0.82, swing_fraction=0.44, lean=0.06, arm_gain=0.55,
               loop_cycles=5),
    Locomotion("walk_backward", forward=-0.7, period=1.1, rolls=False, lean=0.05, arm_gain=0.3, loop_cycles=4),
    Locomotion("turn_left", turn=1.0, rolls=False, arm_gain=0.2),
    Locomotion("turn_right", turn=-1.0, first="left", rolls=False, arm_gain=0.2),
    Locomotion("walk_turn_left", forward=1.0, turn=0.6, lean=0.03),
    Locomotion("walk_turn_right", forward=1.0, turn=-0.6, lean=0.03),
    # Step and close: the leading foot steps out, the trailing one follows soon after, so the feet never cross.
    Locomotion("sidestep_left", leftward=0.3, swing_fraction=0.3, first="left", second_delay=0.35, rolls=False,
               half_width=0.12, arm_gain=0.1, loop_cycles=4),
    Locomotion("sidestep_right", leftward=-0.3, swing_fraction=0.3, first="right", second_delay=0.35, rolls=False,
               half_width=0.12, arm_gain=0.1, loop_cycles=4),
    Locomotion("carry_forward", forward=1.0, period=1.05, half_width=CARRY_HALF_WIDTH, lean=-0.03, arm_gain=0.0,
               carry=True, loop_cycles=4),
    Locomotion("carry_backward", forward=-0.6, period=1.1, rolls=False, half_width=CARRY_HALF_WIDTH, lean=-0.03,
               arm_gain=0.0, carry=True, loop_cycles=4),
)


def locomotion_plan(skill: Locomotion) -> SkillPlan:
    """A steady gait. Looping clips span whole gait cycles: at constant speed every cycle repeats the last one
    moved along the path, so the frame after the last is the first frame moved on by one cycle."""
    loop = skill.loop_cycles > 0
    duration = skill.loop_cycles * skill.period if loop else LOCOMOTION_DURATION
    swings = periodic_swings(-PLAN_PAD - skill.period, duration + PLAN_PAD + skill.period, skill.period,
                             skill.swing_fraction, first=skill.first, second_delay=skill.second_delay)
    velocity = np.array([skill.forward, skill.leftward, skill.turn])
    base = with_arms(rest_pose(), carry_arm_pose()) if skill.carry else None
    box = dict(weight=BOX_SKILL_WEIGHT, box=carried_box(), grip=constant(1.0)) if skill.carry else {}
    return SkillPlan(name=skill.name, duration=duration, loop=loop, velocity=lambda t: np.tile(velocity, (len(t), 1)),
                     swings=swings, stance_time=skill.period * (1 - skill.swing_fraction), rolls=skill.rolls,
                     stance_half_width=constant(skill.half_width),
                     posture=walking_posture(lean=skill.lean, arm_gain=skill.arm_gain, base=base), **box)


# Idle: one breath per loop; amplitudes (rad, or m for the pelvis) and phases of the breathing and swaying.
IDLE_BREATH = {"abdomen_y": (0.03, 0.0), "abdomen_x": (0.02, 1.0), "neck_z": (0.08, 2.0), "neck_y": (-0.03, 0.0),
               "right_shoulder_y": (0.05, 0.5), "left_shoulder_y": (0.05, 0.5)}
IDLE_ARM_OUT = 0.03  # rad, shoulders open and close
IDLE_ELBOW = 0.05  # rad
IDLE_PELVIS_BOB = 0.006  # m
IDLE_PELVIS_SWAY = 0.015  # m
IDLE_PELVIS_PITCH = 0.015  # rad


def idle_plan() -> SkillPlan:
    omega = 2 * np.pi / IDLE_BREATH_PERIOD

    def posture(t, swing):
        q = np.tile(rest_pose(), (len(t), 1))
        for name, (amplitude, phase) in IDLE_BREATH.items():
            q[:, dof_index(name)] += amplitude * np.sin(omega * t + phase)
        for side, sign in (("right", -1.0), ("left", 1.0)):
            q[:, dof_index(f"{side}_shoulder_x")] += sign * IDLE_ARM_OUT * (1 + np.sin(omega * t))
            q[:, dof_index(f"{side}_elbow")] -= IDLE_ELBOW * (1 + np.sin(omega * t + 0.8))
        return q

    return SkillPlan(name="idle", duration=IDLE_BREATH_PERIOD, loop=True, rolls=False,
                     pelvis_height=lambda t: STAND_HEIGHT + IDLE_PELVIS_BOB * np.sin(omega * t),
                     pelvis_sway=lambda t: IDLE_PELVIS_SWAY * np.sin(omega * t),
                     pelvis_pitch=lambda t: IDLE_PELVIS_PITCH * np.sin(omega * t + 0.5), posture=posture)


# Pick-up: walk up to the box, crouch, reach, grip. Times in s.
PICKUP_DURATION = 4.6
PICKUP_WALK_DISTANCE = 1.2  # m
PICKUP_WALK = (0.3, 2.5)  # approach starts and stops (minimum-jerk position profile)
PICKUP_STEPS = (0.25, 2.3, 1.0, 0.4)  # first lift-off, last lift-off before, gait period, swing fraction
PICKUP_CROUCH = (2.7, 3.9)
PICKUP_ARMS = (3.0, 4.0)  # the reference arms turn from hanging to holding
PICKUP_REACH = (3.3, 4.1)  # the hands go to the box sides, gripping at the end
# Lift (in place, from the crouched grip to standing with the box) and put down (the reverse, then let go and
# stand up): when the box moves, and when the hands let go.
LIFT_DURATION, LIFT_MOVE = 2.4, (0.3, 1.8)
PUTDOWN_DURATION, PUTDOWN_MOVE, PUTDOWN_RELEASE = 4.2, (0.4, 1.9), (2.0, 2.5)
STAND_UP_TIME = 1.2  # s to stand up after letting go
# The box leaves the ground before it moves toward the body: the vertical part of its move leads the horizontal
# part by this fraction of the move.
BOX_LIFT_LEAD = 0.4


def _between(t: np.ndarray, span: tuple[float, float], profile=min_jerk) -> np.ndarray:
    return profile((t - span[0]) / (span[1] - span[0]))


def pickup_plan() -> SkillPlan:
    dist = PICKUP_WALK_DISTANCE
    t0, t1 = PICKUP_WALK

    def velocity(t):
        s = np.clip((t - t0) / (t1 - t0), 0.0, 1.0)
        forward = dist / (t1 - t0) * 30 * s**2 * (1 - s) ** 2  # derivative of the minimum-jerk profile
        return np.stack([forward, np.zeros(len(t)), np.zeros(len(t))], axis=-1)

    crouch = lambda t: _between(t, PICKUP_CROUCH)  # noqa: E731
    box_centre = np.array([dist + GROUND_BOX_DISTANCE, 0.0, BOX_SIZE[2] / 2])
    last_step = PICKUP_STEPS[1]
    return SkillPlan(
        name="pickup", duration=PICKUP_DURATION, weight=BOX_SKILL_WEIGHT, velocity=velocity,
        swings=periodic_swings(*PICKUP_STEPS), stance_time=PICKUP_STEPS[2] * (1 - PICKUP_STEPS[3]),
        stance_half_width=lambda t: np.where(t > last_step, LIFT_STANCE_HALF_WIDTH, STANCE_HALF_WIDTH),
        toe_out=lambda t: np.where(t > last_step, CROUCH_TOE_OUT, TOE_OUT),
        pelvis_height=lambda t: WALK_HEIGHT + (CROUCH_HEIGHT - WALK_HEIGHT) * crouch(t),
        pelvis_back=lambda t: CROUCH_BACK * crouch(t), pelvis_pitch=lambda t: CROUCH_PELVIS_PITCH * crouch(t),
        posture=crouch_posture(crouch, lambda t: _between(t, PICKUP_ARMS, smooth_step)),
        box=lambda t, rp, yaw, rq: (np.tile(box_centre, (len(t), 1)), np.zeros(len(t))),
        grip=lambda t: _between(t, PICKUP_REACH, smooth_step),
    )


def _crouch_with_box(name: str, rising: bool, duration: float, move: tuple[float, float],
                     release: tuple[float, float] | None) -> SkillPlan:
    """Lift (rising) or put down (not rising) the box in place: crouched <-> standing, box ground <-> carried."""

    def crouch(t):
        s = _between(t, move)
        out = 1 - s if rising else s
        if release is not None:  # stand back up after letting go
            out = out * (1 - _between(t, (release[1], release[1] + STAND_UP_TIME)))
        return out

    ground = np.array([GROUND_BOX_DISTANCE, 0.0, BOX_SIZE[2] / 2])
    carry = carried_box()

    def box(t, root_pos, path_yaw, root_quat):
        held, yaw = carry(t, root_pos, path_yaw, root_quat)
        up = _between(t, move) if rising else 1 - _between(t, move)
        stretched = up * (1 + BOX_LIFT_LEAD)
        s_z = smooth_step(stretched if rising else stretched - BOX_LIFT_LEAD)
        s_xy = smooth_step(stretched - BOX_LIFT_LEAD if rising else stretched)
        pos = ground + (held - ground) * np.stack([s_xy, s_xy, s_z], axis=-1)
        if not rising:  # once put down, the box stays on the ground
            pos[t >= move[1]] = ground
        return pos, yaw

    grip = (lambda t: 1 - _between(t, release, smooth_step)) if release else constant(1.0)
    return SkillPlan(
        name=name, duration=duration, weight=BOX_SKILL_WEIGHT, rolls=False,
        stance_half_width=constant(LIFT_STANCE_HALF_WIDTH), toe_out=constant(CROUCH_TOE_OUT),
        pelvis_height=lambda t: STAND_HEIGHT + (CROUCH_HEIGHT - STAND_HEIGHT) * crouch(t),
        pelvis_back=lambda t: CROUCH_BACK * crouch(t), pelvis_pitch=lambda t: CROUCH_PELVIS_PITCH * crouch(t),
        posture=crouch_posture(crouch, grip), box=box, grip=grip,
    )


def skill_plans() -> list[SkillPlan]:
    """The shipped set, in dataset order."""
    walks = {skill.name: locomotion_plan(skill) for skill in LOCOMOTION_SKILLS}
    order = ["idle", "walk_forward_0.8", "walk_forward_1.2", "walk_forward_1.6", "walk_backward", "turn_left",
             "turn_right", "walk_turn_left", "walk_turn_right", "sidestep_left", "sidestep_right", "pickup", "lift",
             "carry_forward", "carry_backward", "putdown"]
    plans = {
        **walks, "idle": idle_plan(), "pickup": pickup_plan(),
        "lift": _crouch_with_box("lift", rising=True, duration=LIFT_DURATION, move=LIFT_MOVE, release=None),
        "putdown": _crouch_with_box("putdown", rising=False, duration=PUTDOWN_DURATION, move=PUTDOWN_MOVE,
                                    release=PUTDOWN_RELEASE),
    }
    assert sorted(order) == sorted(plans), "every skill appears once in the dataset order"
    return [plans[name] for name in order]


def skill_names() -> list[str]:
    return [p.name for p in skill_plans()]


def generate_clip(name: str) -> MotionClip:
    plans = {p.name: p for p in skill_plans()}
    if name not in plans:
        raise KeyError(f"unknown skill {name!r}; the generator makes {', '.join(plans)}")
    return synthesize(plans[name])


def _write_dataset(path: Path, entries: list[tuple[str, float]], about: str) -> Path:
    return write_dataset(path, entries, [about, "Made by coohoi.motion.generator (`coohoi motion generate`); do not "
                                                "edit by hand."])


def generate_all(out_dir: str | Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Write every clip (or only `names`) as `<name>.npz`; for the full set also dataset.yaml (every clip, weights as
    in the published set: pick-up and carry 1.5, the rest 1.0), locomotion.yaml (the clips without the box) and
    walking.yaml (those of them that travel).
    Returns the paths written."""
    from coohoi.assets import ASSET_DIR

    out = Path(out_dir) if out_dir is not None else ASSET_DIR / "motions"
    out.mkdir(parents=True, exist_ok=True)
    plans = skill_plans()
    if names is not None:
        unknown = sorted(set(names) - {p.name for p in plans})
        if unknown:
            raise KeyError(f"unknown skills {unknown}; the generator makes {', '.join(p.name for p in plans)}")
        plans = [p for p in plans if p.name in names]
    written = []
    for plan in plans:
        path = out / f"{plan.name}.npz"
        synthesize(plan).save(path)
        written.append(path)
    if names is None:
        written.append(_write_dataset(out / DATASET_FILE, [(f"{p.name}.npz", p.weight) for p in plans],
                                     "Every reference clip, with its AMP sampling weight."))
        written.append(_write_dataset(out / LOCOMOTION_DATASET_FILE,
                                     [(f"{p.name}.npz", p.weight) for p in plans if p.box is None],
                                     "The locomotion clips (no box), for locomotion-only AMP."))
        walking = set(walking_skill_names())
        written.append(_write_dataset(out / WALKING_DATASET_FILE,
                                     [(f"{p.name}.npz", p.weight) for p in plans if p.name in walking],
                                     "The locomotion clips that travel (no idle, no turning on the spot, no box)."))
    return written


def walking_skill_names() -> list[str]:
    """The locomotion skills without the box whose root travels (forward, backward or sideways)."""
    return [s.name for s in LOCOMOTION_SKILLS if not s.carry and (s.forward or s.leftward)]


if __name__ == "__main__":
    for p in generate_all():
        print(p)
