"""
Screen a change of PDM's default options: the benchmark's ``pdm`` (the zoo's values) and ``pdm-sb3defaults`` (SB3's
defaults) methods, with the given options in place of ``PDMConfig``'s defaults, on the cheap screening settings.

The runs are named as the methods they change, in a folder of their own (``OUT/runs``, with its ``summary.md``), so
that each row compares with the same-named row of the main results (the current defaults, same seeds). Finished
runs are skipped on a rerun.

Example (the screen of ``docs/results.md``, "Default options")::

    python research/screen_options.py --options guidance_coef=3 --seeds 8 --out benchmarks/screens/guidance-coef-3
"""

import argparse
import ast
import os

from tqdm import tqdm

from sb3_pdm.benchmark.backends import run_in_pool
from sb3_pdm.benchmark.report import write_report
from sb3_pdm.benchmark.runner import RunSpec, hyperparameters, is_done, write_record

#: The screening settings (``../shared/PDM.md``): CartPole-v1 PPO at 100k steps, LunarLander-v3 A2C at 200k.
SETTINGS = (("CartPole-v1", "ppo"), ("LunarLander-v3", "a2c"))
METHODS = ("pdm", "pdm-sb3defaults")


def with_options(entry: dict, options: dict) -> dict:
    """``entry`` with ``options`` added to its ``policy_kwargs``' ``pdm_kwargs`` (a string entry is wrapped, unevaluated)."""
    kwargs = entry.get("policy_kwargs")
    extra = f"pdm_kwargs=dict({', '.join(f'{k}={v!r}' for k, v in options.items())})"
    if kwargs is None:
        policy_kwargs = f"dict({extra})"
    elif "pdm_kwargs" in kwargs:
        raise ValueError("the entry already sets pdm_kwargs")
    else:
        policy_kwargs = f"dict(**{kwargs}, {extra})" if isinstance(kwargs, str) else f"dict(**{kwargs!r}, {extra})"
    return {**entry, "policy_kwargs": policy_kwargs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--options", nargs="+", required=True, help="PDMConfig options, NAME=VALUE (Python literals)")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    options = {name: ast.literal_eval(value) for name, value in (option.split("=", 1) for option in args.options)}
    runs_dir = os.path.join(args.out, "runs")
    specs = [RunSpec(env, algo, method, seed) for env, algo in SETTINGS for method in METHODS for seed in range(args.seeds)]
    tasks = [(spec, with_options(hyperparameters(spec), options)) for spec in specs if not is_done(spec, runs_dir)]
    print(f"{len(specs)} runs, {len(specs) - len(tasks)} already done; options {options}")
    with tqdm(total=len(tasks), unit="run") as progress:
        for spec, result in run_in_pool(tasks, args.workers):
            if isinstance(result, BaseException):
                raise SystemExit(f"{spec.name} failed: {result!r}")
            write_record(result, runs_dir)
            progress.set_postfix_str(f"{spec.name}: {result['final']:.1f}")
            progress.update()
    write_report(runs_dir, args.out)


if __name__ == "__main__":
    main()
