"""Markdown table of the prototype sweep. Usage: python benchmarks/prototype/table.py benchmarks/prototype/results"""

import collections
import glob
import json
import os
import sys

import numpy as np


def main() -> None:
    rows = collections.defaultdict(list)
    for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
        with open(path) as file:
            record = json.load(file)
        rows[(record["env"], record["algo"], record["budget"], record["variant"])].append(record)
    print("| env | algo | budget | variant | seeds | final mean | median | EV (last quarter) | s / run | per seed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(rows):
        records = sorted(rows[key], key=lambda r: r["seed"])
        finals = [r["final"] for r in records]
        print(
            f"| {key[0]} | {key[1]} | {key[2]:,} | {key[3]} | {len(finals)} | {np.mean(finals):.1f} | {np.median(finals):.1f} "
            f"| {np.mean([r['ev_last_q'] for r in records]):.2f} | {np.mean([r['secs'] for r in records]):.0f} "
            f"| {', '.join(f'{x:.0f}' for x in finals)} |"
        )


if __name__ == "__main__":
    main()
