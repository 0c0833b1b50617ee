"""The `coohoi` command.

    coohoi train  [hydra overrides]      train a policy (task=amp_locomotion | carry_box | ...)
    coohoi play   [hydra overrides]      play a checkpoint back in the viewer
    coohoi bench  [hydra overrides]      engine and training throughput
    coohoi motion generate|show|render   reference motions (see `coohoi motion --help`)

Hydra commands read cfg/ (installed as coohoi.cfg); unknown keys stop with a message naming them.
"""

from __future__ import annotations

import os
import sys
from importlib import resources

# OpenMP threads that wait for work sleep instead of spinning (set before torch loads its OpenMP runtime). Spinning
# threads make every core look busy: on a machine shared with another job, PPO's updates ran 2.2x (TD3's 2.1x)
# slower with two threads than with one; with passive waiting, two threads stay faster than one even then
# (docs/learning_evidence.md, "Thread counts").
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from omegaconf import DictConfig, OmegaConf

HYDRA_COMMANDS = {
    "train": ("coohoi.agents.train", "train"),
    "play": ("coohoi.agents.play", "play"),
    "render": ("coohoi.agents.play", "render"),
    "export": ("coohoi.agents.export", "export"),
    "eval": ("coohoi.agents.evaluation", "evaluate_command"),
    "bench": ("coohoi.agents.throughput", "bench"),
}
USAGE = __doc__


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
    """Dotted keys below `section` that command-line overrides set (`train.ppo.learning_rate=1e-3` -> ppo.learning_rate)."""
    keys = set()
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key.startswith(section + "."):
            keys.add(key[len(section) + 1:])
    return keys


def apply_cpu_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """On the CPU engine, set cfg.train.cpu_overrides' keys that the command line leaves alone; record what changed
    in cfg.train.cpu_applied (a run prints it once)."""
    if not str(cfg.engine.device).startswith("cpu") or "train" not in cfg:
        return
    explicit = explicit_keys(overrides, "train")
    applied = {}
    for key, value in (cfg.train.cpu_overrides or {}).items():
        if any(key == e or key.startswith(e + ".") for e in explicit):
            continue
        if OmegaConf.select(cfg.train, key) != value:
            OmegaConf.update(cfg.train, key, value, merge=False)
            applied[key] = value
    cfg.train.cpu_applied = applied


def compose(overrides: list[str], config_name: str = "config") -> DictConfig:
    """Compose the hydra config from cfg/ with command-line overrides (also used by tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schemas()
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = hydra_compose(config_name=config_name, overrides=overrides)
    OmegaConf.resolve(cfg)
    apply_cpu_overrides(cfg, overrides)
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "motion":
        from coohoi.motion.cli import main as motion_main

        return motion_main(rest) or 0
    if command not in HYDRA_COMMANDS:
        print(f"coohoi: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = compose(rest)
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"coohoi {command}: bad configuration: {exc}", file=sys.stderr)
        return 2
    module_name, func_name = HYDRA_COMMANDS[command]
    module = __import__(module_name, fromlist=[func_name])
    try:
        return getattr(module, func_name)(cfg, rest) or 0
    except ValueError as exc:  # config errors raised by our builders name the setting
        print(f"coohoi {command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
