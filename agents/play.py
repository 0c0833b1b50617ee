"""`coohoi play` and `coohoi render`: a trained policy (or the zero action) in the interactive MuJoCo viewer, headless,
or filmed into videos.

    coohoi play checkpoint=runs/carry_box/nn/last.pth             # the run's own task and settings, in the viewer
    coohoi play checkpoint=runs/x/nn/last.pth play.headless=true  # no window: play.steps steps, episode metrics
    coohoi play play.policy=zero task=team_carry_long_box         # the zero-action baseline
    MUJOCO_GL=egl coohoi render checkpoint=runs/carry_box/nn/last.pth render.seconds=20 render.envs=[0,1]

The policy is loaded by coohoi.agents.policy (checkpoint of either learner, or an exported ONNX file) with the
config of the run that trained it; the command line's task.* settings apply on top. Every environment runs the
policy; the viewer shows one world at a time (each world holds the whole team and the object), a video films each
chosen world. Both need the CPU engine (engine=mujoco), whose worlds live in host memory.
"""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import mujoco
from omegaconf import DictConfig

from coohoi.agents.config import PLAY_POLICIES
from coohoi.agents.evaluation import zero_action
from coohoi.agents.policy import check_compatible, load_policy, policy_run_config
from coohoi.agents.train import set_torch_threads
from coohoi.config import ConfigError
from coohoi.envs.contract import INFO_AGENT_MASK, INFO_EPISODE_METRICS
from coohoi.render import (VIDEO_SUFFIXES, HumanoidRenderer, Marker, RenderError, TrackingCamera, add_markers,
                           draw_overlay, make_gl_context, require_window, route_x_errors, video_writer)

# Viewer keys as GLFW key codes, each with its label, action and help. All are keys that the MuJoCo viewer's own UI
# leaves alone (its F1 help and mujoco.mjVISSTRING / mjRNDSTRING take every letter, digits 0-5, Space, the arrows,
# Tab, Backspace, Page Up, [ ] - = and several punctuation keys).
VIEWER_KEYS = (
    (257, "Enter", "pause", "pause / resume"),
    (46, ".", "step", "one policy step (pauses first)"),
    (268, "Home", "reset", "reset the shown environment"),
    (54, "6", "previous", "show the previous environment"),
    (55, "7", "next", "show the next environment"),
    (56, "8", "slower", "halve the speed"),
    (57, "9", "faster", "double the speed"),
    (260, "Insert", "markers", "show / hide the target, handles (yellow) and standing points (blue)"),
)
SPEED_RANGE = (1 / 32, 8.0)  # playback speed factors the keys can reach
# At most this many policy steps between two frames: a display that takes up to this many policy periods per frame
# (software OpenGL under Xvfb: ~0.1 s) still plays in real time; a slower env plays as fast as it steps.
MAX_STEPS_PER_FRAME = 8
IDLE_POLL_S = 1 / 60  # the loop's longest sleep: keys and the camera stay responsive when paused or slowed down
CLOSE_TIMEOUT_S = 5.0  # how long a closed viewer's thread may take to release its window
# The camera of the viewer and of videos: it looks at the followed point (a team's centre or the object) from the
# side, far enough to see a team around a long box.
PLAYBACK_CAMERA = TrackingCamera(distance=5.0, elevation=-20.0)
# Markers: the target pose of the object (its bounding box, translucent), each active agent's held point (yellow
# sphere) and standing point (blue disc on the ground).
TARGET_RGBA = (0.2, 0.85, 0.3, 0.35)
HELD_RGBA = (1.0, 0.85, 0.1, 1.0)
STAND_RGBA = (0.2, 0.45, 1.0, 0.8)
HELD_RADIUS = 0.05
STAND_RADIUS, STAND_HALF_HEIGHT = 0.15, 0.005
NO_DISPLAY_HINT = ("film it headless instead with `coohoi render ...` (MUJOCO_GL=egl), or play without a window with "
                   "play.headless=true")
ENGINE_HINT = ("the viewer and `coohoi render` show worlds of the CPU engine: use engine=mujoco (play.headless=true "
               "runs on any engine)")


def policy_and_env(cfg: DictConfig, overrides: list[str], policy_kind: str = "checkpoint",
                   deterministic: bool = True):
    """The one loading path of play, render and eval: the policy named by cfg.checkpoint (or the zero action), the
    run config it was trained with (command-line task.* settings on top) and its env, checked to match.
    Returns (cfg, env, act, policy or None)."""
    from coohoi.envs import make_env

    if policy_kind not in PLAY_POLICIES:
        raise ValueError(f"policy must be one of {', '.join(PLAY_POLICIES)}, got {policy_kind!r}")
    policy = None
    if policy_kind == "checkpoint":
        if not cfg.get("checkpoint"):
            raise ValueError("give checkpoint=PATH (a .pth checkpoint or an exported .onnx policy), or policy=zero in "
                             "the command's section (play.policy=zero, render.policy=zero, eval.policy=zero)")
        policy = load_policy(cfg.checkpoint)  # a bad file stops before the env is built
        cfg = policy_run_config(cfg, overrides, policy)
    set_torch_threads(cfg)
    try:
        env = make_env(cfg)
    except ConfigError as exc:
        if policy is None or policy.config is None:
            raise
        raise ConfigError(f"{str(exc).splitlines()[0]} (the task settings are those of the run that trained "
                          f"{policy.source}, with the command line's on top; a run of an older coohoi may hold "
                          f"settings this version lacks: task={cfg.task.name} takes this version's settings)") from None
    if policy is None:
        return cfg, env, zero_action(env), None
    check_compatible(policy, env)
    policy.to(env.device)
    return cfg, env, (lambda obs: policy.act(obs, deterministic=deterministic)), policy


def play(cfg: DictConfig, overrides: list[str] = ()) -> int:
    """Run a checkpoint's policy (deterministic unless play.deterministic=false), or with play.policy=zero the
    zero-action baseline (PD targets at the offsets of reference §2), in the viewer in real time (keys: see
    VIEWER_KEYS); play.headless=true runs play.steps steps without a window and prints episode metrics."""
    play_cfg = cfg.play
    if not play_cfg.headless:  # before anything slow: a missing display, GPU engine or bad index fails at once
        _require_cpu_engine(cfg)
        index = _env_index(int(play_cfg.env), int(cfg.engine.num_envs), "play.env")
        require_window(NO_DISPLAY_HINT)
    cfg, env, act, _ = policy_and_env(cfg, list(overrides), play_cfg.policy, bool(play_cfg.deterministic))
    obs = env.reset()
    if play_cfg.headless:
        for _ in range(int(play_cfg.steps)):
            obs, *_ = env.step(act(obs))
        print(json.dumps(env.episode_summary()))
        return 0
    _run_viewer(Playback(env, act, obs, index, float(play_cfg.speed), bool(play_cfg.markers)),
                bool(play_cfg.show_ui))
    print(json.dumps(env.episode_summary()))
    return 0


def render(cfg: DictConfig, overrides: list[str] = ()) -> int:
    """Film the playback headless (MUJOCO_GL=egl or osmesa): every environment runs the policy for render.seconds,
    each world of render.envs goes into its own video, the camera following the team's centre or the object
    (render.follow), with markers and an overlay of the step, the env's reward and success."""
    r = cfg.render
    out = Path(r.out)
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"render.out must end in one of {', '.join(VIDEO_SUFFIXES)}, got {r.out!r}")
    _require_cpu_engine(cfg)
    indices = [_env_index(int(i), int(cfg.engine.num_envs), "render.envs") for i in r.envs]
    context, _ = make_gl_context(16, 16)  # a missing OpenGL backend stops before the env is built
    context.free()
    cfg, env, act, _ = policy_and_env(cfg, list(overrides), r.policy, bool(r.deterministic))
    if r.follow == "object" and not _has_object(env):
        raise ValueError(f"render.follow=object: task {cfg.task.name} has no object to follow; use render.follow=team")
    paths = [out] if len(indices) == 1 else [out.with_name(f"{out.stem}_env{i}{out.suffix}") for i in indices]
    steps = max(1, round(float(r.seconds) / env.policy_dt))
    worlds = [World(env, i) for i in indices]
    obs = env.reset()
    with HumanoidRenderer(env.engine.scene, int(r.width), int(r.height)) as renderer, ExitStack() as files:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
        writers = [files.enter_context(video_writer(path, 1.0 / env.policy_dt)) for path in paths]
        for step in range(1, steps + 1):
            obs, reward, _, _, info = env.step(act(obs))
            handles = env.handle_poses()[0] if r.markers and _has_object(env) else None  # once for every film
            for world, writer in zip(worlds, writers):
                world.load()
                camera = replace(PLAYBACK_CAMERA, fixed_lookat=_follow_point(env, world.index, r.follow))
                frame = renderer.render_world(world.model, world.data, camera,
                                              task_markers(env, world.index, handles) if r.markers else ())
                if r.overlay:
                    step_reward, success = env_step_stats(env, reward, info, world.index)
                    frame = draw_overlay(frame, f"env {world.index}  step {step}\nreward {step_reward:.3f}  "
                                                f"success {_yes_no(success)}")
                writer.append_data(frame)
    print(f"wrote {', '.join(map(str, paths))}: {steps} frames each, {r.width}x{r.height}, "
          f"{steps * env.policy_dt:.1f} s at {1.0 / env.policy_dt:.0f} fps")
    return 0


def _require_cpu_engine(cfg: DictConfig) -> None:
    if cfg.engine.name != "mujoco":
        raise ValueError(f"engine={cfg.engine.name}: {ENGINE_HINT}")


def _env_index(index: int, num_envs: int, key: str) -> int:
    if not 0 <= index < num_envs:
        raise ValueError(f"{key}: environment {index} does not exist (engine.num_envs={num_envs})")
    return index


def _has_object(env) -> bool:
    return hasattr(env, "target_pos")  # carry tasks; elsewhere the scene's object stands parked out of the way


def _yes_no(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "no")


class World:
    """One world of the CPU engine copied out for the viewer or a renderer: its model (resets change the object's
    size and mass), its state and kinematics. Tasks without an object hide the parked one."""

    def __init__(self, env, index: int):
        self.batch = getattr(env.engine, "batch", None)  # the CPU engine's mujoco.batch.Batch
        if self.batch is None:
            raise ValueError(f"engine={env.engine.name} keeps its worlds on the GPU: {ENGINE_HINT}")
        self.index = index
        self.model, self.data = self.batch.get_model(index), self.batch.get_data(index)
        self._hidden = [] if _has_object(env) else env.engine.scene.object_geom_ids
        self.load()

    def load(self) -> None:
        """Copy world `index` into this model and data, in place (the viewer holds them: under its lock)."""
        self.batch.get_model(self.index, self.model)
        self.batch.get_data(self.index, self.data)
        self.model.geom_rgba[self._hidden, 3] = 0.0
        mujoco.mj_forward(self.model, self.data)


def _rows(env, i: int) -> slice:
    """World i's rows (its humanoids) in per-row tensors."""
    return slice(i * env.num_agents, (i + 1) * env.num_agents)


def task_markers(env, i: int, current=None) -> list[Marker]:
    """Markers of world i: the object's target pose and each active agent's held and standing points (from
    `current`, env.handle_poses()'s first part, when the caller already has it for this step)."""
    if not _has_object(env):
        return []
    rows = _rows(env, i)
    active = env.agent_mask[rows]
    if current is None:
        current, _ = env.handle_poses()  # every row's, in one batch
    half, pos, quat = (t[i].tolist() for t in (env.engine.object_half_extents, env.target_pos, env.target_quat))
    markers = [Marker(mujoco.mjtGeom.mjGEOM_BOX, half, pos, TARGET_RGBA, quat)]
    for held, (x, y, _) in zip(current.held_point[rows][active].tolist(), current.stand_point[rows][active].tolist()):
        markers.append(Marker(mujoco.mjtGeom.mjGEOM_SPHERE, (HELD_RADIUS,) * 3, held, HELD_RGBA))
        markers.append(Marker(mujoco.mjtGeom.mjGEOM_CYLINDER, (STAND_RADIUS, STAND_HALF_HEIGHT, 0.0),
                              (x, y, STAND_HALF_HEIGHT), STAND_RGBA))
    return markers


def env_step_stats(env, reward, info, i: int) -> tuple[float, bool | None]:
    """World i's reward of the step (mean over the agents active in it) and success (None: the task has none)."""
    rows = _rows(env, i)
    step_reward = float(reward[rows][info[INFO_AGENT_MASK][rows]].mean())
    success = info[INFO_EPISODE_METRICS].get("success_rate")
    return step_reward, None if success is None else bool(success[i] > 0.5)


def _follow_point(env, i: int, follow: str) -> tuple[float, float]:
    """Where the camera looks (x, y): the object, or the centre of world i's active agents."""
    if follow == "object":
        return tuple(env.engine.object_pos[i, :2].tolist())
    active = env.agent_mask[_rows(env, i)]
    return tuple(env.engine.root_pos[i, active, :2].mean(dim=0).tolist())


class Playback:
    """The viewer's side of play: the env stepped in real time (scaled by the speed), the world shown, pause and
    markers. Keys arrive on the viewer's thread and are queued for the loop's."""

    def __init__(self, env, act, obs, index: int, speed: float, markers: bool):
        self.env, self.act, self.obs = env, act, obs
        self.world = World(env, index)
        self.speed = min(max(speed, SPEED_RANGE[0]), SPEED_RANGE[1])
        self.markers, self.paused = markers, False
        self.stop = threading.Event()  # set by Ctrl-C, or an X error: the window went away under the viewer
        self.stats: tuple[float, bool | None] | None = None  # the shown world's last step: reward, success
        self.keys: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._actions = {code: action for code, _, action, _ in VIEWER_KEYS}

    def on_key(self, code: int) -> None:
        """The viewer's key callback (its thread): queue the action."""
        if code in self._actions:
            self.keys.put(self._actions[code])

    def step(self) -> None:
        self.obs, reward, _, _, info = self.env.step(self.act(self.obs))
        self.stats = env_step_stats(self.env, reward, info, self.world.index)

    def handle(self, action: str) -> None:
        env, i = self.env, self.world.index
        if action == "pause":
            self.paused = not self.paused
            _say(f"paused at step {int(env.progress[i])}" if self.paused else "resumed")
        elif action == "step":
            self.paused = True
            self.step()
            _say(f"step {int(env.progress[i])}")
        elif action == "reset":
            env.reset_envs([i])
            self.obs, self.stats = env.observe(), None
            _say(f"reset env {i}")
        elif action in ("previous", "next"):
            self.world.index = (i + (1 if action == "next" else -1)) % env.num_envs  # show() loads it
            self.stats = None
            _say(f"env {self.world.index} of {env.num_envs}")
        elif action in ("slower", "faster"):
            factor = 2.0 if action == "faster" else 0.5
            self.speed = min(max(self.speed * factor, SPEED_RANGE[0]), SPEED_RANGE[1])
            _say(f"speed {self.speed:g}x")
        elif action == "markers":
            self.markers = not self.markers
            _say(f"markers {'on' if self.markers else 'off'}")

    def show(self, viewer) -> None:
        """Copy the shown world into the viewer's model and data, draw its markers and the status text."""
        i = self.world.index
        with viewer.lock():
            self.world.load()
            viewer.user_scn.ngeom = 0
            if self.markers:
                add_markers(viewer.user_scn, task_markers(self.env, i))
        reward, success = (f"{self.stats[0]:.3f}", _yes_no(self.stats[1])) if self.stats else ("-", "-")
        state = "paused" if self.paused else f"{self.speed:g}x"
        viewer.set_texts((None, mujoco.mjtGridPos.mjGRID_TOPLEFT, "env\nstep\nreward\nsuccess\nspeed",
                          f"{i} of {self.env.num_envs}\n{int(self.env.progress[i])}\n{reward}\n{success}\n{state}"))
        viewer.sync()

    def run(self, viewer) -> None:
        """Step every policy_dt / speed seconds (as fast as the env allows when it is slower) until the window
        closes; keys are handled between steps."""
        next_step = time.perf_counter()
        while viewer.is_running() and not self.stop.is_set():
            changed = False
            while not self.keys.empty():
                was_paused = self.paused
                self.handle(self.keys.get())
                changed = True
                if was_paused and not self.paused:
                    next_step = time.perf_counter()
            steps = 0  # the steps due since the last frame (a slow display costs frames, not speed)
            while not self.paused and time.perf_counter() >= next_step and steps < MAX_STEPS_PER_FRAME:
                self.step()
                steps += 1
                next_step += self.env.policy_dt / self.speed
            if steps == MAX_STEPS_PER_FRAME:  # slower than real time: play on from now rather than catch up
                next_step = max(next_step, time.perf_counter())
            if changed or steps:
                self.show(viewer)
            time.sleep(max(0.0, min(next_step - time.perf_counter(), IDLE_POLL_S)))


def _say(message: str) -> None:
    print(message, flush=True)


def _init_camera(cam, env) -> None:
    """MuJoCo's tracking camera on the object (teams) or the humanoid (single agents), so that the mouse works as
    usual (Esc frees it)."""
    scene = env.engine.scene
    cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    cam.trackbodyid = int(scene.object_body_id if env.num_agents > 1 else scene.body_ids[0][0])
    cam.distance, cam.azimuth, cam.elevation = (PLAYBACK_CAMERA.distance, PLAYBACK_CAMERA.azimuth,
                                                PLAYBACK_CAMERA.elevation)


def _run_viewer(playback: Playback, show_ui: bool) -> None:
    """The passive viewer around playback.run; returns when the window closes or on Ctrl-C, once the viewer's thread
    has released its window (returning earlier lets interpreter exit tear GLFW down under it: a hang or a crash).
    Ctrl-C only asks the loop to stop: a KeyboardInterrupt raised anywhere (while the viewer opens, say) would leave
    the viewer running; a second Ctrl-C interrupts as usual."""
    try:
        from mujoco import viewer as mujoco_viewer
    except (ImportError, RuntimeError) as exc:  # no GLFW library
        raise RenderError(f"the MuJoCo viewer cannot load ({exc}): {NO_DISPLAY_HINT}") from exc

    width = max(len(label) for _, label, _, _ in VIEWER_KEYS)
    print("viewer keys:\n" + "\n".join(f"  {label:<{width}}  {text}" for _, label, _, text in VIEWER_KEYS) +
          "\n  mouse and other keys: MuJoCo's viewer (F1: its help; Tab, Shift-Tab: its panels; Esc: free camera)"
          "\n  close the window or press Ctrl-C to quit", flush=True)
    route_x_errors(playback.stop.set)

    def on_sigint(*_):
        if playback.stop.is_set():
            raise KeyboardInterrupt
        playback.stop.set()

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main else None
    before = set(threading.enumerate())
    viewer = None
    try:
        try:
            viewer = mujoco_viewer.launch_passive(playback.world.model, playback.world.data, show_left_ui=show_ui,
                                                  key_callback=playback.on_key, show_right_ui=show_ui)
        except RuntimeError as exc:  # macOS: the viewer needs the mjpython launcher
            raise RenderError(f"the MuJoCo viewer did not start ({exc}); on macOS run `mjpython -m coohoi.cli play "
                              f"...`, or {NO_DISPLAY_HINT}") from exc
        _init_camera(viewer.cam, playback.env)
        playback.show(viewer)
        playback.run(viewer)
    finally:
        if viewer is not None:
            viewer.close()
        for thread in set(threading.enumerate()) - before:
            thread.join(CLOSE_TIMEOUT_S)
        if main:
            signal.signal(signal.SIGINT, previous)


__all__ = ["World", "env_step_stats", "play", "policy_and_env", "render", "task_markers"]
