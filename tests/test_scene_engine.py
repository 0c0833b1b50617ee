"""Simulation core: the model matches the reference humanoid; the engine is deterministic, resets subsets cleanly,
keeps a humanoid standing, and rejects bad configuration with clear messages."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

from coohoi import humanoid as hum
from coohoi.config import EngineConfig, ObjectConfig, SceneConfig
from coohoi.engine import EngineConfigError, make_engine
from coohoi.engine.base import FAULT_KINDS
from coohoi.scene import SceneConfigError, build_scene

# Reference humanoid (reference.md §1).
REFERENCE_MASSES = {
    "pelvis": 10.0, "torso": 12.0, "head": 3.88, "right_upper_arm": 1.5, "right_lower_arm": 1.0, "right_hand": 0.5,
    "left_upper_arm": 1.5, "left_lower_arm": 1.0, "left_hand": 0.5, "right_thigh": 4.5, "right_shin": 3.0,
    "right_foot": 1.0, "left_thigh": 4.5, "left_shin": 3.0, "left_foot": 1.0,
}
REFERENCE_RANGES_DEG = {
    "abdomen": [(-60, 60), (-60, 90), (-50, 50)], "neck": [(-50, 50), (-40, 60), (-45, 45)],
    "right_shoulder": [(-180, 45), (-180, 60), (-90, 90)], "left_shoulder": [(-45, 180), (-180, 60), (-90, 90)],
    "right_elbow": [(-160, 0)], "left_elbow": [(-160, 0)],
    "right_hip": [(-60, 15), (-140, 60), (-60, 35)], "left_hip": [(-15, 60), (-140, 60), (-35, 60)],
    "right_knee": [(0, 160)], "left_knee": [(0, 160)],
    "right_ankle": [(-30, 30), (-55, 55), (-40, 40)], "left_ankle": [(-30, 30), (-55, 55), (-40, 40)],
}
REFERENCE_GAINS = {"abdomen": (1000, 100, 200), "neck": (100, 10, 50), "shoulder": (400, 40, 100),
                   "elbow": (300, 30, 70), "hip": (500, 50, 200), "knee": (500, 50, 150), "ankle": (400, 40, 90)}
REFERENCE_BODY_ORDER = ["pelvis", "torso", "head", "right_upper_arm", "right_lower_arm", "right_hand",
                        "left_upper_arm", "left_lower_arm", "left_hand", "right_thigh", "right_shin", "right_foot",
                        "left_thigh", "left_shin", "left_foot"]
REFERENCE_DOF_OFFSETS = [0, 3, 6, 9, 10, 13, 14, 17, 18, 21, 24, 25, 28]


@pytest.fixture(scope="module")
def scene():
    return build_scene(SceneConfig())


def test_body_and_dof_order_match_reference(scene):
    model = scene.model
    names = [model.body(int(b)).name.removeprefix("h0/") for b in scene.body_ids[0]]
    assert names == REFERENCE_BODY_ORDER
    assert list(hum.DOF_OFFSETS) == REFERENCE_DOF_OFFSETS
    # MuJoCo's own body order is depth first and equals the reference order.
    assert list(scene.body_ids[0]) == sorted(scene.body_ids[0])
    qpos_dofs = [model.joint(f"h0/{n}").qposadr[0] for n in hum.DOF_NAMES]
    assert qpos_dofs == list(range(scene.qpos_start[0] + 7, scene.qpos_start[0] + 35))
    for g, (group, body, axes) in enumerate(hum.JOINT_GROUPS):
        for i, axis in enumerate(axes):
            joint = model.joint(f"h0/{hum.DOF_NAMES[hum.DOF_OFFSETS[g] + i]}")
            assert model.body(int(joint.bodyid[0])).name == f"h0/{body}"
            assert np.allclose(joint.axis, np.eye(3)["xyz".index(axis)])


def test_masses_within_five_percent(scene):
    for name, mass in REFERENCE_MASSES.items():
        got = scene.model.body(f"h0/{name}").mass[0]
        assert abs(got - mass) <= 0.05 * mass, f"{name}: {got:.3f} kg vs reference {mass} kg"
    total = sum(scene.model.body(f"h0/{n}").mass[0] for n in REFERENCE_MASSES)
    assert abs(total - 48.9) < 0.5


def test_joint_ranges_match_reference(scene):
    for group, ranges in REFERENCE_RANGES_DEG.items():
        names = [group] if len(ranges) == 1 else [f"{group}_{a}" for a in "xyz"]
        for name, (lo, hi) in zip(names, ranges):
            got = np.degrees(scene.model.joint(f"h0/{name}").range)
            assert np.allclose(got, [lo, hi], atol=1e-6), f"{name}: {got} vs {(lo, hi)}"


def test_pd_gains_are_position_actuators(scene):
    model = scene.model
    assert np.all(model.jnt_stiffness == 0), "PD gains must not be passive springs"
    for k, dof in enumerate(hum.DOF_NAMES):
        act = model.actuator(int(scene.actuator_ids[0, k]))
        kp, kd, effort = next(v for key, v in REFERENCE_GAINS.items() if key in dof)
        assert act.trnid[0] == model.joint(f"h0/{dof}").id
        assert act.gainprm[0] == pytest.approx(kp) and act.biasprm[1] == pytest.approx(-kp)
        assert act.biasprm[2] == pytest.approx(-kd)
        assert np.allclose(act.forcerange, [-effort, effort])


def _random_targets(engine, generator, scale=0.3):
    shape = engine.pd_targets.shape
    return scale * (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1)


def _rollout(seed: int, steps: int = 20, num_envs: int = 4):
    engine = make_engine(SceneConfig(), EngineConfig(num_envs=num_envs, nthread=2, seed=seed))
    engine.reset(None, engine.default_state(num_envs))
    generator = torch.Generator().manual_seed(seed)
    states = []
    for _ in range(steps):
        engine.set_pd_targets(_random_targets(engine, generator))
        engine.step()
        states.append(torch.cat([engine.root_pos.flatten(1), engine.dof_pos.flatten(1), engine.object_pos], 1).clone())
    return torch.stack(states)


def test_same_seed_and_actions_give_same_states():
    a, b = _rollout(seed=3), _rollout(seed=3)
    assert torch.equal(a, b)
    c = _rollout(seed=4)
    assert not torch.equal(a, c)


def test_subset_reset_leaves_others_bit_identical():
    num_envs = 10
    engines = [make_engine(SceneConfig(), EngineConfig(num_envs=num_envs, nthread=2)) for _ in range(2)]
    generator = torch.Generator().manual_seed(0)
    actions = [_random_targets(engines[0], generator) for _ in range(30)]
    for engine in engines:
        engine.reset(None, engine.default_state(num_envs))
    for t, action in enumerate(actions):
        for i, engine in enumerate(engines):
            engine.set_pd_targets(action)
            engine.step()
            if i == 1 and t == 10:
                ids = torch.tensor([3, 7])
                engine.reset(ids, engine.default_state(2))
    others = [i for i in range(num_envs) if i not in (3, 7)]
    for name in ("root_pos", "root_quat", "dof_pos", "dof_vel", "body_pos", "body_lin_vel", "object_pos"):
        a, b = getattr(engines[0], name), getattr(engines[1], name)
        assert torch.equal(a[others], b[others]), name
        assert not torch.equal(a[[3, 7]], b[[3, 7]]), name


def test_reset_sets_the_given_state():
    engine = make_engine(SceneConfig(), EngineConfig(num_envs=3, nthread=1))
    state = engine.default_state(3)
    state.humanoid.root_pos[:, 0, :2] = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [3.0, -2.0]])
    state.humanoid.root_ang_vel[:, 0] = torch.tensor([0.1, -0.2, 0.3])
    state.humanoid.dof_pos[:, 0, 9] = -0.5  # right elbow
    state.object.ang_vel[:] = torch.tensor([0.0, 0.0, 1.0])
    engine.reset(None, state)
    assert torch.allclose(engine.root_pos, state.humanoid.root_pos)
    assert torch.allclose(engine.root_ang_vel, state.humanoid.root_ang_vel)
    assert torch.allclose(engine.object_ang_vel, state.object.ang_vel)
    assert torch.allclose(engine.pd_targets, state.humanoid.dof_pos)
    # Bodies follow by forward kinematics: the pelvis body is the root.
    assert torch.allclose(engine.body_pos[:, 0, 0], engine.root_pos[:, 0])


def test_standing_humanoid_stays_up_for_five_seconds():
    engine = make_engine(SceneConfig(), EngineConfig(num_envs=2, nthread=1))
    engine.reset(None, engine.default_state(2))
    steps = int(round(5.0 / engine.policy_dt))
    targets = torch.zeros_like(engine.pd_targets)
    for _ in range(steps):
        engine.set_pd_targets(targets)
        engine.step()
    head = engine.body_pos[:, 0, hum.HEAD_BODY_ID, 2]
    assert torch.all(engine.root_pos[:, 0, 2] > 0.8), engine.root_pos
    assert torch.all(head > 1.3), head  # the head body origin (neck) is at 1.35 m standing
    # The feet carry the body weight: net vertical contact force close to m g.
    feet_force = engine.contact_forces[:, 0, list(hum.FOOT_BODY_IDS), 2].sum(-1)
    weight = sum(REFERENCE_MASSES.values()) * 9.81
    assert torch.allclose(feet_force, torch.full_like(feet_force, weight), rtol=0.05)


def test_unpowered_humanoid_falls():
    """The standing test can fail: with PD gains zeroed the humanoid collapses."""
    scene = build_scene(SceneConfig())
    scene.model.actuator_gainprm[:, 0] = 0
    scene.model.actuator_biasprm[:, :3] = 0
    engine = make_engine(scene, EngineConfig(num_envs=1, nthread=1))
    engine.reset(None, engine.default_state(1))
    for _ in range(90):
        engine.step()
    assert engine.root_pos[0, 0, 2] < 0.5


def test_body_velocities_match_mujoco():
    """Body origin velocities computed from cvel agree with MuJoCo's own mj_objectVelocity, world frame."""
    engine = make_engine(SceneConfig(), EngineConfig(num_envs=2, nthread=1))
    engine.reset(None, engine.default_state(2))
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        engine.set_pd_targets(_random_targets(engine, generator, 0.8))
        engine.step()
    model, data = engine.get_model_and_data(1)
    expected = np.zeros((hum.NUM_BODIES, 6))
    for i, body in enumerate(engine.scene.body_ids[0]):
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_XBODY, int(body), expected[i], 0)
    assert np.allclose(engine.body_ang_vel[1, 0].numpy(), expected[:, :3], atol=1e-9)
    assert np.allclose(engine.body_lin_vel[1, 0].numpy(), expected[:, 3:], atol=1e-9)
    assert np.allclose(engine.root_ang_vel[1, 0].numpy(), expected[0, :3], atol=1e-9)
    assert engine.body_lin_vel.abs().max() > 0.1  # the check is not vacuous


@pytest.mark.parametrize("kind", ["box", "long_box", "table", "sofa", "high_stool"])
def test_objects_rest_on_the_ground(kind):
    engine = make_engine(SceneConfig(object=ObjectConfig(kind=kind)), EngineConfig(num_envs=1, nthread=1))
    engine.reset(None, engine.default_state(1))
    for _ in range(30):
        engine.step()
    half = engine.object_half_extents[0]
    assert abs(engine.object_pos[0, 2].item() - half[2].item()) < 0.01
    assert engine.object_lin_vel.norm() < 0.05


def test_multi_humanoid_scene_and_per_world_object_size():
    cfg = SceneConfig(num_humanoids=2, object=ObjectConfig(kind="long_box", size_scale_range=[0.5, 1.0]))
    engine = make_engine(cfg, EngineConfig(num_envs=2, nthread=1))
    assert engine.root_pos.shape == (2, 2, 3) and engine.body_pos.shape == (2, 2, 15, 3)
    engine.set_object_scale([0, 1], torch.tensor([1.0, 0.5]), torch.tensor([1.0, 0.5]))
    state = engine.default_state(2)
    engine.reset(None, state)
    for _ in range(30):
        engine.step()
    # The half-size box rests with its centre half as high.
    assert engine.object_pos[0, 2].item() == pytest.approx(0.25, abs=0.01)
    assert engine.object_pos[1, 2].item() == pytest.approx(0.125, abs=0.01)
    assert engine.object_mass[1].item() == pytest.approx(12.5)


def test_mesh_object_from_convex_parts(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    parts = [trimesh.creation.box(extents=[0.6, 0.4, 0.1]),
             trimesh.creation.box(extents=[0.1, 0.1, 0.5]).apply_translation([0, 0, -0.3])]
    path = tmp_path / "stool.obj"
    trimesh.util.concatenate(parts).export(path)
    scene = build_scene(SceneConfig(object=ObjectConfig(kind="mesh", mesh_path=str(path), mass=4.0)))
    assert len(scene.object_geom_ids) == 2
    assert np.allclose(2 * scene.object_info.half_extents, [0.6, 0.4, 0.6])
    assert scene.model.body(scene.object_body_id).mass[0] == pytest.approx(4.0)


@pytest.mark.parametrize(
    "scene_cfg, message",
    [
        (SceneConfig(object=ObjectConfig(kind="piano")), "unknown object kind 'piano'"),
        (SceneConfig(object=ObjectConfig(kind="box", size=[6.0, 0.5, 0.5])), "larger than the scene allows"),
        (SceneConfig(object=ObjectConfig(kind="box", size=[0.5, -1, 0.5])), "object.size"),
        (SceneConfig(object=ObjectConfig(mass=0.0)), "object.mass"),
        (SceneConfig(object=ObjectConfig(size_scale_range=[0.9, 1.2])), "size_scale_range"),
        (SceneConfig(num_humanoids=0), "scene.num_humanoids"),
        (SceneConfig(num_humanoids=9), "scene.num_humanoids"),
        (SceneConfig(hand_shape="claw"), "scene.hand_shape"),
        (SceneConfig(object=ObjectConfig(kind="mesh")), "mesh_path"),
    ],
)
def test_bad_scene_config_is_refused(scene_cfg, message):
    with pytest.raises(SceneConfigError, match=message):
        build_scene(scene_cfg)


@pytest.mark.parametrize("num_envs", [0, -4, 2.5, True])
def test_bad_env_count_is_refused(num_envs):
    with pytest.raises(EngineConfigError, match="engine.num_envs"):
        make_engine(SceneConfig(), EngineConfig(num_envs=num_envs))


def test_unknown_engine_is_refused():
    with pytest.raises(EngineConfigError, match="unknown engine 'bullet'"):
        make_engine(SceneConfig(), EngineConfig(name="bullet"))


def test_nan_pd_targets_are_refused():
    engine = make_engine(SceneConfig(), EngineConfig(num_envs=3, nthread=1))
    targets = torch.zeros_like(engine.pd_targets)
    targets[1, 0, 5] = math.nan
    with pytest.raises(ValueError, match=r"NaN or infinity in environments \[1\]"):
        engine.set_pd_targets(targets)


def test_each_physics_fault_is_flagged_with_its_kind(monkeypatch):
    """Worlds 0-4: NaN state, faster than max_speed, a box sunk 0.5 m (pushed up to 0.14 m within the step, still
    deeper than max_penetration), a world the engine reports failed, a healthy one. FAULT_KINDS order."""
    engine = make_engine(SceneConfig(), EngineConfig(num_envs=5, nthread=1, max_speed=50.0, max_penetration=0.1))
    state = engine.default_state(5)
    state.humanoid.root_pos[0, 0, 2] = math.nan
    state.humanoid.root_lin_vel[1, 0] = torch.tensor([0.0, 0.0, 80.0])
    state.object.pos[2, 2] -= 0.5
    engine.reset(None, state)
    assert engine.ground_penetration()[2].item() == pytest.approx(0.5)
    physics_step = engine._step_physics

    def world_3_fails():
        failed = physics_step()
        return torch.tensor([False, False, False, True, False]) | (False if failed is None else failed)

    monkeypatch.setattr(engine, "_step_physics", world_3_fails)
    engine.step()
    monkeypatch.undo()
    assert FAULT_KINDS == ("nonfinite", "velocity", "penetration", "overflow")
    assert engine.fault_kind.tolist() == [1, 2, 3, 4, 0]
    assert engine.unstable.tolist() == [True, True, True, True, False]
    engine.reset([0, 1, 2, 3], engine.default_state(4))
    assert not engine.unstable.any() and not engine.fault_kind.any()
    engine.step()
    assert not engine.unstable.any()


def test_ground_penetration_of_a_tilted_box_is_its_lowest_corner():
    """A 0.5 m box (half extents 0.25) turned 45 degrees about x with its centre at z = 0.3: its lowest edge is at
    0.3 - 0.25 sqrt(2) = -0.0536 m (the humanoid stands clear, 0.1 mm into its soft contacts at most)."""
    engine = make_engine(SceneConfig(), EngineConfig(num_envs=2, nthread=1))
    state = engine.default_state(2)
    state.object.pos[1, 2] = 0.3
    state.object.quat[1] = torch.tensor([math.cos(math.pi / 8), math.sin(math.pi / 8), 0.0, 0.0])
    engine.reset(None, state)
    depth = engine.ground_penetration()
    assert depth[1].item() == pytest.approx(0.25 * math.sqrt(2) - 0.3, abs=1e-6)
    assert depth[0].item() < 1e-3
