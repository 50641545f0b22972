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


def test_bench_probe_counts_the_forward_flops():
    proc = run_script("bench_probe.py", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=64", "--vocab_size=128",
                      "--num_seqs=10", "--seq_len=16", "--batch_size=4", "--device=cpu", "--dtype=float32")
    summary, line = proc.stdout.strip().splitlines()
    r = json.loads(line)
    # a block with biases holds 12 d^2 + 13 d parameters; attention adds 4 T d per layer and token; 10 x 16 tokens
    d, layers, t = 32, 2, 16
    assert r["forward_gflop"] * 1e9 == 10 * t * (2 * layers * (12 * d * d + 13 * d) + 4 * layers * t * d)
    assert r["forward_gflop_per_s"] == r["forward_gflop"] / r["forward_s"]
    assert 0 < r["forward_s"] and r["metrics_s"] == max(r["probe_s"] - r["forward_s"], 0)
    assert 1 <= r["max_rank_mean"] <= t and r["memory_kind"] == "peak RSS"
    assert f"{r['probe_s']:.1f} s" in summary and "16-head" not in summary and "2-head" in summary


def test_bench_probe_rejects_impossible_shapes():
    proc = run_script("bench_probe.py", "--n_head=3", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: n_embd=1024 is not divisible by n_head=3"
    proc = run_script("bench_probe.py", "--seq_len=2000", check=False)
    assert proc.returncode == 1 and "seq_len <= block_size=1024" in proc.stderr
