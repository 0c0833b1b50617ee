"""The cooperative carry env (coohoi.envs.team_carry): contract, symmetry, coupling through the object, team resets,
masking of inactive slots, the team metrics' wiring and its geometry, and the team-size check."""

from __future__ import annotations

import math

import pytest
import torch
from _env_helpers import env_config

from coohoi.engine.base import HumanoidState, ObjectState, SimState
from coohoi.envs import make_env
from coohoi.envs.contract import check_env_contract
from coohoi.envs.observations import PROPRIO_SIZE, TASK_OBS_LAYOUT
from coohoi.envs.team_carry import TeamCarryEnv
from coohoi.rotations import heading_angle, quat_rotate, yaw_quat

torch.set_num_threads(1)
EXACT = ("task.env.task_obs_noise_std=0.0", "task.env.proprio_noise_std=0.0",
         "task.scene.object.size_scale_range=[1.0,1.0]")
OBJECT_POS = slice(PROPRIO_SIZE + TASK_OBS_LAYOUT["object_pos"].start,
                   PROPRIO_SIZE + TASK_OBS_LAYOUT["object_pos"].stop)
OBJECT_VEL = slice(PROPRIO_SIZE + TASK_OBS_LAYOUT["object_lin_vel"].start,
                   PROPRIO_SIZE + TASK_OBS_LAYOUT["object_lin_vel"].stop)
STILL = ("task.env.enable_early_termination=false", "task.env.enable_kicked_termination=false")


def build(task, dataset, num_envs, *overrides):
    return make_env(env_config(task, dataset, num_envs, *overrides))


@pytest.fixture(scope="module")
def pair(dataset):
    """Two agents at the long box, no noise, fixed size."""
    return build("team_carry_long_box", dataset, 2, *EXACT)


@pytest.fixture(scope="module")
def trio(dataset):
    """Three slots, teams of two: slot 2 is always parked."""
    return build("team_carry_long_box", dataset, 2, "task.scene.num_humanoids=3", "task.env.team_size_range=[2,2]",
                 *EXACT)


def set_state(env, humanoid: HumanoidState | None = None, obj: ObjectState | None = None):
    """Every world to this state (the current one where None); the handles are recomputed."""
    state = env.engine.get_state()
    state = SimState(humanoid or state.humanoid, obj or state.object)
    env.engine.reset_where(torch.ones(env.num_envs, dtype=torch.bool), state)


def resting_object(env, yaw: float = 0.0) -> ObjectState:
    e, n = env.engine, env.num_envs
    pos = torch.zeros(n, 3, dtype=e.dtype)
    pos[:, 2] = e.object_half_extents[:, 2]
    return ObjectState(pos, yaw_quat(torch.full((n,), yaw, dtype=e.dtype)), torch.zeros_like(pos),
                       torch.zeros_like(pos))


def mirrored_pair(env, yaw: float, pose_noise: float = 0.0) -> ObjectState:
    """The long box resting at the origin turned by yaw, and agents 0 and 1 0.6 m beyond its -x and +x ends facing
    it, in the same pose (the default one plus shared random joint offsets); returns the object's state."""
    e, n = env.engine, env.num_envs
    obj = resting_object(env, yaw)
    h = e.default_state(n).humanoid
    g = torch.Generator().manual_seed(3)
    h.dof_pos[:] = h.dof_pos[:, :1] + pose_noise * torch.randn(n, 1, 28, generator=g, dtype=e.dtype)
    axis = torch.tensor([math.cos(yaw), math.sin(yaw)], dtype=e.dtype)
    d = e.object_half_extents[:, 0:1] + 0.6
    xy = torch.stack((-d * axis, d * axis), dim=1)  # [n, 2, 2]
    facing = torch.tensor([yaw, yaw + math.pi], dtype=e.dtype).expand(n, 2)
    set_state(env, env._turn_and_place(h, xy, facing), obj)
    return obj


# ---- contract and configuration ------------------------------------------------------------------------------------
def test_long_box_and_table_envs_pass_the_env_contract_with_team_sizes_varying_per_env(dataset):
    box = build("team_carry_long_box", dataset, 2)
    info = check_env_contract(box)
    assert isinstance(box, TeamCarryEnv) and box.num_agents == 2 and box.agent_mask.all()
    assert {"sticky_success_rate", "final_distance_xy_m", "cooperation_fraction", "jerk_mps3", "load_share_0",
            "load_share_1", "load_imbalance", "final_distance_m", "success_rate"} <= set(info["episode_metrics"])

    table = build("team_carry_table", dataset, 4, "task.scene.num_humanoids=5", "task.env.team_size_range=[1,5]")
    info = check_env_contract(table)
    assert len(set(table.team_size.tolist())) > 1  # the sizes this seed draws: the contract holds for a mix
    expected = torch.arange(5).repeat(4) < table.team_size.repeat_interleave(5)
    assert torch.equal(table.agent_mask, expected)
    assert {f"load_share_{k}" for k in range(5)} <= set(info["episode_metrics"])


@pytest.mark.parametrize("team_range, message", [("[1,3]", "scene.num_humanoids"), ("[0,2]", "team_size_range")])
def test_team_size_range_outside_the_scene_slots_is_refused_naming_the_setting(dataset, team_range, message):
    with pytest.raises(ValueError, match=message) as caught:
        build("team_carry_long_box", dataset, 1, f"task.env.team_size_range={team_range}")
    assert "team_size_range" in str(caught.value)


# ---- observation symmetry and coupling -------------------------------------------------------------------------------
def test_agents_in_mirrored_poses_at_opposite_ends_of_the_long_box_observe_the_same(pair):
    """Everything (object, target at the object, the two humanoids in the same pose) is invariant under a half
    turn about the object's vertical axis, which swaps the agents: their observations must be equal. The object is
    turned (yaw 0.7) so that no axis-aligned shortcut hides a sign error; the pose is the default one with shared
    random joint offsets, so that the proprioception is not trivially symmetric itself."""
    env = pair
    env.reset()
    n = env.num_envs
    obj = mirrored_pair(env, yaw=0.7, pose_noise=0.2)
    env.target_pos.copy_(obj.pos)
    env.target_quat.copy_(obj.quat)
    obs = env.observations()["policy"].view(n, 2, -1)
    assert (obs[:, 0] - obs[:, 1]).abs().max() < 1e-5
    # not vacuous: the agents see the object from their own ends (its centre straight ahead of each)
    ahead = obs[:, :, OBJECT_POS][..., 0]
    assert (ahead > 0.5).all()


def test_a_push_on_the_object_reaches_the_other_agents_observation_in_the_next_step(pair):
    """Agent 1 (at the +x end) sees the push only through the object: the same start without the push repeats
    bit for bit, with a 1 m/s push toward agent 1 its observed object position and velocity change and the
    velocity points at it (+x ahead in its heading frame)."""
    env, e = pair, pair.engine
    env.reset()
    n = env.num_envs
    obj = mirrored_pair(env, yaw=0.0)
    start = e.get_state()
    zero = torch.zeros(env.num_rows, 28)

    def run(push: float) -> torch.Tensor:
        pushed = ObjectState(obj.pos, obj.quat, obj.lin_vel.clone(), obj.ang_vel)
        pushed.lin_vel[:, 0] = push
        set_state(env, start.humanoid, pushed)
        env.progress.zero_()
        obs, *_, info = env.step(zero)
        assert not (info["faulted"].any() or env.progress.eq(0).any())  # no reset in between
        return obs.view(n, 2, -1)[:, 1]

    base, again, pushed = run(0.0), run(0.0), run(1.0)
    assert torch.equal(base, again)
    assert (pushed[:, OBJECT_POS] - base[:, OBJECT_POS]).norm(dim=-1).min() > 0.01
    # agent 1 faces the object (-x): a push along +x comes toward it, so its forward component is negative
    assert (pushed[:, OBJECT_VEL][:, 0] < -0.3).all()
    assert (base[:, OBJECT_VEL].abs() < 0.1).all()


# ---- terminations ----------------------------------------------------------------------------------------------
def test_a_tilted_or_dropped_object_ends_the_episode_but_one_put_down_at_the_target_does_not(pair):
    """Env 0: the long box turned 60 degrees about its long axis (tilted beyond 45): dropped at once. Env 1: lifted
    0.3 m, then back on the ground 5 m from the target: dropped once it is down. Then both lifted and put down
    where their targets are: no termination."""
    env, e = pair, pair.engine
    stand = env.default_pose_action().to(torch.float32).expand(env.num_rows, -1)

    def step_with_object(pos, quat):
        set_state(env, obj=ObjectState(pos, quat, torch.zeros_like(pos), torch.zeros_like(pos)))
        env.progress.fill_(5)
        info = env.step(stand)[4]
        return info["terminated_reasons"]["dropped"].view(env.num_envs, 2)[:, 0].tolist()

    env.reset()
    obj = mirrored_pair(env, yaw=0.0)
    tilted = obj.quat.clone()
    tilted[0] = torch.tensor([math.cos(math.pi / 6), math.sin(math.pi / 6), 0.0, 0.0], dtype=e.dtype)
    lifted = obj.pos.clone()
    lifted[:, 2] += 0.3
    env.target_pos.copy_(obj.pos)
    env.target_pos[1, 0] += 5.0
    assert step_with_object(torch.stack((obj.pos[0], lifted[1])), tilted) == [True, False]
    assert step_with_object(obj.pos, obj.quat)[1]
    env.reset()
    mirrored_pair(env, yaw=0.0)
    env.target_pos.copy_(obj.pos)
    assert step_with_object(lifted, obj.quat) == [False, False]
    assert step_with_object(obj.pos, obj.quat) == [False, False]  # put down at the target


# ---- resets ----------------------------------------------------------------------------------------------------
def test_a_team_reset_puts_every_agent_the_object_and_the_task_at_their_new_start(dataset):
    """Environment 0 of a 6-slot table scene is ended (time-out) until its team size has changed and a team of 5
    or more (two agents on one side of the table) was drawn; after each reset: the object rests at the
    origin, the active humanoids stand on the start circle facing the object with a fresh AMP history, the parked
    ones stand at park_xy, handles and targets follow the new team, the metrics tracker starts over; environment
    1 is never reset."""
    env = build("team_carry_table", dataset, 2, "task.scene.num_humanoids=6", "task.env.team_size_range=[4,6]")
    env.reset()
    e, c, k = env.engine, env.cfg, env.num_agents
    zero = torch.zeros(env.num_rows, 28)
    for _ in range(3):
        env.step(zero)
    changed, crowded = False, False
    for attempt in range(12):
        old_team = int(env.team_size[0])
        env.progress[0] = env.max_episode_length - 1
        env.progress[1] = 0
        env.step(zero)
        assert env.progress.tolist() == [0, 1]
        team = int(env.team_size[0])
        changed |= team != old_team
        crowded |= team >= 5  # then some agents share a side of the table
        half = e.object_half_extents[0]
        assert torch.allclose(e.object_pos[0], torch.stack((half.new_zeros(()), half.new_zeros(()), half[2])),
                              atol=1e-9)
        assert e.object_lin_vel[0].abs().max() < 1e-9
        active = env.agent_mask.view(2, k)[0]
        assert active.tolist() == [i < team for i in range(k)]
        rel = e.root_pos[0, :, :2] - e.object_pos[0, :2]
        assert torch.allclose(rel[active].norm(dim=-1), torch.full((team,), c.start_circle_radius, dtype=e.dtype))
        facing = heading_angle(e.root_quat[0])
        toward = torch.atan2(-rel[:, 1], -rel[:, 0])
        assert (torch.remainder(facing - toward + math.pi, 2 * math.pi) - math.pi)[active].abs().max() < 1e-6
        spots = torch.stack((torch.full((k,), c.park_xy[0], dtype=e.dtype),
                             c.park_xy[1] + c.park_spacing * torch.arange(k, dtype=e.dtype)), dim=-1)
        assert torch.allclose(e.root_pos[0, ~active, :2], spots[~active])
        # no two active humanoids start closer than 1 m (agents on one side of the table used to share a spot)
        gaps = torch.cdist(e.root_pos[0, active, :2], e.root_pos[0, active, :2]) + 10 * torch.eye(team)
        assert gaps.min() > 1.0
        # a fresh AMP history: the start frame repeated, equal to the features of the new state
        hist = env.amp_hist.view(2, k, env.amp_history, -1)[0]
        assert torch.allclose(hist, env.amp_frame().view(2, k, 1, -1)[0].float().expand_as(hist), atol=1e-5)
        # the handles are those of the new team, the target at resting height in range
        rows = slice(0, k)
        fresh = env.handles_for(e.object_half_extents[:1].expand(k, 3), torch.arange(k), env.team_size[:1].expand(k))
        assert torch.allclose(env.handles().center[rows], fresh.center)
        assert torch.allclose(env.target_pos[0, 2], half[2])
        dist = (env.target_pos[0, :2] - e.object_pos[0, :2]).norm()
        assert c.target_distance_range[0] - 1e-9 <= dist <= c.target_distance_range[1] + 1e-9
        assert env.team_metrics.history_len[0] == 0 and env.team_metrics.history_len[1] > 0
        if changed and crowded:
            break
    assert changed and crowded, "the resets drew no change of team or no team of 5 or more: test the seed"


# ---- masking -------------------------------------------------------------------------------------------------------
def test_an_inactive_agent_lying_on_the_floor_earns_nothing_ends_nothing_and_counts_in_no_metric(trio):
    """Slot 2 is parked; it is teleported lying on the floor (a fall for an active agent) and given NaN actions.
    The fall rule does fire on its row, but the episode only ends by the forced time-out, its reward and terms are
    0, the world is not faulted, its load share (the only per-agent metric) is absent from the summary, and its
    observations (both groups) are its team's first agent's."""
    env, e = trio, trio.engine
    env.reset()
    env.episode_summary()
    n, k = env.num_envs, env.num_agents
    h = e.get_state().humanoid
    h.root_pos[:, 2, 2] = 0.12
    h.root_quat[:, 2] = torch.tensor([math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0], dtype=e.dtype)
    set_state(env, h)
    env.progress.fill_(env.max_episode_length - 3)
    actions = torch.zeros(n, k, 28)
    actions[:, 2] = float("nan")
    for i in range(3):
        _, reward, terminated, truncated, info = env.step(actions.flatten(0, 1))
        fall_rows = env._fall().view(n, k) if i == 0 else None  # the state just reached (no reset yet)
        assert not info["faulted"].any()
        assert not terminated.any()
        rows = reward.view(n, k)
        assert (rows[:, 2] == 0).all() and (rows[:, :2] != 0).all()
        assert all((v.view(n, k)[:, 2] == 0).all() for v in info["reward_terms"].values())
        assert info["episode_metrics"]["load_share_2"].isnan().all()
        if fall_rows is not None:  # the fall rule sees the lying humanoid (it then gets up): only the mask keeps
            assert fall_rows[:, 2].all() and not fall_rows[:, :2].any()  # it from ending the episode
        for group in info["observations"].values():
            group = group.view(n, k, -1)
            assert torch.equal(group[:, 2], group[:, 0]) and not torch.equal(group[:, 1], group[:, 0])
    assert truncated.all()  # the time-out ended the episodes
    summary = env.episode_summary()
    assert summary["num_episodes"] == n and summary["fall_rate"] == 0.0
    assert "load_share_2" not in summary and summary["faults/nonfinite_actions"] == 0


def test_parked_slots_leave_the_active_agents_trajectories_as_in_a_scene_of_exactly_the_team(dataset):
    """The same start and actions in a 2-slot scene and in a 3-slot scene with slot 2 parked: after 20 steps the
    active roots and the object agree to 1e-8 m. Measured (MuJoCo 4.0, CPU): 3.5e-14 m after 20 steps, growing
    to 2e-7 m by step 40 once the humanoids fall and their contacts amplify differences. The trajectories are not
    bit-identical because MuJoCo solves all contacts of a world jointly: the parked humanoid's floor contacts add
    rows to the constraint problem and change the order of floating-point sums (and possibly the solver's
    iteration count), not the physics. 1e-8 m leaves six orders of magnitude for other platforms while any real
    interaction (a contact, a force between slots) would be millimetres."""
    small = build("team_carry_long_box", dataset, 2, *EXACT, *STILL)
    big = build("team_carry_long_box", dataset, 2, "task.scene.num_humanoids=3", "task.env.team_size_range=[2,2]",
                *EXACT, *STILL)
    small.reset()
    big.reset()
    s, b = small.engine.get_state(), big.engine.get_state()
    for name in ("root_pos", "root_quat", "root_lin_vel", "root_ang_vel", "dof_pos", "dof_vel"):
        getattr(b.humanoid, name)[:, :2] = getattr(s.humanoid, name)
    set_state(small, s.humanoid, s.object)
    set_state(big, b.humanoid, s.object)
    big.target_pos.copy_(small.target_pos)
    big.target_quat.copy_(small.target_quat)
    small.progress.zero_()
    big.progress.zero_()
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        a = 0.3 * torch.randn(2, 2, 28, generator=g)
        wide = torch.zeros(2, 3, 28)
        wide[:, :2] = a
        _, r_small, *_ = small.step(a.flatten(0, 1))
        _, r_big, *_ = big.step(wide.flatten(0, 1))
    assert small.progress.tolist() == big.progress.tolist() == [20, 20]  # no reset on the way
    root_gap = (small.engine.root_pos - big.engine.root_pos[:, :2]).abs().max()
    object_gap = (small.engine.object_pos - big.engine.object_pos).abs().max()
    assert root_gap < 1e-8 and object_gap < 1e-8, (root_gap, object_gap)
    assert torch.allclose(r_small, r_big.view(2, 3)[:, :2].flatten(), atol=1e-5)
    moved = (small.engine.root_pos - s.humanoid.root_pos).norm(dim=-1).min()
    assert moved > 1e-3  # the agents did move


# ---- metrics wiring ------------------------------------------------------------------------------------------------
def test_the_env_reports_load_shares_from_the_engines_hand_object_forces(trio, monkeypatch):
    """The object is held 0.5 m up (lifted) while the engine reports, on agent 0's hands, 0.1 and 0.2 of the
    object's weight pushing down, 0.7 on agent 1's and a full weight on parked slot 2: the env reports shares 0.3
    and 0.7, imbalance 0.4, and nothing for slot 2."""
    env, e = trio, trio.engine
    env.reset()
    n = env.num_envs
    lifted = resting_object(env)
    lifted.pos[:, 2] += 0.5
    set_state(env, obj=lifted)
    env.progress.zero_()
    weight = e.object_mass * 9.81
    forces = torch.zeros(n, 3, 2, 3, dtype=e.dtype)
    forces[:, 0, 0, 2], forces[:, 0, 1, 2] = -0.1 * weight, -0.2 * weight
    forces[:, 1, 0, 2], forces[:, 1, 1, 0] = -0.7 * weight, 5.0  # a horizontal part carries no weight
    forces[:, 2, :, 2] = -0.5 * weight[:, None]
    refresh = e._refresh

    def refresh_with_forces():
        refresh()
        e.hand_object_force.copy_(forces)

    monkeypatch.setattr(e, "_refresh", refresh_with_forces)
    for _ in range(3):
        *_, info = env.step(torch.zeros(env.num_rows, 28))
    m = info["episode_metrics"]
    assert torch.allclose(m["load_share_0"], torch.full((n,), 0.3, dtype=e.dtype))
    assert torch.allclose(m["load_share_1"], torch.full((n,), 0.7, dtype=e.dtype))
    assert torch.allclose(m["load_imbalance"], torch.full((n,), 0.4, dtype=e.dtype))
    assert m["load_share_2"].isnan().all()
    assert torch.equal(env.team_metrics.load_steps[:, :2], torch.full((n, 2), 3))


@pytest.mark.parametrize("kind", ["long_box", "table"])
def test_hand_to_rim_distance_is_measured_to_the_gripped_band(dataset, kind):
    """Analytic points around a turned object: on a box the whole end face is the grip band (a hand 0.04 m off it
    at any height is 0.04 m away), on a table only the top's edge (a hand level with the legs is as far as it is
    below the top); above the band the height difference counts."""
    env = build("team_carry_long_box", dataset, 1, f"task.scene.object.kind={kind}", *EXACT)
    env.reset()
    e = env.engine
    yaw = 0.4
    set_state(env, obj=resting_object(env, yaw))
    hx, hy, hz = (float(v) for v in e.object_half_extents[0])
    _, grip, grip_half = env.team_outlines()
    top_bottom = float(grip.height[0] - grip_half[0])  # the band's lower edge, object frame
    local = torch.tensor([[-hx - 0.04, 0.1, hz - 0.01],   # on the -x face, just under the top
                          [-hx - 0.04, 0.1, top_bottom - 0.2],  # same, 0.2 m below the band's lower edge
                          [0.3, hy + 0.05, hz + 0.1]],  # 0.1 m above the top, 0.05 m out from the +y side
                         dtype=e.dtype)
    world = e.object_pos[0] + quat_rotate(e.object_quat[0].expand(3, 4), local)
    dist = env.hand_rim_distance(world.view(1, 1, 3, 3), grip, grip_half)[0, 0]
    if kind == "long_box":  # the band is the whole side, down to the bottom
        assert top_bottom == pytest.approx(-hz)
    else:  # the top's edge only
        assert top_bottom > 0.0
    expected = torch.tensor([0.04, math.hypot(0.04, 0.2), math.hypot(0.05, 0.1)], dtype=e.dtype)
    assert torch.allclose(dist, expected, atol=1e-9), dist
