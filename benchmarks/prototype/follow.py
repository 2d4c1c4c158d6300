"""
An action head that follows its trunk's local steps (fourteenth round): a prototype patched into the policy, not a
library option.

``policy_shift.txt`` shows a 256-wide PDM actor trunk moving the policy by its local steps alone far beyond PPO's
trust region just before its collapse, a move that PPO's clipped loss does not see. Here, in every training pass
in which the actor trunk's layers step, the action head is corrected so that its output on the minibatch stays where it
was: with ``z`` the head's (standardised) input before the trunk's steps and ``z'`` after, the head's linear map
``W, b`` takes the ridge least-squares correction ``dW, db`` of ``(W + dW) z' + b + db = W z + b`` on the batch
(ridge ``RIDGE * B``), as :class:`sb3_pdm.heads.InputNormalizedHead` keeps the head's output when its statistics move.
The algorithm's loss then sees the features after the steps. The trunk's update stays local (its own input and
output); the correction is the head's, on its own (detached) input.

``python benchmarks/prototype/follow.py rl METHOD SEEDS`` trains the benchmark method with the correction on CartPole
PPO (zoo settings, 100k steps, the benchmark's evaluation), two runs at a time, into
``benchmarks/prototype/results-follow``, and prints the IQM; ``python benchmarks/prototype/follow.py shift METHOD
SEED`` prints ``policy_shift.py``'s measure of a run with it.
"""

import os
import sys
from multiprocessing import Pool

import numpy as np
import torch as th

from sb3_pdm.heads import InputNormalizedHead
from sb3_pdm.policies import PDMActorCriticMixin
from sb3_pdm.trunks import PDMMlpExtractor

RIDGE = 0.1
_original_forward_actor = PDMMlpExtractor.forward_actor
_original_build = PDMActorCriticMixin._build


@th.no_grad()
def _follow(head: th.nn.Module, old: th.Tensor, new: th.Tensor) -> None:
    """Correct ``head``'s linear map so that its output on ``new`` is its output on ``old`` (ridge least squares)."""
    if isinstance(head, InputNormalizedHead):
        linear, mean, std = head.linear, head.mean, head.std
    else:
        linear, mean, std = head, 0.0, 1.0
    z_old, z_new = (old - mean) / std, (new - mean) / std
    change = (z_old - z_new) @ linear.weight.T
    design = th.cat([z_new, th.ones_like(z_new[:, :1])], dim=1)
    gram = design.T @ design + RIDGE * design.shape[0] * th.eye(design.shape[1])
    correction = th.linalg.solve(gram, design.T @ change)
    if th.isfinite(correction).all():
        linear.weight.add_(correction[:-1].T)
        linear.bias.add_(correction[-1])


def _forward_actor(self: PDMMlpExtractor, features: th.Tensor) -> th.Tensor:
    latent = _original_forward_actor(self, features)
    stepping = any(getattr(layer, "local_learning", False) for layer in self.policy_net)
    if not (self.training and th.is_grad_enabled() and stepping and hasattr(self, "_policy")):
        return latent
    with th.no_grad():
        moved = _original_forward_actor(self, features)
    _follow(self._policy[0].action_net, latent, moved)
    return moved


def _build(self, lr_schedule) -> None:
    _original_build(self, lr_schedule)
    # A list, so that the extractor does not register the policy as a submodule.
    self.mlp_extractor._policy = [self]


def install() -> None:
    PDMMlpExtractor.forward_actor = _forward_actor
    PDMActorCriticMixin._build = _build


def _run(args: tuple[str, int]) -> float:
    install()
    from sb3_pdm.benchmark.runner import RunSpec, run

    out = os.path.join(os.path.dirname(__file__), "results-follow")
    return run(RunSpec("CartPole-v1", "ppo", args[0], args[1]), out)["final"]


if __name__ == "__main__":
    if sys.argv[1] == "rl":
        from sb3_pdm.benchmark.report import iqm_with_ci

        method = sys.argv[2]
        with Pool(2) as pool:
            finals = pool.map(_run, [(method, seed) for seed in range(int(sys.argv[3]))])
        print(
            f"{method} with the head following its trunk (RIDGE {RIDGE}): finals",
            [round(f, 1) for f in finals],
            "IQM [95% CI]",
            [round(v, 1) for v in iqm_with_ci(np.array(finals))],
        )
    else:
        install()
        sys.argv = [sys.argv[0], sys.argv[2], sys.argv[3], "40"]
        with open(os.path.join(os.path.dirname(__file__), "policy_shift.py")) as file:
            exec(compile(file.read(), "policy_shift.py", "exec"), {"__name__": "__main__"})
