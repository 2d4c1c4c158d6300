"""
Side-by-side benchmark of stock SB3 (backprop), PDM and the frozen-random-features control, with RL-Zoo's
hyperparameters. One process per run, as many in parallel as there are cores; finished runs are kept and skipped
on a rerun; an interrupted run restarts from scratch. Workers end with the benchmark process, even when it is killed.

Example (the default: PPO on CartPole-v1 at the zoo's 100k budget, one seed)::

    python -m sb3_pdm.benchmark
    python -m sb3_pdm.benchmark --envs CartPole-v1 LunarLander-v3 --algos ppo a2c --seeds 8 --out benchmarks/results
"""

import argparse
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

from tqdm import tqdm

from sb3_pdm.benchmark.report import write_report
from sb3_pdm.benchmark.runner import ALGOS, METHODS, RunSpec, exit_with_parent, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sb3_pdm.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1"], help="Gymnasium env ids")
    parser.add_argument("--algos", nargs="+", default=["ppo"], choices=sorted(ALGOS))
    parser.add_argument("--methods", nargs="+", default=["backprop", "pdm", "frozen"], choices=sorted(METHODS))
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (0 .. seeds-1)")
    parser.add_argument("--budget", type=int, default=None, help="timesteps per run (default: the zoo's n_timesteps)")
    parser.add_argument("--n-evals", type=int, default=10, help="evaluations per run")
    parser.add_argument("--eval-episodes", type=int, default=10, help="deterministic episodes per evaluation")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="runs in parallel")
    parser.add_argument("--out", default="benchmarks/results", help="results folder (runs go to OUT/runs)")
    parser.add_argument("--readme", default=None, help="also write the results table into this README's results section")
    args = parser.parse_args(argv)
    for name in ("seeds", "n_evals", "eval_episodes", "workers"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.budget is not None and args.budget <= 0:
        parser.error("--budget must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runs_dir = os.path.join(args.out, "runs")
    specs = [
        RunSpec(env, algo, method, seed, args.budget, args.n_evals, args.eval_episodes)
        for env in args.envs
        for algo in args.algos
        for method in args.methods
        for seed in range(args.seeds)
    ]
    todo = [spec for spec in specs if not os.path.exists(os.path.join(runs_dir, spec.name, "evaluations.json"))]
    print(f"{len(specs)} runs, {len(specs) - len(todo)} already done, {len(todo)} to go on {args.workers} workers")
    with ProcessPoolExecutor(
        max_workers=args.workers, mp_context=get_context("spawn"), initializer=exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        futures = {pool.submit(run, spec, runs_dir): spec for spec in todo}
        with tqdm(total=len(todo), desc="runs", unit="run") as progress:
            for future in as_completed(futures):
                record = future.result()
                progress.set_postfix_str(f"{futures[future].name}: {record['final']:.1f}")
                progress.update()
    rows = write_report(runs_dir, args.out, args.readme)
    print()
    for row in rows:
        if row["env"] in args.envs and row["algo"] in args.algos and row["method"] in args.methods:
            print(
                f"{row['env']:<16} {row['algo']:<4} {row['method']:<12} final return {row['mean']:8.1f} ± {row['std']:6.1f} "
                f"(IQM {row['iqm']:.1f}, {row['n_seeds']} seeds, {row['budget']:,} steps, "
                f"{row['sec_per_1k_steps']:.2f} s/1k steps)"
            )
    print(f"\nSummary: {os.path.join(args.out, 'summary.md')}")


if __name__ == "__main__":
    main()
