"""
How far each ``train()`` moves the policy through the actor trunk, and how far through the action head (fourteenth
round).

Trains ``METHOD`` (a ``sb3_pdm.benchmark`` method, ``backprop`` included) on CartPole-v1 with the zoo's PPO settings and
seed ``SEED``. Before each ``train()`` it copies the actor trunk and the action head (with its running statistics), and
after it compares, on the rollout's own states and actions:

- ``old``: the old head on the old trunk's features (the policy that collected the rollout);
- ``trunk``: the old head on the new trunk's features (only the trunk has moved);
- ``new``: the new head on the new trunk's features.

It prints, averaged over windows of ``WINDOW`` rollouts: the training episodes' mean length, the mean KL divergences
``KL(old || trunk)`` (the trunk's share), ``KL(trunk || new)`` (the head's share) and ``KL(old || new)``, their largest
values in the window, the share of the rollout's actions whose probability ratio through the trunk alone,
``pi_trunk(a) / pi_old(a)``, leaves PPO's clip interval ``[1 - c, 1 + c]`` (``c`` the clip range at that step), and
the median over units of the trunk features' move, ``rms_i |f_new - f_old|`` divided by the unit's std over the states.

For ``backprop`` the trunk moves by the PPO gradient, which the clipped objective limits; a PDM trunk moves by its local
steps, which nothing in PPO's objective sees.

Usage: ``python benchmarks/prototype/policy_shift.py pdm-w256-hnorm 4 [WINDOW [ENV [BUDGET]]]`` (PPO; CartPole-v1 and the
zoo's budget by default).
"""

import copy
import sys

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_pdm.benchmark.runner import RunSpec, make_model


def _kl(p_logits: th.Tensor, q_logits: th.Tensor) -> th.Tensor:
    """Per-state ``KL(p || q)`` of two categorical distributions given by logits."""
    log_p, log_q = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


class PolicyShift(BaseCallback):
    """Snapshots the actor before ``train()`` (at the rollout's end) and measures its move after (at the next start)."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window
        self.snapshot = None
        self.rows: list[tuple[float, ...]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        policy = self.model.policy
        buffer = self.model.rollout_buffer
        obs = th.as_tensor(buffer.observations.reshape(-1, *self.model.observation_space.shape)).float()
        actions = th.as_tensor(buffer.actions.reshape(-1)).long()
        self.snapshot = (copy.deepcopy(policy.mlp_extractor), copy.deepcopy(policy.action_net), obs, actions)

    def _on_rollout_start(self) -> None:
        if self.snapshot is None:
            return
        old_trunk, old_head, obs, actions = self.snapshot
        policy = self.model.policy
        clip = self.model.clip_range(self.model._current_progress_remaining)
        with th.no_grad():
            old_features = old_trunk.forward_actor(obs)
            new_features = policy.mlp_extractor.forward_actor(obs)
            old = old_head(old_features)
            trunk = old_head(new_features)
            new = policy.action_net(new_features)
            kl_trunk, kl_head, kl_total = _kl(old, trunk), _kl(trunk, new), _kl(old, new)
            index = actions.unsqueeze(-1)
            ratio = (trunk.log_softmax(-1).gather(-1, index) - old.log_softmax(-1).gather(-1, index)).exp()
            outside = ((ratio - 1).abs() > clip).float().mean()
            move = ((new_features - old_features) ** 2).mean(0).sqrt() / old_features.std(0).clamp_min(1e-8)
        self.rows.append(
            (kl_trunk.mean().item(), kl_head.mean().item(), kl_total.mean().item(), outside.item(), move.median().item())
        )
        if len(self.rows) % self.window == 0:
            rows = np.array(self.rows[-self.window :])
            episodes = self.model.ep_info_buffer
            length = np.mean([info["l"] for info in episodes]) if episodes else 0.0
            print(
                f"{self.model.num_timesteps:6d} ret_len {length:6.1f} | KL trunk {rows[:, 0].mean():.5f} "
                f"(max {rows[:, 0].max():.4f}) head {rows[:, 1].mean():.5f} (max {rows[:, 1].max():.4f}) "
                f"total {rows[:, 2].mean():.5f} | outside clip by trunk {rows[:, 3].mean():.3f} "
                f"| feature move {rows[:, 4].mean():.3f} std",
                flush=True,
            )


if __name__ == "__main__":
    th.set_num_threads(1)
    method, seed = sys.argv[1], int(sys.argv[2])
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    env = sys.argv[4] if len(sys.argv) > 4 else "CartPole-v1"
    model, _, callbacks, budget = make_model(RunSpec(env, "ppo", method, seed))
    budget = int(sys.argv[5]) if len(sys.argv) > 5 else budget
    shift = PolicyShift(window)
    model.learn(budget, callback=CallbackList(callbacks + [shift]))
    rows = np.array(shift.rows)
    print(
        f"# {method} seed {seed}, all rollouts: KL trunk {rows[:, 0].mean():.5f} head {rows[:, 1].mean():.5f} "
        f"total {rows[:, 2].mean():.5f} | outside clip by trunk {rows[:, 3].mean():.3f} | feature move "
        f"{rows[:, 4].mean():.3f} std (median over rollouts {np.median(rows[:, 4]):.3f})"
    )
