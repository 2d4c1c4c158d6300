"""
The policy option ``head_input_gain`` against the prototype it came from (twenty-third round).

Trains CartPole-v1 PPO, seed 0, with the zoo's settings and budget and the benchmark's evaluation, with
``head_input_gain=4.0`` and the move limit off (as the prototype's ``pdm-hnorm`` with ``HEAD_PART=gain`` was run), into a
temporary folder, and compares its evaluation curve with the committed prototype run
(``results-head-gain/CartPole-v1/ppo/pdm-hnorm/seed_0``). Output in ``gain_check.txt``.

``python benchmarks/prototype/gain_check.py``
"""

import json
import os
import tempfile

from sb3_pdm.benchmark.runner import METHODS, RunSpec, run

METHODS["pdm-gain4-nolimit"] = {"pdm_kwargs": {"max_feature_move": None}, "head_input_gain": 4.0}

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        record = run(RunSpec("CartPole-v1", "ppo", "pdm-gain4-nolimit", 0), folder)
    path = os.path.join(os.path.dirname(__file__), "results-head-gain/CartPole-v1/ppo/pdm-hnorm/seed_0/evaluations.json")
    with open(path) as file:
        reference = json.load(file)
    library, prototype = [row["mean"] for row in record["curve"]], [row["mean"] for row in reference["curve"]]
    print("head_input_gain=4.0, CartPole-v1 PPO seed 0:", library)
    print("prototype HEAD_PART=gain, same seed:       ", prototype)
    print("identical curves:", library == prototype)
