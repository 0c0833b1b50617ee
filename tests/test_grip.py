"""Two hands squeezing a 5 kg box from both sides lift it 0.5 m and hold it for 2 s.

The trial isolates the contact model: the humanoid's arms hold a squeeze pose under PD control (hand targets 4 cm
inside the box sides, elbows out), gravity on the humanoid is compensated, and its pelvis is welded to a mocap body
that rises 0.5 m in 1 s. Everything the box feels comes through the hand (and forearm) contacts, so the measured slip
and swing are those of the contact settings in coohoi.config.ContactConfig.

Measured with this trial (elliptic cone, impratio 10, solref 0.02): sphere hands slip 0.95 cm and swing 6.2 deg;
flat palms slip 0.7-1.3 cm and swing 6.3-7.7 deg. Sphere hands are kept: they are the reference humanoid's and
hold as well.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.config import ContactConfig, EngineConfig, ObjectConfig, SceneConfig
from coohoi.engine import make_engine
from coohoi.rotations import quat_conjugate, quat_mul, quat_to_exp_map
from coohoi.scene import build_scene

BOX_SIZE = 0.4
BOX_MASS = 5.0
SQUEEZE = 0.04  # hand targets this far inside each box side
LIFT = 0.5
HOLD_X, HOLD_Z = 0.40, 1.0  # box centre at the start, world frame
ELBOW_OUT = 0.12
HAND_RADIUS = 0.04
STEPS_SETTLE, STEPS_LIFT, STEPS_HOLD = 15, 30, 60  # policy steps at 30 Hz: 0.5 s, 1 s, 2 s
ARM_DOFS = [i for i, n in enumerate(hum.DOF_NAMES) if "shoulder" in n or "elbow" in n]


def _arm_ik(scene, hand_targets, elbow_targets, init, iters=400):
    """Damped least squares on the arm DoFs: hands to targets, elbows (weakly) to theirs."""
    m, d = scene.model, mujoco.MjData(scene.model)
    q0, v0 = scene.qpos_start[0], scene.qvel_start[0]
    bodies = scene.body_ids[0]
    hands = bodies[list(hum.HAND_BODY_IDS)]
    elbows = bodies[[hum.BODY_NAMES.index("right_lower_arm"), hum.BODY_NAMES.index("left_lower_arm")]]
    d.qpos[:] = scene.default_qpos
    d.qpos[q0 + 7:q0 + 35] = init
    columns = [v0 + 6 + a for a in ARM_DOFS]
    for _ in range(iters):
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        rows, err = [], []
        for body, target, weight in zip([*hands, *elbows], [*hand_targets, *elbow_targets], [1, 1, 0.2, 0.2]):
            jac = np.zeros((3, m.nv))
            mujoco.mj_jacBody(m, d, jac, None, body)
            rows.append(weight * jac[:, columns])
            err.append(weight * (target - d.xpos[body]))
        jac, err = np.concatenate(rows), np.concatenate(err)
        step = jac.T @ np.linalg.solve(jac @ jac.T + 1e-3 * np.eye(len(err)), err)
        for a, delta in zip(ARM_DOFS, step):
            d.qpos[q0 + 7 + a] = np.clip(d.qpos[q0 + 7 + a] + 0.5 * delta, *scene.dof_limits[a])
    return d.qpos[q0 + 7:q0 + 35].copy()


def grip_trial(hand_shape: str = "sphere", contact: ContactConfig | None = None, squeeze_depth: float = SQUEEZE):
    """Run the lift; returns (max slip of the box relative to the hands [m], max box rotation [rad], box rise [m])."""
    scene = build_scene(SceneConfig(object=ObjectConfig(kind="box", size=[BOX_SIZE] * 3, mass=BOX_MASS),
                                    hand_shape=hand_shape, contact=contact or ContactConfig()))
    for name in hum.BODY_NAMES:
        scene.spec.body("h0/" + name).gravcomp = 1.0
    scene.spec.worldbody.add_body(name="lift", mocap=True, pos=[0, 0, hum.SPAWN_ROOT_HEIGHT])
    scene.spec.add_equality(type=mujoco.mjtEq.mjEQ_WELD, name1="h0/pelvis", name2="lift",
                            objtype=mujoco.mjtObj.mjOBJ_BODY)
    scene = scene.recompile()

    half = BOX_SIZE / 2 + HAND_RADIUS
    elbows = np.array([[HOLD_X - 0.3, -half - ELBOW_OUT, HOLD_Z + 0.1], [HOLD_X - 0.3, half + ELBOW_OUT, HOLD_Z + 0.1]])
    touch = _arm_ik(scene, np.array([[HOLD_X, -half, HOLD_Z], [HOLD_X, half, HOLD_Z]]), elbows, np.zeros(hum.NUM_DOFS))
    squeeze = _arm_ik(scene, np.array([[HOLD_X, squeeze_depth - half, HOLD_Z], [HOLD_X, half - squeeze_depth, HOLD_Z]]), elbows, touch)

    engine = make_engine(scene, EngineConfig(num_envs=1, nthread=1))
    state = engine.default_state(1)
    state.humanoid.dof_pos[0, 0] = torch.from_numpy(touch)
    state.object.pos[0] = torch.tensor([HOLD_X, 0.0, HOLD_Z])
    engine.reset(None, state)
    engine.set_pd_targets(torch.from_numpy(squeeze)[None, None])
    mocap_pos = engine.batch.bind("mocap_pos")

    hands = list(hum.HAND_BODY_IDS)
    slips, swings = [], []
    for t in range(STEPS_SETTLE + STEPS_LIFT + STEPS_HOLD):
        a = min(1.0, max(0.0, (t - STEPS_SETTLE) / STEPS_LIFT))
        mocap_pos[0, 0, 2] = hum.SPAWN_ROOT_HEIGHT + LIFT * a * a * (3 - 2 * a)
        engine.step()
        box_from_hands = engine.object_pos[0] - engine.body_pos[0, 0, hands].mean(0)
        if t == STEPS_SETTLE - 1:
            grip_offset, grip_quat = box_from_hands.clone(), engine.object_quat[0].clone()
            start_height = engine.object_pos[0, 2].item()
        elif t >= STEPS_SETTLE:
            slips.append((box_from_hands - grip_offset).norm().item())
            swings.append(quat_to_exp_map(quat_mul(engine.object_quat[0], quat_conjugate(grip_quat))).norm().item())
    return max(slips), max(swings), engine.object_pos[0, 2].item() - start_height


def test_squeezed_box_lifts_and_holds():
    slip, swing, rise = grip_trial("sphere")
    assert slip < 0.02, f"box slipped {100 * slip:.2f} cm relative to the hands"
    assert rise > LIFT - 0.05, f"box rose only {rise:.3f} m"
    assert swing < np.radians(15), f"box swung {np.degrees(swing):.1f} deg"


def test_palm_hands_hold_too():
    slip, _, rise = grip_trial("palm")
    assert slip < 0.02 and rise > LIFT - 0.05


def test_without_squeeze_the_box_drops():
    """The trial can fail: hands held 3 cm outside the box sides do not lift it."""
    slip, _, rise = grip_trial("sphere", squeeze_depth=-0.03)
    assert slip > 0.05 and rise < LIFT - 0.1
