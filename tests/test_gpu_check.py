"""The prepared GPU check (scripts/gpu_check.sh) rehearsed on the CPU: every section writes its
table with provenance, a section stopped at its limit loses only itself; and the window scripts
end what they started by process group, never by name (a decoy `repro.train` survives)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("tests", "vit", "stream", "regime")
DECOY = "import time; time.sleep(120)  # looks like python -m repro.train to pkill -f"


def check(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "REPRO_COMMIT": "abc1234"}
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out), "--dry-run", *args],
                          capture_output=True, text=True, env=env, timeout=900)


def table(out: Path, section: str) -> dict:
    (path,) = out.glob(f"gpu_check_{section}_*.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("check")
    done = check(out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.slow
def test_every_section_writes_its_table_with_provenance(dry_run):
    markdown = (dry_run / "check.md").read_text()
    for section in SECTIONS:
        result = table(dry_run, section)
        p = result["provenance"]
        assert p["commit"] == "abc1234 (declared)" and p["versions"]["torch"] and p["versions"]["timm"]
        assert p["hardware"] and result["command"].endswith("--dry-run") and "cuda" in result
        assert f"## {section}\n\n| " in markdown
    assert "no table" not in markdown
    assert len(list(dry_run.iterdir())) <= 8                   # what a lent machine sends back
    assert table(dry_run, "tests")["summary"]["skipped"] >= 7        # no GPU here: all skipped
    vit = table(dry_run, "vit")
    assert set(vit["img_per_s"]) == {"ours", "bare", "bare_on_our_batches", "ours_compiled", "cuda_graphs",
                                     "dataloader_eager_amp"}
    assert all(v > 0 for v in vit["mfu_vs_measured"].values())
    stream = table(dry_run, "stream")["rates"]
    assert all(r["img_per_s_steady"] > 0 for r in stream.values())
    sides = table(dry_run, "regime")["sides"]
    assert set(sides) == {"single", "batched_2"}
    assert all(s["finished"] == s["runs"] == 2 and s["measured"] for s in sides.values())


@pytest.mark.slow
def test_a_section_past_its_limit_loses_only_itself(tmp_path):
    done = check(tmp_path, "--sections", "stream,tests", "--limit", "stream=2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not list(tmp_path.glob("gpu_check_stream_*")) and table(tmp_path, "tests")["summary"]
    assert "Section stream stopped at its limit of 2 s" in (tmp_path / "check.md").read_text()
    time.sleep(1)
    left = [p for p in Path("/proc").glob("[0-9]*") if str(tmp_path) in read_cmdline(p)]
    assert not left                                           # the stopped section's processes too


def read_cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may leave orphans unreaped)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_end_tracked_ends_what_the_window_started_and_spares_a_decoy(tmp_path):
    decoy = subprocess.Popen([sys.executable, "-c", DECOY])      # someone else's training run
    pids = tmp_path / "pids"
    script = f"""
        source {ROOT}/scripts/gpu_lib.sh
        track bash -c '{sys.executable} -c "{DECOY}" & echo $! >> {pids}; sleep 120'
        track timeout 120 {sys.executable} -c "{DECOY}"
        sleep 1; echo "${{TRACKED[@]}}" >> {pids}
        end_tracked 5
    """
    try:
        subprocess.run(["bash", "-c", script], check=True, timeout=60)
        started = [int(p) for p in pids.read_text().split()]
        assert len(started) == 3 and not any(map(running, started))   # the tracked jobs, a grandchild
        assert decoy.poll() is None                                   # pkill -f repro.train killed it
    finally:
        decoy.send_signal(signal.SIGKILL)
        decoy.wait()


def test_the_window_scripts_end_processes_by_group_not_by_name():
    for name in ("gpu_window.sh", "gpu_check.sh"):
        text = (ROOT / "scripts" / name).read_text()
        assert "pkill" not in text and "killall" not in text
        assert "end_tracked" in text and "track timeout" in text


def test_runs_per_minute_is_measured_when_done_and_projected_from_the_steady_rate_otherwise(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))          # its imports of the sibling scripts
    regime = load_script("gpu_check_regime")
    samples = [(1.0, 0.0), (2.0, 0.0), (4.0, 0.5), (6.0, 1.5), (8.0, 2.5), (10.0, 3.5)]
    done = regime.rate(samples, 10.0, 4, 4)
    assert done["measured"] and done["runs_per_gpu_minute"] == pytest.approx(24.0)
    cut = regime.rate(samples, 10.0, 4, 0)      # 0.5 runs / s over the second half: 1 s left
    assert not cut["measured"] and cut["run_s"] == pytest.approx(11.0)
    assert cut["first_progress_s"] == 4.0 and cut["runs_per_gpu_minute"] == pytest.approx(240 / 11)
    assert regime.rate([(1.0, 0.0)], 5.0, 2, 0)["runs_per_gpu_minute"] is None      # nothing moved
