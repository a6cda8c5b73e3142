"""The tracked SLURM launcher config composes, and the sbatch script submitit would submit for
it carries the intended parameters (no cluster here: submitit renders it, nothing is sent)."""
import os
import stat

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from repro.paths import CONF

submitit = pytest.importorskip("submitit")


def launcher_params(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert params.pop("_target_").endswith("SlurmLauncher")
    return params


def sbatch_text(params, folder, monkeypatch):
    """What hydra-submitit's launcher does with these params, up to the submission file."""
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    fake = folder / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    params = {**params, "submitit_folder": str(folder / "jobs"), "name": "repro"}
    executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster="slurm",
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    return executor._executor._make_submission_file_text("python -m repro.train", "uid")


def test_slurm_launcher_renders_the_intended_sbatch(tmp_path, monkeypatch):
    params = launcher_params("hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4",
                             "hydra.launcher.tasks_per_node=4", "hydra.launcher.nodes=2")
    text = sbatch_text(params, tmp_path, monkeypatch)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=4", "#SBATCH --nodes=2",
                 "#SBATCH --ntasks-per-node=4", "#SBATCH --time=600", "#SBATCH --mem=64GB",
                 "#SBATCH --signal=USR2@120", "#SBATCH --cpus-per-task=8"):
        assert line in text, line
    assert "srun" in text and "python -m repro.train" in text


def test_no_cluster_specifics_are_tracked():
    params = launcher_params()
    assert params["partition"] is None and params["account"] is None
