"""The README's commands run as written (tiny budgets), and CI runs the README's test command."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()


def _command_after_install(marker: str) -> str:
    line = next(line for line in README.splitlines() if line.startswith("pip install") and marker in line)
    return line.split("&&", 1)[1].strip()


def test_quickstart_runs(tmp_path):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    assert "PPO(PDMPolicy" in code and "100_000" in code
    result = subprocess.run(
        [sys.executable, "-c", code.replace("100_000", "1_000")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "PDM-PPO on CartPole-v1:" in result.stdout
    assert (tmp_path / "ppo_pdm_cartpole.zip").exists()


def test_main_job_command_runs(tmp_path):
    command = _command_after_install("-e . &&")
    assert command.startswith("python -m sb3_pdm.benchmark")
    # The README's command as written, with a tiny budget appended (later flags win).
    args = command.split()[1:] + ["--out", str(tmp_path), "--budget", "256", "--n-evals", "1", "--eval-episodes", "1"]
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for method in ("backprop", "pdm", "frozen"):
        assert re.search(rf"CartPole-v1\s+ppo\s+{method}\s+final return", result.stdout), result.stdout


def test_ci_runs_the_readme_test_command():
    test_line = next(line for line in README.splitlines() if line.startswith("pip install") and "[tests]" in line)
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert test_line in ci
