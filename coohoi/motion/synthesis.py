"""Motion synthesis for the generator: a skill plan (keyframed functions of time) in, a clip out.

1. Footsteps are placed where the planned root will be at the middle of each stance (feet fixed while in stance,
   heel and toe rolls for longer strides, smooth swing arcs in between; coohoi.motion.gait).
2. The pelvis sways toward the supporting foot, turns with the stepping legs, and is lowered wherever a leg could not
   reach its foot.
3. Balance: the pelvis is shifted until the centre of pressure that the motion needs (full inverse dynamics,
   coohoi.motion.quality) lies on the feet on the ground, so that contact forces alone could produce it.
4. IK (coohoi.motion.ik) solves each frame: feet to their poses, hands to the box sides while gripping.

Nothing here is random: the same plan gives the same clip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import solve_banded
from scipy.ndimage import gaussian_filter1d

from coohoi import humanoid as hum
from coohoi.motion.clip import MotionClip
from coohoi.motion.gait import FootGeometry, foot_trajectory, rot_z, stances_from_swings
from coohoi.motion.ik import BodyTarget, HumanoidIK
from coohoi.motion.quality import CARRIED_OBJECT_MASS, ClipMeasure, centre_of_pressure, nearest_in_hull
from coohoi.objects import DEFAULT_SIZE

FPS = 30.0
# Plans extend this far (s) beyond both ends of a clip so that smoothing and steps in progress are well defined.
PLAN_PAD = 2.0
DEFAULT_WEIGHT = 1.0

# The carried box: the scene's default box, the published single-agent 0.5 m cube.
BOX_SIZE = np.array(DEFAULT_SIZE["box"])
HAND_RADIUS = 0.04
GRIP_SQUEEZE = 0.005  # hand centres sit this much closer than touching, pressing on the sides

# Standing and walking.
STANCE_HALF_WIDTH = 0.09  # lateral offset of each ankle from the planned path
TOE_OUT = 0.07  # rad, feet turned outward
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
# Balance (step 3 of the module docstring). Without it a pelvis moving at constant speed while the legs swing needs a
# centre of pressure up to tens of cm off the feet.
GRAVITY = 9.81
BALANCE_ROUNDS = 6  # each round re-solves the IK and the dynamics for the shifted pelvis
BALANCE_MARGIN = 0.02  # m inside the edge of the feet on the ground
BALANCE_STEP = 0.5  # fraction of the first-order shift applied per round
# Arm angle speeds above FLIP_SPEED (rad/s) are spread over frames around them (see _smooth_euler_flips).
FLIP_SPEED = 8.0
FLIP_WINDOW = 6  # frames on each side
FLIP_SMOOTHING = 3.0  # frames (Gaussian sigma)
FLIP_ROUNDS = 4
# Narrower ranges for the IK than the joints allow. Shoulders: with the arm pointing straight ahead of the torso
# (shoulder_y = -90 deg) the x and z hinges line up, and a solver free to use the whole range flips between
# Euler branches there (in a crouch the hanging arms point just that way); a narrow x keeps one branch.
IK_RANGES = {"right_shoulder_x": (-1.2, 0.6), "left_shoulder_x": (-0.6, 1.2),
             "right_shoulder_z": (-1.2, 1.2), "left_shoulder_z": (-1.2, 1.2)}


def dof_index(name: str) -> int:
    return hum.DOF_NAMES.index(name)


def rest_pose() -> np.ndarray:
    """Relaxed standing angles: arms hanging slightly away from the body, knees soft."""
    q = np.zeros(hum.NUM_DOFS)
    for name, value in (("right_shoulder_x", -0.12), ("left_shoulder_x", 0.12), ("right_elbow", -0.25),
                        ("left_elbow", -0.25), ("right_hip_y", -0.1), ("left_hip_y", -0.1), ("right_knee", 0.2),
                        ("left_knee", 0.2), ("right_ankle_y", -0.1), ("left_ankle_y", -0.1)):
        q[dof_index(name)] = value
    return q


ARM_DOFS = np.array([dof_index(n) for n in hum.DOF_NAMES if "shoulder" in n or "elbow" in n])
UPPER_BODY_DOFS = np.array([dof_index(n) for n in hum.DOF_NAMES
                            if n.startswith(("abdomen", "neck", "right_shoulder", "left_shoulder", "right_elbow",
                                             "left_elbow"))])


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
    toe_out: Callable[[np.ndarray], np.ndarray] = lambda t: np.full(len(t), TOE_OUT)  # rad, each foot outward
    # Grip weight in [0, 1] per time: 1 = hands on the box sides; in between, the upper body's angles blend from
    # the reference pose (0) to the gripping solution (1).
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
    measure: ClipMeasure  # inverse dynamics for the balance step

    @classmethod
    def load(cls) -> "_Kinematics":
        ik = HumanoidIK(ranges=IK_RANGES)
        m = ik.model
        hips = {side: m.body(f"{side}_thigh").pos.copy() for side in ("right", "left")}
        leg = float(np.linalg.norm(m.body("right_shin").pos) + np.linalg.norm(m.body("right_foot").pos))
        return cls(ik=ik, foot=FootGeometry.from_model(m), hip_offsets=hips, leg_length=leg, measure=ClipMeasure())


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
    heading: np.ndarray  # planned heading (rad)
    box_pos: np.ndarray | None
    box_yaw: np.ndarray | None
    grip: np.ndarray


def plan_motion(plan: SkillPlan) -> PlannedMotion:
    """Steps 1 to 3 of the module docstring: footsteps, the pelvis, and its balance."""
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
            return xy, yaw + sign * float(plan.toe_out(np.array([mid]))[0]), heel, toe

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
    swing_signal = gaussian_filter1d(fore_aft, 0.05 * FPS, mode="nearest")
    posture = plan.posture(grid, swing_signal) if plan.posture is not None else np.tile(rest_pose(), (len(grid), 1))
    pm = PlannedMotion(plan=plan, grid=grid, crop=slice(pad, pad + num_frames), feet=feet, root_pos=None,
                       root_quat=root_quat, posture=posture, height_cap=None, heading=path.yaw, box_pos=None,
                       box_yaw=None, grip=plan.grip(grid))
    _place_pelvis(pm, root_xy)
    for _ in range(BALANCE_ROUNDS):
        _place_pelvis(pm, pm.root_pos[:, :2] + BALANCE_STEP * balance_shift(pm))
    return pm


def _place_pelvis(pm: PlannedMotion, root_xy: np.ndarray) -> None:
    """Set the pelvis path from its ground track: its height (lowered wherever a leg would have to stretch past its
    reach) and the box that depends on it."""
    kin, plan, feet, grid = _kinematics(), pm.plan, pm.feet, pm.grid
    root_rot = np.array([quat_to_mat(q) for q in pm.root_quat])
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
    root_z = smooth_below(np.minimum(height, cap), HEIGHT_SMOOTHING * FPS)
    pm.root_pos = np.concatenate([root_xy, root_z[:, None]], axis=-1)
    pm.height_cap = cap
    if plan.box is not None:
        pm.box_pos, pm.box_yaw = plan.box(grid, pm.root_pos, pm.heading, pm.root_quat)


def balance_shift(pm: PlannedMotion) -> np.ndarray:
    """How far [G, 2] to move the pelvis so that a centre of pressure the motion needs (full inverse dynamics,
    coohoi.motion.quality) off the feet on the ground comes BALANCE_MARGIN inside their edge.

    To first order a shift s of the centre of mass moves the centre of pressure by s - s'' / omega^2
    (omega^2 = g / height), so s solves (omega^2 - D2) s = omega^2 e for the error e, D2 being the second
    difference with reflecting ends; the grid's ends lie far outside the clip, so their boundary does not reach it."""
    kin = _kinematics()
    clip = MotionClip(fps=FPS, root_pos=pm.root_pos, root_quat=pm.root_quat, dof_pos=grid_pose(pm), loop=False,
                      name=pm.plan.name)
    if pm.box_pos is not None:
        clip.object_pos, clip.object_quat, clip.object_size = pm.box_pos, yaw_quat(pm.box_yaw), BOX_SIZE
        clip.contacts = np.repeat((pm.grip >= 1.0)[:, None], 4, axis=1).astype(np.float64)
    cop, support = centre_of_pressure(clip, kin.measure, object_mass=CARRIED_OBJECT_MASS)
    error = np.zeros((len(pm.grid), 2))
    for g in range(len(pm.grid)):
        if np.isnan(cop[g, 0]) or len(support[g]) == 0:
            continue
        edge = nearest_in_hull(support[g], cop[g])
        inward = support[g].mean(axis=0) - edge
        target = edge + inward * min(1.0, BALANCE_MARGIN / max(float(np.linalg.norm(inward)), 1e-9))
        if not np.allclose(edge, cop[g]):
            error[g] = target - cop[g]
    omega2 = GRAVITY / np.maximum(pm.root_pos[:, 2], 0.3)
    n, inv_dt2 = len(pm.grid), FPS * FPS
    banded = np.zeros((3, n))
    banded[0, 1:] = -inv_dt2
    banded[2, :-1] = -inv_dt2
    banded[1] = omega2 + 2.0 * inv_dt2
    banded[1, [0, -1]] = omega2[[0, -1]] + inv_dt2
    return solve_banded((1, 1), banded, omega2[:, None] * error)


def grid_pose(pm: PlannedMotion) -> np.ndarray:
    """Joint angles [G, 28] on the whole padded grid for the current pelvis path (IK, as in step 4 but without
    the arm smoothing)."""
    ik = _kinematics().ik
    dof = np.zeros((len(pm.grid), hum.NUM_DOFS))
    q = pm.posture[0].copy()
    for g in range(len(pm.grid)):
        q, _ = ik.solve(pm.root_pos[g], pm.root_quat[g], q, frame_targets(pm, g), pm.posture[g])
        dof[g] = q
    return dof


def solve_motion(pm: PlannedMotion) -> MotionClip:
    """Step 4: IK for every clip frame, then the clip."""
    kin = _kinematics()
    crop, feet, grip = pm.crop, pm.feet, pm.grip
    dof = np.zeros((crop.stop - crop.start, hum.NUM_DOFS))
    q = pm.posture[crop.start].copy()
    q_grip = None  # last solution with the hands on the box
    for i, g in enumerate(range(crop.start, crop.stop)):
        targets = frame_targets(pm, g)
        if not any(t.body.endswith("_hand") for t in targets):
            q, _ = kin.ik.solve(pm.root_pos[g], pm.root_quat[g], q, targets, pm.posture[g])
            q_grip = None
        else:
            q_grip, _ = kin.ik.solve(pm.root_pos[g], pm.root_quat[g], q if q_grip is None else q_grip, targets,
                                     pm.posture[g])
            q = q_grip.copy()
            if grip[g] < 1:  # reaching for the box or letting go: upper body part way from its free pose
                q[UPPER_BODY_DOFS] += (1 - grip[g]) * (pm.posture[g][UPPER_BODY_DOFS] - q_grip[UPPER_BODY_DOFS])
        dof[i] = q
    for _ in range(FLIP_ROUNDS):
        dof = _smooth_euler_flips(pm, dof)

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


def frame_targets(pm: PlannedMotion, g: int) -> list[BodyTarget]:
    """IK targets at grid index g: both feet, and both hands on the box sides whenever the grip weight is above 0."""
    targets = [BodyTarget(f"{side}_foot", pm.feet[side][0][g], pm.feet[side][1][g]) for side in ("right", "left")]
    if pm.box_pos is not None and pm.grip[g] > 0:
        targets += [BodyTarget(f"{side}_hand", grip_point(pm.box_pos[g], pm.box_yaw[g], sign))
                    for side, sign in (("right", -1.0), ("left", 1.0))]
    return targets


def _smooth_euler_flips(pm: PlannedMotion, dof: np.ndarray) -> np.ndarray:
    """Spread sudden swings of the arm angles over a few frames, then re-solve those frames from the smoothed pose.

    A hand held on the box while the arm passes close to pointing straight ahead of the torso (a crouched lift)
    makes the shoulder's x and z angles swing fast in opposite directions; their sum, which is what moves the hand,
    stays smooth, so smoothing both and re-solving keeps the hand on its target.
    """
    kin = _kinematics()
    speed = np.abs(np.diff(dof[:, ARM_DOFS], axis=0)).max(axis=1) * FPS
    fast = np.nonzero(speed > FLIP_SPEED)[0]
    if len(fast) == 0:
        return dof
    window = np.zeros(len(dof), dtype=bool)
    for i in fast:
        window[max(0, i - FLIP_WINDOW):i + FLIP_WINDOW + 2] = True
    smoothed = gaussian_filter1d(dof, FLIP_SMOOTHING, axis=0, mode="nearest")
    out = dof.copy()
    for i in np.nonzero(window)[0]:
        g = pm.crop.start + i
        if pm.grip[g] < 1:
            continue
        out[i], _ = kin.ik.solve(pm.root_pos[g], pm.root_quat[g], smoothed[i], frame_targets(pm, g), smoothed[i])
    return out


def synthesize(plan: SkillPlan) -> MotionClip:
    """Turn a skill plan into a clip (see the module docstring for the steps)."""
    return solve_motion(plan_motion(plan))


def grip_point(box_centre: np.ndarray, box_yaw: float, sign: float) -> np.ndarray:
    """Hand centre on the box's left (sign +1) or right (-1) side: mid-height, mid-depth, just touching."""
    offset = BOX_SIZE[1] / 2 + HAND_RADIUS - GRIP_SQUEEZE
    return box_centre + sign * offset * np.array([-np.sin(box_yaw), np.cos(box_yaw), 0.0])

