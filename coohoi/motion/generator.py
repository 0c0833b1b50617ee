"""The project's own reference motions: kinematic keyframes, planned footsteps and whole-body IK.

Every clip is made the same way. A skill describes, as functions of time, the root's planned path (velocities),
when each foot swings, the pelvis height and lean, a reference pose for the joints that no target pins down (arm
swing, spine, head), and, for the box skills, the box's trajectory and when the hands grip it. From that:

1. footsteps are placed where the planned root will be at the middle of each stance (feet fixed while in stance,
   heel and toe rolls for longer strides, smooth swing arcs in between);
2. the pelvis sways toward the supporting foot, turns with the stepping legs, and is lowered wherever a leg
   could not reach its foot;
3. IK (coohoi.motion.ik) solves each frame: feet to their poses, hands to the box sides while gripping.

Nothing is random, so the same code writes the same clips. `generate_all(out_dir)` writes every clip and a
dataset.yaml listing them with sampling weights; `coohoi motion generate` calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from coohoi import humanoid as hum
from coohoi.motion.clip import MotionClip
from coohoi.motion.gait import FootGeometry, foot_trajectory, min_jerk, rot_z, smooth_step, stances_from_swings
from coohoi.motion.ik import BodyTarget, HumanoidIK

FPS = 30.0
# Plans extend this far (s) beyond both ends of a clip so that smoothing and steps in progress are well defined.
PLAN_PAD = 2.0
DATASET_FILE = "dataset.yaml"
DEFAULT_WEIGHT = 1.0
BOX_SKILL_WEIGHT = 1.5  # pickup and carry clips, as in the published set

# The carried box: the published single-agent box, a 0.5 m cube.
BOX_SIZE = np.array([0.5, 0.5, 0.5])
HAND_RADIUS = 0.04
GRIP_SQUEEZE = 0.005  # hand centres sit this much closer than touching, pressing on the sides
# Box held for carrying, relative to the pelvis in its heading frame: in front of the torso, hands at ~1 m.
CARRY_BOX_OFFSET = np.array([0.37, 0.0, 0.13])
# Box on the ground this far (centre, m) ahead of the final stance line in the pick-up and put-down clips.
GROUND_BOX_DISTANCE = 0.55

# Standing and walking.
STANCE_HALF_WIDTH = 0.09  # lateral offset of each ankle from the planned path
TOE_OUT = 0.07  # rad, feet turned outward
STAND_HEIGHT = 0.875  # pelvis height when standing at ease
WALK_HEIGHT = 0.88  # preferred pelvis height while walking; lowered where the legs cannot reach
LEG_REACH_FRACTION = 0.99  # hip-to-ankle distance never exceeds this fraction of thigh + shin
REACH_LIMITING_SOLE_HEIGHT = 0.08  # swing feet lower than this (m) also limit the pelvis height
SWING_CLEARANCE = 0.07  # swing foot lift (m) at mid-swing
SWAY_GAIN = 0.3  # fraction of the way the pelvis moves toward the supporting foot's side
SWAY_SMOOTHING = 0.12  # s (Gaussian sigma)
HEIGHT_SMOOTHING = 0.05  # s (Gaussian sigma) for the reach-limited pelvis height
PELVIS_TWIST_GAIN = 0.15  # rad of pelvis yaw per metre of fore-aft foot separation
ARM_SWING_GAIN = 0.45  # rad of shoulder flexion per metre of fore-aft foot separation
HEEL_STRIKE_GAIN = 0.35  # rad of heel-strike / toe-off pitch per metre of root travel over the stance
MAX_HEEL_STRIKE = 0.25
MAX_TOE_OFF = 0.45
FORWARD_LEAN_PER_SPEED = 0.04  # rad of trunk lean per m/s
# Narrower ranges for the IK than the joints allow. Shoulders: with the arm pointing straight ahead of the torso
# (shoulder_y = -90 deg) the x and z hinges line up, and a solver free to use the whole range flips between
# Euler branches there (in a crouch the hanging arms point just that way); a narrow x keeps one branch.
IK_RANGES = {"right_shoulder_x": (-1.2, 0.6), "left_shoulder_x": (-0.6, 1.2),
             "right_shoulder_z": (-1.2, 1.2), "left_shoulder_z": (-1.2, 1.2)}
IDLE_BREATH_PERIOD = 4.0  # s


def _dof(name: str) -> int:
    return hum.DOF_NAMES.index(name)


def rest_pose() -> np.ndarray:
    """Relaxed standing angles: arms hanging slightly away from the body, knees soft."""
    q = np.zeros(hum.NUM_DOFS)
    for name, value in (("right_shoulder_x", -0.12), ("left_shoulder_x", 0.12), ("right_elbow", -0.25),
                        ("left_elbow", -0.25), ("right_hip_y", -0.1), ("left_hip_y", -0.1), ("right_knee", 0.2),
                        ("left_knee", 0.2), ("right_ankle_y", -0.1), ("left_ankle_y", -0.1)):
        q[_dof(name)] = value
    return q


def carry_arm_pose() -> np.ndarray:
    """Reference arm angles while holding the box (IK moves the hands onto its sides from here)."""
    q = np.zeros(hum.NUM_DOFS)
    for name, value in (("right_shoulder_x", -0.25), ("left_shoulder_x", 0.25), ("right_shoulder_y", -0.9),
                        ("left_shoulder_y", -0.9), ("right_shoulder_z", 0.3), ("left_shoulder_z", -0.3),
                        ("right_elbow", -0.6), ("left_elbow", -0.6)):
        q[_dof(name)] = value
    return q


ARM_DOFS = np.array([_dof(n) for n in hum.DOF_NAMES if "shoulder" in n or "elbow" in n])
UPPER_BODY_DOFS = np.array([_dof(n) for n in hum.DOF_NAMES if n.startswith(("abdomen", "neck", "right_sh", "left_sh",
                                                                               "right_el", "left_el"))])


@dataclass
class SkillPlan:
    """What a skill prescribes; every callable takes an array of times (s) and returns one value per time."""

    name: str
    duration: float  # s; the clip has round(duration * FPS) + 1 frames, or round(duration * FPS) for a loop
    loop: bool = False
    weight: float = DEFAULT_WEIGHT
    # Planned path in the heading frame: forward and leftward speed (m/s), turn rate (rad/s).
    velocity: Callable[[np.ndarray], np.ndarray] = lambda t: np.zeros((len(t), 3))
    # Swing intervals (lift-off, landing) in s, per foot.
    swings: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: {"right": [], "left": []})
    stance_time: float = 0.6  # typical stance duration (s), for open-ended stances
    stance_half_width: Callable[[np.ndarray], np.ndarray] = lambda t: np.full(len(t), STANCE_HALF_WIDTH)
    rolls: bool = True  # heel strike and toe off for strides long enough
    pelvis_height: Callable[[np.ndarray], np.ndarray] = lambda t: np.full(len(t), WALK_HEIGHT)
    pelvis_back: Callable[[np.ndarray], np.ndarray] = lambda t: np.zeros(len(t))  # pelvis pushed back (m)
    pelvis_pitch: Callable[[np.ndarray], np.ndarray] = lambda t: np.zeros(len(t))  # forward tilt (rad)
    pelvis_sway: Callable[[np.ndarray], np.ndarray] | None = None  # extra lateral offset (m)
    # Reference joint angles [T, 28] given the times and the arm-swing signal (fore-aft foot separation, m).
    posture: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    # Box centre [T, 3] and yaw [T] given the times and the computed root pose; None for skills without a box.
    box: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    # Grip weight in [0, 1] per time: 1 = hands on the box sides; in between the hands blend toward them.
    grip: Callable[[np.ndarray], np.ndarray] = lambda t: np.zeros(len(t))


# ----------------------------------------------------------------------------------------------------------------
# Planning helpers


def periodic_swings(t_from: float, t_to: float, period: float, swing_fraction: float, first: str = "right",
                    second_delay: float | None = None) -> dict[str, list[tuple[float, float]]]:
    """Alternating swings: `first` lifts at t_from, t_from + period, ...; the other foot `second_delay` later
    (half a period by default). Only swings that start before t_to are kept."""
    other = "left" if first == "right" else "right"
    second_delay = period / 2 if second_delay is None else second_delay
    swing = swing_fraction * period
    out: dict[str, list[tuple[float, float]]] = {first: [], other: []}
    for foot, delay in ((first, 0.0), (other, second_delay)):
        t = t_from + delay
        while t < t_to:
            out[foot].append((t, t + swing))
            t += period
    return out


def constant(value: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: np.full(len(t), float(value))


def ramp(t: np.ndarray, t0: float, t1: float, v0: float, v1: float) -> np.ndarray:
    """Smooth (minimum-jerk) change from v0 at t0 to v1 at t1."""
    return v0 + (v1 - v0) * min_jerk((np.asarray(t) - t0) / (t1 - t0))


def keyframes(t: np.ndarray, times: list[float], values: list[float]) -> np.ndarray:
    """Piecewise minimum-jerk interpolation through (time, value) keys, constant outside."""
    out = np.full(len(t), float(values[0]))
    for (ta, va), (tb, vb) in zip(zip(times, values), zip(times[1:], values[1:])):
        sel = t >= ta
        out[sel] = ramp(t[sel], ta, tb, va, vb) if tb > ta else vb
    return out


def smooth_below(values: np.ndarray, sigma: float, rounds: int = 4) -> np.ndarray:
    """A smooth curve that stays (nearly) below `values`: repeatedly take the lower of the curve and its blur."""
    out = values.copy()
    for _ in range(rounds):
        out = np.minimum(out, gaussian_filter1d(out, sigma, mode="nearest"))
    return gaussian_filter1d(out, sigma / 2, mode="nearest")


def yaw_quat(yaw: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(yaw / 2), np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2)], axis=-1)


def euler_zyx_quat(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Rz(yaw) Ry(pitch) Rx(roll) as (w, x, y, z)."""
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    return np.stack([cy * cp * cr + sy * sp * sr, cy * cp * sr - sy * sp * cr,
                     cy * sp * cr + sy * cp * sr, sy * cp * cr - cy * sp * sr], axis=-1)


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


@dataclass
class Path2D:
    """The planned root path on a regular time grid: position (x, y) and heading."""

    times: np.ndarray
    xy: np.ndarray
    yaw: np.ndarray

    @classmethod
    def integrate(cls, times: np.ndarray, velocity: np.ndarray) -> "Path2D":
        dt = times[1] - times[0]
        yaw_rate = velocity[:, 2]
        yaw = np.concatenate([[0.0], np.cumsum((yaw_rate[1:] + yaw_rate[:-1]) / 2 * dt)])
        world_vel = np.stack([velocity[:, 0] * np.cos(yaw) - velocity[:, 1] * np.sin(yaw),
                              velocity[:, 0] * np.sin(yaw) + velocity[:, 1] * np.cos(yaw)], axis=-1)
        xy = np.concatenate([np.zeros((1, 2)), np.cumsum((world_vel[1:] + world_vel[:-1]) / 2 * dt, axis=0)])
        zero = int(np.argmin(np.abs(times)))  # the clip starts at the origin, facing +x
        xy = xy - xy[zero]
        c, s = np.cos(-yaw[zero]), np.sin(-yaw[zero])
        xy = xy @ np.array([[c, s], [-s, c]])
        return cls(times=times, xy=xy, yaw=yaw - yaw[zero])

    def at(self, t: float) -> tuple[np.ndarray, float]:
        t = float(np.clip(t, self.times[0], self.times[-1]))
        return (np.array([np.interp(t, self.times, self.xy[:, 0]), np.interp(t, self.times, self.xy[:, 1])]),
                float(np.interp(t, self.times, self.yaw)))


# ----------------------------------------------------------------------------------------------------------------
# Synthesis


@dataclass
class _Kinematics:
    """The humanoid model bits the generator needs, read once from the MJCF."""

    ik: HumanoidIK
    foot: FootGeometry
    hip_offsets: dict[str, np.ndarray]  # hip joint position in the pelvis frame
    leg_length: float

    @classmethod
    def load(cls) -> "_Kinematics":
        ik = HumanoidIK(ranges=IK_RANGES)
        m = ik.model
        hips = {side: m.body(f"{side}_thigh").pos.copy() for side in ("right", "left")}
        leg = float(np.linalg.norm(m.body("right_shin").pos) + np.linalg.norm(m.body("right_foot").pos))
        return cls(ik=ik, foot=FootGeometry.from_model(m), hip_offsets=hips, leg_length=leg)


_KINEMATICS: _Kinematics | None = None


def _kinematics() -> _Kinematics:
    global _KINEMATICS
    if _KINEMATICS is None:
        _KINEMATICS = _Kinematics.load()
    return _KINEMATICS


def frame_times(plan: SkillPlan) -> np.ndarray:
    steps = int(round(plan.duration * FPS))
    return np.arange(steps if plan.loop else steps + 1) / FPS


@dataclass
class PlannedMotion:
    """Everything but the joint angles, on the padded time grid; `crop` selects the clip's frames."""

    plan: SkillPlan
    grid: np.ndarray
    crop: slice
    feet: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # side -> (ankle pos, rotation, in stance)
    root_pos: np.ndarray
    root_quat: np.ndarray
    posture: np.ndarray
    height_cap: np.ndarray  # highest pelvis height the legs allow
    box_pos: np.ndarray | None
    box_yaw: np.ndarray | None
    grip: np.ndarray


def plan_motion(plan: SkillPlan) -> PlannedMotion:
    """Steps 1 and 2 of the module docstring: footsteps, then the pelvis."""
    kin = _kinematics()
    num_frames = len(frame_times(plan))
    pad = int(round(PLAN_PAD * FPS))
    grid = np.arange(-pad, num_frames + pad) / FPS
    path = Path2D.integrate(grid, plan.velocity(grid))

    feet = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        def place(mid, start, end, sign=sign):
            xy, yaw = path.at(mid)
            half_width = float(plan.stance_half_width(np.array([mid]))[0])
            xy = xy + rot_z(yaw)[:2, :2] @ np.array([0.0, sign * half_width])
            heel = toe = 0.0
            if plan.rolls and end - start < 10:
                (xa, _), (xb, _) = path.at(start), path.at(end)
                travel = float(np.dot(xb - xa, [np.cos(yaw), np.sin(yaw)]))
                heel = float(np.clip(HEEL_STRIKE_GAIN * travel, 0.0, MAX_HEEL_STRIKE))
                toe = float(np.clip(1.6 * HEEL_STRIKE_GAIN * travel, 0.0, MAX_TOE_OFF))
            return xy, yaw + sign * TOE_OUT, heel, toe

        stances = stances_from_swings(plan.swings[side], place, plan.stance_time)
        feet[side] = foot_trajectory(stances, grid, kin.foot, SWING_CLEARANCE)

    heading = np.stack([np.cos(path.yaw), np.sin(path.yaw)], axis=-1)
    lateral = np.stack([-heading[:, 1], heading[:, 0]], axis=-1)
    rel = {side: feet[side][0][:, :2] - path.xy for side in feet}
    fore_aft = np.einsum("ij,ij->i", rel["left"] - rel["right"], heading)  # > 0: left foot ahead
    stance_r, stance_l = feet["right"][2].astype(float), feet["left"][2].astype(float)
    support = (stance_r[:, None] * rel["right"] + stance_l[:, None] * rel["left"]) / np.maximum(
        stance_r + stance_l, 1e-9)[:, None]
    sway = SWAY_GAIN * gaussian_filter1d(np.einsum("ij,ij->i", support, lateral), SWAY_SMOOTHING * FPS, mode="nearest")
    if plan.pelvis_sway is not None:
        sway = sway + plan.pelvis_sway(grid)
    root_xy = path.xy + sway[:, None] * lateral - plan.pelvis_back(grid)[:, None] * heading
    speed = np.linalg.norm(np.gradient(path.xy, axis=0) * FPS, axis=-1)
    twist = -PELVIS_TWIST_GAIN * gaussian_filter1d(fore_aft, 0.05 * FPS, mode="nearest")
    pitch = plan.pelvis_pitch(grid) + FORWARD_LEAN_PER_SPEED * speed * 0.5
    root_quat = euler_zyx_quat(path.yaw + twist, pitch, np.zeros_like(pitch))
    root_rot = np.array([quat_to_mat(q) for q in root_quat])

    # Lower the pelvis wherever a leg would have to stretch past its reach.
    height = plan.pelvis_height(grid).copy()
    reach = LEG_REACH_FRACTION * kin.leg_length
    cap = np.full(len(grid), np.inf)
    for side in feet:
        hip_rel = root_rot @ kin.hip_offsets[side]
        ankle = feet[side][0]
        horiz = np.linalg.norm(root_xy + hip_rel[:, :2] - ankle[:, :2], axis=-1)
        side_cap = ankle[:, 2] - hip_rel[:, 2] + np.sqrt(np.maximum(reach**2 - horiz**2, 0.0))
        # Only feet on or near the ground limit the pelvis; a foot higher in its swing gets as close as it can.
        sole_height = np.min(np.einsum("tij,kj->tki", feet[side][1], kin.foot.sole_corners())[..., 2], axis=1)
        near_ground = feet[side][2] | (sole_height + ankle[:, 2] < REACH_LIMITING_SOLE_HEIGHT)
        cap = np.minimum(cap, np.where(near_ground, side_cap, np.inf))
    root_pos = np.concatenate([root_xy, smooth_below(np.minimum(height, cap), HEIGHT_SMOOTHING * FPS)[:, None]], axis=-1)

    swing_signal = gaussian_filter1d(fore_aft, 0.05 * FPS, mode="nearest")
    posture = plan.posture(grid, swing_signal) if plan.posture is not None else np.tile(rest_pose(), (len(grid), 1))
    box_pos = box_yaw = None
    if plan.box is not None:
        box_pos, box_yaw = plan.box(grid, root_pos, path.yaw, root_quat)
    return PlannedMotion(plan=plan, grid=grid, crop=slice(pad, pad + num_frames), feet=feet, root_pos=root_pos,
                         root_quat=root_quat, posture=posture, height_cap=cap, box_pos=box_pos, box_yaw=box_yaw,
                         grip=plan.grip(grid))


def solve_motion(pm: PlannedMotion) -> MotionClip:
    """Step 3: IK for every clip frame, then the clip."""
    kin = _kinematics()
    crop, feet, grip = pm.crop, pm.feet, pm.grip
    dof = np.zeros((crop.stop - crop.start, hum.NUM_DOFS))
    q = pm.posture[crop.start].copy()
    q_grip = None  # last solution with the hands on the box
    for i, g in enumerate(range(crop.start, crop.stop)):
        feet_targets = [BodyTarget(f"{side}_foot", feet[side][0][g], feet[side][1][g]) for side in ("right", "left")]
        if pm.box_pos is None or grip[g] <= 0:
            q, _ = kin.ik.solve(pm.root_pos[g], pm.root_quat[g], q, feet_targets, pm.posture[g])
            q_grip = None
        else:
            hands = [BodyTarget(f"{side}_hand", grip_point(pm.box_pos[g], pm.box_yaw[g], sign))
                     for side, sign in (("right", -1.0), ("left", 1.0))]
            q_grip, _ = kin.ik.solve(pm.root_pos[g], pm.root_quat[g], q if q_grip is None else q_grip,
                                     feet_targets + hands, pm.posture[g])
            q = q_grip.copy()
            if grip[g] < 1:  # reaching for the box or letting go: upper body part way from its free pose
                q[UPPER_BODY_DOFS] += (1 - grip[g]) * (pm.posture[g][UPPER_BODY_DOFS] - q_grip[UPPER_BODY_DOFS])
        dof[i] = q

    gripping = (grip[crop] >= 1.0).astype(np.float64)
    contacts = np.stack([gripping, gripping, feet["right"][2][crop], feet["left"][2][crop]], axis=-1).astype(np.float64)
    plan = pm.plan
    clip = MotionClip(fps=FPS, root_pos=pm.root_pos[crop], root_quat=pm.root_quat[crop], dof_pos=dof, loop=plan.loop,
                      name=plan.name, contacts=contacts)
    if pm.box_pos is not None:
        clip.object_pos = pm.box_pos[crop]
        clip.object_quat = yaw_quat(pm.box_yaw[crop])
        clip.object_size = BOX_SIZE.copy()
    return clip.validate(plan.name)


def synthesize(plan: SkillPlan) -> MotionClip:
    """Turn a skill plan into a clip (see the module docstring for the steps)."""
    return solve_motion(plan_motion(plan))


def grip_point(box_centre: np.ndarray, box_yaw: float, sign: float) -> np.ndarray:
    """Hand centre on the box's left (sign +1) or right (-1) side: mid-height, mid-depth, just touching."""
    offset = BOX_SIZE[1] / 2 + HAND_RADIUS - GRIP_SQUEEZE
    return box_centre + sign * offset * np.array([-np.sin(box_yaw), np.cos(box_yaw), 0.0])


# ----------------------------------------------------------------------------------------------------------------
# Postures

CROUCH_HEIGHT = 0.6  # pelvis height at the bottom of the pick-up / put-down crouch
CROUCH_BACK = 0.18  # pelvis pushed back (m) while crouching
CROUCH_PELVIS_PITCH = 1.1  # rad (hips flexed: a stoop-and-squat lift)
CROUCH_SPINE_PITCH = 0.6  # rad, abdomen reference
CROUCH_KNEES_OUT = 0.3  # rad of hip abduction and outward rotation in the reference, knees apart
LIFT_STANCE_HALF_WIDTH = 0.15
CARRY_HALF_WIDTH = 0.1


def walking_posture(lean: float = 0.0, arm_gain: float = ARM_SWING_GAIN, base: np.ndarray | None = None):
    """Reference pose for walking: arms swing opposite the legs, spine counter-twists the pelvis."""
    base_pose = rest_pose() if base is None else base

    def posture(t: np.ndarray, swing: np.ndarray) -> np.ndarray:
        q = np.tile(base_pose, (len(t), 1))
        q[:, _dof("right_shoulder_y")] += -arm_gain * swing
        q[:, _dof("left_shoulder_y")] += arm_gain * swing
        q[:, _dof("right_elbow")] -= 0.4 * np.maximum(arm_gain * swing, 0.0)
        q[:, _dof("left_elbow")] -= 0.4 * np.maximum(-arm_gain * swing, 0.0)
        q[:, _dof("abdomen_z")] += 0.8 * PELVIS_TWIST_GAIN * swing
        q[:, _dof("abdomen_y")] += lean
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
        crouched[_dof("abdomen_y")] = CROUCH_SPINE_PITCH
        crouched[_dof("neck_y")] = -0.35
        for side, sign in (("right", -1.0), ("left", 1.0)):
            crouched[_dof(f"{side}_hip_x")] = sign * CROUCH_KNEES_OUT
            crouched[_dof(f"{side}_hip_z")] = sign * CROUCH_KNEES_OUT
        q = standing + (crouched - standing) * c
        holding = with_arms(q[0], carry_arm_pose())
        return q + (np.tile(holding, (len(t), 1)) - q) * a * np.isin(np.arange(hum.NUM_DOFS), ARM_DOFS)

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

def _walk(name: str, speed: float, period: float, duration: float = 4.0, swing_fraction: float = 0.38,
          lateral: float = 0.0, turn: float = 0.0, rolls: bool = True, **kwargs) -> SkillPlan:
    swings = periodic_swings(-PLAN_PAD - period, duration + PLAN_PAD + period, period, swing_fraction,
                             first=kwargs.pop("first", "right"), second_delay=kwargs.pop("second_delay", None))
    return SkillPlan(name=name, duration=duration, velocity=lambda t: np.tile([speed, lateral, turn], (len(t), 1)),
                     swings=swings, stance_time=period * (1 - swing_fraction), rolls=rolls, **kwargs)


def idle_plan() -> SkillPlan:
    omega = 2 * np.pi / IDLE_BREATH_PERIOD

    def posture(t, swing):
        q = np.tile(rest_pose(), (len(t), 1))
        q[:, _dof("abdomen_y")] += 0.03 * np.sin(omega * t)
        q[:, _dof("abdomen_x")] += 0.02 * np.sin(omega * t + 1.0)
        q[:, _dof("neck_z")] += 0.08 * np.sin(omega * t + 2.0)
        q[:, _dof("neck_y")] += -0.03 * np.sin(omega * t)
        for side, sign in (("right", -1.0), ("left", 1.0)):
            q[:, _dof(f"{side}_shoulder_y")] += 0.05 * np.sin(omega * t + 0.5)
            q[:, _dof(f"{side}_shoulder_x")] += sign * 0.03 * (1 + np.sin(omega * t))
            q[:, _dof(f"{side}_elbow")] += -0.05 * (1 + np.sin(omega * t + 0.8))
        return q

    return SkillPlan(name="idle", duration=IDLE_BREATH_PERIOD, loop=True, rolls=False,
                     pelvis_height=lambda t: STAND_HEIGHT + 0.006 * np.sin(omega * t),
                     pelvis_sway=lambda t: 0.015 * np.sin(omega * t),
                     pelvis_pitch=lambda t: 0.015 * np.sin(omega * t + 0.5), posture=posture)


PICKUP_WALK_DISTANCE = 1.2
PICKUP_WALK = (0.3, 2.5)  # s, when the approach starts and stops


def pickup_plan() -> SkillPlan:
    t0, t1 = PICKUP_WALK
    dist = PICKUP_WALK_DISTANCE

    def velocity(t):
        s = np.clip((t - t0) / (t1 - t0), 0.0, 1.0)
        return np.stack([dist / (t1 - t0) * 30 * s**2 * (1 - s) ** 2, np.zeros(len(t)), np.zeros(len(t))], axis=-1)

    crouch = lambda t: min_jerk((t - 2.7) / 1.2)  # noqa: E731
    grip = lambda t: smooth_step((t - 3.3) / 0.8)  # noqa: E731
    box_centre = np.array([dist + GROUND_BOX_DISTANCE, 0.0, BOX_SIZE[2] / 2])
    return SkillPlan(
        name="pickup", duration=4.6, weight=BOX_SKILL_WEIGHT, velocity=velocity,
        swings=periodic_swings(0.25, 2.3, 1.0, 0.4), stance_time=0.6,
        stance_half_width=lambda t: np.where(t > 2.3, LIFT_STANCE_HALF_WIDTH, STANCE_HALF_WIDTH),
        pelvis_height=lambda t: WALK_HEIGHT + (CROUCH_HEIGHT - WALK_HEIGHT) * crouch(t),
        pelvis_back=lambda t: CROUCH_BACK * crouch(t), pelvis_pitch=lambda t: CROUCH_PELVIS_PITCH * crouch(t),
        posture=crouch_posture(crouch, lambda t: smooth_step((t - 3.0) / 1.0)),
        box=lambda t, rp, yaw, rq: (np.tile(box_centre, (len(t), 1)), np.zeros(len(t))), grip=grip,
    )


def _crouch_with_box(name: str, rising: bool, duration: float, move: tuple[float, float], release: tuple | None):
    """Lift (rising) or put down (not rising) the box in place: crouched <-> standing, box ground <-> carried."""
    a, b = move

    def crouch(t):
        s = min_jerk((t - a) / (b - a))
        out = 1 - s if rising else s
        if release is not None:  # stand back up after letting go
            out = out * (1 - min_jerk((t - release[1]) / 1.2))
        return out

    ground = np.array([GROUND_BOX_DISTANCE, 0.0, BOX_SIZE[2] / 2])
    carry = carried_box()

    def box(t, root_pos, path_yaw, root_quat):
        held, yaw = carry(t, root_pos, path_yaw, root_quat)
        s = min_jerk((t - a) / (b - a))
        up = s if rising else 1 - s
        # Rise off the ground before moving in toward the body (and the reverse when putting down).
        s_z = smooth_step(np.clip(up * 1.4, 0, 1)) if rising else smooth_step(np.clip(up * 1.4 - 0.4, 0, 1))
        s_xy = smooth_step(np.clip(up * 1.4 - 0.4, 0, 1)) if rising else smooth_step(np.clip(up * 1.4, 0, 1))
        pos = ground + (held - ground) * np.stack([s_xy, s_xy, s_z], axis=-1)
        if release is not None:  # once put down, the box stays on the ground
            pos[t >= b] = ground
        return pos, yaw

    grip = (lambda t: 1 - smooth_step((t - release[0]) / (release[1] - release[0]))) if release else constant(1.0)
    return SkillPlan(
        name=name, duration=duration, weight=BOX_SKILL_WEIGHT, rolls=False,
        stance_half_width=constant(LIFT_STANCE_HALF_WIDTH),
        pelvis_height=lambda t: STAND_HEIGHT + (CROUCH_HEIGHT - STAND_HEIGHT) * crouch(t),
        pelvis_back=lambda t: CROUCH_BACK * crouch(t), pelvis_pitch=lambda t: CROUCH_PELVIS_PITCH * crouch(t),
        posture=crouch_posture(crouch, lambda t: grip(t)), box=box, grip=grip,
    )


def carry_posture():
    return walking_posture(lean=-0.03, arm_gain=0.0, base=with_arms(rest_pose(), carry_arm_pose()))


def skill_plans() -> list[SkillPlan]:
    """The shipped set, in dataset order."""
    walk_arms = walking_posture(lean=0.03)
    return [
        idle_plan(),
        _walk("walk_forward_0.8", 0.8, 1.1, posture=walk_arms),
        _walk("walk_forward_1.2", 1.2, 0.95, posture=walk_arms),
        _walk("walk_forward_1.6", 1.6, 0.82, posture=walking_posture(lean=0.06, arm_gain=0.55)),
        _walk("walk_backward", -0.7, 1.1, rolls=False, posture=walking_posture(lean=0.05, arm_gain=0.3)),
        _walk("turn_left", 0.0, 1.0, swing_fraction=0.4, turn=1.0, rolls=False, posture=walking_posture(arm_gain=0.2)),
        _walk("turn_right", 0.0, 1.0, swing_fraction=0.4, turn=-1.0, rolls=False, first="left",
              posture=walking_posture(arm_gain=0.2)),
        _walk("sidestep_left", 0.0, 1.0, swing_fraction=0.3, lateral=0.3, rolls=False, first="left",
              second_delay=0.35, stance_half_width=constant(0.12), posture=walking_posture(arm_gain=0.1)),
        _walk("sidestep_right", 0.0, 1.0, swing_fraction=0.3, lateral=-0.3, rolls=False, first="right",
              second_delay=0.35, stance_half_width=constant(0.12), posture=walking_posture(arm_gain=0.1)),
        pickup_plan(),
        _crouch_with_box("lift", rising=True, duration=2.4, move=(0.3, 1.8), release=None),
        _walk("carry_forward", 1.0, 1.05, weight=BOX_SKILL_WEIGHT, stance_half_width=constant(CARRY_HALF_WIDTH),
              posture=carry_posture(), box=carried_box(), grip=constant(1.0)),
        _walk("carry_backward", -0.6, 1.1, rolls=False, weight=BOX_SKILL_WEIGHT,
              stance_half_width=constant(CARRY_HALF_WIDTH), posture=carry_posture(), box=carried_box(),
              grip=constant(1.0)),
        _crouch_with_box("putdown", rising=False, duration=4.2, move=(0.4, 1.9), release=(2.0, 2.4)),
    ]


def skill_names() -> list[str]:
    return [p.name for p in skill_plans()]


def generate_clip(name: str) -> MotionClip:
    plans = {p.name: p for p in skill_plans()}
    if name not in plans:
        raise KeyError(f"unknown skill {name!r}; the generator makes {', '.join(plans)}")
    return synthesize(plans[name])


def write_dataset(out_dir: Path, entries: list[tuple[str, float]]) -> Path:
    lines = ["# Reference motions made by coohoi.motion.generator (`coohoi motion generate`); weights as in the",
             "# published set: pick-up and carry clips 1.5, the rest 1.0.", "clips:"]
    lines += [f"  - {{file: {file}, weight: {weight}}}" for file, weight in entries]
    path = out_dir / DATASET_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


def generate_all(out_dir: str | Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Write every clip (or only `names`) as `<name>.npz` and, for the full set, dataset.yaml; returns the paths."""
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
        written.append(write_dataset(out, [(f"{p.name}.npz", p.weight) for p in plans]))
    return written


if __name__ == "__main__":
    for p in generate_all():
        print(p)
