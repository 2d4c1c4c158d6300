"""
Run prototype runs (``exp.py``) in parallel, one process each, skipping those already done.

Usage: ``python benchmarks/prototype/sweep.py OUTDIR WORKERS DEADLINE_S JOB [JOB ...]`` with
``JOB = env:algo:variant:first_seed-last_seed:budget``. Runs still going at the deadline are killed (not written).
"""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_jobs(args: list[str]) -> list[tuple[str, str, str, int, str]]:
    jobs = []
    for job in args:
        env, algo, variant, seeds, budget = job.split(":")
        first, _, last = seeds.partition("-")
        for seed in range(int(first), int(last or first) + 1):
            jobs.append((env, algo, variant, seed, budget))
    return jobs


def main() -> None:
    out, workers, deadline = sys.argv[1], int(sys.argv[2]), time.time() + float(sys.argv[3])
    jobs = parse_jobs(sys.argv[4:])
    todo = [j for j in jobs if not os.path.exists(os.path.join(out, f"{j[0]}_{j[1]}_{j[2]}_{j[3]}.json"))]
    print(f"{len(jobs)} jobs, {len(todo)} to do", flush=True)
    os.makedirs(out, exist_ok=True)

    def launch(job: tuple[str, str, str, int, str]) -> None:
        left = deadline - time.time()
        if left < 30:
            return
        command = [sys.executable, os.path.join(HERE, "exp.py"), job[0], job[1], job[2], str(job[3]), job[4], out]
        with open(os.path.join(out, "err.log"), "a") as err:
            try:
                subprocess.run(command, timeout=left, stdout=subprocess.DEVNULL, stderr=err)
            except subprocess.TimeoutExpired:
                pass

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(launch, todo))
    print("done", flush=True)


if __name__ == "__main__":
    main()
