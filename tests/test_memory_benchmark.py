import json

import pytest
import torch as th

from sb3_pdm.benchmark.memory import KINDS, SavedTensorMeter, main, parse_args

ROW_KEYS = {
    "device",
    "device_name",
    "kind",
    "depth",
    "width",
    "batch",
    "method",
    "peak_saved_bytes",
    "peak_cuda_bytes",
    "sec_per_update",
}


def test_meter_counts_live_bytes_once_per_storage():
    weight = th.randn(16, 8, requires_grad=True)
    x = th.randn(32, 16)
    with SavedTensorMeter() as meter:
        hidden = th.tanh(x @ weight)  # saves x (for the weight's gradient) and the tanh output
        loss = (hidden * hidden).sum()  # saves the tanh output twice more: the same storage, counted once
        assert meter.live == x.nbytes + hidden.nbytes
        loss.backward()
        assert meter.live == 0
        th.tanh(x @ weight).sum().backward()
    assert meter.peak == x.nbytes + hidden.nbytes


def test_quick_memory_benchmark(tmp_path, capsys):
    main(["--quick", "--device", "cpu", "--out", str(tmp_path)])
    assert "PDM peak saved bytes growth" in capsys.readouterr().out
    rows = json.loads((tmp_path / "memory.json").read_text())
    assert all(set(row) == ROW_KEYS for row in rows)
    assert {row["kind"] for row in rows} == set(KINDS)
    assert all(row["peak_cuda_bytes"] is None and row["sec_per_update"] > 0 and row["peak_saved_bytes"] > 0 for row in rows)
    text = (tmp_path / "memory.md").read_text()
    assert "## Targets" in text and "saved ratio" in text and "PDM/backprop peak saved bytes" in text
    assert (tmp_path / "memory.png").stat().st_size > 0

    def saved(method: str) -> list[int]:
        depth_rows = sorted((r for r in rows if r["kind"] == "depth" and r["method"] == method), key=lambda r: r["depth"])
        assert len(depth_rows) >= 3
        return [r["peak_saved_bytes"] for r in depth_rows]

    # PDM frees each layer's local graph before the next layer runs: its peak does not grow with depth.
    pdm, backprop = saved("pdm"), saved("backprop")
    assert max(pdm) <= 1.1 * pdm[0]
    # Backprop keeps every layer's activations until backward.
    assert all(b < c for b, c in zip(backprop, backprop[1:])) and backprop[-1] > 2 * backprop[0]
    assert pdm[-1] < backprop[-1]
    # The local loss's gradient is computed in closed form: no pair matrix is saved for backward, even without the
    # pair bound (one float32 B x B matrix is more than everything PDM saves).
    big = max(r["batch"] for r in rows if r["method"] == "pdm-unbounded")
    unbounded = next(
        r["peak_saved_bytes"] for r in rows if r["kind"] == "batch" and r["batch"] == big and r["method"] == "pdm-unbounded"
    )
    assert unbounded < big * big * 4

    # The README section is rebuilt from the stored rows, measuring nothing.
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- memory:start -->\nold\n<!-- memory:end -->\nb\n")
    main(["--from-json", "--quick", "--out", str(tmp_path), "--readme", str(readme)])
    text = readme.read_text()
    assert "old" not in text and "PDM peak saved bytes growth" in text and text.endswith("b\n")


def test_bad_arguments():
    with pytest.raises(SystemExit):
        parse_args(["--repeats", "0"])
    with pytest.raises(SystemExit):
        parse_args(["--kinds", "nope"])
