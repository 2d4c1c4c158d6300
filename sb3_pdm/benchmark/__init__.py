"""
Benchmarks: returns and stability against stock SB3 (``python -m sb3_pdm.benchmark``), memory and speed of one
update (``python -m sb3_pdm.benchmark.memory``).
"""
