"""
Cost of a PDM trunk's local steps and of a rollout forward in two checkouts, and whether they train alike (twenty-first
round).

For each source folder given (a checkout of this repository), in a fresh process that imports ``sb3_pdm`` from it, on
one thread (CPU time of the process, best of 7 repeats):

- the local steps of a 64-64 ``PDMLinear`` trunk (tanh, defaults) on 40 fresh samples of 4 features with fresh guidance
  signals, as on a CartPole A2C rollout (new tensors at every call, so nothing is carried over between calls);
- the forward of CartPole A2C's ``PDMPolicy`` and of SB3's ``MlpPolicy`` on 8 observations without gradient, as in a
  rollout step;
- seconds per 1k steps of CartPole A2C ``pdm`` and ``backprop``, seed 0 (16k steps after 2k);
- a hash of the policy's parameters after training ``pdm`` seed 0 on CartPole A2C (6k steps), CartPole PPO (4096),
  LunarLander A2C (4000) and LunarLander PPO (16384): equal hashes mean the same training, bit for bit.

Usage (the old checkout made with ``git worktree add /tmp/old 911bece``, the commit before the change):
``python benchmarks/prototype/trunk_step_cost.py /tmp/old . > benchmarks/prototype/trunk_step_cost.txt``
"""

import subprocess
import sys

MEASURE = r"""
import hashlib, sys, time
import torch as th
sys.path.insert(0, sys.argv[1])
th.set_num_threads(1)
import sb3_pdm
from sb3_pdm.benchmark.runner import RunSpec, make_model
from sb3_pdm.config import PDMConfig
from sb3_pdm.trunks import build_pdm_mlp

def per_call(function, n):
    for _ in range(200):
        function()
    best = float("inf")
    for _ in range(7):
        start = time.process_time()
        for _ in range(n):
            function()
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best

th.manual_seed(0)
trunk = build_pdm_mlp(4, [64, 64], th.nn.Tanh, PDMConfig())
trunk.train()
x, guidance = th.randn(40, 4), th.randn(40, 2)

def trunk_step():
    signal = guidance.clone()
    for layer in trunk:
        layer.begin_rollout()
        layer.set_guidance(signal)
    trunk(x.clone())

step = per_call(trunk_step, 1000)
obs = th.randn(8, 4)
forward = {}
for method in ("pdm", "backprop"):
    policy = make_model(RunSpec("CartPole-v1", "a2c", method, 0, budget=1000))[0].policy
    with th.no_grad():
        forward[method] = per_call(lambda: policy(obs), 2000)
seconds = {}
for method in ("pdm", "backprop"):
    model, _, callbacks, _ = make_model(RunSpec("CartPole-v1", "a2c", method, 0, budget=20000))
    model.learn(2000, callback=callbacks)
    start = time.process_time()
    model.learn(16000, callback=callbacks, reset_num_timesteps=False)
    seconds[method] = (time.process_time() - start) / 16
hashes = []
for env, algo, steps in (("CartPole-v1", "a2c", 6000), ("CartPole-v1", "ppo", 4096), ("LunarLander-v3", "a2c", 4000),
                         ("LunarLander-v3", "ppo", 16384)):
    model, _, callbacks, _ = make_model(RunSpec(env, algo, "pdm", 0, budget=steps))
    model.learn(steps, callback=callbacks)
    data = b"".join(p.detach().numpy().tobytes() for p in model.policy.parameters())
    hashes.append(f"{env} {algo} {hashlib.sha1(data).hexdigest()[:12]}")
print(f"{sys.argv[1]} ({sb3_pdm.__file__}):")
print(f"  64-64 trunk local steps on 40 samples {step:.0f} us")
print(f"  rollout forward on 8 observations: pdm {forward['pdm']:.0f} us, backprop {forward['backprop']:.0f} us")
print(f"  CartPole A2C s per 1k steps: pdm {seconds['pdm']:.4f}, backprop {seconds['backprop']:.4f}")
print(f"  parameters after training: {', '.join(hashes)}")
"""


def main() -> None:
    for source in sys.argv[1:]:
        subprocess.run([sys.executable, "-c", MEASURE, source], check=True)


if __name__ == "__main__":
    main()
