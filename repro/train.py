"""Hydra entry point: `python -m repro.train [overrides]` (console script `repro-train`).

Exit status: 0 the run finished (or was finished already), or stopped on SIGTERM / SIGUSR1 /
SIGUSR2 with a checkpoint (relaunch to resume); 1 a fault stopped it after compute was spent (a
non-finite loss, a file it cannot write: the line says what is kept and what to do); 2 refused
before compute (one line naming the key or path and the fix; Hydra's own composition errors too);
130 stopped by Ctrl-C (SIGINT: once, with a checkpoint; twice, at once)."""
from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from repro import distributed, paths
from repro.compose import compose_config
from repro.errors import one_line
from repro.loop.run import run
from repro.records import rundir


def hydra_record(cfg: DictConfig) -> dict[str, str]:
    """Hydra's own record of the launch (.hydra/), which Hydra is told not to write itself
    (hydra.output_subdir: null) so that a refused launch changes nothing."""
    hydra_cfg = HydraConfig.get()
    return {".hydra/config.yaml": OmegaConf.to_yaml(cfg),
            ".hydra/hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})),
            ".hydra/overrides.yaml": OmegaConf.to_yaml(hydra_cfg.overrides.task)}


LAUNCHED: list[bool] = []      # set once Hydra has composed the config and called `launch`


@hydra.main(version_base="1.3", config_path=str(paths.CONF), config_name="config")   # absolute: repro-train
def launch(cfg: DictConfig) -> float | None:
    LAUNCHED.append(True)
    try:
        with one_line():
            summary = run(cfg, HydraConfig.get().runtime.output_dir, hydra_record(cfg))
    finally:
        rundir.remove_created()          # a refused run leaves no folder behind
        distributed.teardown()
    if summary.get("exit_status"):
        sys.exit(summary["exit_status"])
    return None if "interrupted" in summary else summary["test_acc"]


def main() -> None:
    """Hydra's main (`launch`), with a config Hydra itself cannot compose (an unknown option, a
    data key's bad choice: Hydra's message over several lines, its exit status 1) refused in one
    line with exit status 2 (composed here first; with Hydra's flags, e.g. -m, Hydra's message)."""
    LAUNCHED.clear()
    if not any(arg.startswith("-") for arg in sys.argv[1:]):
        with one_line(HydraException):
            compose_config(sys.argv[1:])
    try:
        launch()
    except SystemExit as stop:
        if stop.code == 1 and not LAUNCHED:
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
