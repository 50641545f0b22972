"""bench.py: a smoke test on a tiny config (speed itself is not asserted)."""
import json

from conftest import run_script


def test_bench_prints_summary_and_json():
    proc = run_script("bench.py", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=2",
                      "--vocab_size=128", "--gradient_accumulation_steps=2", "--device=cpu", "--dtype=float32",
                      "--bench_warmup=1", "--bench_iters=3")
    summary, line = proc.stdout.strip().splitlines()
    r = json.loads(line)
    assert r["tokens_per_iter"] == 2 * 2 * 16 and r["timed_iters"] == 3 and r["compile"] is False
    assert r["ms_per_iter_min"] <= r["ms_per_iter"] <= r["ms_per_iter_max"]
    assert abs(r["tokens_per_s"] - r["tokens_per_iter"] / (r["ms_per_iter"] / 1000)) < 1e-6 * r["tokens_per_s"]
    assert r["mfu"] is None and "MFU unknown device" in summary
    assert r["peak_memory_mib"] > 50 and r["memory_kind"] == "peak RSS"
    assert f"{r['tokens_per_s']:,.0f} tokens/s" in summary


def test_bench_rejects_unknown_keys():
    proc = run_script("bench.py", "--bench_iter=3", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: unknown config key 'bench_iter' in --bench_iter (did you mean 'bench_iters'?)"
