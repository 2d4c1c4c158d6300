"""The README's commands run as written (tiny budgets), CI runs the README's test command, and the README stays short."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()
#: The README's two set-up commands: the main job and the test suite (what .ci/run runs).
MAIN_JOB = (
    'pip install torch==2.13.0 -e ".[benchmark]" && python -m sb3_pdm.benchmark --methods backprop pdm-tuned frozen-tuned '
    "--out runs/cartpole"
)
TESTS = 'pip install torch==2.13.0 -e ".[tests]" && python -m pytest -n 2 tests'


def _command_after_install(marker: str) -> str:
    line = next(line for line in README.splitlines() if line.startswith("pip install") and marker in line)
    return line.split("&&", 1)[1].strip()


def test_readme_is_short():
    assert len(README) <= 15_000, f"README.md has {len(README)} characters (at most 15,000)"


def test_readme_gives_the_two_commands():
    install_lines = [line for line in README.splitlines() if line.startswith("pip install")]
    assert install_lines == [MAIN_JOB, TESTS]


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
    command = _command_after_install('-e ".[benchmark]" &&')
    assert command.startswith("python -m sb3_pdm.benchmark")
    # The README's command as written, with a tiny budget appended (later flags win).
    args = command.split()[1:] + ["--out", str(tmp_path), "--budget", "256", "--n-evals", "1", "--eval-episodes", "1"]
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for method in ("backprop", "pdm-tuned", "frozen-tuned"):
        assert re.search(rf"CartPole-v1\s+ppo\s+{method}\s+final return", result.stdout), result.stdout


def test_ci_runs_the_readme_test_command():
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert TESTS in ci.splitlines()


def test_zoo_commands_run(tmp_path):
    """The README's rl_zoo3 commands as written, with a tiny budget appended (later flags win), on two seeds."""
    block = README.split("## RL Zoo and sb3-contrib", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split() for line in block.splitlines() if line.startswith("rl_zoo3 ")]
    assert [c[1] for c in commands] == ["train", "train", "enjoy", "all_plots", "plot_from_file"]
    os.symlink(os.path.join(ROOT, "hyperparams"), tmp_path / "hyperparams")
    script = os.path.join(os.path.dirname(sys.executable), "rl_zoo3")
    tiny = ["-n", "2048", "--eval-freq", "512", "--eval-episodes", "2", "--num-threads", "1"]
    tiny += ["-params", "n_envs:2", "n_steps:512", "n_epochs:1"]
    runs = []
    for command in commands:
        if command[1] == "train":
            runs += [command + tiny + ["--seed", str(seed)] for seed in (0, 1)]
        elif command[1] == "enjoy":
            runs.append(command + ["-n", "100"])
        else:
            runs.append(command)
    for command in runs:
        result = subprocess.run([script, *command[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    from stable_baselines3 import PPO

    from sb3_pdm import PDMPolicy

    assert isinstance(PPO.load(tmp_path / "logs/pdm/ppo/LunarLander-v3_1/LunarLander-v3.zip").policy, PDMPolicy)
    assert not isinstance(PPO.load(tmp_path / "logs/sb3/ppo/LunarLander-v3_1/LunarLander-v3.zip").policy, PDMPolicy)
    assert (tmp_path / "logs/lunarlander.png").exists()
