"""
Whether a rerun of benchmark runs repeats the committed ones (sixteenth round).

Compares, for every run under a rerun's results folder, its evaluation curve with the committed run of the same env,
algo, method and seed (or of another method, ``--as=METHOD:COMMITTED``), and prints both curves' first evaluations and whether
they are equal.

Usage: ``python benchmarks/prototype/rerun_check.py RERUN_RUNS_DIR [COMMITTED_RUNS_DIR] [--as=METHOD:COMMITTED]``,
e.g. after ``python -m sb3_pdm.benchmark --envs CartPole-v1 --algos ppo --methods backprop --seeds 1 --out /tmp/rerun``:
``python benchmarks/prototype/rerun_check.py /tmp/rerun/runs``.
"""

import glob
import json
import os
import sys


def main() -> None:
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--as")]
    renames = dict(arg.split("=", 1)[1].split(":") for arg in sys.argv[1:] if arg.startswith("--as="))
    rerun_dir = args[0]
    committed_dir = args[1] if len(args) > 1 else os.path.join("benchmarks", "results-2core", "runs")
    for path in sorted(glob.glob(os.path.join(rerun_dir, "*", "*", "*", "seed_*", "evaluations.json"))):
        env, algo, method, seed = path.split(os.sep)[-5:-1]
        committed_method = renames.get(method, method)
        reference = os.path.join(committed_dir, env, algo, committed_method, seed, "evaluations.json")
        if not os.path.exists(reference):
            print(f"{env} {algo} {method} {seed}: no committed run of {committed_method}")
            continue
        with open(path) as file:
            rerun = [(point["timesteps"], point["mean"], point["std"]) for point in json.load(file)["curve"]]
        with open(reference) as file:
            committed = [(point["timesteps"], point["mean"], point["std"]) for point in json.load(file)["curve"]]
        # Equal: every evaluation's step, mean and std, to the last digit written.
        print(f"{env} {algo} {method} {seed} (committed: {committed_method}): equal={rerun == committed}")
        print(f"  rerun     {[round(mean, 1) for _, mean, _ in rerun[:5]]}")
        print(f"  committed {[round(mean, 1) for _, mean, _ in committed[:5]]}")


if __name__ == "__main__":
    main()
