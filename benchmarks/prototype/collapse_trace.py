"""
Trace of one CartPole PPO run up to and through a collapse to a one-action policy (eleventh round).

Trains ``METHOD`` (a ``sb3_pdm.benchmark`` method) on CartPole-v1 with the zoo's PPO settings and seed ``SEED`` (the
benchmark's own model, without its periodic evaluation), and prints every ``EVERY`` rollouts, on the rollout's
states: the training episodes' mean length (``ret_len``), the mean and std over states of the logit difference of
the two actions, the policy's entropy, the per-unit std of the actor trunk's last features (min, median) and the
share of their variance in the top principal direction, the action head's input std (``head_input_norm_rate``; min,
median), the norm of the head's weight difference between the two actions, and the previous ``train()``'s
``approx_kl``, ``clip_fraction``, ``explained_variance``, value std (``pdm/value_std``) and policy-gradient loss.

Usage: ``python benchmarks/prototype/collapse_trace.py pdm-hnorm-decor 8 1 > benchmarks/prototype/collapse_trace.txt``
"""

import sys

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_pdm.benchmark.runner import RunSpec, make_model


class Trace(BaseCallback):
    """Prints the trace line every ``every`` rollouts (of 256 steps), before the rollout's ``train()``."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if (self.model.num_timesteps // 256) % self.every:
            return
        logged = self.model.logger.name_to_value
        policy = self.model.policy
        obs = th.as_tensor(self.model.rollout_buffer.observations.reshape(-1, 4))
        with th.no_grad():
            actor_features, _ = policy.mlp_extractor(obs)
            logits = policy.action_net(actor_features)
            difference = logits[:, 1] - logits[:, 0]
            head = policy.action_net
            head_std = getattr(head, "std", None)
            weight = head.linear.weight if hasattr(head, "linear") else head.weight
            entropy = th.distributions.Categorical(logits=logits).entropy().mean()
            unit_std = actor_features.std(0)
            variances = th.linalg.svdvals(actor_features - actor_features.mean(0)) ** 2
        episodes = self.model.ep_info_buffer
        length = np.mean([info["l"] for info in episodes]) if episodes else 0
        hstd_min = head_std.min() if head_std is not None else 0
        hstd_med = head_std.median() if head_std is not None else 0
        print(
            f"{self.model.num_timesteps:6d} ret_len {length:6.1f} "
            f"dlogit mean {difference.mean():+.3f} std {difference.std():.3f} ent {entropy:.3f} | "
            f"feat std min {unit_std.min():.4f} med {unit_std.median():.4f} top {variances[0] / variances.sum():.3f} | "
            f"hstd min {hstd_min:.4f} med {hstd_med:.4f} |Wdiff| {(weight[1] - weight[0]).norm():.3f} "
            f"kl {logged.get('train/approx_kl', 0):.4f} clip {logged.get('train/clip_fraction', 0):.3f} "
            f"ev {logged.get('train/explained_variance', 0):.2f} vstd {logged.get('pdm/value_std', 0):.1f} "
            f"pil {logged.get('train/policy_gradient_loss', 0):+.4f}",
            flush=True,
        )


if __name__ == "__main__":
    th.set_num_threads(1)
    method, seed = sys.argv[1], int(sys.argv[2])
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    model, _, callbacks, budget = make_model(RunSpec("CartPole-v1", "ppo", method, seed))
    model.learn(budget, callback=CallbackList(callbacks + [Trace(every)]))
