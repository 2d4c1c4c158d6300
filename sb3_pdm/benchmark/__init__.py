"""
Benchmarks: returns and stability against stock SB3 (``python -m sb3_pdm.benchmark``, in a process pool or on a Ray
cluster: ``docs/cluster.md``), summaries regenerated from the runs (``python -m sb3_pdm.benchmark.report``), memory
and speed of one update (``python -m sb3_pdm.benchmark.memory``).
"""
