"""
Cost of PDM's local step in two checkouts, and whether they train alike (eighteenth round).

For each source folder given (a checkout of this repository), in a fresh process that imports ``sb3_pdm`` from it, on
one thread: the time of one local step of a 64-unit ``PDMLinear`` on 40 samples (limit off), of one forward without
gradient on 8 samples, seconds per 1k steps of CartPole A2C ``pdm`` and ``backprop`` seed 0 (16k steps after 2k), and a
hash of the policy's parameters after 6k steps of CartPole A2C and 4096 of CartPole PPO (``pdm``, seed 0): equal hashes
mean the same training, bit for bit.

Usage (the old checkout made with ``git worktree add /tmp/old 203c0c3``, the commit before the direct fused Adam call):
``python benchmarks/prototype/step_cost.py /tmp/old . > benchmarks/prototype/step_cost.txt``
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
from sb3_pdm.layers import PDMLinear

def per_call(function, n):
    for _ in range(200):
        function()
    start = time.perf_counter()
    for _ in range(n):
        function()
    return (time.perf_counter() - start) / n * 1e6

th.manual_seed(0)
layer = PDMLinear(64, 64, config=PDMConfig(max_feature_move=None))
layer.train()
x, guidance = th.randn(40, 64), th.randn(40, 2)
layer.set_guidance(guidance)
step = per_call(lambda: layer(x), 4000)
layer.eval()
with th.no_grad():
    forward = per_call(lambda: layer(x[:8]), 20000)
seconds = {}
for method in ("pdm", "backprop"):
    model, _, callbacks, _ = make_model(RunSpec("CartPole-v1", "a2c", method, 0, budget=20000))
    model.learn(2000, callback=callbacks)
    start = time.perf_counter()
    model.learn(16000, callback=callbacks, reset_num_timesteps=False)
    seconds[method] = (time.perf_counter() - start) / 16
hashes = []
for algo, steps in (("a2c", 6000), ("ppo", 4096)):
    model, _, callbacks, _ = make_model(RunSpec("CartPole-v1", algo, "pdm", 0, budget=10000))
    model.learn(steps, callback=callbacks)
    data = b"".join(p.detach().numpy().tobytes() for p in model.policy.parameters())
    hashes.append(f"{algo} {hashlib.sha1(data).hexdigest()[:12]}")
print(f"{sys.argv[1]} ({sb3_pdm.__file__}):")
print(f"  local step {step:.0f} us, forward without gradient {forward:.1f} us")
print(f"  CartPole A2C s per 1k steps: pdm {seconds['pdm']:.4f}, backprop {seconds['backprop']:.4f}")
print(f"  parameters after training: {', '.join(hashes)}")
"""


def main() -> None:
    for source in sys.argv[1:]:
        subprocess.run([sys.executable, "-c", MEASURE, source], check=True)


if __name__ == "__main__":
    main()
