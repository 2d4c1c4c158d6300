"""
The heads' shares of the algorithm's gradient-norm clip (twenty-sixth round of ``docs/benchmark.md``).

Every zoo entry of the benchmark clips the gradient of all trained parameters to a global norm (``max_grad_norm``,
0.5), so the action and value heads share one clip coefficient. This script trains seed 0 of each setting in
``SETTINGS`` (or of those named on the command line, as ``LunarLander-v3/ppo``) for a few thousand steps per method and
records, at every call of the clip: the norms of the action head's gradient (with ``log_std``), of the value head's, and
of everything else that has a gradient (backprop's hidden layers; PDM layers clear theirs after each local step, so 0),
and the clip coefficient ``min(1, max_norm / total norm)``. It prints medians and spreads per method, and the value
head's return std at the end (``NormalizedValueHead``).

Usage (the two outputs of the twenty-sixth round)::

    P=benchmarks/prototype
    python $P/clip_share.py LunarLander-v3/a2c CartPole-v1/a2c CartPole-v1/ppo > $P/clip_share.txt
    python $P/clip_share.py LunarLander-v3/ppo Acrobot-v1/ppo > $P/clip_share_ppo.txt

and of the twenty-seventh::

    python $P/clip_share.py --methods pdm-vloss-linear > $P/clip_share_linear.txt
"""

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch as th

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from sb3_pdm.benchmark.runner import RunSpec, make_model  # noqa: E402
from sb3_pdm.heads import normalized_value_head  # noqa: E402

SETTINGS = [
    ("LunarLander-v3", "a2c", 30_000, ["backprop", "pdm", "pdm-gain2", "pdm-gain2-vf", "pdm-vloss-norm"]),
    ("CartPole-v1", "a2c", 30_000, ["backprop", "pdm", "pdm-vloss-norm"]),
    ("CartPole-v1", "ppo", 20_000, ["backprop", "pdm", "pdm-vloss-norm"]),
    ("LunarLander-v3", "ppo", 50_000, ["backprop", "pdm", "pdm-vloss-norm"]),
    ("Acrobot-v1", "ppo", 50_000, ["backprop", "pdm", "pdm-vloss-norm"]),
]
HEADS = {"pi": ("action_net", "log_std"), "vf": ("value_net",)}


def grad_norm(policy: th.nn.Module, keep) -> float:
    total = 0.0
    for name, parameter in policy.named_parameters():
        if keep(name) and parameter.grad is not None:
            total += float((parameter.grad.detach() ** 2).sum())
    return total**0.5


@contextmanager
def recorded_clip(policy: th.nn.Module, records: list) -> Iterator[None]:
    """
    Within the block, every call of ``th.nn.utils.clip_grad_norm_`` appends ``(|g_pi|, |g_vf|, |g_other|, clip
    coefficient)`` of ``policy``'s gradients before the clip to ``records``.
    """
    clip = th.nn.utils.clip_grad_norm_

    def recording(parameters, max_norm, *args, **kwargs):
        pi = grad_norm(policy, lambda name: name.startswith(HEADS["pi"]))
        vf = grad_norm(policy, lambda name: name.startswith(HEADS["vf"]))
        rest = grad_norm(policy, lambda name: not name.startswith(HEADS["pi"] + HEADS["vf"]))
        total = clip(parameters, max_norm, *args, **kwargs)
        records.append((pi, vf, rest, min(1.0, max_norm / (float(total) + 1e-6))))
        return total

    th.nn.utils.clip_grad_norm_ = recording
    try:
        yield
    finally:
        th.nn.utils.clip_grad_norm_ = clip


def measure(env: str, algo: str, steps: int, method: str) -> str:
    model, _, callbacks, _ = make_model(RunSpec(env, algo, method, 0, budget=steps))
    policy = model.policy
    records: list = []
    with recorded_clip(policy, records):
        model.learn(steps, callback=callbacks)
    pi, vf, rest, coef = np.array(records).T
    ratio = vf / (pi + 1e-12)
    head = normalized_value_head(policy.value_net)
    std = f"{float(head.std):.1f}" if head is not None else "-"
    return (
        f"  {method:15s} {len(coef):5d} clips | |g_pi| {np.median(pi):7.3f} | |g_vf| {np.median(vf):8.3f} | "
        f"|g_vf|/|g_pi| {np.median(ratio):6.2f} [p10 {np.percentile(ratio, 10):6.2f}, p90 {np.percentile(ratio, 90):6.2f}] | "
        f"other {np.median(rest):6.3f} | clip coef {np.median(coef):.3f}, cv {coef.std() / coef.mean():.2f}, "
        f"clipped {np.mean(coef < 1):.2f} | return std {std}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("settings", nargs="*", help="env/algo of SETTINGS to run (default: all)")
    parser.add_argument("--methods", nargs="+", help="methods to measure instead of each setting's list")
    args = parser.parse_args()
    th.set_num_threads(1)
    print("medians over the run's clip calls (seed 0); cv: std / mean of the clip coefficient")
    for env, algo, steps, methods in SETTINGS:
        if args.settings and f"{env}/{algo}" not in args.settings:
            continue
        print(f"{env} {algo}, {steps} steps:", flush=True)
        for method in args.methods or methods:
            print(measure(env, algo, steps, method), flush=True)


if __name__ == "__main__":
    main()
