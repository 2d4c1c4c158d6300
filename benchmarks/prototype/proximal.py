"""
A proximal term against features that move under the heads (thirteenth round): a prototype patched into
``PDMLayer._local_update``, not a library option.

Each layer keeps a slow copy of its own parameters (an exponential moving average, rate ``TAU`` per local step, started
at its first local step) and adds ``COEF * mean_i ||h_i - h_slow_i||^2 / (d v)`` to its local loss, where ``h_slow`` is
its map of the same input with the slow parameters and ``v = feature_scale**2``: the layer may keep moving, but each
step is pulled towards where its features were over the last ``1 / TAU`` steps. Still local: the layer's own input,
output and parameters.

``python benchmarks/prototype/proximal.py rl SEEDS`` trains the benchmark's ``pdm-w256-hnorm`` method with the term on
CartPole PPO (zoo settings, 100k steps, the benchmark's evaluation), two runs at a time, into
``benchmarks/prototype/results-proximal``, and prints the IQM. ``python benchmarks/prototype/proximal.py drift`` prints
``feature_drift.py``'s guided measure with the term.
"""

import os
import sys
from multiprocessing import Pool

import numpy as np
import torch as th

from sb3_pdm.layers import PDMLayer

TAU, COEF = 0.01, 1.0
_original_update = PDMLayer._local_update


def _proximal_update(self: PDMLayer, x: th.Tensor, output: th.Tensor, guidance: th.Tensor | None) -> None:
    _original_update(self, x, output, guidance)
    if x.shape[0] < 2:
        return
    parameters = list(self.parameters())
    if getattr(self, "_slow", None) is None:
        self._slow = [p.detach().clone() for p in parameters]
        return
    with th.no_grad():
        h = self.transform(x).flatten(start_dim=1)
        slow = self._transform_with(x, self._slow).flatten(start_dim=1)
        variance = self.config.feature_scale**2
        grad = (h - slow) * (2.0 * COEF / (h.shape[0] * h.shape[1] * variance))
    if th.isfinite(grad).all():
        out = h if self.closed_form_backward else self.transform(x)
        self._backward(x, out.view_as(output), grad.view_as(output))
        self.optimizer.step()
        self._clear_grads()
    with th.no_grad():
        for s, p in zip(self._slow, parameters):
            s.add_(p.detach() - s, alpha=TAU)


def _run(seed: int) -> float:
    PDMLayer._local_update = _proximal_update
    from sb3_pdm.benchmark.runner import RunSpec, run

    out = os.path.join(os.path.dirname(__file__), "results-proximal")
    return run(RunSpec("CartPole-v1", "ppo", "pdm-w256-hnorm", seed), out)["final"]


if __name__ == "__main__":
    if sys.argv[1] == "rl":
        from sb3_pdm.benchmark.report import iqm_with_ci

        with Pool(2) as pool:
            finals = pool.map(_run, range(int(sys.argv[2])))
        print("finals", [round(f, 1) for f in finals], "IQM [95% CI]", [round(v, 1) for v in iqm_with_ci(np.array(finals))])
    else:
        import feature_drift
        from decorrelation_batch import states

        PDMLayer._local_update = _proximal_update
        th.set_num_threads(1)
        train, held_out = states(20_000, seed=0), states(2048, seed=1)
        print(f"with the proximal term (TAU {TAU}, COEF {COEF})")
        print(feature_drift.run(train, held_out, guided=True, hold_biases=False))
