"""
This repo's train.py against nanoGPT's own train.py on this machine: the same shape, data and keys, the two run
one after the other in turns, quiet or beside busy processes (bench.py's busy_machine).
    git clone https://github.com/karpathy/nanoGPT ../nanoGPT && python prepare_shakespeare.py
    python bench_nanogpt.py --nanogpt_dir=../nanoGPT                      # quiet, then beside 1 and 2 busy processes
    python bench_nanogpt.py --nanogpt_dir=../nanoGPT --busy=0 --dtype=auto

Both train.py scripts run from scratch for `iters` iterations on data/<dataset> (this repo's prepare_shakespeare.py
writes nanoGPT's train.bin/val.bin format; they are linked into a temporary copy of nanoGPT), `rounds` times each,
alternating, so a change in the machine's load hits both. Each one's ms/iter is the median of its logged iteration
times after the first `skip` of every run (warm-up). nanoGPT runs as a nanoGPT user runs it on CPU: float32, no
compile; this repo with `dtype` (float32, or auto: bf16 on CPUs with AMX/AVX512-BF16) and its defaults. Prints one
line per busy level (ms/iter of each, the ratio nanoGPT / this repo), then all of it as one JSON line.
"""
import cpu_env  # first: it sets the OpenMP environment torch reads on import
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from bench import busy_machine, cpu_name
from common import fail
from configurator import configure

REPO = os.path.dirname(os.path.abspath(__file__))


@dataclass
class BenchNanoGPTConfig:
    """bench_nanogpt.py's settings."""
    nanogpt_dir: str = ''  # a checkout of karpathy/nanoGPT (its train.py, model.py, configurator.py)
    dataset: str = 'shakespeare'  # data_root/<dataset>/train.bin and val.bin, GPT-2 tokens (prepare_shakespeare.py)
    data_root: str = 'data'
    busy: int | list[int] | str = '0,1,2'  # busy processes beside the runs, one measurement per value
    rounds: int = 1  # runs of each script per busy level
    iters: int = 10  # iterations per run
    skip: int = 3  # first iterations of each run left out of the median
    dtype: str = 'float32'  # this repo's dtype; nanoGPT runs float32
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256
    batch_size: int = 12


def busy_levels(spec):
    if isinstance(spec, int):
        levels = [spec]
    elif isinstance(spec, (list, tuple)):
        levels = list(spec)
    else:
        levels = [int(v) for v in spec.split(',')] if re.fullmatch(r' *[0-9]+ *(, *[0-9]+ *)*', spec) else []
    if not levels or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in levels):
        fail(f"busy={spec!r} must be one or more counts of busy processes, such as 0,1,2")
    return levels


def iteration_times(cmd, cwd, pattern, env):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        fail(f"{' '.join(cmd[:2])} in {cwd} failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return [float(t) for t in re.findall(pattern, proc.stdout)]


def main(cfg):
    if not os.path.isfile(os.path.join(cfg.nanogpt_dir, 'train.py')):
        fail(f"nanogpt_dir={cfg.nanogpt_dir!r} holds no train.py; clone https://github.com/karpathy/nanoGPT and pass its path")
    data_dir = os.path.abspath(os.path.join(cfg.data_root, cfg.dataset))
    if not all(os.path.exists(os.path.join(data_dir, f)) for f in ('train.bin', 'val.bin')):
        fail(f"{data_dir} has no train.bin/val.bin; run python prepare_{cfg.dataset}.py first")
    if min(cfg.rounds, cfg.iters - cfg.skip) < 1:
        fail("rounds must be at least 1 and iters larger than skip")
    levels = busy_levels(cfg.busy)
    work = tempfile.mkdtemp(prefix='bench_nanogpt_')
    try:
        nano = os.path.join(work, 'nanogpt')  # a copy, so nanoGPT's data/<dataset> can point at ours
        shutil.copytree(cfg.nanogpt_dir, nano, ignore=shutil.ignore_patterns('.git', 'data', 'out*'))
        os.makedirs(os.path.join(nano, 'data'))
        os.symlink(data_dir, os.path.join(nano, 'data', cfg.dataset))
        keys = [f'--dataset={cfg.dataset}', f'--n_layer={cfg.n_layer}', f'--n_head={cfg.n_head}', f'--n_embd={cfg.n_embd}',
                f'--block_size={cfg.block_size}', f'--batch_size={cfg.batch_size}', '--gradient_accumulation_steps=1',
                '--bias=False', '--dropout=0.0', '--eval_interval=100000', '--eval_iters=1', '--log_interval=1',
                '--always_save_checkpoint=False', '--device=cpu', '--compile=False', f'--max_iters={cfg.iters}']
        # nanoGPT as its users run it: without cpu_env's GOMP_SPINCOUNT, unless it came from this shell
        nano_env = {k: v for k, v in os.environ.items() if k != 'GOMP_SPINCOUNT' or cpu_env.SPINCOUNT_FROM_USER}
        runs = {
            'nanogpt': ([sys.executable, 'train.py', *keys, '--wandb_log=False', '--dtype=float32',
                         f'--out_dir={work}/out_nanogpt'], nano, r'time ([0-9.]+)ms', nano_env),
            'repo': ([sys.executable, os.path.join(REPO, 'train.py'), *keys, f'--dtype={cfg.dtype}', '--log_seconds=0',
                      f'--data_root={os.path.dirname(data_dir)}', f'--out_dir={work}/out_repo'], REPO, r'([0-9.]+) ms/iter',
                     dict(os.environ)),
        }
        print(f"{cpu_name()}, {os.cpu_count()} CPUs; {cfg.n_layer}/{cfg.n_head}/{cfg.n_embd}, {cfg.batch_size} x "
              f"{cfg.block_size} tokens, this repo in {cfg.dtype}, nanoGPT in float32", flush=True)
        results = []
        for busy in levels:
            times = {name: [] for name in runs}
            with busy_machine(busy, max_seconds=3600):
                for _ in range(cfg.rounds):
                    for name, (cmd, cwd, pattern, env) in runs.items():
                        times[name] += iteration_times(cmd, cwd, pattern, env)[cfg.skip:]
                load = os.getloadavg()[0]
            ms = {name: statistics.median(t) for name, t in times.items()}
            results.append({'busy_processes': busy, 'nanogpt_ms_per_iter': ms['nanogpt'], 'repo_ms_per_iter': ms['repo'],
                            'ratio': ms['nanogpt'] / ms['repo'], 'iters_timed': len(times['repo']), 'load_avg_1m': load})
            print(f"beside {busy} busy process(es): nanoGPT {ms['nanogpt']:,.0f} ms/iter, this repo {ms['repo']:,.0f} "
                  f"ms/iter: {ms['nanogpt'] / ms['repo']:.2f}x nanoGPT's speed (load average {load:.1f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({'cpu': cpu_name(), 'dtype': cfg.dtype, 'results': results}))


if __name__ == '__main__':
    main(configure(BenchNanoGPTConfig, sys.argv[1:]))
