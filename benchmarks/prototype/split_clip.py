"""
The heads' gradients clipped separately (twenty-eighth round of ``docs/benchmark.md``): a prototype patched into
``th.nn.utils.clip_grad_norm_``.

SB3's PPO and A2C clip the gradient of all of ``policy.parameters()`` to one global norm (``max_grad_norm``), so where
the value head's gradient dominates that norm, the action head's step on each update is scaled by the inverse of the
value head's gradient (``clip_share.py``). Here the clip is applied to three groups on their own, each to
``max_grad_norm``: the action head (``action_net`` and ``log_std``), the value head (``value_net``), and the rest (a
backprop trunk's layers; PDM layers keep no gradient there). Where the value head dominates the global norm, this
leaves its own clipped step as it was and frees the action head's from it; nothing else in the algorithm changes.

``python benchmarks/prototype/split_clip.py METHOD SEEDS ENV ALGO`` trains the benchmark method (``pdm`` for the
current defaults) with zoo settings and budgets and the benchmark's evaluation, two runs at a time, into
``benchmarks/prototype/results-split-clip`` (done runs are skipped), and prints the finals and their IQM; the
folders read with ``python benchmarks/prototype/head_parts.py report``.
"""

import os
import sys
from multiprocessing import get_context

import numpy as np
import torch as th

OUT = os.path.join(os.path.dirname(__file__), "results-split-clip")
GROUPS = (("action_net", "log_std"), ("value_net",))
_clip = th.nn.utils.clip_grad_norm_
_group_of: dict[int, int] = {}


def _group(name: str) -> int:
    return next((index for index, prefixes in enumerate(GROUPS) if name.startswith(prefixes)), len(GROUPS))


def split_clip_grad_norm_(parameters, max_norm: float, *args, **kwargs) -> th.Tensor:
    """Clip each group of :data:`GROUPS` (and the rest) to ``max_norm`` on its own; return the global norm before."""
    groups: dict[int, list[th.Tensor]] = {}
    for parameter in parameters:
        if parameter.grad is not None:
            groups.setdefault(_group_of.get(id(parameter), len(GROUPS)), []).append(parameter)
    norms = [_clip(group, max_norm, *args, **kwargs) for group in groups.values()]
    return th.linalg.vector_norm(th.stack(norms)) if norms else th.tensor(0.0)


def install() -> None:
    """Patch the clip, and ``make_model`` so that each new policy's parameters are sorted into the groups."""
    from sb3_pdm.benchmark import runner

    make_model = runner.make_model

    def grouping_make_model(spec):
        built = make_model(spec)
        _group_of.clear()
        _group_of.update({id(parameter): _group(name) for name, parameter in built[0].policy.named_parameters()})
        return built

    runner.make_model = grouping_make_model
    th.nn.utils.clip_grad_norm_ = split_clip_grad_norm_


def _run(args: tuple[str, str, str, int]) -> float:
    install()
    from sb3_pdm.benchmark.runner import RunSpec, run

    spec = RunSpec(*args)
    done = os.path.join(OUT, spec.name, "evaluations.json")
    if os.path.exists(done):
        import json

        with open(done) as file:
            return json.load(file)["final"]
    return run(spec, OUT)["final"]


if __name__ == "__main__":
    from sb3_pdm.benchmark.report import iqm_with_ci

    method, seeds, env, algo = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with get_context("spawn").Pool(2) as pool:
        finals = pool.map(_run, [(env, algo, method, seed) for seed in range(seeds)], chunksize=1)
    print(
        f"{env} {algo} {method} with split clip: finals",
        [round(f, 1) for f in finals],
        "IQM [95% CI]",
        [round(v, 1) for v in iqm_with_ci(np.array(finals))],
    )
