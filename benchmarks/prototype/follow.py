"""
An action head that follows its trunk's local steps (fourteenth round): the prototype patched into the policy. It
became the policy option ``head_follow`` (``sb3_pdm.heads.follow_trunk``) with one change, a scale-free ridge (a share
of the inputs' mean square instead of ``RIDGE * B``); this script keeps the prototype's, which its committed results
were made with.

``policy_shift.txt`` shows a 256-wide PDM actor trunk moving the policy by its local steps alone far beyond PPO's
trust region just before its collapse, a move that PPO's clipped loss does not see. Here, in every training pass
in which the actor trunk's layers step, the action head is corrected so that its output on the minibatch stays where it
was: with ``z`` the head's (standardised) input before the trunk's steps and ``z'`` after, the head's linear map
``W, b`` takes the ridge least-squares correction ``dW, db`` of ``(W + dW) z' + b + db = W z + b`` on the batch
(ridge ``RIDGE * B``), as :class:`sb3_pdm.heads.InputNormalizedHead` keeps the head's output when its statistics move.
The algorithm's loss then sees the features after the steps. The trunk's update stays local (its own input and
output); the correction is the head's, on its own (detached) input.

``FOLLOW=pi,vf`` (an environment variable; ``pi`` by default) makes the value head follow the critic trunk the same way.

``python benchmarks/prototype/follow.py rl METHOD SEEDS [ENV ALGO]`` trains the benchmark method with the correction
(CartPole-v1 and PPO by default; zoo settings and budgets, the benchmark's evaluation), two runs at a time, into
``benchmarks/prototype/results-follow`` (``results-follow-pi-vf`` for ``FOLLOW=pi,vf``), and prints the IQM;
``python benchmarks/prototype/follow.py shift METHOD SEED`` prints ``policy_shift.py``'s measure of a CartPole PPO run
with it.
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
HEADS = tuple(os.environ.get("FOLLOW", "pi").split(","))
_original_forward_actor = PDMMlpExtractor.forward_actor
_original_forward_critic = PDMMlpExtractor.forward_critic
_original_build = PDMActorCriticMixin._build


@th.no_grad()
def _follow(head: th.nn.Module, old: th.Tensor, new: th.Tensor) -> None:
    """Correct ``head``'s linear map so that its output on ``new`` is its output on ``old`` (ridge least squares)."""
    linear = head.linear if hasattr(head, "linear") else head
    mean, std = (head.mean, head.std) if isinstance(head, InputNormalizedHead) else (0.0, 1.0)
    z_old, z_new = (old - mean) / std, (new - mean) / std
    change = (z_old - z_new) @ linear.weight.T
    design = th.cat([z_new, th.ones_like(z_new[:, :1])], dim=1)
    gram = design.T @ design + RIDGE * design.shape[0] * th.eye(design.shape[1])
    correction = th.linalg.solve(gram, design.T @ change)
    if th.isfinite(correction).all():
        linear.weight.add_(correction[:-1].T)
        linear.bias.add_(correction[-1])


def _followed(self: PDMMlpExtractor, features: th.Tensor, key: str) -> th.Tensor:
    """The trunk ``key``'s forward pass (its layers step), then its head's correction; returns the moved features."""
    forward, net = (_original_forward_actor, self.policy_net) if key == "pi" else (_original_forward_critic, self.value_net)
    latent = forward(self, features)
    stepping = any(getattr(layer, "local_learning", False) for layer in net)
    if not (key in HEADS and self.training and th.is_grad_enabled() and stepping and hasattr(self, "_policy")):
        return latent
    with th.no_grad():
        moved = forward(self, features)
    policy = self._policy[0]
    _follow(policy.action_net if key == "pi" else policy.value_net, latent, moved)
    return moved


def _forward_actor(self: PDMMlpExtractor, features: th.Tensor) -> th.Tensor:
    return _followed(self, features, "pi")


def _forward_critic(self: PDMMlpExtractor, features: th.Tensor) -> th.Tensor:
    return _followed(self, features, "vf")


def _build(self, lr_schedule) -> None:
    _original_build(self, lr_schedule)
    # A list, so that the extractor does not register the policy as a submodule.
    self.mlp_extractor._policy = [self]


def install() -> None:
    PDMMlpExtractor.forward_actor = _forward_actor
    PDMMlpExtractor.forward_critic = _forward_critic
    PDMActorCriticMixin._build = _build


def _run(args: tuple[str, str, str, int]) -> float:
    install()
    from sb3_pdm.benchmark.runner import RunSpec, run

    folder = "results-follow" + ("" if HEADS == ("pi",) else "-" + "-".join(HEADS))
    return run(RunSpec(*args), os.path.join(os.path.dirname(__file__), folder))["final"]


if __name__ == "__main__":
    if sys.argv[1] == "rl":
        from sb3_pdm.benchmark.report import iqm_with_ci

        method = sys.argv[2]
        env, algo = sys.argv[4:6] if len(sys.argv) > 5 else ("CartPole-v1", "ppo")
        with Pool(2) as pool:
            finals = pool.map(_run, [(env, algo, method, seed) for seed in range(int(sys.argv[3]))])
        print(
            f"{env} {algo} {method} with heads {HEADS} following their trunks (RIDGE {RIDGE}): finals",
            [round(f, 1) for f in finals],
            "IQM [95% CI]",
            [round(v, 1) for v in iqm_with_ci(np.array(finals))],
        )
    else:
        install()
        sys.argv = [sys.argv[0], sys.argv[2], sys.argv[3], "40"]
        with open(os.path.join(os.path.dirname(__file__), "policy_shift.py")) as file:
            exec(compile(file.read(), "policy_shift.py", "exec"), {"__name__": "__main__"})
