"""bench.py: the figures it prints are consistent and each path is what it claims to be (speed itself is not
asserted)."""
import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import busy_machine  # noqa: E402
from conftest import REPO, run_script  # noqa: E402


def test_bench_prints_summary_and_json():
    proc = run_script("bench.py", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=2",
                      "--vocab_size=128", "--gradient_accumulation_steps=2", "--device=cpu", "--dtype=float32",
                      "--bench_warmup=1", "--bench_iters=3")
    summary, line = proc.stdout.strip().splitlines()
    r = json.loads(line)
    assert r["tokens_per_iter"] == 2 * 2 * 16 and r["timed_iters"] == 3 and r["compile"] is False
    assert r["path"] == "optimised" and r["fused_loss"] and r["fused_adamw"]
    assert r["ms_per_iter_min"] <= r["ms_per_iter"] <= r["ms_per_iter_max"]
    assert abs(r["tokens_per_s"] - r["tokens_per_iter"] / (r["ms_per_iter"] / 1000)) < 1e-6 * r["tokens_per_s"]
    assert r["mfu"] is None and r["matmul_peaks_gflops"].keys() == {"float32"} and r["matmul_peak_gflops"] > 1
    # 2 FLOPs per weight (one 32-wide block without biases: 12 * 32^2 and 3 LayerNorm weights of 32; the tied 128 x 32
    # embedding) plus attention's 4 T d per token, over 3 passes (forward, 2x backward)
    flops_per_token = 3 * (2 * (12 * 32 * 32 + 3 * 32 + 128 * 32) + 4 * 16 * 32)
    assert abs(r["gflops_per_s"] - flops_per_token * r["tokens_per_iter"] / (r["ms_per_iter"] / 1000) / 1e9) < 1e-9
    assert (f"{r['gflops_per_s']:.1f} GFLOP/s = {r['gflops_per_s'] / r['matmul_peak_gflops'] * 100:.0f}% of this CPU's "
            f"measured float32 matmul peak") in summary and r["busy_processes"] == 0 and "busy" not in summary
    assert r["peak_memory_mib"] > 50 and r["memory_kind"] == "peak RSS"
    assert f"{r['tokens_per_s']:,.0f} tokens/s" in summary


def test_bench_baseline_runs_both_paths_and_the_fused_loss_saves_memory():
    # 8 x 512 = 4096 tokens over a 16384-token vocabulary: each float32 copy of the full logits is 256 MiB, which the
    # plain path holds several of (logits, log-softmax, their gradient) and the fused loss never holds
    proc = run_script("bench.py", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=512", "--batch_size=8",
                      "--vocab_size=16384", "--gradient_accumulation_steps=1", "--device=cpu", "--dtype=float32",
                      "--bench_warmup=1", "--bench_iters=2", "--baseline=True")
    plain_line, optimised_line, ratio_line, line = proc.stdout.strip().splitlines()
    r = json.loads(line)
    plain, optimised = r["plain"], r["optimised"]
    assert plain_line.startswith("plain:") and "fused loss off, fused AdamW off" in plain_line
    assert optimised_line.startswith("optimised:") and "fused loss on, fused AdamW on" in optimised_line
    assert (plain["dtype"], plain["compile"], plain["fused_loss"], plain["fused_adamw"]) == ("float32", False, False, False)
    assert (optimised["fused_loss"], optimised["fused_adamw"]) == (True, True)
    assert plain["timed_iters"] == optimised["timed_iters"] == 2 and plain["tokens_per_iter"] == 8 * 512
    assert r["speedup"] == plain["ms_per_iter"] / optimised["ms_per_iter"]
    assert r["memory_saved"] == 1 - optimised["peak_memory_mib"] / plain["peak_memory_mib"]
    assert f"{r['speedup']:.2f}x the speed" in ratio_line
    assert plain["memory_kind"] == "peak RSS of a fresh process, 2 iterations"
    assert optimised["peak_memory_mib"] < plain["peak_memory_mib"] - 300


def test_bench_path_selects_one_path():
    proc = run_script("bench.py", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=2",
                      "--vocab_size=128", "--gradient_accumulation_steps=1", "--device=cpu", "--bench_warmup=0",
                      "--bench_iters=1", "--bench_path=plain")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["path"] == "plain" and r["dtype"] == "float32" and not r["fused_loss"] and not r["fused_adamw"]
    proc = run_script("bench.py", "--bench_path=fast", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: bench_path must be one of plain, optimised, got 'fast'"


def test_bench_rejects_unknown_keys():
    proc = run_script("bench.py", "--bench_iter=3", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: unknown config key 'bench_iter' in --bench_iter (did you mean 'bench_iters'?)"


def test_bench_probe_counts_the_forward_flops():
    proc = run_script("bench_probe.py", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=64", "--vocab_size=128",
                      "--num_seqs=10", "--seq_len=16", "--batch_size=4", "--device=cpu")
    summary, line = proc.stdout.strip().splitlines()
    r = json.loads(line)
    # a block with biases holds 12 d^2 + 13 d parameters; attention adds 4 T d per layer and token; 10 x 16 tokens
    d, layers, t = 32, 2, 16
    assert r["forward_gflop"] * 1e9 == 10 * t * (2 * layers * (12 * d * d + 13 * d) + 4 * layers * t * d)
    assert r["forward_gflop_per_s"] == r["forward_gflop"] / r["forward_s"]
    assert 0 < r["forward_s"] and r["metrics_s"] == max(r["probe_s"] - r["forward_s"], 0)
    assert 1 <= r["max_rank_mean"] <= t and r["memory_kind"] == "peak RSS"
    assert f"{r['probe_s']:.1f} s" in summary and "16-head" not in summary and "2-head" in summary


def test_bench_probe_times_some_blocks_and_extrapolates():
    """timed_layers=2 of 6: a shape too big to build whole is timed on 2 blocks and extrapolated to 6, as stated."""
    proc = run_script("bench_probe.py", "--n_layer=6", "--n_head=4", "--n_kv_head=2", "--n_embd=64", "--mlp_hidden=96",
                      "--bias=False", "--vocab_size=256", "--norm=rmsnorm", "--position=rope", "--mlp=swiglu",
                      "--tie_embeddings=False", "--block_size=64", "--num_seqs=10", "--seq_len=16", "--batch_size=4",
                      "--device=cpu", "--timed_layers=2")
    summary, line = proc.stdout.strip().splitlines()
    r = json.loads(line)
    d, kv, hidden = 64, 2 * 16, 96  # q and o d x d, k and v d x kv, gate/up/down d x hidden, two RMSNorm gains
    block_params = 2 * d * d + 2 * d * kv + 3 * d * hidden + 2 * d
    assert r["n_layer"] == 6 and r["timed_layers"] == 2 and r["block_weights_mib"] * 2**20 == 4 * block_params
    assert r["forward_gflop"] * 1e9 == 10 * 16 * (2 * 2 * block_params + 4 * 2 * 16 * d)  # the 2 blocks built
    assert r["probe_s_per_layer"] == r["probe_s"] / 2 and r["probe_s_extrapolated"] == pytest.approx(3 * r["probe_s"])
    assert r["peak_memory_mib_extrapolated"] == pytest.approx(r["peak_memory_mib"] + 4 * r["block_weights_mib"])
    assert "6-layer (2 of its blocks built)" in summary and "extrapolated to all 6" in summary
    proc = run_script("bench_probe.py", "--n_layer=4", "--timed_layers=5", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: timed_layers must be between 1 and n_layer=4 (0: all), got 5"


def test_bench_probe_rejects_impossible_shapes():
    proc = run_script("bench_probe.py", "--n_head=3", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: n_embd=1024 is not divisible by n_head=3"
    proc = run_script("bench_probe.py", "--seq_len=2000", check=False)
    assert proc.returncode == 1 and "seq_len <= block_size=1024" in proc.stderr


def test_busy_machine_runs_cpu_bound_processes_and_ends_them():
    with busy_machine(2, max_seconds=60) as procs:
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
        with open(f"/proc/{procs[0].pid}/stat") as f:
            user_ticks = int(f.read().split()[13])
        time.sleep(0.5)
        with open(f"/proc/{procs[0].pid}/stat") as f:
            assert int(f.read().split()[13]) > user_ticks  # it is burning CPU, not sleeping
    assert all(p.returncode is not None for p in procs)
    with busy_machine(1, max_seconds=0.2) as procs:  # bounded even if nobody ends it
        procs[0].wait(timeout=30)
        assert procs[0].returncode == 0


def test_bench_beside_busy_processes_reports_them():
    proc = run_script("bench.py", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=2",
                      "--vocab_size=128", "--device=cpu", "--dtype=float32", "--bench_warmup=0", "--bench_iters=2",
                      "--busy_processes=1")
    summary, line = proc.stdout.strip().splitlines()
    assert json.loads(line)["busy_processes"] == 1 and summary.endswith("beside 1 busy process(es)")
    proc = run_script("bench.py", "--busy_processes=-1", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: busy_processes must be at least 0 and busy_max_seconds positive"


FAKE_NANOGPT_TRAIN = """
import os, sys
args = dict(a[2:].split('=', 1) for a in sys.argv[1:])
assert os.path.getsize(f"data/{args['dataset']}/train.bin") > 0, 'no data'  # linked into its copy by bench_nanogpt.py
assert args['dtype'] == 'float32' and args['compile'] == 'False' and args['device'] == 'cpu'
assert 'GOMP_SPINCOUNT' not in os.environ  # nanoGPT runs with libgomp's default spinning, as its users have it
for i in range(int(args['max_iters']) + 1):  # nanoGPT logs iterations 0..max_iters
    print(f"iter {i}: loss 4.0000, time {40 + i}.00ms, mfu -100.00%")
"""


def test_bench_nanogpt_times_both_train_scripts_in_turns(shakespeare_root, tmp_path):
    """A stand-in for nanoGPT's train.py (its log format, iteration i taking 40 + i ms) beside this repo's real
    train.py on a tiny model: the medians, the ratio and the busy levels are what bench_nanogpt.py reports."""
    nano = tmp_path / "nanoGPT"
    nano.mkdir()
    (nano / "train.py").write_text(FAKE_NANOGPT_TRAIN)
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    proc = subprocess.run([sys.executable, "bench_nanogpt.py", f"--nanogpt_dir={nano}", f"--data_root={shakespeare_root}",
                           "--busy=0,1", "--rounds=2", "--iters=5", "--skip=2", "--n_layer=1", "--n_head=2", "--n_embd=32",
                           "--block_size=16", "--batch_size=2"], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    lines = proc.stdout.strip().splitlines()
    r = json.loads(lines[-1])
    assert [x["busy_processes"] for x in r["results"]] == [0, 1] and r["dtype"] == "float32"
    for x in r["results"]:
        assert x["nanogpt_ms_per_iter"] == 43.5  # median of 42..45 twice: iterations 0-1 of each run skipped
        assert x["iters_timed"] == 2 * 3  # this repo logs iterations 1..5; the first 2 are skipped
        assert x["ratio"] == x["nanogpt_ms_per_iter"] / x["repo_ms_per_iter"] and 0 < x["repo_ms_per_iter"] < 10_000
    assert "beside 1 busy process(es): nanoGPT 44 ms/iter" in lines[2] and not list(tmp_path.glob("bench_nanogpt_*"))


def test_bench_nanogpt_refuses_a_missing_checkout(tmp_path):
    proc = run_script("bench_nanogpt.py", f"--nanogpt_dir={tmp_path}", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == (
        f"error: nanogpt_dir={str(tmp_path)!r} holds no train.py; clone https://github.com/karpathy/nanoGPT and pass its path")
