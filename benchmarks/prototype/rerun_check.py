"""
Whether a rerun of benchmark runs repeats the committed ones (sixteenth round).

Compares, for every run under a rerun's results folder, its evaluation curve with the committed run of the same env,
algo, method and seed (or of another method, ``--as=METHOD:COMMITTED``), and prints both curves' first evaluations and whether
they are equal.

Usage: ``python benchmarks/prototype/rerun_check.py RERUN_RUNS_DIR [COMMITTED_RUNS_DIR] [--as=METHOD:COMMITTED]``,
e.g. after ``python -m sb3_pdm.benchmark --envs CartPole-v1 --algos ppo --methods backprop --seeds 1 --out /tmp/rerun``:
``python benchmarks/prototype/rerun_check.py /tmp/rerun/runs``.
"""

import os
import sys

from sb3_pdm.benchmark.report import load_runs


def _key(record: dict) -> tuple[str, str, str, int]:
    spec = record["spec"]
    return spec["env"], spec["algo"], spec["method"], spec["seed"]


def _curve(record: dict) -> list[tuple[int, float, float]]:
    return [(point["timesteps"], point["mean"], point["std"]) for point in record["curve"]]


def main() -> None:
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--as")]
    renames = dict(arg.split("=", 1)[1].split(":") for arg in sys.argv[1:] if arg.startswith("--as="))
    committed_dir = args[1] if len(args) > 1 else os.path.join("benchmarks", "results-2core", "runs")
    committed_runs = {_key(record): record for record in load_runs(committed_dir)}
    for record in sorted(load_runs(args[0]), key=_key):
        env, algo, method, seed = _key(record)
        committed_method = renames.get(method, method)
        reference = committed_runs.get((env, algo, committed_method, seed))
        if reference is None:
            print(f"{env} {algo} {method} seed_{seed}: no committed run of {committed_method}")
            continue
        rerun, committed = _curve(record), _curve(reference)
        # Equal: every evaluation's step, mean and std, to the last digit written.
        print(f"{env} {algo} {method} seed_{seed} (committed: {committed_method}): equal={rerun == committed}")
        print(f"  rerun     {[round(mean, 1) for _, mean, _ in rerun[:5]]}")
        print(f"  committed {[round(mean, 1) for _, mean, _ in committed[:5]]}")


if __name__ == "__main__":
    main()
