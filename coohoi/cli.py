"""The `coohoi` command.

    coohoi train  [KEY=VALUE ...]        train a policy (task=amp_locomotion | carry_box | ...)
    coohoi play   [KEY=VALUE ...]        play a policy back in the viewer, or headless
    coohoi render [KEY=VALUE ...]        film a policy into a video, headless
    coohoi export [KEY=VALUE ...]        a checkpoint's actor as ONNX and TorchScript
    coohoi eval   [KEY=VALUE ...]        evaluate a policy over fixed-seed episodes
    coohoi bench  [KEY=VALUE ...]        engine and training throughput
    coohoi motion generate|list|info|check|show|render|import   reference motions (`coohoi motion --help`)

`coohoi <command> --help` (or `coohoi help <command>`) lists the command's settings, config groups and examples;
`coohoi <command> [KEY=VALUE ...] --cfg` prints the config it would run with and runs nothing.
Settings are hydra overrides of cfg/ (installed as coohoi.cfg); an unknown, deleted or impossible setting stops
before anything runs, with a message naming it.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import os
import re
import sys
import textwrap
from importlib import resources
from pathlib import Path

# OpenMP threads that wait for work sleep instead of spinning (set before torch loads its OpenMP runtime). Spinning
# threads make every core look busy: on a machine shared with another job, PPO's updates ran 2.2x (TD3's 2.1x)
# slower with two threads than with one; with passive waiting, two threads stay faster than one even then
# (docs/learning_evidence.md, "Thread counts").
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from omegaconf import DictConfig, OmegaConf

from coohoi.config import override_key

USAGE = __doc__
EXIT_USAGE = 2  # a command line that cannot run: bad setting, unknown command or option
HELP_FLAGS = ("-h", "--help")
CFG_FLAGS = ("--cfg", "-c")  # hydra's spelling, optionally followed by job or all (the same here)
CFG_MODES = ("job", "all")
GROUPS = {"task": "task.name", "engine": "engine.name", "train": "train.algo"}  # cfg/<group>/*.yaml: what each sets
TASK_KEYS = ("name", "env_type", "scene", "env")
POLICY_COMMANDS = ("play", "render", "export", "eval")  # they run a policy with the config of its own run


class Command:
    """A hydra command: where its function lives, what it does, its own settings section and examples."""

    def __init__(self, target: str, summary: str, section: str | None, examples: list[str]):
        self.module, self.func = target.split(":")
        self.summary, self.section, self.examples = summary, section, examples


COMMANDS = {
    "train": Command("coohoi.agents.train:train", "Train a policy on a task (PPO on rl-games, or TD3); writes "
                     "runs/<experiment>/ (checkpoints, tensorboard, metrics.jsonl).", "train", [
                         "coohoi train                                        # AMP locomotion, PPO, 128 CPU envs",
                         "coohoi train task=carry_box engine=warp engine.num_envs=4096 experiment=box_gpu",
                         "coohoi train train=td3 train.max_minutes=45         # the off-policy learner",
                         "coohoi train task=carry_box checkpoint=runs/box_gpu/nn/last.pth resume=true",
                         "coohoi train task=team_carry_long_box train.init_from=runs/box_gpu/nn/last.pth"]),
    "play": Command("coohoi.agents.play:play", "Play a policy (checkpoint=PATH: a .pth checkpoint or an exported "
                    ".onnx) or the zero action in the MuJoCo viewer, or headless with episode metrics.", "play", [
                        "coohoi play checkpoint=runs/carry_box/nn/last.pth",
                        "coohoi play checkpoint=runs/carry_box/nn/last.pth play.headless=true play.steps=600",
                        "coohoi play task=carry_box play.policy=zero       # the zero-action baseline",
                        "coohoi play checkpoint=runs/carry_box/nn/last.pth --cfg   # the config it plays with"]),
    "render": Command("coohoi.agents.play:render", "Film a policy (or the zero action) headless into a video per "
                      "environment (MUJOCO_GL=egl or osmesa).", "render", [
                          "coohoi render checkpoint=runs/carry_box/nn/last.pth render.out=carry.mp4",
                          "coohoi render checkpoint=runs/carry_box/nn/last.pth render.envs=[0,1,2] render.seconds=5",
                          "coohoi render task=team_carry_table render.policy=zero render.follow=object",
                          "coohoi render checkpoint=runs/x/nn/last.pth render.width=320 render.height=240"]),
    "export": Command("coohoi.agents.export:export", "Export a checkpoint's actor as ONNX and TorchScript with a "
                      "metadata JSON, checked for parity with torch.", "export", [
                          "coohoi export checkpoint=runs/carry_box/nn/last.pth      # beside the checkpoint",
                          "coohoi export checkpoint=runs/carry_box/nn/last.pth export.out=deploy/carry",
                          "coohoi export checkpoint=runs/x/nn/last.pth export.parity_samples=4096"]),
    "eval": Command("coohoi.agents.evaluation:evaluate_command", "Evaluate a policy (or the zero action) over "
                    "eval.episodes fixed-seed episodes; writes metrics.json and episodes.csv.", "eval", [
                        "coohoi eval checkpoint=runs/carry_box/nn/last.pth",
                        "coohoi eval checkpoint=runs/carry_box/nn/last.pth eval.episodes=256 engine.num_envs=64",
                        "coohoi eval task=team_carry_table checkpoint=runs/table/nn/last.pth eval.team_size=4",
                        "coohoi eval task=carry_box eval.policy=zero"]),
    "bench": Command("coohoi.agents.throughput:bench", "Time the engine against raw batched MuJoCo, the task envs, "
                     "and training throughput.", "bench", [
                         "coohoi bench",
                         "coohoi bench bench.num_envs=[256] bench.scenes=[box1]",
                         "coohoi bench engine=warp",
                         "coohoi bench bench.training_num_envs=[]                # skip the training table"]),
}


def config_dir() -> str:
    return str(resources.files("coohoi.cfg"))


def register_schemas() -> None:
    """Put the typed configs in hydra's ConfigStore as `schema` of their groups (cfg/*/ yamls extend them), so that
    every default has one source and unknown keys stop composition."""
    from hydra.core.config_store import ConfigStore

    from coohoi.agents.config import (EvalCommandConfig, ExportConfig, PlayConfig, RenderConfig, TrainConfig,
                                      WandbConfig)
    from coohoi.bench import BenchSettings
    from coohoi.config import EngineConfig, SceneConfig
    from coohoi.envs import TASKS

    store = ConfigStore.instance()
    for group, node in (("engine", EngineConfig), ("train", TrainConfig), ("play", PlayConfig),
                        ("render", RenderConfig), ("export", ExportConfig), ("eval", EvalCommandConfig),
                        ("wandb", WandbConfig), ("bench", BenchSettings), ("schema/scene", SceneConfig)):
        store.store(group=group, name="schema", node=node)
    for env_type, (_, env_cfg) in TASKS.items():  # task yamls: `- /schema/env@task.env: <env_type>`
        store.store(group="schema/env", name=env_type, node=env_cfg)


def explicit_keys(overrides: list[str], section: str) -> set[str]:
    """Dotted keys below `section` that command-line overrides set (`train.ppo.learning_rate=1e-3`,
    `+train.ppo.learning_rate=1e-3` and `++train.ppo.learning_rate=1e-3` -> ppo.learning_rate)."""
    keys = set()
    for item in overrides:
        key = override_key(item)
        if key.startswith(section + "."):
            keys.add(key[len(section) + 1:])
    return keys


def apply_cpu_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """On the CPU engine, set cfg.train.cpu_overrides' keys that the command line leaves alone (a task yaml's value
    is a default like any other: a task that needs its own CPU value sets train.cpu_overrides.<key>); record what
    changed in cfg.train.cpu_applied (`coohoi train` prints it once)."""
    if not str(cfg.engine.device).startswith("cpu") or "train" not in cfg:
        return
    explicit = explicit_keys(overrides, "train")
    applied = {}
    for key, value in (cfg.train.cpu_overrides or {}).items():
        if OmegaConf.select(cfg.train, key, default=KeyError) is KeyError:
            continue  # no such setting: train_config refuses it, naming it
        if any(key == e or key.startswith(e + ".") for e in explicit):
            continue
        if OmegaConf.select(cfg.train, key) != value:
            OmegaConf.update(cfg.train, key, value, merge=False)
            applied[key] = value
    cfg.train.cpu_applied = applied


@functools.lru_cache(maxsize=None)
def top_level() -> tuple[dict, tuple[str, ...]]:
    """cfg/config.yaml's own settings with their defaults, and its sections (the groups of its defaults list)."""
    raw = OmegaConf.to_container(OmegaConf.load(Path(config_dir()) / "config.yaml"))
    return raw, tuple(next(iter(entry)) for entry in raw.pop("defaults") if isinstance(entry, dict))


def _check_top_level(cfg: DictConfig) -> None:
    """The top-level keys are cfg/config.yaml's; each keeps its default's type (null: any text or null)."""
    from coohoi.config import NON_NEGATIVE, ConfigError, check_ranges

    defaults, sections = top_level()
    for key in cfg:
        if key not in defaults and key not in sections:
            raise ConfigError(f"unknown setting {key!r}; the top-level keys are {', '.join([*defaults, *sections])}")
    for key in [*defaults, *sections]:
        if key not in cfg:
            raise ConfigError(f"{key} cannot be deleted; set it instead")
    for key, default in defaults.items():
        value = cfg[key]
        if isinstance(default, int) and type(value) is not type(default):  # bool is an int too
            raise ConfigError(f"{key} must be {'true or false' if isinstance(default, bool) else 'an integer'}, "
                              f"got {value!r}")
        if OmegaConf.is_config(value):
            raise ConfigError(f"{key} must be a single value, got {OmegaConf.to_container(value)}")
    check_ranges(cfg, "", [("torch_threads learn_threads", NON_NEGATIVE)])
    for key in cfg.task:
        if key not in TASK_KEYS:
            raise ConfigError(f"unknown setting task.{key}; task has {', '.join(TASK_KEYS)} "
                              f"(settings go below task.env or task.scene)")
    for key in TASK_KEYS:
        if key not in cfg.task:
            raise ConfigError(f"task.{key} cannot be deleted; set it instead")


def check_config(cfg: DictConfig) -> None:
    """Check the whole composed config: its keys (hydra lets `+key`, `++key` and `~key` through its typed nodes)
    and every section's values against its dataclass, ranges included. Raises a ValueError naming the key."""
    from coohoi.agents.config import COMMAND_SECTIONS, TrainConfig, TrainConfigError, section_config, train_config
    from coohoi.bench import BenchSettings, settings_of
    from coohoi.config import ConfigError, EngineConfig, SceneConfig, check_keys, validate_engine
    from coohoi.envs import TASKS, task_configs
    from coohoi.envs.config import EnvConfigError, validate_humanoid_config
    from coohoi.scene import validate_scene

    _check_top_level(cfg)
    env_type = cfg.task.env_type
    if env_type not in TASKS:
        raise EnvConfigError(f"task {cfg.task.name!r} has unknown task.env_type {env_type!r}; "
                             f"known: {', '.join(TASKS)}")
    check_keys(TASKS[env_type][1], cfg.task.env, "task.env", EnvConfigError)
    check_keys(SceneConfig, cfg.task.scene, "task.scene", EnvConfigError)
    check_keys(EngineConfig, cfg.engine, "engine", ConfigError)
    check_keys(TrainConfig, cfg.train, "train", TrainConfigError)
    check_keys(BenchSettings, cfg.bench, "bench", ConfigError)
    for name, (cls, _) in COMMAND_SECTIONS.items():
        check_keys(cls, cfg[name], name, ConfigError)
    _, env_cfg, scene_cfg, engine_cfg = task_configs(cfg)  # types and finite numbers
    validate_humanoid_config(env_cfg)
    validate_scene(scene_cfg, "task.scene")
    validate_engine(engine_cfg)
    train_config(cfg.train)
    settings_of(cfg)
    for name in COMMAND_SECTIONS:
        section_config(name, cfg[name])


def compose(overrides: list[str], config_name: str = "config") -> DictConfig:
    """Compose the hydra config from cfg/ with command-line overrides and check all of it (also used by tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from coohoi.config import ConfigError

    for item in overrides:
        if not override_key(item):  # hydra's parser asserts on an empty key
            raise ConfigError(f"{item!r}: a setting needs a key (KEY=VALUE)")
        if item.startswith("~"):
            raise ConfigError(f"{item}: settings cannot be deleted; set them instead (null where a setting allows it)")
        if re.match(r"\+*hydra[./]", item):  # hydra's compose API would drop them without a word
            raise ConfigError(f"{item}: coohoi does not use hydra's own settings; runs go to output_dir/experiment")
    register_schemas()
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = hydra_compose(config_name=config_name, overrides=overrides)
    OmegaConf.resolve(cfg)
    apply_cpu_overrides(cfg, overrides)
    check_config(cfg)
    return cfg


def policy_task(command: str, overrides: list[str]) -> list[str]:
    """The overrides to compose a policy command with: play, render, export and eval of a checkpoint run the task of
    the run that trained it, so the command line's task.* settings are checked against that task's (when this
    version has a task of its name; the run's own values apply later: run_config). task=NAME swaps the task."""
    given = {override_key(o): o.split("=", 1)[-1] for o in overrides}
    if command not in POLICY_COMMANDS or "task" in given or not given.get("checkpoint"):
        return overrides
    from coohoi.agents.policy import load_policy

    stored = load_policy(given["checkpoint"]).config
    name = stored.task.get("name") if stored is not None and "task" in stored else None
    if name and (Path(config_dir()) / "task" / f"{name}.yaml").is_file():
        return [f"task={name}", *overrides]
    return overrides


def run_config(command: str, cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The config a command runs with: for play, render, export and eval of a checkpoint, its run's task and
    training settings with the command line's on top (coohoi.agents.policy.policy_run_config), and eval's
    shorthands (eval.object_kind, eval.team_size) as the task settings they stand for."""
    section = cfg.get(command)
    if command == "eval":
        from coohoi.agents.evaluation import with_shorthands

        cfg, overrides = with_shorthands(cfg, overrides)
    if command in POLICY_COMMANDS and cfg.get("checkpoint") and section.get("policy", "checkpoint") == "checkpoint":
        from coohoi.agents.policy import load_policy, policy_run_config

        return policy_run_config(cfg, overrides, load_policy(cfg.checkpoint))
    return cfg


# ---- help -----------------------------------------------------------------------------------------------------------

def _choices(group: str) -> list[tuple[str, str]]:
    """(name, what it is) of each cfg/<group>/*.yaml: the first clause of its leading comment."""
    found = []
    for path in sorted(Path(config_dir(), group).glob("*.yaml")):
        comment = " ".join(line.lstrip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines()
                           if line.startswith("#") and "@package" not in line)
        first = re.split(r"\. | \(|; ", comment, maxsplit=1)[0].rstrip(".")
        found.append((path.stem, first if len(first) <= 90 else first[:87] + "..."))
    return found


def _field_comments(cls: type) -> dict[str, str]:
    """The inline comment of each field in the dataclass's source (the one place that explains it)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return dict(re.findall(r"^\s+(\w+): [^\n#]+#\s*(.+)$", source, flags=re.M))


def _value(value) -> str:
    """A setting as it is typed on the command line (null, true, [256, 128])."""
    value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value).replace("None", "null")


def command_help(command: str, overrides: list[str]) -> str:
    """What the command does, its config groups and choices, its settings (values after `overrides`), examples."""
    from coohoi.agents.config import COMMAND_SECTIONS, TrainConfig
    from coohoi.bench import BenchSettings
    from coohoi.config import OBJECT_KINDS

    spec = COMMANDS[command]
    cfg = compose(overrides)
    lines = [f"coohoi {command}: {spec.summary}", "",
             f"usage: coohoi {command} [KEY=VALUE ...] [--cfg [job|all]] [--help]",
             "  KEY=VALUE sets a setting (hydra override syntax); --cfg prints the resulting config and runs nothing.",
             "", "config groups (GROUP=CHOICE):"]
    for group, chosen in GROUPS.items():
        lines.append(f"  {group}  (now {OmegaConf.select(cfg, chosen)})")
        lines += [f"    {name:<22} {about}" for name, about in _choices(group)]
    lines += [f"  task.scene.object.kind: {', '.join(OBJECT_KINDS)}", ""]
    section = cfg[spec.section]
    cls = {"train": TrainConfig, "bench": BenchSettings}.get(spec.section) or COMMAND_SECTIONS[spec.section][0]
    comments = _field_comments(cls)
    lines.append(f"{spec.section} settings (values with this command line; set with {spec.section}.KEY=VALUE):")
    nested = []
    for key, value in section.items():
        if isinstance(value, DictConfig) and key not in ("cpu_overrides", "cpu_applied"):
            nested.append(f"{spec.section}.{key}.*")
        elif key not in ("cpu_overrides", "cpu_applied"):
            text = f"  {spec.section}.{key} = {_value(value)}"
            lines.append(f"{text:<44} # {comments[key]}" if key in comments else text)
    wrap = functools.partial(textwrap.fill, width=118, initial_indent="  ", subsequent_indent="    ")
    if nested:
        lines.append(wrap(f"{', '.join(nested)}: nested settings (`coohoi {command} --cfg` lists every value)"))
    if command == "train" and cfg.train.get("cpu_applied"):
        lines.append(wrap("on the CPU engine, unless set on the command line (train.cpu_overrides): "
                          + ", ".join(f"{k}={_value(v)}" for k, v in cfg.train.cpu_applied.items())))
    shared = wrap(", ".join(f"{key}={_value(cfg[key])}" for key in top_level()[0]))
    lines += ["", "shared settings:", shared, "", "examples:", *(f"  {e}" for e in spec.examples)]
    return "\n".join(lines)


# ---- main -----------------------------------------------------------------------------------------------------------

def parse_flags(args: list[str]) -> tuple[list[str], bool, bool]:
    """Split a command's arguments into (overrides, --help given, --cfg given); other options are refused."""
    from coohoi.config import ConfigError

    overrides, want_help, want_cfg = [], False, False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in HELP_FLAGS:
            want_help = True
        elif arg in CFG_FLAGS or arg.startswith("--cfg="):
            want_cfg, mode = True, arg.partition("=")[2]
            if not mode and i + 1 < len(args) and "=" not in args[i + 1] and not args[i + 1].startswith("-"):
                i, mode = i + 1, args[i + 1]  # `--cfg job`: a word that is no override
            if mode and mode not in CFG_MODES:
                raise ConfigError(f"--cfg {mode}: coohoi prints its own config only; use --cfg, --cfg job or --cfg all")
        elif arg == "--resolve":
            pass  # the config printed is always resolved
        elif arg.startswith("-"):
            raise ConfigError(f"unknown option {arg}; give KEY=VALUE settings, --help or --cfg")
        else:
            overrides.append(arg)
        i += 1
    return overrides, want_help, want_cfg


def _one_line(exc: BaseException) -> str:
    """hydra's and omegaconf's messages span lines (object types, the override with a caret, links) and keep the
    reason in their cause; keep the lines that say what is wrong."""
    noise = ("full_key:", "reference_type=", "object_type=", "To append to your config", "See https://", "^")
    text = str(exc) + ("\n" + str(exc.__cause__) if exc.__cause__ and str(exc.__cause__) not in str(exc) else "")
    text = text.split("Config search path:")[0]
    kept = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(noise)]
    return " ".join(kept) or type(exc).__name__


def _did_you_mean(message: str, overrides: list[str]) -> str:
    """For hydra's "Could not override 'a.b.kye'": the closest key that exists there, if any."""
    match = re.search(r"Could not override '([\w.]+)'", message)
    if not match:
        return ""
    parent, _, leaf = match.group(1).rpartition(".")
    try:
        cfg = compose([o for o in overrides if override_key(o) != match.group(1)])
    except Exception:  # noqa: BLE001  (another override is wrong too: no suggestion)
        return ""
    node = OmegaConf.select(cfg, parent) if parent else cfg
    close = difflib.get_close_matches(leaf, list(node), n=1) if isinstance(node, DictConfig) else []
    return f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in HELP_FLAGS or argv == ["help"]:
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "help":
        command, rest = rest[0], [*rest[1:], "--help"]
    if command == "motion":
        from coohoi.motion.cli import main as motion_main

        return motion_main(rest) or 0
    if command not in COMMANDS:
        print(f"coohoi: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        import mujoco  # noqa: F401  (it checks MUJOCO_GL when it loads)
    except RuntimeError as exc:  # MUJOCO_GL names no backend
        print(f"coohoi {command}: {_one_line(exc)} (MUJOCO_GL=egl or osmesa renders headless)", file=sys.stderr)
        return EXIT_USAGE
    from coohoi.render import RenderError

    overrides = rest
    try:
        overrides, want_help, want_cfg = parse_flags(rest)
        if want_help:
            print(command_help(command, overrides))
            return 0
        cfg = compose(policy_task(command, overrides))
        if want_cfg:
            print(OmegaConf.to_yaml(run_config(command, cfg, overrides)), end="")
            return 0
        spec = COMMANDS[command]
        module = __import__(spec.module, fromlist=[spec.func])
        return getattr(module, spec.func)(cfg, overrides) or 0
    except (HydraException, OmegaConfBaseException, ValueError, RenderError) as exc:
        # ValueError: our config errors (ConfigError, CheckpointError) name the setting; RenderError carries a hint
        message = _one_line(exc)
        if isinstance(exc, HydraException):
            message += _did_you_mean(message, overrides)
        print(f"coohoi {command}: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
