"""
What the hand-computed parameter gradients of dense PDM layers save (one torch thread, alone on the machine).

1. **One local step** of a ``PDMLinear`` (width 64, tanh, guidance on, the defaults): wall-clock of a training forward
   pass with the parameters' gradients computed by hand (the default for tanh) and through autograd on the layer's
   ``transform`` (the path of other activations, and of every layer before this option), on batches of 40 (CartPole
   A2C's rollout), 256 (CartPole PPO's minibatch, 128 of them form the pairs) and 1024 samples, inputs of 4 and 64.
2. **One ``train()`` call** on CartPole-v1 with the zoo's settings, for PPO (a rollout of 256 steps, 20 epochs, the
   layers step in the first 5) and A2C (a rollout of 40 steps, one pass): stock SB3 (backprop), PDM by hand, PDM
   through autograd.

The two variants alternate, 15 rounds of each; the table gives the minimum and the median over the rounds (the
minimum is the least disturbed by other processes on a shared machine).

Usage: ``python benchmarks/prototype/local_step_time.py > benchmarks/prototype/local_step_time.txt``
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import CallbackList

from sb3_pdm import PDMConfig, PDMLinear
from sb3_pdm.benchmark.runner import RunSpec, make_model

ROUNDS = 15


@contextmanager
def through_autograd() -> Iterator[None]:
    """Dense layers back-propagate through autograd, as layers without a closed form do."""
    original = PDMLinear.closed_form_backward
    PDMLinear.closed_form_backward = property(lambda self: False)  # type: ignore[assignment]
    try:
        yield
    finally:
        PDMLinear.closed_form_backward = original  # type: ignore[method-assign]


def _seconds(run: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        run()
    return (time.perf_counter() - start) / n


def compare(variants: dict[str, tuple[Callable[[], None], bool]], n: int) -> dict[str, list[float]]:
    """Alternate the variants (``name: (run, through autograd)``) for ``ROUNDS`` rounds of ``n`` calls each."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name, (run, autograd) in variants.items():
            if autograd:
                with through_autograd():
                    times[name].append(_seconds(run, n))
            else:
                times[name].append(_seconds(run, n))
    return times


def layer_step(n_inputs: int, batch_size: int) -> Callable[[], None]:
    th.manual_seed(0)
    layer = PDMLinear(n_inputs, 64, config=PDMConfig()).train()
    x, guidance = th.randn(batch_size, n_inputs), th.randn(batch_size, 2)

    def run() -> None:
        layer.set_guidance(guidance)
        layer(x)

    for _ in range(30):
        run()
    return run


def train_call(algo: str, method: str) -> Callable[[], None]:
    model, _, callbacks, _ = make_model(RunSpec("CartPole-v1", algo, method, 0))
    model.learn(4 * model.n_steps * model.n_envs, callback=CallbackList(callbacks))

    def run() -> None:
        # Each call is a fresh pass count, so the layers step in the first local_epochs epochs as after a rollout.
        model.rollout_buffer._pdm_passes = 0  # type: ignore[attr-defined]
        model.train()

    return run


def main() -> None:
    th.set_num_threads(1)
    print("# 1. One local step of PDMLinear(n_inputs, 64), tanh, defaults; microseconds per training forward pass")
    print("batch  inputs   by hand min (median)   autograd min (median)   ratio of minima")
    for batch_size in (40, 256, 1024):
        for n_inputs in (4, 64):
            run = layer_step(n_inputs, batch_size)
            times = compare({"hand": (run, False), "autograd": (run, True)}, n=100)
            hand, auto = (np.array(times[k]) * 1e6 for k in ("hand", "autograd"))
            print(
                f"{batch_size:5d}  {n_inputs:6d}   {hand.min():7.0f} ({np.median(hand):5.0f})        "
                f"{auto.min():7.0f} ({np.median(auto):5.0f})          {hand.min() / auto.min():.2f}"
            )
    for algo, n_calls in (("ppo", 3), ("a2c", 100)):
        print(f"\n# 2. One {algo.upper()} train() call, CartPole-v1 zoo settings; milliseconds")
        pdm, backprop = train_call(algo, "pdm"), train_call(algo, "backprop")
        variants = {"backprop": (backprop, False), "pdm, by hand": (pdm, False), "pdm, autograd": (pdm, True)}
        for name, values in compare(variants, n=n_calls).items():
            values_ms = np.array(values) * 1e3
            print(f"{name:14s} min {values_ms.min():7.2f}  median {np.median(values_ms):7.2f}")


if __name__ == "__main__":
    main()
