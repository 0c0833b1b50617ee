"""`coohoi bench`: engine throughput in policy steps per second, next to raw batched MuJoCo on the same model.

    coohoi bench                                   CPU engine, N = 1, 64, 256, 1024
    coohoi bench engine=warp                       Warp engine on cuda:0, N = 1024, 4096, 8192 (and GPU memory)
    coohoi bench bench.num_envs=[256] bench.scenes=[box1] engine.nthread=16

For each scene and environment count N it times the engine's policy step (set PD targets, `decimation` physics
steps, the engine's state refresh and checks) and the raw simulator stepping the same compiled model
`decimation` times (mujoco.batch for engine=mujoco, a CUDA-graph loop of mujoco_warp.step for engine=warp), and
prints both as policy steps per second summed over environments, with their ratio. On the CPU it also times raw
stepping that computes the position and velocity stages at the state reached ("raw with state"): the engine must
run them so that tasks observe the new state, so that ratio is the engine's own overhead alone. Measurements
alternate in `bench.rounds` short rounds and keep each one's fastest, which discounts other load on the machine.

Then it times the task envs' whole step (BENCH_TASKS). `coohoi bench` goes on with the training loop's throughput
(coohoi.agents.throughput): this module, like the rest of the simulation core, never imports the learners.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import torch
from omegaconf import DictConfig

from coohoi.config import EngineConfig, SceneConfig, to_dataclass
from coohoi.engine import Engine, EngineConfigError, make_engine
from coohoi.engine.base import derive_decimation
from coohoi.scene import Scene, build_scene

log = logging.getLogger(__name__)

# The benchmark scenes: one humanoid with the single-agent box, two humanoids with the long box.
BENCH_SCENES = {
    "box1": dict(num_humanoids=1, object=dict(kind="box")),
    "longbox2": dict(num_humanoids=2, object=dict(kind="long_box")),
}
SCENE_TITLES = {"box1": "1 humanoid + box", "longbox2": "2 humanoids + long box"}
DEFAULT_NUM_ENVS = {"mujoco": [1, 64, 256, 1024], "warp": [1024, 4096, 8192]}
# The task envs timed with their whole step (observations, rewards, resets), by agents per environment: the
# single-agent carry, two agents with the long box, four with the rectangular table (a scene of exactly 4 slots).
BENCH_TASKS = {
    1: ["task=carry_box"],
    2: ["task=team_carry_long_box"],
    4: ["task=team_carry_table", "task.scene.num_humanoids=4", "task.env.team_size_range=[4,4]"],
}
# PD targets during the benchmark: the default pose plus this much fixed noise (rad), so humanoids move and fall.
TARGET_NOISE = 0.1

@dataclass
class BenchSettings:
    num_envs: list[int] | None = None  # None: DEFAULT_NUM_ENVS of the engine
    scenes: list[str] | None = None  # None: all of BENCH_SCENES
    seconds: float = 3.0  # timed seconds per measurement (engine, and raw), split over the rounds
    min_steps: int = 3  # timed policy steps per round at least
    warmup_steps: int = 3  # untimed policy steps first (compiles and captures on the GPU)
    rounds: int = 6
    raw: bool = True  # also time the raw simulator
    training_num_envs: list[int] | None = None  # None: [256] on the CPU engine, none on warp; [] skips training
    training_epochs: int = 3  # timed epochs (after one warm-up epoch)
    # Task env steps (BENCH_TASKS) at these environment counts; None: [128] on the CPU engine, [4096] on warp
    task_num_envs: list[int] | None = None
    task_agents: list[int] | None = None  # team sizes of BENCH_TASKS to time; None: all


@dataclass
class BenchRow:
    num_envs: int
    engine_rate: float  # policy steps per second, summed over environments
    raw_rate: float | None  # raw physics steps per second / decimation, summed over environments
    memory: dict[str, float]
    # mujoco.batch only: raw stepping that also computes the new state's kinematics and velocities (the stages the
    # engine must run so that tasks observe the state reached), per second / decimation
    raw_state_rate: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if not self.raw_rate else self.engine_rate / self.raw_rate


def scene_config(name: str) -> SceneConfig:
    if name not in BENCH_SCENES:
        raise ValueError(f"unknown bench scene {name!r} in bench.scenes; choose from {', '.join(BENCH_SCENES)}")
    return to_dataclass(SceneConfig, BENCH_SCENES[name], "scene")


def settings_of(cfg: DictConfig) -> BenchSettings:
    return to_dataclass(BenchSettings, cfg.get("bench"), "bench")


def _engine_config(cfg: DictConfig) -> EngineConfig:
    return to_dataclass(EngineConfig, cfg.engine, "engine")


def _timed(step: Callable[[], None], sync: Callable[[], None], seconds: float, min_steps: int) -> float:
    """Seconds per call of step, running at least min_steps calls and about `seconds` in all."""
    sync()
    start = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - start
    count = max(min_steps, int(seconds / max(first, 1e-6)))
    start = time.perf_counter()
    for _ in range(count):
        step()
    sync()
    return (time.perf_counter() - start) / count


def _targets(engine: Engine) -> torch.Tensor:
    state = engine.default_state(engine.num_envs)
    g = torch.Generator().manual_seed(0)
    noise = TARGET_NOISE * torch.randn(state.humanoid.dof_pos.shape, generator=g, dtype=torch.float64)
    return (state.humanoid.dof_pos.cpu().double() + noise).to(engine.device, engine.dtype)


class _EngineLoop:
    """The engine's policy step as a task drives it."""

    def __init__(self, scene: Scene, engine_cfg: EngineConfig):
        self.engine = make_engine(scene, engine_cfg)
        self.engine.reset(None, self.engine.default_state(self.engine.num_envs))
        self.targets = _targets(self.engine)

    def step(self) -> None:
        self.engine.set_pd_targets(self.targets, check=False)  # tasks check their actions themselves
        self.engine.step()


class _RawMujocoLoop:
    """mujoco.batch stepping the same model, controls held at the same targets; with_state also computes the
    position and velocity stages at the state reached, as the engine does."""

    def __init__(self, scene: Scene, engine: Engine, targets: torch.Tensor, with_state: bool = False):
        import os

        import mujoco.batch

        nthread = engine.cfg.nthread or os.cpu_count() or 1
        self.batch = mujoco.batch.Batch(engine.scene.model, nsim=engine.num_envs, nthread=nthread)
        self.batch.reset()
        self.batch.bind("ctrl")[:, scene.actuator_ids.flatten()] = targets.flatten(1).cpu().double().numpy()
        self.decimation = engine.decimation
        self.stage = int(mujoco.mjtStage.mjSTAGE_VEL if with_state else mujoco.mjtStage.mjSTAGE_NONE)

    def step(self) -> None:
        self.batch.step(nstep=self.decimation, stage=self.stage)


class _RawWarpLoop:
    """mujoco_warp.step on the same model and buffer sizes as the engine, decimation steps per CUDA graph."""

    def __init__(self, scene: Scene, engine: Engine, targets: torch.Tensor):
        import mujoco_warp as mjw
        import warp as wp

        self.wp, self.mjw = wp, mjw
        self.device = engine.wp_device
        self.decimation = engine.decimation
        mjm = scene.model
        with wp.ScopedDevice(self.device):
            self.model = mjw.put_model(mjm)
            self.data = mjw.make_data(mjm, nworld=engine.num_envs, nconmax=engine.nconmax, njmax=engine.njmax)
        ctrl = wp.to_torch(self.data.ctrl)
        ctrl[:, torch.as_tensor(scene.actuator_ids.flatten(), device=ctrl.device)] = targets.flatten(1).to(ctrl)
        if ctrl.is_cuda:
            torch.cuda.synchronize(ctrl.device)  # torch wrote on its stream; Warp launches on its own
        self.graph = None
        self.use_graph = self.device.is_cuda and engine.cfg.cuda_graph
        with wp.ScopedDevice(self.device):
            self._steps()  # compile and load before capturing
            if self.use_graph:
                with wp.ScopedCapture(force_module_load=False) as capture:
                    self._steps()
                self.graph = capture.graph

    def _steps(self) -> None:
        for _ in range(self.decimation):
            self.mjw.step(self.model, self.data)

    def step(self) -> None:
        with self.wp.ScopedDevice(self.device):
            if self.graph is not None:
                self.wp.capture_launch(self.graph)
            else:
                self._steps()

    def sync(self) -> None:
        self.wp.synchronize_device(self.device)


Loop = tuple[Callable[[], None], Callable[[], None]]  # (one step, wait for the device)


def fastest(loops: dict[str, Loop], settings: BenchSettings) -> dict[str, float]:
    """Seconds per step of each loop {name: (step, sync)}: settings.warmup_steps untimed steps each, then
    settings.rounds rounds that alternate the loops (so that other load on the machine hits all alike), keeping each
    loop's fastest round."""
    for step, _ in loops.values():
        for _ in range(settings.warmup_steps):
            step()
    best = {name: float("inf") for name in loops}
    chunk = settings.seconds / settings.rounds
    for _ in range(settings.rounds):
        for name, (step, sync) in loops.items():
            best[name] = min(best[name], _timed(step, sync, chunk, settings.min_steps))
    return best


def measure(scene: Scene, engine_cfg: EngineConfig, settings: BenchSettings) -> BenchRow:
    """Engine and raw policy-step rates (summed over environments) for one scene and environment count."""
    n = engine_cfg.num_envs
    loop = _EngineLoop(scene, engine_cfg)
    engine = loop.engine
    on_cuda = engine.device.type == "cuda"
    sync_engine = (lambda: torch.cuda.synchronize(engine.device)) if on_cuda else (lambda: None)
    loops = {"engine": loop}
    if settings.raw:
        if engine_cfg.name == "warp":
            loops["raw"] = _RawWarpLoop(scene, engine, loop.targets)
        else:
            loops["raw"] = _RawMujocoLoop(scene, engine, loop.targets)
            loops["raw_state"] = _RawMujocoLoop(scene, engine, loop.targets, with_state=True)
    best = fastest({name: (timed.step, sync_engine if name == "engine" else getattr(timed, "sync", lambda: None))
                    for name, timed in loops.items()}, settings)
    memory = engine.memory_stats() if hasattr(engine, "memory_stats") else {}
    rate = {name: n / seconds for name, seconds in best.items()}
    return BenchRow(n, rate["engine"], rate.get("raw"), memory, rate.get("raw_state"))


def format_table(title: str, engine_cfg: EngineConfig, decimation: int, rows: list[BenchRow]) -> str:
    raw_name = "mujoco_warp" if engine_cfg.name == "warp" else "mujoco.batch"
    where = engine_cfg.device if engine_cfg.name == "warp" else f"nthread={engine_cfg.nthread or 'all'}"
    lines = [f"{title}: engine={engine_cfg.name} ({where}), decimation {decimation}, "
             f"rates in policy steps/s summed over environments",
             f"{'N':>6} {'engine':>12} {'raw ' + raw_name + '/dec':>22} {'ratio':>6}"
             + (f" {'raw with state':>15} {'ratio':>6}" if any(r.raw_state_rate for r in rows) else "")
             + (f" {'GPU MiB (warp/torch/device)':>28}" if any(r.memory for r in rows) else "")]
    for r in rows:
        line = f"{r.num_envs:>6} {r.engine_rate:>12,.0f} " + (f"{r.raw_rate:>22,.0f} {r.ratio:>6.1%}" if r.raw_rate
                                                              else f"{'-':>22} {'-':>6}")
        if r.raw_state_rate:
            line += f" {r.raw_state_rate:>15,.0f} {r.engine_rate / r.raw_state_rate:>6.1%}"
        if r.memory:
            m = r.memory
            line += f" {m.get('warp_mempool_peak_mib', 0):>10,.0f}/{m.get('torch_max_allocated_mib', 0):,.0f}" \
                    f"/{m.get('device_used_mib', 0):,.0f}"
        lines.append(line)
    return "\n".join(lines)


def run(cfg: DictConfig) -> int:
    settings = settings_of(cfg)
    base = _engine_config(cfg)
    if base.name not in DEFAULT_NUM_ENVS:
        raise EngineConfigError(f"unknown engine {base.name!r}")
    counts = list(settings.num_envs or DEFAULT_NUM_ENVS[base.name])
    scenes = list(settings.scenes or BENCH_SCENES)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    results = {}
    for name in scenes:
        scene = build_scene(scene_config(name))
        rows = []
        for n in counts:
            engine_cfg = EngineConfig(**{**base.__dict__, "num_envs": int(n)})
            rows.append(measure(scene, engine_cfg, settings))
            log.info("%s N=%d: %.0f policy steps/s", name, n, rows[-1].engine_rate)
        table = format_table(SCENE_TITLES.get(name, name), base, derive_decimation(base, scene.model.opt.timestep), rows)
        print(table, flush=True)
        results[name] = rows
    task_counts = settings.task_num_envs
    if task_counts is None:
        task_counts = [128] if base.name == "mujoco" else [4096]
    if task_counts:
        print(task_table(cfg, settings, task_counts), flush=True)
    return 0


def task_table(cfg: DictConfig, settings: BenchSettings, counts: list[int]) -> str:
    """The task envs' whole step (BENCH_TASKS: 1, 2 and 4 agents) in environment steps/s, next to raw mujoco.batch
    (or mujoco_warp) stepping the same scene, in alternating rounds."""
    from coohoi.cli import compose
    from coohoi.envs import make_env

    lines = [f"task envs: engine={cfg.engine.name}, whole env steps (observations, rewards, resets) in environment "
             f"steps/s; agent steps/s = that x agents",
             f"{'agents':>6} {'task':>20} {'N':>6} {'env':>10} {'agent steps':>12} {'raw':>10} {'ratio':>6}"]
    engine_overrides = [f"engine.{k}={v}" for k, v in cfg.engine.items() if k not in ("num_envs", "name")
                        and v is not None and not isinstance(v, (dict, list))]
    for agents, task in BENCH_TASKS.items():
        if settings.task_agents is not None and agents not in settings.task_agents:
            continue
        for n in counts:
            run_cfg = compose([*task, f"engine={cfg.engine.name}", f"engine.num_envs={int(n)}", *engine_overrides])
            env = make_env(run_cfg)
            env.reset()
            action = env.default_pose_action().to(torch.float32).expand(env.num_rows, -1).contiguous()
            on_cuda = env.engine.device.type == "cuda"
            loops = {"env": (lambda: env.step(action),
                             (lambda: torch.cuda.synchronize(env.device)) if on_cuda else (lambda: None))}
            if settings.raw:
                raw = (_RawWarpLoop if on_cuda else _RawMujocoLoop)(env.engine.scene, env.engine, _targets(env.engine))
                loops["raw"] = (raw.step, getattr(raw, "sync", lambda: None))
            best = fastest(loops, settings)
            rate = n / best["env"]
            raw_rate = n / best["raw"] if "raw" in best else None
            lines.append(f"{agents:>6} {run_cfg.task.name:>20} {n:>6} {rate:>10,.0f} {agents * rate:>12,.0f} "
                         + (f"{raw_rate:>10,.0f} {rate / raw_rate:>6.1%}" if raw_rate else f"{'-':>10} {'-':>6}"))
    return "\n".join(lines)

