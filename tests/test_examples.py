"""Every script in ``examples/`` runs as written, with a tiny budget, and prints its result (as CleanRL tests its scripts)."""

import glob
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def _run(args: list[str], cwd, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    """Run ``args`` from ``cwd`` with this repository importable and one thread per process; it must succeed."""
    environ = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", **(env or {})}
    result = subprocess.run(args, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _example(name: str, *flags: str, cwd) -> str:
    return _run([sys.executable, os.path.join(EXAMPLES, name), "--timesteps", "512", "--eval-episodes", "2", *flags], cwd)


def test_every_example_is_tested():
    tested = {"cartpole_pdm_vs_ppo.py", "lunarlander_a2c.py", "cnn_policy.py", "multi_input_policy.py", "maskable_ppo.py"}
    assert {os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.py"))} == tested
    readme = open(os.path.join(EXAMPLES, "README.md")).read()
    assert all(name in readme for name in [*tested, "zoo.sh"])


def test_cartpole_pdm_vs_ppo(tmp_path):
    out = _example("cartpole_pdm_vs_ppo.py", "--n-steps", "256", "--frozen", cwd=tmp_path)
    for name in ("ppo (backprop)", "ppo (pdm)", "ppo (pdm, frozen)"):
        assert f"{name} " in out and "return" in out, out


def test_lunarlander_a2c(tmp_path):
    logdir, save_path = tmp_path / "tb", tmp_path / "model"
    out = _example(
        "lunarlander_a2c.py", "--logdir", str(logdir), "--save-path", str(save_path), "--log-interval", "5", cwd=tmp_path
    )
    assert "A2C (pdm) on LunarLander-v3" in out, out
    assert "pdm/" in out  # PDMCallback's metrics reached SB3's logger
    assert (tmp_path / "model.zip").exists()
    assert glob.glob(str(logdir / "*" / "events.out.tfevents.*"))


def test_cnn_policy(tmp_path):
    out = _example("cnn_policy.py", "--n-steps", "64", cwd=tmp_path)
    assert "PPO (CnnPDMPolicy) on BrightSideEnv" in out, out


def test_multi_input_policy(tmp_path):
    out = _example("multi_input_policy.py", "--n-steps", "64", cwd=tmp_path)
    assert "PPO (MultiInputPDMPolicy) on SideAndCueEnv" in out, out


def test_maskable_ppo(tmp_path):
    out = _example("maskable_ppo.py", "--n-steps", "256", cwd=tmp_path)
    assert "MaskablePPO (MaskablePDMPolicy)" in out, out


def test_zoo_script(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    logs = tmp_path / "logs"
    out = _run(["bash", os.path.join(EXAMPLES, "zoo.sh"), "512"], cwd=tmp_path, env={"LOGS": str(logs)})
    assert "figure:" in out
    for folder in ("pdm", "sb3"):
        assert len(glob.glob(str(logs / folder / "ppo" / "CartPole-v1_*" / "CartPole-v1.zip"))) == 2  # two seeds
    assert (logs / "results.png").exists()
