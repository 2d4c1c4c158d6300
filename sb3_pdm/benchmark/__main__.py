"""
Side-by-side benchmark of stock SB3 (backprop), PDM and the frozen-random-features control, with RL-Zoo's
hyperparameters or PDM's own. Runs execute in a local process pool or as Ray tasks (``--backend ray``, on a cluster
with ``--address``: ``docs/cluster.md``); this process writes each finished run, skips the runs already written on a
rerun (an interrupted run restarts from scratch) and writes the summary.

Example (the default: PPO on CartPole-v1 at the zoo's 100k budget, one seed)::

    python -m sb3_pdm.benchmark
    python -m sb3_pdm.benchmark --envs CartPole-v1 LunarLander-v3 --algos ppo a2c --seeds 8 --out benchmarks/results
    python -m sb3_pdm.benchmark --methods backprop pdm-tuned --seeds 16 --backend ray --address auto
"""

import argparse
import os

from tqdm import tqdm

from sb3_pdm.benchmark.backends import BACKENDS, Outcome, Task, run_in_pool, run_on_ray
from sb3_pdm.benchmark.report import format_row, write_report
from sb3_pdm.benchmark.runner import ALGOS, METHODS, RunSpec, hyperparameters, is_done, write_record
from sb3_pdm.benchmark.zoo_hyperparams import PROJECT_HYPERPARAMS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sb3_pdm.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1"], help="Gymnasium env ids")
    parser.add_argument("--algos", nargs="+", default=["ppo"], choices=sorted(ALGOS))
    parser.add_argument("--methods", nargs="+", default=["backprop", "pdm", "frozen"], choices=list(METHODS))
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (first-seed .. first-seed + seeds - 1)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="first seed (default 0: the evaluation seeds; tuning uses 1000 and up)"
    )
    parser.add_argument("--budget", type=int, default=None, help="timesteps per run (default: the entry's n_timesteps)")
    parser.add_argument("--n-evals", type=int, default=10, help="evaluations per run")
    parser.add_argument("--eval-episodes", type=int, default=10, help="deterministic episodes per evaluation")
    parser.add_argument(
        "--backend", default="process", choices=BACKENDS, help="where runs execute: a local process pool, or Ray tasks"
    )
    parser.add_argument(
        "--address", default=None, help="Ray cluster address ('auto': RAY_ADDRESS); default: start a local Ray instance"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="runs in parallel (processes, or the local Ray's CPUs)"
    )
    parser.add_argument("--hyperparams", default=PROJECT_HYPERPARAMS, help="folder of the PDM entries (<algo>.yml)")
    parser.add_argument("--out", default="benchmarks/results", help="results folder (runs go to OUT/runs)")
    parser.add_argument("--readme", default=None, help="also write the results table into this README's results section")
    args = parser.parse_args(argv)
    for name in ("seeds", "n_evals", "eval_episodes", "workers"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.first_seed < 0:
        parser.error("--first-seed must not be negative")
    if args.budget is not None and args.budget <= 0:
        parser.error("--budget must be positive")
    if args.address is not None and args.backend != "ray":
        parser.error("--address needs --backend ray")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runs_dir = os.path.join(args.out, "runs")
    specs = [
        RunSpec(env, algo, method, seed, args.budget, args.n_evals, args.eval_episodes)
        for env in args.envs
        for algo in args.algos
        for method in args.methods
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    # Entries are read here, where the files are, and travel with each run.
    tasks: list[Task] = [(spec, hyperparameters(spec, args.hyperparams)) for spec in specs if not is_done(spec, runs_dir)]
    where = f"{args.workers} workers" if args.backend == "process" else f"Ray ({args.address or 'local'})"
    print(f"{len(specs)} runs, {len(specs) - len(tasks)} already done, {len(tasks)} to go on {where}")
    outcomes = run_in_pool(tasks, args.workers) if args.backend == "process" else run_on_ray(tasks, args.address, args.workers)
    failed: list[tuple[RunSpec, BaseException]] = []
    if tasks:
        with tqdm(total=len(tasks), desc="runs", unit="run") as progress:
            outcome: Outcome
            for outcome in outcomes:
                spec, result = outcome
                if isinstance(result, BaseException):
                    failed.append((spec, result))
                    progress.set_postfix_str(f"{spec.name}: failed")
                else:
                    write_record(result, runs_dir)
                    progress.set_postfix_str(f"{spec.name}: {result['final']:.1f}")
                progress.update()
    rows = write_report(runs_dir, args.out, args.readme)
    print()
    for row in rows:
        if row["env"] in args.envs and row["algo"] in args.algos and row["method"] in args.methods:
            print(format_row(row))
    print(f"\nSummary: {os.path.join(args.out, 'summary.md')}")
    if failed:
        for spec, error in failed:
            print(f"{spec.name} failed: {error!r}")
        raise SystemExit(f"{len(failed)} of {len(tasks)} runs failed; rerun the same command to do them again")


if __name__ == "__main__":
    main()
