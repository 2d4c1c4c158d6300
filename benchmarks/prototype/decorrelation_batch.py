"""
Offline check of the decorrelation term against the batch size (thirteenth round): is the term's covariance target,
unreachable by one batch when it has fewer samples than the layer has units, a harm across batches?

A PDM trunk of the defaults (8 -> 64 -> 64 tanh, SB3's orthogonal initialisation, ``decorrelation_coef`` 0 or 1, no
guidance) trains on batches of ``B`` LunarLander-v3 states of a random policy (seed 0), 5,000 local steps (A2C's
updates in its 200k-step budget), and is measured on 2,048 held-out states of the same policy: the decorrelation loss
of the last layer's output on them (``decor``, 0 for white features of the target variance), the share of that output's
variance in its top principal direction (``top``), and how the layer keeps the input's geometry: the correlation
between the held-out pairwise distances of the trunk's output and of its input (``dist_corr``) and the coefficient of
variation of the output's distances (``dist_cv``; samples pulled towards equal distances would lower it). Variant
``running``: the term's covariance is a running estimate over steps (rate 0.05, the batch included) instead of the
batch's own, so that it is defined at any ``B``; a prototype patched in here, not a library option. Last, the same
measures for 64- and 256-unit trunks (``w``) at their initialisation (``init``: the frozen control's random features,
no local step) and after distance matching alone (``none``), batches of 64.

Usage: ``python benchmarks/prototype/decorrelation_batch.py > benchmarks/prototype/decorrelation_batch.txt``
"""

import gymnasium as gym
import numpy as np
import torch as th

from sb3_pdm import PDMConfig, PDMLinear
from sb3_pdm.objective import decorrelation_loss_and_grad, pairwise_distances

STEPS, RATE = 5000, 0.05


class RunningDecorrelation(PDMLinear):
    """The decorrelation term measured on a running covariance: gradient ``4 / (B v d) * (H - mu) (C / v - I)``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.moments: list[th.Tensor] | None = None
        self.weight_sum = 0.0

    def _local_update(self, x: th.Tensor, output: th.Tensor, guidance: th.Tensor | None) -> None:
        coef, self.config.decorrelation_coef = self.config.decorrelation_coef, 0.0
        super()._local_update(x, output, guidance)  # the distance term alone
        self.config.decorrelation_coef = coef
        h = output.detach()
        batch = [h.mean(dim=0), h.T @ h / len(h)]
        self.moments = batch if self.moments is None else [(1 - RATE) * m + RATE * b for m, b in zip(self.moments, batch)]
        self.weight_sum = (1 - RATE) * self.weight_sum + RATE if self.weight_sum else 1.0
        mean = self.moments[0] / self.weight_sum
        covariance = self.moments[1] / self.weight_sum - th.outer(mean, mean)
        variance = self.config.feature_scale**2
        error = covariance / variance - th.eye(h.shape[1])
        grad = coef * (h - mean) @ error * 4.0 / (len(h) * variance * h.shape[1])
        self._backward(x, output, grad)
        self.optimizer.step()
        self._clear_grads()


def states(n: int, seed: int) -> th.Tensor:
    env = gym.make("LunarLander-v3")
    rng = np.random.default_rng(seed)
    observations, (obs, _) = [], env.reset(seed=seed)
    while len(observations) < n:
        observations.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(4)))
        if terminated or truncated:
            obs, _ = env.reset()
    return th.as_tensor(np.array(observations), dtype=th.float32)


def measure(variant: str, batch_size: int, train: th.Tensor, held_out: th.Tensor, width: int = 64) -> str:
    th.manual_seed(0)
    config = PDMConfig(decorrelation_coef=1.0 if variant in ("batch", "running") else 0.0, guidance_coef=0.0)
    layer_class = RunningDecorrelation if variant == "running" else PDMLinear
    trunk = th.nn.Sequential(layer_class(8, width, config=config), layer_class(width, width, config=config)).train()
    for layer in trunk:  # SB3's initialisation of a policy's trunks (ortho_init), which PDMPolicy keeps
        th.nn.init.orthogonal_(layer.linear.weight, gain=np.sqrt(2))
        th.nn.init.zeros_(layer.linear.bias)
    generator = th.Generator().manual_seed(1)
    for _ in range(0 if variant == "init" else STEPS):
        trunk(train[th.randint(len(train), (batch_size,), generator=generator)])
    trunk.eval()
    with th.no_grad():
        out = trunk(held_out)
        decor, _ = decorrelation_loss_and_grad(out, config.feature_scale**2)
        variances = th.linalg.svdvals(out - out.mean(dim=0)) ** 2
        pairs = th.triu_indices(512, 512, offset=1)
        d_out = pairwise_distances(out[:512], "euclidean")[pairs[0], pairs[1]]
        d_in = pairwise_distances(held_out[:512], "euclidean")[pairs[0], pairs[1]]
        corr = th.corrcoef(th.stack([d_out, d_in]))[0, 1]
    top, cv = float(variances[0] / variances.sum()), float(d_out.std() / d_out.mean())
    return (
        f"{variant:8} w={width:3d} B={batch_size:4d}  decor={float(decor):6.3f}  top={top:.3f}  "
        f"dist_corr={float(corr):.3f}  dist_cv={cv:.3f}"
    )


if __name__ == "__main__":
    th.set_num_threads(1)
    train, held_out = states(20_000, seed=0), states(2048, seed=1)
    print(f"LunarLander-v3 random-policy states, trunk 8-w-w tanh, {STEPS} local steps, held-out 2048 states")
    for batch_size in (40, 64, 128):
        for variant in ("none", "batch", "running"):
            print(measure(variant, batch_size, train, held_out), flush=True)
    # Width: the initial random trunk (no local step, the frozen control's features) against distance matching alone.
    for width in (64, 256):
        for variant in ("init", "none"):
            print(measure(variant, 64, train, held_out, width), flush=True)
