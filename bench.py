"""
Training speed of any train.py config: tokens/s, ms/iter, MFU and peak memory.
    python bench.py config/train_shakespeare.py
    python bench.py config/train_gpt2.py --batch_size=4 --gradient_accumulation_steps=1 --device=cpu
    python bench.py config/train_gpt2.py --gradient_accumulation_steps=1 --compile=False   # compile off on CUDA
    python bench.py config/shakespeare_ref.py --baseline=True   # against nanoGPT's plain path, same process

It takes train.py's keys (config files, then --key=value, with the same meanings) plus bench_warmup, bench_iters,
baseline and bench_path, builds the model as train.py does (init_from included) and times whole training iterations:
forward and backward over gradient_accumulation_steps micro-batches, gradient clipping and the AdamW step. The
batches are random token ids, so bench.py reads no data file (nothing needs preparing, and vocab_size=None means
GPT-2's 50304). One process, no DDP: per-GPU figures.

Two paths: 'optimised' is what train.py runs with the config (dtype, compile, fused_loss, fused AdamW); 'plain' is
what a nanoGPT user gets on this device: full logits and F.cross_entropy, AdamW fused on CUDA only, and on CPU
float32 without autocast and without compile (on CUDA the config's dtype and compile, as nanoGPT's defaults).
--baseline=True times both in this process, one iteration of each in turn from the same weights and batches (so
load from other processes hits both alike), and prints both and the ratio.

Reported: the median over bench_iters timed iterations after bench_warmup untimed ones (which also absorb
torch.compile), CUDA synchronized around each; MFU against the GPU's dense peak for the dtype ("unknown device"
where the peak is not known). On CPU, where no spec sheet gives a peak, the achieved GFLOP/s of the step (the same
FLOP count as MFU's) beside this machine's measured matmul peak in the path's dtype (matmul_peak_gflops, timed
before anything else runs). --busy_processes=N times everything beside N single-thread CPU-bound processes, as on a
shared machine or a laptop doing other work; they end with the run. Peak memory = torch.cuda.max_memory_allocated
over the timed iterations on CUDA, the process's peak RSS on CPU; with --baseline=True each path's peak comes from a
fresh process that runs two iterations of that path alone (peak RSS only ever grows, so one process cannot measure
both). Output: one summary line per path (and the ratios), then the same figures as one JSON line.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from common import fail, setup_device
from configurator import configure
from losses import LossSpec
from train import TrainConfig, build_model, check_config, train_step


@dataclass
class BenchConfig(TrainConfig):
    """train.py's settings plus these."""
    bench_warmup: int = 3  # untimed iterations first (they also absorb torch.compile)
    bench_iters: int = 10  # timed iterations; the median is reported
    baseline: bool = False  # also time nanoGPT's plain path, interleaved in this process, and print the ratio
    bench_path: str = 'optimised'  # without baseline: which path to time, 'optimised' or 'plain'
    busy_processes: int = 0  # time beside this many single-thread CPU-bound processes (a busy machine), ended with the run
    busy_max_seconds: float = 1800.0  # each busy process ends itself after this long even if bench.py is killed

PATHS = ('plain', 'optimised')
GPT2_VOCAB = 50257


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def device_name(device_type):
    if device_type == "cuda":
        return torch.cuda.get_device_name()
    return f"{cpu_name()}, torch threads={torch.get_num_threads()}"


def peak_memory(device_type):
    """(MiB, what was measured): CUDA's max_memory_allocated since the last reset, else the process's peak RSS."""
    if device_type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20, "cuda max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak RSS"  # Linux reports KiB


def random_batches(cfg, vocab_size, device):
    return [(torch.randint(vocab_size, (cfg.batch_size, cfg.block_size), device=device),
             torch.randint(vocab_size, (cfg.batch_size, cfg.block_size), device=device))
            for _ in range(cfg.gradient_accumulation_steps)]


def build_path(cfg, name, device, device_type):
    """Model and one-iteration step function of the 'plain' or 'optimised' path (see the docstring)."""
    plain = name == 'plain'
    dtype = 'float32' if plain and device_type == 'cpu' else cfg.dtype
    ptdtype, autocast = setup_device(device, dtype)[2:]
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, GPT2_VOCAB, device)[0]
    model.to(device)
    fused_adamw = not plain or device_type == 'cuda'
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2),
                                           device_type, fused=fused_adamw)
    scaler = torch.amp.GradScaler(device_type, enabled=(ptdtype == torch.float16))
    use_compile = cfg.compile if cfg.compile is not None else device_type == 'cuda'
    use_compile = use_compile and not (plain and device_type == 'cpu')
    if use_compile:
        print(f"compiling the {name} path with torch.compile: the warm-up steps take a while", file=sys.stderr)
    step_model = torch.compile(model) if use_compile else model
    fused_loss = cfg.fused_loss and not plain
    loss_spec = LossSpec(fused=fused_loss)

    def step(batches):
        train_step(step_model, optimizer, scaler, autocast, batches, cfg.grad_clip, loss_spec=loss_spec)

    info = {"path": name, "dtype": str(ptdtype).removeprefix("torch."), "compile": use_compile, "fused_loss": fused_loss,
            "fused_adamw": bool(optimizer.defaults.get("fused"))}
    return model, step, ptdtype, info


def matmul_peak_gflops(dtype, device, n=2048, repeats=5):
    """This device's measured dense matmul rate in dtype (GFLOP/s): the best of `repeats` n x n x n products after
    one warm-up. On CPU it is the ceiling a step's achieved GFLOP/s can be read against (there is no spec sheet)."""
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


BUSY_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end: pass"


@contextmanager
def busy_machine(n, max_seconds):
    """n single-thread CPU-bound processes running beside the block, as other jobs on a shared machine or laptop
    would be; killed when the block ends, and each ends itself after max_seconds should this process die first."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(max_seconds)]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)  # let them start spinning before anything is timed
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def fresh_process_peak_memory(argv, name):
    """Peak memory of two iterations of one path in a fresh process running this script."""
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--baseline=False", f"--bench_path={name}",
           "--bench_warmup=1", "--bench_iters=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"measuring the {name} path's memory in a fresh process failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_memory_mib"]


def bench(cfg, argv=()):
    """Time the path(s); returns one result dict per path, in PATHS order."""
    check_config(cfg)
    if cfg.bench_iters < 1 or cfg.bench_warmup < 0:
        fail("bench_iters must be at least 1 and bench_warmup at least 0")
    if cfg.bench_path not in PATHS:
        fail(f"bench_path must be one of {', '.join(PATHS)}, got {cfg.bench_path!r}")
    if cfg.busy_processes < 0 or cfg.busy_max_seconds <= 0:
        fail("busy_processes must be at least 0 and busy_max_seconds positive")
    device, device_type = setup_device(cfg.device, cfg.dtype)[:2]
    names = PATHS if cfg.baseline else (cfg.bench_path,)
    # first, while this process is small: a child starts with its parent's peak RSS as its own
    fresh_peaks = {name: fresh_process_peak_memory(argv, name) for name in names} if cfg.baseline else {}
    paths = {name: build_path(cfg, name, device, device_type) for name in names}
    # on CPU, before any busy process starts: the machine's own ceiling for each dtype the paths use
    dtypes = {p[2] for p in paths.values()} if device_type == "cpu" else set()
    peaks = {str(dtype).removeprefix("torch."): matmul_peak_gflops(dtype, device) for dtype in dtypes}
    sync = torch.cuda.synchronize if device_type == "cuda" else (lambda: None)
    model = paths[names[0]][0]
    vocab_size = min(model.config.vocab_size, GPT2_VOCAB)
    times = {name: [] for name in names}
    with busy_machine(cfg.busy_processes, cfg.busy_max_seconds):
        for i in range(cfg.bench_warmup + cfg.bench_iters):
            if i == cfg.bench_warmup and device_type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            batches = random_batches(cfg, vocab_size, device)
            for name in names:  # interleaved, so a burst of load elsewhere slows both paths alike
                t0 = time.perf_counter()
                paths[name][1](batches)
                sync()
                if i >= cfg.bench_warmup:
                    times[name].append(time.perf_counter() - t0)
        load_avg = os.getloadavg()[0]

    block_size = cfg.block_size
    tokens_per_iter = cfg.gradient_accumulation_steps * cfg.batch_size * block_size
    results = []
    for name in names:
        _, _, ptdtype, info = paths[name]
        dt = statistics.median(times[name])
        mfu = model.estimate_mfu(cfg.batch_size * cfg.gradient_accumulation_steps, dt, ptdtype)
        gflops = model.flops_per_token() * tokens_per_iter / dt / 1e9
        dtype_name = str(ptdtype).removeprefix("torch.")
        peak_mib, memory_kind = peak_memory(device_type)
        if cfg.baseline:
            peak_mib, memory_kind = fresh_peaks[name], f"{memory_kind} of a fresh process, 2 iterations"
        results.append({
            **info, "device": device, "device_name": device_name(device_type),
            "params_m": model.get_num_params() / 1e6, "n_layer": model.config.n_layer, "n_head": model.config.n_head,
            "n_embd": model.config.n_embd, "batch_size": cfg.batch_size, "block_size": block_size,
            "gradient_accumulation_steps": cfg.gradient_accumulation_steps, "tokens_per_iter": tokens_per_iter,
            "ms_per_iter": dt * 1000, "ms_per_iter_min": min(times[name]) * 1000, "ms_per_iter_max": max(times[name]) * 1000,
            "tokens_per_s": tokens_per_iter / dt, "mfu": mfu, "gflops_per_s": gflops,
            "matmul_peak_gflops": peaks.get(dtype_name), "matmul_peaks_gflops": peaks,
            "peak_memory_mib": peak_mib, "memory_kind": memory_kind,
            "warmup_iters": cfg.bench_warmup, "timed_iters": cfg.bench_iters, "busy_processes": cfg.busy_processes,
            "load_avg_1m": load_avg,  # other processes on the machine skew the figures, CPU ones most
        })
    return results


def summary(r):
    if r["mfu"] is not None:
        mfu = f"MFU {r['mfu'] * 100:.1f}%"
    elif r["matmul_peak_gflops"]:
        mfu = (f"{r['gflops_per_s']:.1f} GFLOP/s = {r['gflops_per_s'] / r['matmul_peak_gflops'] * 100:.0f}% of this CPU's "
               f"measured {r['dtype']} matmul peak of {r['matmul_peak_gflops']:.0f} GFLOP/s ({r['device_name']})")
    else:
        mfu = f"{r['gflops_per_s']:.1f} GFLOP/s, MFU unknown device ({r['device_name']})"
    return (f"{r['path']}: {r['params_m']:.2f}M params, {r['device']} {r['dtype']}, compile {'on' if r['compile'] else 'off'}, "
            f"fused loss {'on' if r['fused_loss'] else 'off'}, fused AdamW {'on' if r['fused_adamw'] else 'off'}: "
            f"{r['gradient_accumulation_steps']} x {r['batch_size']} x {r['block_size']} tokens/iter, "
            f"{r['ms_per_iter']:.1f} ms/iter (median of {r['timed_iters']}), {r['tokens_per_s']:,.0f} tokens/s, {mfu}, "
            f"peak memory {r['peak_memory_mib']:,.0f} MiB ({r['memory_kind']})"
            + (f", beside {r['busy_processes']} busy process(es)" if r["busy_processes"] else ""))


def comparison(plain, optimised):
    """The optimised path against the plain one: speedup and memory saved."""
    return {"speedup": plain["ms_per_iter"] / optimised["ms_per_iter"],
            "memory_saved": 1 - optimised["peak_memory_mib"] / plain["peak_memory_mib"]}


if __name__ == "__main__":
    argv = sys.argv[1:]
    results = bench(configure(BenchConfig, argv), argv)
    for r in results:
        print(summary(r))
    if len(results) == 1:
        print(json.dumps(results[0]))
    else:
        ratios = comparison(*results)
        print(f"optimised vs plain: {ratios['speedup']:.2f}x the speed, {ratios['memory_saved'] * 100:.0f}% less peak memory "
              f"(load average {results[-1]['load_avg_1m']:.1f})")
        print(json.dumps({**dict(zip(PATHS, results)), **ratios}))
