"""Scene parts for teams (TeamHOI, reference §7): teammates collide with one another but not with themselves; the
three published tables are built with their sizes and masses and scale per world; the hand-object contact force of
each humanoid reads the object's weight when it rests on a hand."""

from __future__ import annotations

import os

import mujoco
import numpy as np
import pytest
import torch

from coohoi import humanoid as hum
from coohoi.config import EngineConfig, ObjectConfig, SceneConfig
from coohoi.engine import make_engine
from coohoi.scene import HAND_BODIES, SceneConfigError, build_scene

GRAVITY = 9.81
# TeamHOI tables (reference §7): kind -> (full extents x, y, z in m, mass in kg); top 0.04 m on 0.82 m legs.
PUBLISHED_TABLES = {
    "square_table": ((1.6, 1.6, 0.86), 61.4),
    "table": ((2.0, 1.2, 0.86), 57.6),
    "round_table": ((2.0, 2.0, 0.86), 75.4),
}


# ---- team collisions ------------------------------------------------------------------------------------------

def _contact_owners(scene, data) -> np.ndarray:
    """[ncon, 2] humanoid index of each contact's two geoms (-1: floor or object)."""
    owner = np.full(scene.model.nbody, -1)
    owner[scene.body_ids] = np.arange(scene.num_humanoids)[:, None]
    return owner[scene.model.geom_bodyid[data.contact.geom[:data.ncon]]].reshape(-1, 2)


def _overlapping(team_collisions: bool, offset=(0.15, 0.25, 0.0)):
    """Two humanoids in the default pose, h1 moved into h0 (offset from h0's root), after mj_forward."""
    scene = build_scene(SceneConfig(num_humanoids=2, object=ObjectConfig(kind="long_box"),
                                    team_collisions=team_collisions))
    data = mujoco.MjData(scene.model)
    data.qpos[:] = scene.default_qpos
    q0, q1 = scene.qpos_start
    data.qpos[q1:q1 + 3] = data.qpos[q0:q0 + 3] + np.asarray(offset)
    mujoco.mj_forward(scene.model, data)
    return scene, data


def test_teammates_touch_each_other():
    scene, data = _overlapping(team_collisions=True)
    owners = _contact_owners(scene, data)
    between = (owners[:, 0] >= 0) & (owners[:, 1] >= 0) & (owners[:, 0] != owners[:, 1])
    assert between.sum() > 0
    assert not np.any((owners[:, 0] >= 0) & (owners[:, 0] == owners[:, 1])), "a humanoid touched itself"
    assert np.any((owners == -1).any(axis=1)), "the feet stopped touching the floor"


def test_team_collisions_can_be_switched_off():
    scene, data = _overlapping(team_collisions=False)
    owners = _contact_owners(scene, data)
    assert not np.any((owners[:, 0] >= 0) & (owners[:, 1] >= 0))
    # Off restores the humanoid's own collision bits from assets/mjcf/humanoid.xml.
    geoms = np.isin(scene.model.geom_bodyid, scene.body_ids)
    assert set(scene.model.geom_contype[geoms]) == {2} and set(scene.model.geom_conaffinity[geoms]) == {1}


@pytest.mark.parametrize("num_humanoids", [1, 4])
def test_no_self_contacts(num_humanoids):
    """Default pose and random poses (limbs through the body): a humanoid never collides with its own bodies."""
    scene = build_scene(SceneConfig(num_humanoids=num_humanoids, humanoid_spacing=2.0))
    data = mujoco.MjData(scene.model)
    rng = np.random.default_rng(0)
    for trial in range(20):
        data.qpos[:] = scene.default_qpos
        if trial:
            for q in scene.qpos_start:
                data.qpos[q + 7:q + 7 + hum.NUM_DOFS] = rng.uniform(*scene.dof_limits.T)
        mujoco.mj_forward(scene.model, data)
        owners = _contact_owners(scene, data)
        assert not np.any((owners[:, 0] >= 0) & (owners[:, 0] == owners[:, 1]))


def test_humanoid_still_touches_the_object():
    """Every humanoid's hand collides with the object (humanoid k >= 1 uses a contype bit the object lacks)."""
    scene = build_scene(SceneConfig(num_humanoids=3, object=ObjectConfig(kind="long_box")))
    m = scene.model
    hand_geoms = [int(np.nonzero(m.geom_bodyid == scene.body_ids[k, hum.HAND_BODY_IDS[0]])[0][0]) for k in range(3)]
    obj, floor = int(scene.object_geom_ids[0]), m.geom("floor").id
    for g in hand_geoms:
        for other in (obj, floor):
            assert m.geom_contype[g] & m.geom_conaffinity[other] or m.geom_contype[other] & m.geom_conaffinity[g]


# ---- tables -------------------------------------------------------------------------------------------------------

def _object_bounds(scene) -> np.ndarray:
    """(min, max) corners [2, 3] of the object's geoms in its body frame (boxes and cylinders)."""
    m = scene.model
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for g in scene.object_geom_ids:
        assert np.allclose(m.geom_quat[g], [1, 0, 0, 0])
        size = m.geom_size[g]
        if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_CYLINDER:
            half = np.array([size[0], size[0], size[1]])
        else:
            assert m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX
            half = size
        lo, hi = np.minimum(lo, m.geom_pos[g] - half), np.maximum(hi, m.geom_pos[g] + half)
    return np.stack([lo, hi])


@pytest.mark.parametrize("kind", list(PUBLISHED_TABLES))
def test_tables_match_teamhoi(kind):
    extents, mass = PUBLISHED_TABLES[kind]
    scene = build_scene(SceneConfig(object=ObjectConfig(kind=kind)))
    m = scene.model
    assert m.body_mass[scene.object_body_id] == pytest.approx(mass)
    bounds = _object_bounds(scene)
    assert np.allclose(bounds[1] - bounds[0], extents)
    assert np.allclose(bounds[0] + bounds[1], 0)  # body frame at the bounding box centre
    assert np.allclose(scene.object_info.half_extents, np.array(extents) / 2)
    top = scene.object_geom_ids[np.argmax(m.geom_pos[scene.object_geom_ids, 2])]
    thickness = 2 * m.geom_size[top, 1 if m.geom_type[top] == mujoco.mjtGeom.mjGEOM_CYLINDER else 2]
    assert thickness == pytest.approx(0.04)
    legs = [g for g in scene.object_geom_ids if g != top]
    assert len(legs) == 4 and all(2 * m.geom_size[g, 2] == pytest.approx(0.82) for g in legs)


def test_round_table_top_is_a_cylinder_with_legs_under_it():
    scene = build_scene(SceneConfig(object=ObjectConfig(kind="round_table")))
    m = scene.model
    top = scene.object_geom_ids[0]
    assert m.geom_type[top] == mujoco.mjtGeom.mjGEOM_CYLINDER
    assert m.geom_size[top, 0] == pytest.approx(1.0)  # radius: diameter 2.0 m
    for g in scene.object_geom_ids[1:]:  # every leg corner lies inside the rim
        corner = np.abs(m.geom_pos[g, :2]) + m.geom_size[g, :2]
        assert np.linalg.norm(corner) < 1.0


def test_round_table_must_be_round():
    with pytest.raises(SceneConfigError, match="round"):
        build_scene(SceneConfig(object=ObjectConfig(kind="round_table", size=[2.0, 1.5, 0.86])))


@pytest.mark.parametrize("kind", ["square_table", "round_table"])
def test_new_tables_rest_on_the_ground(kind):
    engine = make_engine(SceneConfig(object=ObjectConfig(kind=kind)), EngineConfig(num_envs=1, nthread=1))
    engine.reset(None, engine.default_state(1))
    for _ in range(30):
        engine.step()
    assert engine.object_pos[0, 2].item() == pytest.approx(0.43, abs=0.01)
    assert engine.object_lin_vel.norm() < 0.05


def test_round_table_scales_per_world():
    """A world whose round table is scaled by 0.9 in size (0.81 in mass) has the model MuJoCo compiles for the table
    scaled so: cylinder radius and half height, leg sizes and places, mass and inertia; and it rests 0.9 as high."""
    size_scale, mass_scale = 0.9, 0.81
    cfg = SceneConfig(object=ObjectConfig(kind="round_table", size_scale_range=[0.9, 1.0], mass_scale_range=[0.8, 1.0]))
    engine = make_engine(cfg, EngineConfig(num_envs=2, nthread=1))
    engine.set_object_scale([1], torch.tensor([size_scale]), torch.tensor([mass_scale]))
    small = build_scene(cfg)  # the same table compiled at 0.9 the size (top thickness too) and 0.81 the mass
    for geom in small.spec.body("obj/body").geoms:
        geom.size, geom.pos, geom.mass = [size_scale * x for x in geom.size], [size_scale * x for x in geom.pos], \
            mass_scale * geom.mass
    small = small.recompile()
    model, _ = engine.get_model_and_data(1)
    full, _ = engine.get_model_and_data(0)
    body, geoms = engine.scene.object_body_id, engine.scene.object_geom_ids
    assert model.geom_size[geoms[0], :2] == pytest.approx([0.9, 0.018])
    for name in ("geom_size", "geom_pos"):
        assert np.allclose(getattr(model, name)[geoms], getattr(small.model, name)[small.object_geom_ids]), name
        assert np.allclose(getattr(full, name)[geoms], getattr(engine.scene.model, name)[geoms]), name
    for name in ("body_mass", "body_inertia", "body_ipos"):
        assert np.allclose(getattr(model, name)[body], getattr(small.model, name)[small.object_body_id]), name
    assert engine.object_mass[1].item() == pytest.approx(75.4 * 0.81)
    assert torch.allclose(engine.object_half_extents[1], torch.tensor([0.9, 0.9, 0.387], dtype=torch.float64))
    engine.reset(None, engine.default_state(2))
    for _ in range(30):
        engine.step()
    assert engine.object_pos[1, 2].item() == pytest.approx(0.387, abs=0.01)
    assert engine.object_pos[0, 2].item() == pytest.approx(0.43, abs=0.01)


# ---- hand-object contact force --------------------------------------------------------------------------------

def test_hand_object_sensors_are_indexed_per_humanoid():
    scene = build_scene(SceneConfig(num_humanoids=3))
    m = scene.model
    assert scene.hand_object_sensor_adr.shape == (3, 2)
    for k in range(3):
        for h, name in enumerate(HAND_BODIES):
            sensor = int(np.nonzero(m.sensor_adr == scene.hand_object_sensor_adr[k, h])[0][0])
            assert m.sensor_type[sensor] == mujoco.mjtSensor.mjSENS_CONTACT
            assert m.sensor_objid[sensor] == m.body(f"h{k}/{name}").id
            assert m.sensor_refid[sensor] == scene.object_body_id
    assert scene.contiguous


PLATE = (0.2, 0.2, 0.02)  # a thin plate rests stably on a sphere: its centre of mass sits below the sphere's centre
PLATE_MASS = 1.0


def _raised_hand_scene():
    """One humanoid, weightless (gravity compensated) and welded to the world by the pelvis, right arm raised so that
    the right hand is its highest point; the object a thin plate."""
    scene = build_scene(SceneConfig(object=ObjectConfig(kind="box", size=list(PLATE), mass=PLATE_MASS)))
    for name in hum.BODY_NAMES:
        scene.spec.body("h0/" + name).gravcomp = 1.0
    scene.spec.add_equality(type=mujoco.mjtEq.mjEQ_WELD, name1="h0/pelvis", name2="world",
                            objtype=mujoco.mjtObj.mjOBJ_BODY)
    scene = scene.recompile()
    dof_pos = np.zeros(hum.NUM_DOFS)
    dof_pos[hum.DOF_NAMES.index("right_shoulder_y")] = -3.0  # arm forward and up, 172 degrees
    return scene, dof_pos


def test_object_resting_on_a_hand_pushes_it_down_with_its_weight():
    scene, dof_pos = _raised_hand_scene()
    engine = make_engine(scene, EngineConfig(num_envs=1, nthread=1))
    state = engine.default_state(1)
    state.humanoid.dof_pos[0, 0] = torch.from_numpy(dof_pos)
    engine.reset(None, state)
    hand = engine.body_pos[0, 0, hum.HAND_BODY_IDS[0]].clone()
    state.object.pos[0] = hand + torch.tensor([0.0, 0.0, 0.04 + PLATE[2] / 2], dtype=torch.float64)
    engine.reset(None, state)
    for _ in range(30):  # 1 s
        engine.step()
    assert engine.object_pos[0, 2].item() > hand[2].item(), "the plate fell off the hand"
    expected = torch.tensor([0.0, 0.0, -PLATE_MASS * GRAVITY], dtype=torch.float64)
    assert torch.allclose(engine.hand_object_force[0, 0, 0], expected, atol=0.05 * PLATE_MASS * GRAVITY)
    assert torch.allclose(engine.hand_object_force[0, 0, 1], torch.zeros(3, dtype=torch.float64))
    # The hand's net contact force holds the same (it touches nothing else).
    assert torch.allclose(engine.contact_forces[0, 0, hum.HAND_BODY_IDS[0]], engine.hand_object_force[0, 0, 0])


def test_hand_object_force_matches_mujoco_contact_forces():
    """Per humanoid and hand, the engine's force equals the sum of MuJoCo's own contact forces (mj_contactForce) on
    the hand from the object, in a plain MjData stepped alike; contacts with other bodies are left out."""
    cfg = SceneConfig(num_humanoids=2, object=ObjectConfig(kind="box", size=[0.3, 0.3, 1.0], mass=3.0))
    engine = make_engine(cfg, EngineConfig(num_envs=1, nthread=1))
    scene, m = engine.scene, engine.scene.model
    state = engine.default_state(1)
    engine.reset(None, state)
    # A tall box standing on the floor, pressed 1 cm into h1's right hand from outside (-y): the first step pushes
    # them apart, so the one step compared sees hand, floor and foot contacts.
    hand = engine.body_pos[0, 1, hum.HAND_BODY_IDS[0]]
    state.object.pos[0] = torch.tensor([hand[0], hand[1] - (0.15 + 0.04 - 0.01), 0.5], dtype=torch.float64)
    engine.reset(None, state)
    data = mujoco.MjData(engine.batch.get_model(0))
    data.qpos[:], data.qvel[:] = engine._qpos[0].numpy(), engine._qvel[0].numpy()
    data.ctrl[:] = engine._raw()["ctrl"][0].numpy()
    engine.step()
    for _ in range(engine.decimation):
        mujoco.mj_step(engine.batch.get_model(0), data)
    assert np.allclose(engine._qpos[0].numpy(), data.qpos, atol=1e-9)

    expected = np.zeros((2, 2, 3))
    wrench = np.zeros(6)
    for i in range(data.ncon):
        con = data.contact[i]
        bodies = m.geom_bodyid[con.geom]
        for k in range(2):
            for h in range(2):
                hand_body = scene.body_ids[k, hum.HAND_BODY_IDS[h]]
                if set(bodies) == {hand_body, scene.object_body_id}:
                    mujoco.mj_contactForce(m, data, i, wrench)
                    # The contact frame's normal points from geom1 to geom2; the force acts on geom2 along it.
                    on_geom2 = con.frame.reshape(3, 3).T @ wrench[:3]
                    expected[k, h] += on_geom2 if bodies[1] == hand_body else -on_geom2
    assert np.linalg.norm(expected[1, 0]) > 1.0 and expected[1, 0, 1] > 0, "the box pushes the hand toward +y"
    assert np.allclose(engine.hand_object_force[0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("engine_name", ["mujoco", "warp"])
def test_hand_object_force_in_both_engines(engine_name):
    """The same plate-on-hand trial on both engines (Warp on COOHOI_TEST_WARP_DEVICE, its CPU device by default);
    the Warp engine reads the same sensordata through the shared view in coohoi.engine.base."""
    if engine_name == "warp":
        pytest.importorskip("mujoco_warp")
    device = os.environ.get("COOHOI_TEST_WARP_DEVICE", "cpu") if engine_name == "warp" else "cpu"
    scene, dof_pos = _raised_hand_scene()
    engine = make_engine(scene, EngineConfig(name=engine_name, device=device, num_envs=2, nthread=1))
    state = engine.default_state(2)
    state.humanoid.dof_pos[:, 0] = torch.as_tensor(dof_pos, dtype=state.humanoid.dof_pos.dtype,
                                                   device=state.humanoid.dof_pos.device)
    engine.reset(None, state)
    hand = engine.body_pos[:, 0, hum.HAND_BODY_IDS[0]].clone()
    state.object.pos[0] = hand[0] + torch.tensor([0.0, 0.0, 0.04 + PLATE[2] / 2], dtype=hand.dtype, device=hand.device)
    state.object.pos[1] = torch.tensor([3.0, 0.0, PLATE[2] / 2], dtype=hand.dtype, device=hand.device)  # on the floor
    engine.reset(None, state)
    for _ in range(30):
        engine.step()
    force = engine.hand_object_force.cpu().double()
    assert force.shape == (2, 1, 2, 3)
    expected = torch.tensor([0.0, 0.0, -PLATE_MASS * GRAVITY], dtype=torch.float64)
    assert torch.allclose(force[0, 0, 0], expected, atol=0.05 * PLATE_MASS * GRAVITY)
    assert torch.allclose(force[1], torch.zeros(1, 2, 3, dtype=torch.float64))


def test_scaled_round_table_rests_on_the_ground_in_warp():
    """Warp scales the cylinder top like the CPU engine (size = radius, half height: both scale with the size)."""
    pytest.importorskip("mujoco_warp")
    cfg = SceneConfig(object=ObjectConfig(kind="round_table", size_scale_range=[0.9, 1.0]))
    engine = make_engine(cfg, EngineConfig(name="warp", device=os.environ.get("COOHOI_TEST_WARP_DEVICE", "cpu"),
                                           num_envs=2))
    engine.set_object_scale([1], torch.tensor([0.9]), torch.tensor([0.81]))
    engine.reset(None, engine.default_state(2))
    for _ in range(30):
        engine.step()
    z = engine.object_pos[:, 2].cpu()
    assert z[0].item() == pytest.approx(0.43, abs=0.01) and z[1].item() == pytest.approx(0.387, abs=0.01)
    assert engine.object_lin_vel.norm().item() < 0.05


def test_constant_density_scales_the_mass_with_the_volume():
    obj = ObjectConfig(kind="long_box", size_scale_range=[0.9, 1.0], constant_density=True)
    engine = make_engine(build_scene(SceneConfig(num_humanoids=2, object=obj)), EngineConfig(num_envs=64))
    size, mass = engine.sample_object_scales(64)
    assert torch.allclose(mass, size**3) and size.min() < 0.95 < size.max()
    engine.set_object_scale(None, size, mass)
    density = engine.object_mass / (8 * engine.object_half_extents.prod(dim=-1))
    assert torch.allclose(density, torch.full_like(density, 50.0))  # 25 kg in 0.5 cubic metres
