"""
Where CartPole A2C's time goes, in one or more checkouts (twenty-first round): seconds per 1k steps spent collecting
rollouts and in ``train()``, for ``backprop``, ``pdm`` and ``frozen`` (seed 0, 20k steps after 2k, no evaluation), in a
fresh process per checkout that imports ``sb3_pdm`` from it, on one thread (CPU time of the process).

Usage (the old checkout made with ``git worktree add /tmp/old 911bece``, the commit before the twenty-first round's change):
``python benchmarks/prototype/time_split.py /tmp/old . > benchmarks/prototype/time_split.txt``

Other methods through ``TIME_SPLIT_METHODS`` (twenty-fourth round, the head gain's time; a method named twice is measured
twice, in that order): ``TIME_SPLIT_METHODS="pdm pdm-gain2 pdm-gain4-vf pdm pdm-gain2 pdm-gain4-vf"
python benchmarks/prototype/time_split.py . > benchmarks/prototype/time_split_gain.txt``
"""

import os
import subprocess
import sys

MEASURE = r"""
import sys, time
import torch as th
sys.path.insert(0, sys.argv[1])
th.set_num_threads(1)
import sb3_pdm
from sb3_pdm.benchmark.runner import RunSpec, make_model

print(f"{sys.argv[1]} ({sb3_pdm.__file__}):")
for method in sys.argv[2].split():
    model, _, callbacks, _ = make_model(RunSpec("CartPole-v1", "a2c", method, 0, budget=30000))
    model.learn(2000, callback=callbacks)
    spent = {"collect": 0.0, "train": 0.0}

    def timed(function, key):
        def wrapper(*args, **kwargs):
            start = time.process_time()
            result = function(*args, **kwargs)
            spent[key] += time.process_time() - start
            return result
        return wrapper

    model.collect_rollouts = timed(model.collect_rollouts, "collect")
    model.train = timed(model.train, "train")
    start = time.process_time()
    model.learn(20000, callback=callbacks, reset_num_timesteps=False)
    total = time.process_time() - start
    collect, train = spent["collect"] / 20, spent["train"] / 20
    print(f"  {method:12s} s per 1k steps: total {total / 20:.4f}, collecting {collect:.4f}, train() {train:.4f}")
"""


def main() -> None:
    methods = os.environ.get("TIME_SPLIT_METHODS", "backprop pdm frozen")
    for source in sys.argv[1:]:
        subprocess.run([sys.executable, "-c", MEASURE, source, methods], check=True)


if __name__ == "__main__":
    main()
