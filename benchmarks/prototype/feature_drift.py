"""
How far a PDM trunk's features move on fixed states, offline (thirteenth round): the quantity behind "features that move
under the heads".

A trunk of the defaults (8 -> 64 -> 64 tanh, SB3's orthogonal initialisation) takes 5,000 local steps (A2C's updates in
its 200k-step budget) on batches of 64 LunarLander-v3 states of a random policy (seed 0), with no guidance (``plain``)
or with a stand-in for the critic's return guidance (``guided``: a fixed linear function of the state, standardised
over each batch as the policy standardises returns). After 500, 2,000 and 5,000 steps it prints, on 2,048 held-out
states of the same policy, the median over units of how far the unit's mean has moved since initialisation, in units
of its std (``shift``), and the mean absolute bias of the second layer. ``biases held``: the same with both layers'
biases reset to 0 after every local step, to tell a drift through the biases (whose local gradient is small, and Adam
scales small gradients up to full steps) from one through the weights.

Usage: ``python benchmarks/prototype/feature_drift.py > benchmarks/prototype/feature_drift.txt``
"""

import numpy as np
import torch as th
from decorrelation_batch import states

from sb3_pdm import PDMConfig, PDMLinear


def run(train: th.Tensor, held_out: th.Tensor, guided: bool, hold_biases: bool) -> str:
    th.manual_seed(0)
    config = PDMConfig(guidance_coef=1.0 if guided else 0.0)
    trunk = th.nn.Sequential(PDMLinear(8, 64, config=config), PDMLinear(64, 64, config=config))
    for layer in trunk:  # SB3's initialisation of a policy's trunks (ortho_init), which PDMPolicy keeps
        th.nn.init.orthogonal_(layer.linear.weight, gain=np.sqrt(2))
        th.nn.init.zeros_(layer.linear.bias)
    signal = 2.0 * train[:, 1:2] + train[:, 3:4]  # stand-in return: height and vertical speed
    with th.no_grad():
        initial_mean = trunk.eval()(held_out).mean(dim=0)
    trunk.train()
    generator = th.Generator().manual_seed(1)
    lines = []
    for step in range(1, 5001):
        index = th.randint(len(train), (64,), generator=generator)
        guidance = (signal[index] - signal[index].mean()) / signal[index].std() if guided else None
        for layer in trunk:
            layer.set_guidance(guidance)
        trunk(train[index])
        if hold_biases:
            for layer in trunk:
                layer.linear.bias.data.zero_()
        if step in (500, 2000, 5000):
            with th.no_grad():
                features = trunk.eval()(held_out)
            trunk.train()
            shift = ((features.mean(dim=0) - initial_mean).abs() / features.std(dim=0)).median()
            lines.append(f"{step:5d}: shift {float(shift):.2f} |b| {float(trunk[1].linear.bias.detach().abs().mean()):.3f}")
    name = f"{'guided' if guided else 'plain'}, {'biases held' if hold_biases else 'biases learn'}"
    return f"{name:22} " + "  ".join(lines)


if __name__ == "__main__":
    th.set_num_threads(1)
    train, held_out = states(20_000, seed=0), states(2048, seed=1)
    print("LunarLander-v3 random-policy states, trunk 8-64-64 tanh, batches of 64, held-out 2048 states")
    for guided in (False, True):
        for hold_biases in (False, True):
            print(run(train, held_out, guided, hold_biases), flush=True)
