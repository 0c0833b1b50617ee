"""The MuJoCo Warp engine against the CPU engine (mujoco.batch) on the same scene.

CI runs Warp on its CPU device with a few environments, which compiles and runs the same kernels as a GPU. Set
COOHOI_TEST_WARP_DEVICE=cuda:0 to run these tests on a GPU (with CUDA graphs). The first run on a machine
compiles MuJoCo Warp's kernels (about a minute on the CPU device); Warp caches them in ~/.cache/warp.
"""

from __future__ import annotations

import copy
import math
import os

import mujoco
import numpy as np
import pytest
import torch

pytest.importorskip("mujoco_warp")

from coohoi import humanoid as hum  # noqa: E402
from coohoi.config import EngineConfig, SceneConfig  # noqa: E402
from coohoi.engine import EngineConfigError, make_engine  # noqa: E402
from coohoi.engine.base import OBJECT_SCALED_FIELDS  # noqa: E402
from coohoi.engine.warp_gpu import TEAM_PAIR_CONTACTS, contact_buffer_sizes  # noqa: E402
from coohoi.scene import build_scene  # noqa: E402

WARP_DEVICE = os.environ.get("COOHOI_TEST_WARP_DEVICE", "cpu")
NUM_ENVS = 3
POLICY_STEPS = 30

# Free-running comparison (same start, same PD targets, 30 policy steps = 120 physics steps, nothing re-synced).
# The engines differ in precision (Warp float32, CPU float64) and solver arithmetic (summation order, iteration
# stopping); on their own these keep trajectories within ~1e-5 m over the run (measured: 2e-6 m root, 2e-8 m
# object). What widens the gap are discrete contact events: a foot corner or a box edge crossing the contact
# threshold, or switching between stick and slip, a few 1e-5 m earlier in one engine, gives a step change of
# ~1-5 mm (measured: root 4 mm in one world, a sliding and spinning box 2.2 mm and 0.008 rad). A balancing
# humanoid amplifies such differences exponentially, so the free-running motion is gentle: legs hold the default
# pose and the upper body moves by ARM_AMPLITUDE. Tolerances allow a few such events while staying far below the
# effect of a modelling mismatch (wrong contact parameters, mass, size or gains: centimetres to decimetres).
POS_TOL = 0.01  # m, root and object positions
ANGLE_TOL = 0.03  # rad, root and object orientations
BODY_POS_TOL = 0.02  # m, all body positions (limbs move faster than the root)
ARM_AMPLITUDE = 0.05  # rad of sinusoidal PD targets on the upper-body DoFs
UPPER_BODY_DOFS = 14  # abdomen, neck, shoulders, elbows (DoF offsets 0..13)
# Contact forces at the third policy step (the spawn drops the feet ~1 cm onto the floor first), before any contact
# event: float32 vs float64 only (measured: 0.05 N of 1500 N).
FORCE_ABS_TOL, FORCE_REL_TOL = 1.0, 0.01
# Re-synced comparison: rough motions (random PD targets, falls, arms hitting the box) with the Warp engine reset to
# the CPU engine's state before every policy step, so only one step's differences count. Most steps agree to float32
# precision; a contact event inside a step gives an occasional jump of up to a few centimetres on a limb.
RESYNC_AMPLITUDE = 0.5  # rad, standard deviation of the random PD target offsets
RESYNC_TYPICAL_TOL = 1e-4  # m: 90% of (world, step) pairs agree this well in every body position
RESYNC_MAX_TOL = 0.08  # m: no body ever differs by more
ANGLE_FLOAT32 = 2e-3  # rad: orientations of float32 quaternions resolve to about sqrt(2 * 6e-8) ~ 4e-4
# Six worlds, each a different object motion: at rest, dropped 2 cm, spinning; the same three with a smaller
# (0.9) and heavier (1.5) object, the last also sliding.
NUM_SCENARIOS = 6
DROP, SPIN, SLIDE = 0.02, 1.0, 0.5
SMALL_SIZE, HEAVY_MASS = 0.9, 1.5


def _scene(num_humanoids=1, kind="box"):
    cfg = SceneConfig(num_humanoids=num_humanoids)
    cfg.object.kind = kind
    return build_scene(cfg)


def _engines(scene, num_envs=NUM_ENVS, **warp_kw):
    cpu = make_engine(scene, EngineConfig(name="mujoco", num_envs=num_envs, nthread=1))
    wpe = make_engine(scene, EngineConfig(name="warp", num_envs=num_envs, device=WARP_DEVICE, **warp_kw))
    return cpu, wpe


def _angle(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    dot = (q1.double().cpu() * q2.double().cpu()).sum(-1).abs().clamp(max=1.0)
    return 2 * torch.acos(dot)


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.double().cpu() - b.double().cpu()).norm(dim=-1)


def _scenario_state(engine):
    state = engine.default_state(NUM_SCENARIOS)
    small = torch.arange(3, 6)
    state.object.pos[small, 2] *= SMALL_SIZE
    state.object.pos[[1, 4], 2] += DROP
    state.object.ang_vel[[2, 5], 2] = SPIN
    state.object.lin_vel[5, 0] = SLIDE
    return state


def _targets(default_dof, num_envs, k, step):
    g = torch.Generator().manual_seed(1234)
    freq = 0.5 + 2 * torch.rand((num_envs, k, hum.NUM_DOFS), generator=g, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand((num_envs, k, hum.NUM_DOFS), generator=g, dtype=torch.float64)
    amplitude = torch.zeros(hum.NUM_DOFS, dtype=torch.float64)
    amplitude[:UPPER_BODY_DOFS] = ARM_AMPLITUDE
    return default_dof + amplitude * torch.sin(2 * math.pi * freq * step / 30 + phase)


@pytest.fixture(scope="module")
def box_scene():
    return _scene()


def test_buffer_sizes_cover_the_scene():
    """nconmax counts every contact the humanoid, object and floor geoms can make at once, plus a fixed allowance per
    pair of teammates (which collide with each other)."""
    one = contact_buffer_sizes(_scene())
    two = contact_buffer_sizes(_scene(2, "long_box"))
    # Humanoid: 6 spheres, 10 capsules, 2 foot boxes; on the floor 1/2/4 contacts each, on the box 1/2/8.
    assert one[0] == (6 + 20 + 8) + (6 + 20 + 16) + 4
    assert two[0] == 2 * ((6 + 20 + 8) + (6 + 20 + 16)) + 4 + TEAM_PAIR_CONTACTS
    assert one[1] >= 3 * one[0]  # elliptic cones: condim rows per contact, plus joint limits


@pytest.mark.parametrize("num_humanoids, kind", [(1, "box"), (2, "long_box")])
def test_free_running_trajectories_match_cpu_engine(num_humanoids, kind):
    scene = _scene(num_humanoids, kind)
    cpu, wpe = _engines(scene, num_envs=NUM_SCENARIOS)
    assert wpe.dtype == torch.float32 and wpe.device.type == torch.device(WARP_DEVICE).type
    small = torch.arange(3, 6)
    for engine in (cpu, wpe):
        engine.set_object_scale(small, torch.full((3,), SMALL_SIZE), torch.full((3,), HEAVY_MASS))
    state = _scenario_state(cpu)
    cpu.reset(None, state)
    wpe.reset(None, state)
    start_quat = cpu.object_quat.clone()
    worst = dict(root=0.0, obj=0.0, root_ang=0.0, obj_ang=0.0)
    for step in range(POLICY_STEPS):
        targets = _targets(state.humanoid.dof_pos, NUM_SCENARIOS, num_humanoids, step)
        cpu.set_pd_targets(targets)
        wpe.set_pd_targets(targets.to(wpe.device, wpe.dtype))
        cpu.step()
        wpe.step()
        if step == 2:
            expected = cpu.contact_forces
            got = wpe.contact_forces.double().cpu()
            assert torch.allclose(got, expected, atol=FORCE_ABS_TOL, rtol=FORCE_REL_TOL), \
                f"contact forces differ by {(got - expected).abs().max():.3f} N"
            assert expected.abs().max() > 100  # the feet carry the humanoid
        # Derived fields describe the new state: the root body's pose and velocity are the root's.
        assert torch.allclose(wpe.body_pos[:, :, 0], wpe.root_pos, atol=1e-5)
        assert torch.allclose(wpe.body_quat[:, :, 0], wpe.root_quat, atol=1e-5)
        assert torch.allclose(wpe.body_lin_vel[:, :, 0], wpe.root_lin_vel, atol=1e-4)
        assert torch.allclose(wpe.body_ang_vel[:, :, 0], wpe.root_ang_vel, atol=1e-4)
        errors = dict(root=_dist(wpe.root_pos, cpu.root_pos).max().item(),
                      obj=_dist(wpe.object_pos, cpu.object_pos).max().item(),
                      root_ang=_angle(wpe.root_quat, cpu.root_quat).max().item(),
                      obj_ang=_angle(wpe.object_quat, cpu.object_quat).max().item())
        worst = {k: max(worst[k], v) for k, v in errors.items()}
        assert errors["root"] < POS_TOL and errors["obj"] < POS_TOL, f"policy step {step}: positions differ {errors}"
        assert errors["root_ang"] < ANGLE_TOL and errors["obj_ang"] < ANGLE_TOL, \
            f"policy step {step}: orientations differ {errors}"
    print(f"worst differences over {POLICY_STEPS} policy steps: {worst}")
    body_err = _dist(wpe.body_pos, cpu.body_pos).max().item()
    assert body_err < BODY_POS_TOL, f"body positions differ by {body_err:.4f} m"
    for name in ("root_lin_vel", "body_lin_vel", "body_ang_vel", "object_lin_vel", "dof_pos"):
        assert torch.isfinite(getattr(wpe, name)).all(), name
    assert not wpe.unstable.any()
    # The motions are large compared with the differences allowed, so a physics mismatch cannot hide in them:
    # dropped objects fall 2 cm onto the floor, the small ones rest lower, spinning ones turn.
    half_z = scene.object_info.half_extents[2]
    rest_z = torch.tensor([1.0, 1.0, 1.0, SMALL_SIZE, SMALL_SIZE, SMALL_SIZE]) * half_z
    assert torch.allclose(wpe.object_pos[:, 2].double().cpu(), rest_z.double(), atol=0.003)
    assert torch.allclose(cpu.object_pos[:, 2], rest_z.double(), atol=0.003)
    assert (_angle(cpu.object_quat, start_quat)[[2, 5]] > 0.005).all()


def test_resynced_rough_steps_match_cpu_engine(box_scene):
    """Falls and arm-box impacts, one policy step at a time from the CPU engine's state."""
    num_envs = 4
    cpu, wpe = _engines(box_scene, num_envs=num_envs)
    state = cpu.default_state(num_envs)
    state.object.pos[:, 0] = 0.6  # the box stands within arm's reach
    cpu.reset(None, state)
    g = torch.Generator().manual_seed(0)
    body_errors, root_ang, obj_ang = [], [], []
    for _ in range(POLICY_STEPS):
        wpe.reset(None, cpu.get_state())
        targets = state.humanoid.dof_pos + RESYNC_AMPLITUDE * torch.randn(state.humanoid.dof_pos.shape, generator=g,
                                                                           dtype=torch.float64)
        cpu.set_pd_targets(targets)
        wpe.set_pd_targets(targets.to(wpe.device, wpe.dtype))
        cpu.step()
        wpe.step()
        body_errors.append(torch.cat([_dist(wpe.body_pos, cpu.body_pos).flatten(1),
                                      _dist(wpe.object_pos, cpu.object_pos)[:, None]], dim=1).amax(1))
        root_ang.append(_angle(wpe.root_quat, cpu.root_quat).amax(1))
        obj_ang.append(_angle(wpe.object_quat, cpu.object_quat))
    body_errors = torch.stack(body_errors)
    typical = body_errors.flatten().quantile(0.9).item()
    assert typical < RESYNC_TYPICAL_TOL, f"90% of steps should agree to {RESYNC_TYPICAL_TOL} m, got {typical:.2e} m"
    assert body_errors.max() < RESYNC_MAX_TOL, f"a body position differs by {body_errors.max():.3f} m"
    assert torch.stack(root_ang).flatten().quantile(0.9) < ANGLE_FLOAT32
    assert torch.stack(obj_ang).flatten().quantile(0.9) < ANGLE_FLOAT32
    # The motion was rough: most humanoids fell and a box was hit.
    assert (cpu.root_pos[..., 2] < 0.5).float().mean() >= 0.5
    assert (_dist(cpu.object_pos, state.object.pos) > 0.02).any()


def _public(engine):
    names = ("root_pos", "root_quat", "root_lin_vel", "root_ang_vel", "dof_pos", "dof_vel", "body_pos", "body_quat",
             "body_lin_vel", "body_ang_vel", "contact_forces", "object_pos", "object_quat", "object_lin_vel",
             "object_ang_vel", "pd_targets")
    return {n: getattr(engine, n).clone() for n in names}


def test_subset_reset_leaves_other_worlds_untouched(box_scene):
    """Resetting world 1 changes nothing in worlds 0 and 2, now or in their next steps."""
    warp_cfg = EngineConfig(name="warp", num_envs=NUM_ENVS, device=WARP_DEVICE)
    engines = [make_engine(box_scene, warp_cfg) for _ in range(2)]
    state = engines[0].default_state(NUM_ENVS)
    state.object.ang_vel[:, 2] = SPIN
    g = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn(state.humanoid.dof_pos.shape, generator=g)
    for e in engines:
        e.reset(None, state)
        for _ in range(3):
            e.set_pd_targets(state.humanoid.dof_pos.to(e.device) + noise.to(e.device))
            e.step()
    before = _public(engines[0])
    reset_state = engines[0].get_state([0])  # world 0's humanoid, standing on the floor, moved 0.5 m along x
    offset = torch.tensor([0.5, 0.0, 0.0], device=engines[0].device)
    reset_state.humanoid.root_pos += offset
    engines[0].reset([1], reset_state)
    after = _public(engines[0])
    keep = torch.tensor([0, 2])
    for name, value in after.items():
        assert torch.equal(value[keep], before[name][keep]), f"{name} changed in worlds a reset did not touch"
    # Kinematics of the reset world are current: its bodies sit where world 0's are, moved by the offset. Its
    # contact forces read zero until it steps (a reset does not run the contact solve), then its feet carry it.
    assert torch.allclose(after["body_pos"][1], before["body_pos"][0] + offset, atol=1e-5)
    assert torch.allclose(after["body_quat"][1], before["body_quat"][0], atol=1e-5)
    assert after["contact_forces"][1].abs().max() == 0
    for _ in range(2):  # the untouched worlds keep stepping exactly as without the reset
        for e in engines:
            e.set_pd_targets(state.humanoid.dof_pos.to(e.device))
            e.step()
    with_reset, without = _public(engines[0]), _public(engines[1])
    assert with_reset["contact_forces"][1].abs().max() > 100
    # On CUDA, MuJoCo Warp's contact and constraint kernels sum with atomics, so two engines stepping the same
    # worlds agree to float rounding, not bit for bit; on CPU they are exact. Seen on an H100: poses and velocities
    # within 1e-4, contact forces (the solver's output itself) further apart, so those are compared on CPU only.
    exact = torch.device(WARP_DEVICE).type == "cpu"
    for name in with_reset:
        if not exact and name == "contact_forces":
            continue
        a, b = with_reset[name][keep], without[name][keep]
        same = torch.equal(a, b) if exact else torch.allclose(a, b, atol=1e-4, rtol=1e-4)
        assert same, f"{name} differs after a reset elsewhere"


def test_object_scale_matches_a_model_compiled_at_that_size(box_scene):
    """Per-world object fields equal what MuJoCo derives (mj_setConst) for a model with the scaled object, on both
    engines; e.g. a stale dof_M0 would make a heavier box fall faster than gravity on the CPU engine."""
    size, mass = 0.8, 1.7
    reference = copy.copy(box_scene.model)  # MjModel copies are deep
    body, geoms = box_scene.object_body_id, box_scene.object_geom_ids
    reference.geom_size[geoms] *= size
    reference.geom_pos[geoms] *= size
    reference.body_mass[body] *= mass
    reference.body_inertia[body] *= mass * size**2
    reference.body_ipos[body] *= size
    mujoco.mj_setConst(reference, mujoco.MjData(reference))
    cpu, wpe = _engines(box_scene, num_envs=2)
    for engine in (cpu, wpe):
        engine.set_object_scale([1], torch.tensor([size], dtype=torch.float64),
                                torch.tensor([mass], dtype=torch.float64))
    for name in OBJECT_SCALED_FIELDS:
        expected = getattr(reference, name)
        np.testing.assert_allclose(cpu.batch.expand(name)[1], expected, rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(cpu.batch.expand(name)[0], getattr(box_scene.model, name), err_msg=name)
        if name in wpe._object_model:
            got = wpe._object_model[name][1].double().cpu().numpy().reshape(expected.shape)
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7, err_msg=name)


def test_object_scale_is_per_world(box_scene):
    engine = make_engine(box_scene, EngineConfig(name="warp", num_envs=NUM_ENVS, device=WARP_DEVICE))
    engine.set_object_scale([0, 1], torch.tensor([0.6, 1.0]), torch.tensor([1.0, 2.0]))
    state = engine.default_state(NUM_ENVS)
    state.object.pos[:, 2] += 0.02  # drop from 2 cm: each box settles on its own size
    engine.reset(None, state)
    for _ in range(20):
        engine.step()
    half_z = box_scene.object_info.half_extents[2]
    z = engine.object_pos[:, 2].cpu()
    assert abs(z[0] - 0.6 * half_z) < 0.005 and abs(z[1] - half_z) < 0.005 and abs(z[2] - half_z) < 0.005
    mass = engine.object_mass.cpu()
    assert torch.allclose(mass, torch.tensor([1.0, 2.0, 1.0]) * box_scene.object_info.mass)
    # The physics uses the scaled mass: the model row of world 1 holds twice the compiled mass, others unchanged.
    body_mass = engine._object_model["body_mass"][:, box_scene.object_body_id].cpu()
    compiled = float(box_scene.model.body_mass[box_scene.object_body_id])
    assert torch.allclose(body_mass, torch.tensor([1.0, 2.0, 1.0]) * compiled)


def test_constraint_overflow_flags_worlds():
    scene = _scene()
    engine = make_engine(scene, EngineConfig(name="warp", num_envs=2, device=WARP_DEVICE, njmax=8))
    engine.reset(None, engine.default_state(2))
    engine.step()  # standing feet and the box need about 40 rows
    assert engine.unstable.all()


def test_contact_overflow_stops_with_setting_name():
    scene = _scene()
    engine = make_engine(scene, EngineConfig(name="warp", num_envs=2, device=WARP_DEVICE, nconmax=2))
    engine.reset(None, engine.default_state(2))
    engine.step()  # steps never synchronise: the overflow is kept on the device ...
    with pytest.raises(EngineConfigError, match="engine.nconmax"):
        engine.check_faults()  # ... until the once-per-epoch check


def test_bad_buffer_setting_is_named():
    with pytest.raises(EngineConfigError, match="engine.njmax"):
        make_engine(_scene(), EngineConfig(name="warp", num_envs=2, device=WARP_DEVICE, njmax=0))
