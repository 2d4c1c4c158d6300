"""
One prototype run of a local-objective variant of PDM, patched into ``PDMLayer._local_update`` (not library options).

Usage: ``python benchmarks/prototype/exp.py ENV ALGO VARIANT SEED BUDGET OUTDIR`` (usually through ``sweep.py``).
Writes ``OUTDIR/ENV_ALGO_VARIANT_SEED.json``: final deterministic return (20 episodes), 5-point curve, mean
``train/explained_variance`` over the last quarter of training, training seconds.

Flags of a variant (second dict of :data:`VARIANTS`; the first dict is a ``sb3_pdm.benchmark.runner`` method):

- ``std_input``: input distances of the target taken on the batch-standardised input;
- ``probe_coef``: weight of a local linear probe that predicts the layer's guidance signal from its output (trained
  with the layer, gradient stopping at the layer's input; as in Nokland & Eidnes' predsim);
  ``centred_code``: the actor's action code is centred on the uniform policy (``one_hot(a) - 1/n``), so that "a
  helped" and "another action hurt" give the same signal; ``linlr``: the local rate decays linearly to 0;
  ``local_epochs``: layers step only in the first n epochs of each rollout's training (PPO);
  ``probe_critic_only``: only critic layers (guidance of width 1) get it; ``mds_coef``: weight of the MDS term
  (divided by the squared target scale so that both terms are scale-free);
- ``target_guidance``: guidance distances in the target; ``actor_target_guidance``: also for actor layers;
- ``shared_critic_only``: shared layers are guided by the return alone; ``freeze_actor``: actor layers never step.
"""

import dataclasses
import json
import os
import sys
import time

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_pdm import layers as L
from sb3_pdm import policies as P
from sb3_pdm.benchmark import runner
from sb3_pdm.objective import pairwise_distances, pdm_loss, target_distances

FLAGS = dict(
    std_input=False,
    probe_coef=0.0,
    mds_coef=1.0,
    target_guidance=True,
    probe_critic_only=False,
    actor_target_guidance=True,
    shared_critic_only=False,
    freeze_actor=False,
    centred_code=False,
    local_epochs=0,
    actor_lr=None,
)

VARIANTS = {
    "backprop": ({}, {}),
    "pdm": ({"pdm_kwargs": {}}, {}),
    "frozen": ({"pdm_kwargs": {}, "frozen": True}, {}),
    "frozen-skip": ({"pdm_kwargs": {}, "frozen": True, "skip_to_heads": True}, {}),
    "std": ({"pdm_kwargs": {}}, {"std_input": True}),
    "std-g4": ({"pdm_kwargs": {"guidance_coef": 4.0}}, {"std_input": True}),
    "probe": ({"pdm_kwargs": {}}, {"probe_coef": 1.0}),
    "probe-std": ({"pdm_kwargs": {}}, {"probe_coef": 1.0, "std_input": True}),
    "probe-notg": ({"pdm_kwargs": {}}, {"probe_coef": 1.0, "target_guidance": False}),
    "probe-notg-std": ({"pdm_kwargs": {}}, {"probe_coef": 1.0, "target_guidance": False, "std_input": True}),
    "probe10": ({"pdm_kwargs": {}}, {"probe_coef": 10.0}),
    "probeonly": ({"pdm_kwargs": {}}, {"probe_coef": 1.0, "mds_coef": 0.0}),
    "probe-skip": ({"pdm_kwargs": {}, "skip_to_heads": True}, {"probe_coef": 1.0}),
    "probe-lr1e3": ({"pdm_kwargs": {"local_lr": 1e-3}}, {"probe_coef": 1.0}),
    "probe-std-lr1e3": ({"pdm_kwargs": {"local_lr": 1e-3}}, {"probe_coef": 1.0, "std_input": True}),
    "probe-wide": ({"pdm_kwargs": {}, "net_arch": [256, 256]}, {"probe_coef": 1.0}),
    "fs03": ({"pdm_kwargs": {"feature_scale": 0.3}}, {}),
    "probe-fs03": ({"pdm_kwargs": {"feature_scale": 0.3}}, {"probe_coef": 1.0}),
    "g0-std": ({"pdm_kwargs": {"guidance_coef": 0.0}}, {"std_input": True}),
    "lin-probeonly": ({"pdm_kwargs": {}, "net_arch": {"pi": [], "vf": [64, 64]}}, {"probe_coef": 1.0, "mds_coef": 0.0}),
    "lin-pdm": ({"pdm_kwargs": {}, "net_arch": {"pi": [], "vf": [64, 64]}}, {}),
    "lin-probe": ({"pdm_kwargs": {}, "net_arch": {"pi": [], "vf": [64, 64]}}, {"probe_coef": 1.0}),
    "lin-frozen": ({"pdm_kwargs": {}, "frozen": True, "net_arch": {"pi": [], "vf": [64, 64]}}, {}),
    "probe-critic": ({"pdm_kwargs": {}}, {"probe_coef": 1.0, "probe_critic_only": True}),
    "probe-critic-skip": ({"pdm_kwargs": {}, "skip_to_heads": True}, {"probe_coef": 1.0, "probe_critic_only": True}),
    "probe-critic-wide": ({"pdm_kwargs": {}, "net_arch": [256, 256]}, {"probe_coef": 1.0, "probe_critic_only": True}),
    "probe-critic-actorg0": (
        {"pdm_kwargs": {}},
        {"probe_coef": 1.0, "probe_critic_only": True, "actor_target_guidance": False},
    ),
    "actorg0": ({"pdm_kwargs": {}}, {"actor_target_guidance": False}),
    "pdm-noguide": ({"pdm_kwargs": {"guidance_coef": 0.0}}, {}),
    "pdm-wide": ({"pdm_kwargs": {}, "net_arch": [256, 256]}, {}),
    "pdm-skip": ({"pdm_kwargs": {}, "skip_to_heads": True}, {}),
    "lin-g0": ({"pdm_kwargs": {"guidance_coef": 0.0}, "net_arch": {"pi": [], "vf": [64, 64]}}, {}),
    "lin-std": ({"pdm_kwargs": {}, "net_arch": {"pi": [], "vf": [64, 64]}}, {"std_input": True}),
    "lin-wide": ({"pdm_kwargs": {}, "net_arch": {"pi": [], "vf": [256, 256]}}, {}),
    "pc-actorg0-skip": (
        {"pdm_kwargs": {}, "skip_to_heads": True},
        {"probe_coef": 1.0, "probe_critic_only": True, "actor_target_guidance": False},
    ),
    "pc-actorfrozen": ({"pdm_kwargs": {}}, {"probe_coef": 1.0, "probe_critic_only": True, "freeze_actor": True}),
    "pc-wide-actorg0": (
        {"pdm_kwargs": {}, "net_arch": [256, 256]},
        {"probe_coef": 1.0, "probe_critic_only": True, "actor_target_guidance": False},
    ),
    "shared-cp": (
        {"pdm_kwargs": {}, "share_trunk": True, "net_arch": [64, 64]},
        {"probe_coef": 1.0, "shared_critic_only": True},
    ),
    "shared-cp-skip": (
        {"pdm_kwargs": {}, "share_trunk": True, "skip_to_heads": True, "net_arch": [64, 64]},
        {"probe_coef": 1.0, "shared_critic_only": True},
    ),
    "probe-linlr": ({"pdm_kwargs": {"local_lr": 1e-3}}, {"probe_coef": 1.0, "linlr": True}),
    "linlr": ({"pdm_kwargs": {"local_lr": 3e-4}}, {"linlr": True}),
    "ccode": ({"pdm_kwargs": {}}, {"centred_code": True}),
    "ep1": ({"pdm_kwargs": {}}, {"local_epochs": 1}),
    "ccode-ep1": ({"pdm_kwargs": {}}, {"centred_code": True, "local_epochs": 1}),
    "sgd1e3": ({"pdm_kwargs": {"local_optimizer": "sgd", "local_lr": 1e-3}}, {}),
    "sgd3e3": ({"pdm_kwargs": {"local_optimizer": "sgd", "local_lr": 3e-3}}, {}),
    "lin-g4": ({"pdm_kwargs": {"guidance_coef": 4.0}, "net_arch": {"pi": [], "vf": [64, 64]}}, {}),
    "lin-probe-g4": ({"pdm_kwargs": {"guidance_coef": 4.0}, "net_arch": {"pi": [], "vf": [64, 64]}}, {"probe_coef": 1.0}),
    "vn": ({"pdm_kwargs": {}, "value_norm_rate": 0.01}, {}),
    "frozen-vn": ({"pdm_kwargs": {}, "frozen": True, "value_norm_rate": 0.01}, {}),
    "lin-vn": ({"pdm_kwargs": {}, "net_arch": {"pi": [], "vf": [64, 64]}, "value_norm_rate": 0.01}, {}),
    "vn-aslow": ({"pdm_kwargs": {}, "value_norm_rate": 0.01}, {"actor_lr": 3e-5}),
    "vn-probe": ({"pdm_kwargs": {}, "value_norm_rate": 0.01}, {"probe_coef": 1.0, "probe_critic_only": True}),
    "vn-afrozen": ({"pdm_kwargs": {}, "value_norm_rate": 0.01}, {"freeze_actor": True}),
    "aslow": ({"pdm_kwargs": {}}, {"actor_lr": 3e-5}),
    "vn-fs025": ({"pdm_kwargs": {"feature_scale": 0.25}, "value_norm_rate": 0.01}, {}),
    "vn-fs025-aslow": ({"pdm_kwargs": {"feature_scale": 0.25}, "value_norm_rate": 0.01}, {"actor_lr": 3e-5}),
    "vn-fs025-ep1": ({"pdm_kwargs": {"feature_scale": 0.25, "local_epochs": 1}, "value_norm_rate": 0.01}, {}),
    "vn-fs025-a1": (
        {"pdm_kwargs": {"feature_scale": 0.25}, "value_norm_rate": 0.01, "actor_pdm_kwargs": {"feature_scale": 1.0}},
        {},
    ),
    "ccode-linlr": ({"pdm_kwargs": {"local_lr": 3e-4}}, {"centred_code": True, "linlr": True}),
}


def _local_update(self, x, output, guidance):
    if FLAGS["local_epochs"]:
        self._proto_calls = getattr(self, "_proto_calls", 0) + 1
        if self._proto_calls > self._proto_limit:
            return
    if x.shape[0] < 2:
        self._n_skipped += 1
        return
    if guidance is not None and FLAGS["shared_critic_only"]:
        guidance = guidance[:, :1]
    if guidance is not None and FLAGS["freeze_actor"] and guidance.shape[1] > 1:
        self._n_skipped += 1
        return
    with th.no_grad():
        xin = x.flatten(start_dim=1)
        if FLAGS["std_input"]:
            xin = (xin - xin.mean(0)) / (xin.std(0) + 1e-3)
        targets = target_distances(
            pairwise_distances(xin, self.config.distance),
            pairwise_distances(guidance, "euclidean")
            if (
                guidance is not None
                and FLAGS["target_guidance"]
                and (FLAGS["actor_target_guidance"] or guidance.shape[1] == 1)
            )
            else None,
            self.config.guidance_coef,
            self.config.normalization,
            self.target_scale,
        )
    loss = FLAGS["mds_coef"] * pdm_loss(pairwise_distances(output, self.config.distance), targets) / self.target_scale**2
    if FLAGS["probe_coef"] > 0 and guidance is not None and (not FLAGS["probe_critic_only"] or guidance.shape[1] == 1):
        if not hasattr(self, "_probe"):
            self._probe = th.nn.Linear(output.shape[1], guidance.shape[1])
            self._probe_opt = th.optim.Adam(self._probe.parameters(), lr=self.optimizer.param_groups[0]["lr"])
        loss = loss + FLAGS["probe_coef"] * F.mse_loss(self._probe(output), guidance)
    if not th.isfinite(loss):
        self._n_skipped += 1
        return
    self.optimizer.zero_grad(set_to_none=True)
    if hasattr(self, "_probe"):
        self._probe_opt.zero_grad(set_to_none=True)
    loss.backward()
    self.optimizer.step()
    if hasattr(self, "_probe"):
        for g in self._probe_opt.param_groups:
            g["lr"] = self.optimizer.param_groups[0]["lr"]
        self._probe_opt.step()
    self._loss_sum = self._loss_sum + loss.detach()
    self._n_updates += 1
    self._last_output = output.detach()


L.PDMLayer._local_update = _local_update
_actor_signal = P.PDMActorCriticMixin._actor_signal


def _centred_actor_signal(self, signals):
    """Advantage times the action code centred on the uniform policy (one-hot minus 1/n for Discrete)."""
    signal = _actor_signal(self, signals)
    if FLAGS["centred_code"] and isinstance(self.action_space, spaces.Discrete):
        adv = P._standardize(signals.advantages)[:, None]
        signal = signal - adv / int(self.action_space.n)
    return signal


P.PDMActorCriticMixin._actor_signal = _centred_actor_signal


class EVLog(BaseCallback):
    def __init__(self):
        super().__init__()
        self.ev = []

    def _on_rollout_end(self):
        if FLAGS["local_epochs"]:
            n_samples = self.model.n_steps * self.model.n_envs
            per_epoch = -(-n_samples // getattr(self.model, "batch_size", n_samples))
            for layer in L.pdm_layers(self.model.policy):
                layer._proto_calls, layer._proto_limit = 0, FLAGS["local_epochs"] * per_epoch
        v = self.model.logger.name_to_value.get("train/explained_variance")
        if v is not None:
            self.ev.append((self.num_timesteps, float(v)))

    def _on_step(self):
        return True


def main():
    env, algo, variant, seed, budget, outdir = sys.argv[1:7]
    seed, budget = int(seed), int(budget)
    method, flags = VARIANTS[variant]
    FLAGS.update(flags)
    method = dict(method)
    if "pdm_kwargs" in method:
        # The variants ran on the v1 defaults (saturating features, plain value head) unless they say otherwise.
        method["pdm_kwargs"] = {"feature_scale": 1.0, **method["pdm_kwargs"]}
        method.setdefault("value_norm_rate", None)
    if flags.get("linlr"):
        lr0 = method["pdm_kwargs"]["local_lr"]
        method["pdm_kwargs"] = dict(method["pdm_kwargs"], local_lr=lambda p: lr0 * p)
    runner.METHODS[variant] = method
    th.set_num_threads(1)
    spec = runner.RunSpec(env, algo, variant, seed, budget, n_evals=5, eval_episodes=20)
    model, eval_env, callbacks, budget = runner.make_model(spec)
    if FLAGS["actor_lr"] is not None:
        # Per-role local rate: the actor trunk's layers get their own (copied) configuration.
        for layer in L.pdm_layers(model.policy.mlp_extractor.policy_net):
            layer.config = dataclasses.replace(layer.config, local_lr=FLAGS["actor_lr"])
            layer.set_progress(1.0)
    evaluation = runner._PeriodicEvaluation(eval_env, max(budget // spec.n_evals, 1), spec.eval_episodes)
    ev = EVLog()
    start = time.perf_counter()
    model.learn(budget, callback=CallbackList([*callbacks, evaluation, ev]))
    if not evaluation.rows or evaluation.rows[-1]["timesteps"] < model.num_timesteps:
        evaluation.evaluate()
    secs = time.perf_counter() - start - evaluation.eval_seconds
    evs = [v for _, v in ev.ev]
    q = evs[len(evs) * 3 // 4 :] if evs else [float("nan")]
    rec = dict(
        env=env,
        algo=algo,
        variant=variant,
        seed=seed,
        budget=budget,
        final=evaluation.rows[-1]["mean"],
        curve=[r["mean"] for r in evaluation.rows],
        ev_last_q=float(np.mean(q)),
        secs=secs,
    )
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, f"{env}_{algo}_{variant}_{seed}.json"), "w") as f:
        json.dump(rec, f)
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
