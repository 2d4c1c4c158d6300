"""The benchmark on Ray (``--backend ray``): same results as the process pool, resumable after a killed driver."""

import json
import os
import subprocess
import sys
import time

import pytest

from sb3_pdm.benchmark.__main__ import main

ray = pytest.importorskip("ray")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID = ["--envs", "CartPole-v1", "--algos", "ppo", "--methods", "pdm", "frozen", "--seeds", "2"]
TINY = ["--budget", "1024", "--n-evals", "2", "--eval-episodes", "2", "--workers", "2"]


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray instance of 2 CPUs for the module (starting one costs seconds); the benchmark uses it as it is."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _finals(out: str) -> dict[str, list[tuple[int, float]]]:
    """Each run's learning curve (timesteps, mean return), by run name."""
    curves = {}
    for folder, _, files in os.walk(os.path.join(out, "runs")):
        if "evaluations.json" in files:
            with open(os.path.join(folder, "evaluations.json")) as file:
                record = json.load(file)
            curves[os.path.relpath(folder, out)] = [(row["timesteps"], row["mean"]) for row in record["curve"]]
    return curves


def _summary(out: str) -> list[dict]:
    """The summary rows without their timings (which differ between two executions)."""
    with open(os.path.join(out, "summary.json")) as file:
        return [{k: v for k, v in row.items() if k != "sec_per_1k_steps"} for row in json.load(file)]


def test_ray_and_process_pool_give_identical_results(ray_address, tmp_path, capsys):
    main([*GRID, *TINY, "--backend", "ray", "--out", str(tmp_path / "ray")])
    assert "4 to go on Ray (local)" in capsys.readouterr().out
    main([*GRID, *TINY, "--out", str(tmp_path / "pool")])
    ray_curves, pool_curves = _finals(str(tmp_path / "ray")), _finals(str(tmp_path / "pool"))
    assert len(ray_curves) == 4 and ray_curves == pool_curves
    assert _summary(str(tmp_path / "ray")) == _summary(str(tmp_path / "pool"))


def test_a_killed_ray_run_resumes_with_the_missing_runs_only(ray_address, tmp_path, capsys):
    # Three seeds of two methods on 2 CPUs; the driver, connected to the running cluster, is killed after its first run.
    grid = [*GRID[:-1], "3", *TINY, "--backend", "ray", "--out", str(tmp_path)]
    command = [sys.executable, "-m", "sb3_pdm.benchmark", *grid, "--address", ray_address]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    driver = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not _finals(str(tmp_path)) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        driver.kill()
    finally:
        driver.kill()
        driver.wait()
    done = _finals(str(tmp_path))
    assert 1 <= len(done) < 6, "the driver should have been killed after its first finished run"
    mtimes = {name: os.path.getmtime(os.path.join(tmp_path, name, "evaluations.json")) for name in done}

    main(grid)
    assert f"6 runs, {len(done)} already done, {6 - len(done)} to go" in capsys.readouterr().out
    assert len(_finals(str(tmp_path))) == 6
    # The finished runs were kept, not run again.
    assert all(os.path.getmtime(os.path.join(tmp_path, name, "evaluations.json")) == mtime for name, mtime in mtimes.items())
    with open(tmp_path / "summary.json") as file:
        assert sorted((row["method"], row["n_seeds"]) for row in json.load(file)) == [("frozen", 3), ("pdm", 3)]
