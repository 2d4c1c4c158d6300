"""
Seconds per PPO ``train()`` call (the local PDM updates and the heads' update) on CartPole-v1, CPU, one thread.

Used to check that a change to the local step does not slow it down: run it on two checkouts side by side, e.g.
``PYTHONPATH=/path/to/checkout python research/time_train.py``.
"""

import argparse
import time

import torch as th
from stable_baselines3 import PPO

from sb3_pdm import PDMCallback, PDMPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timesteps", type=int, default=16_384)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(1)
    model = PPO(PDMPolicy, "CartPole-v1", n_steps=2048, batch_size=64, n_epochs=10, seed=args.seed, device="cpu")
    seconds: list[float] = []
    train = model.train

    def timed_train() -> None:
        start = time.perf_counter()
        train()
        seconds.append(time.perf_counter() - start)

    model.train = timed_train  # type: ignore[method-assign]
    model.learn(args.timesteps, callback=PDMCallback())
    best = min(seconds)
    print(f"train() calls: {len(seconds)}, fastest {best:.3f} s, median {sorted(seconds)[len(seconds) // 2]:.3f} s")


if __name__ == "__main__":
    main()
