"""
Find the lazy layers of a GPT (PAPER.md §1): layers whose attention has collapsed to rank 1, so every query
attends to (nearly) the same single column.

    python attention_probe.py --source=out-shakespeare --dataset=shakespeare --out_dir=out-probe
    python attention_probe.py --source=gpt2-medium --dataset=openwebtext --out_dir=out-probe-gpt2m

source: a checkpoint file, a run directory holding ckpt.pt, 'gpt2*', or a local Hugging Face GPT-2 directory.
Takes num_seqs random windows of seq_len tokens from data_root/dataset/val.bin (the same windows for a given seed),
and for every layer l and head h averages over the sequences
    k* (attention_rank): smallest k whose top-k squared singular values hold >= tau of their sum,
    m* (attention_mass): fewest columns whose squared norms hold >= eta of ||A||_F^2.
Rank(l, h) = mean k* (per sequence first, then averaged); MaxRank(l) = max over heads; AvgMass(l) = mean m* over
heads and sequences; AvgRank of a group of layers = mean MaxRank over them (halves and groups of group_size). Layer l
is lazy when MaxRank(l) = 1 and near-lazy when MaxRank(l) <= near_lazy. Prints a per-layer table and a suggested
inherit depth (the first lazy layer when the lazy layers form the model's tail, else the paper's L/2), and writes
out_dir/probe.json and out_dir/probe.png.

--ablate_attention=True adds a second, cheap signal of laziness: per layer l, the attention-ablation delta, the
increase of the mean val loss when block l's attention output is removed (its branch adds zero to the residual
stream; everything else unchanged), on ablation_windows fixed windows of the model's block_size: the windows train.py
evaluates on when ablation_windows = eval_iters * batch_size. A layer whose attention the model barely uses has a delta
near 0. Also writes out_dir/ablation.png.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from tqdm import tqdm

from checkpoint import load_model
from common import atomic_write, fail, setup_device, write_json
from configurator import configure
from data import fixed_windows, get_batch, load_meta, open_tokens

@dataclass
class ProbeConfig:
    """attention_probe.py's settings."""
    source: str = ''  # checkpoint file | run dir with ckpt.pt | gpt2, gpt2-medium, gpt2-large, gpt2-xl | local HF GPT-2 dir
    dataset: str = 'shakespeare'
    data_root: str = 'data'  # the dataset is read from data_root/<dataset>/val.bin
    out_dir: str = 'out-probe'
    num_seqs: int = 100  # N in the paper
    seq_len: int = 100  # T in the paper
    tau: float = 0.9  # spectral energy that k* must hold
    eta: float = 0.9  # squared-column mass that m* must hold
    near_lazy: float = 1.5  # MaxRank at or below this is reported as near-lazy
    group_size: int = 4  # AvgRank is also reported over consecutive groups of this many layers (the paper groups GPT-2 small 4 by 4)
    batch_size: int = 50  # sequences per forward pass; only one layer's maps of one batch are alive at a time
    seed: int = 1337  # picks the windows
    device: str = 'auto'
    dtype: str = 'auto'  # of the ablation's forward passes (autocast); the probe's attention maps are always float32
    ablate_attention: bool = False  # also measure each layer's attention-ablation delta (val-loss increase without its attention)
    ablation_windows: int = 256  # fixed val windows of the model's block_size for the ablation


# Partial sums within ROUNDOFF (relative) below the target count as reaching it, so exact boundary cases such as
# the identity at tau = 9/10 get the mathematically exact answer instead of one decided by round-off.
ROUNDOFF = 1e-9
# float32 partial sums this close to tau are redone in float64 (their float32 error is ~1e-6)
RECHECK = 1e-4


def _leading_count(values, frac):
    """For values (..., n) sorted descending and >= 0: the fewest leading entries whose sum is >= frac of the total
    (int64 (...)), and the cumulative fractions (..., n)."""
    cum = values.double().cumsum(-1)
    cum = cum / cum[..., -1:].clamp(min=torch.finfo(torch.float64).tiny)
    return (cum < frac - ROUNDOFF).sum(-1).add(1).clamp(max=values.shape[-1]), cum


def _on_cpu_threads(fn, A):
    """fn over the matrices (n, T, T) of A, the batch split across torch's CPU threads: LAPACK works on one small
    matrix at a time and releases the GIL, so threads multiply its throughput (7x on 16 cores)."""
    n = min(torch.get_num_threads(), len(A))
    if n <= 1:
        return fn(A)
    with ThreadPoolExecutor(n) as pool:
        return torch.cat(list(pool.map(fn, A.chunk(n))))


def _gram_eigenvalues(A):
    with torch.autocast('cpu', enabled=False):  # a caller's autocast must not turn the Gram matrix into bf16
        return torch.linalg.eigvalsh(A @ A.mT)


def attention_rank(A, tau=0.9):
    """k* for every matrix of A (..., T, T): the smallest k whose top-k squared singular values hold at least tau of
    the sum of all of them (= ||A||_F^2). Returns int64 (...) on the CPU.

    Squared singular values are the eigenvalues of the Gram matrix A A^T, and float32 eigvalsh of it is ~2x faster
    than svdvals. The rare matrices whose float32 partial sums land within RECHECK of tau are redone with float64
    svdvals, so the result equals a float64 SVD's; float64 input goes straight to float64 svdvals. Runs on the CPU
    whatever A's device: for thousands of 100 x 100 matrices CUDA's batched eigensolvers are ~10x slower."""
    A = A.detach().cpu()
    batch_shape = A.shape[:-2]
    A = A.reshape(-1, *A.shape[-2:])
    if A.dtype == torch.float64:
        return _leading_count(_on_cpu_threads(torch.linalg.svdvals, A).square(), tau)[0].reshape(batch_shape)
    A = A.float()
    eigenvalues = _on_cpu_threads(_gram_eigenvalues, A).flip(-1).clamp(min=0)  # descending
    k, cum = _leading_count(eigenvalues, tau)
    close = ((cum - tau).abs() < RECHECK).any(-1)
    if close.any():
        k[close] = attention_rank(A[close].double(), tau)
    return k.reshape(batch_shape)


def attention_mass(A, eta=0.9):
    """m* for every matrix of A (..., T, T): the fewest columns j whose squared norms ||A[:, j]||^2 sum to at least
    eta of ||A||_F^2 (1 = a single-column matrix). Returns int64 (...) on the CPU. Computed in float64."""
    column_mass = A.detach().double().square().sum(-2).sort(-1, descending=True).values
    return _leading_count(column_mass, eta)[0].cpu()


def probe(model, tokens, num_seqs=100, seq_len=100, tau=0.9, eta=0.9, batch_size=50, seed=1337, device='cpu'):
    """Rank(l, h) and per-head mean mass, float64 (n_layer, n_head), averaged over num_seqs windows of seq_len tokens
    from `tokens` (chosen by seed). Each layer's maps are reduced to two numbers per matrix as soon as the model
    yields them, so memory holds one layer's maps of one batch, whatever the depth.
    The forward passes run in float32 with autocast off, whatever the caller's autocast: tau = eta = 0.9 and
    MaxRank = 1 sit where bf16 rounding of the attention logits can move a layer across the lazy line, and at
    100 x 100 tokens float32 costs little."""
    n_layer, n_head = model.config.n_layer, model.config.n_head
    offsets = fixed_windows(len(tokens), seq_len, num_seqs, seed=seed)
    rank_sum = torch.zeros(n_layer, n_head, dtype=torch.float64)
    mass_sum = torch.zeros(n_layer, n_head, dtype=torch.float64)
    model.eval()
    with tqdm(total=math.ceil(num_seqs / batch_size) * n_layer, unit='layer', desc='probe', leave=False) as bar:
        for start in range(0, num_seqs, batch_size):
            x, _ = get_batch(tokens, offsets[start:start + batch_size], seq_len, device)
            with torch.autocast(torch.device(device).type, enabled=False):
                for layer, att in model.attention_maps(x):
                    if not torch.isfinite(att).all():
                        fail(f"layer {layer} produced non-finite attention; run with --dtype=float32")
                    rank_sum[layer] += attention_rank(att, tau).sum(0)
                    mass_sum[layer] += attention_mass(att, eta).sum(0)
                    bar.update()
    return rank_sum / num_seqs, mass_sum / num_seqs


@torch.no_grad()
def attention_ablation(model, tokens, num_windows=256, batch_size=50, device='cpu', autocast=None):
    """(intact val loss, [delta per layer]): delta[l] = mean loss with block l's attention output replaced by zeros,
    minus the intact mean loss, over num_windows fixed windows of the model's block_size (fixed_windows, seed 1337, as
    train.py's val windows)."""
    block_size = model.config.block_size
    offsets = fixed_windows(len(tokens), block_size, num_windows)

    def mean_loss():
        total = 0.0
        for start in range(0, num_windows, batch_size):
            x, y = get_batch(tokens, offsets[start:start + batch_size], block_size, device)
            with autocast or nullcontext():
                _, loss = model(x, y)
            total += loss.item() * len(x)  # every window has block_size targets, so this weights tokens equally
        return total / num_windows

    model.eval()
    intact = mean_loss()
    deltas = []
    for block in tqdm(model.transformer.h, unit='layer', desc='attention ablation', leave=False):
        handle = block.attn.register_forward_hook(lambda module, args, out: torch.zeros_like(out))
        try:
            deltas.append(mean_loss() - intact)
        finally:
            handle.remove()
    return intact, deltas


def suggest_inherit_depth(lazy):
    """The first lazy layer's index when the lazy layers are exactly the last ones (keep everything before them),
    else the paper's start depth L/2. Returns (depth, explanation)."""
    n_layer = len(lazy)
    tail = n_layer
    while tail > 0 and lazy[tail - 1]:
        tail -= 1
    if 0 < tail < n_layer:
        return tail, (f"layers {tail}-{n_layer - 1} are lazy and form the tail of the model: inherit the {tail} "
                      f"blocks before them")
    half = max(1, n_layer // 2)
    if tail == 0:
        why = "every layer is lazy"
    elif any(lazy):
        why = f"the lazy layers {[i for i, z in enumerate(lazy) if z]} do not form a tail of the model"
    else:
        why = "no layer is lazy"
    return half, f"{why}: start from the paper's default L/2 = {half} and let grow.py add layers"


def summarize(rank, mass, near_lazy=1.5, group_size=4):
    """The probe.json content (less the settings) from Rank(l, h) and the per-head mass, (n_layer, n_head) each."""
    max_rank = rank.max(1).values
    layers = [{"layer": i, "max_rank": max_rank[i].item(), "head_mean_rank": rank[i].mean().item(),
               "rank_per_head": rank[i].tolist(), "avg_mass": mass[i].mean().item(),
               "mass_per_head": mass[i].tolist(),
               # k* >= 1 always, so MaxRank = 1 means k* = 1 for every head on every sequence
               "lazy": bool(max_rank[i] == 1), "near_lazy": bool(max_rank[i] <= near_lazy)}
              for i in range(len(rank))]
    n_layer = len(layers)
    half = n_layer // 2
    avg_rank = {"all": max_rank.mean().item(), "first_half": max_rank[:half].mean().item() if half else None,
                "second_half": max_rank[half:].mean().item()}
    groups = [{"layers": [a, min(a + group_size, n_layer) - 1], "avg_rank": max_rank[a:a + group_size].mean().item()}
              for a in range(0, n_layer, group_size)] if group_size > 0 else []
    depth, rule = suggest_inherit_depth([layer["lazy"] for layer in layers])
    return {"layers": layers, "avg_rank": avg_rank, "avg_rank_groups": groups,
            "lazy_layers": [layer["layer"] for layer in layers if layer["lazy"]],
            "near_lazy_layers": [layer["layer"] for layer in layers if layer["near_lazy"]],
            "suggested_inherit_depth": depth, "suggestion_rule": rule}


def format_table(result):
    ablation = result.get("attention_ablation")
    lines = [f"{'layer':>5} {'MaxRank':>8} {'HeadMean':>8} {'AvgMass':>8}" + (f" {'AblDelta':>8}" if ablation else "") +
             "  lazy"]
    for layer in result["layers"]:
        flag = "lazy" if layer["lazy"] else "near" if layer["near_lazy"] else ""
        delta = f" {ablation['delta'][layer['layer']]:>+8.4f}" if ablation else ""
        lines.append(f"{layer['layer']:>5} {layer['max_rank']:>8.2f} {layer['head_mean_rank']:>8.2f} "
                     f"{layer['avg_mass']:>8.2f}{delta}  {flag}")
    avg = result["avg_rank"]
    lines.append(f"AvgRank (mean MaxRank): all {avg['all']:.2f}" + "".join(
        f", {name.replace('_', ' ')} {avg[name]:.2f}" for name in ("first_half", "second_half") if avg[name] is not None))
    if result["avg_rank_groups"]:
        lines.append("AvgRank by group: " + ", ".join(
            f"{g['layers'][0]}-{g['layers'][1]}: {g['avg_rank']:.2f}" for g in result["avg_rank_groups"]))
    lines.append(f"lazy layers (MaxRank = 1): {result['lazy_layers'] or 'none'}; near-lazy (MaxRank <= "
                 f"{result['settings']['near_lazy']}): {result['near_lazy_layers'] or 'none'}")
    lines.append(f"suggested inherit depth: {result['suggested_inherit_depth']} ({result['suggestion_rule']})")
    if ablation:
        lines.append(f"AblDelta: val-loss increase without the layer's attention output (intact val loss "
                     f"{ablation['val_loss']:.4f}, {ablation['windows']} fixed windows of {ablation['block_size']} tokens)")
    return "\n".join(lines)


def plot(result, path):
    """Heatmap of Rank(l, h) over layers x heads beside MaxRank per layer, layers top to bottom in both."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    rank = [layer["rank_per_head"] for layer in result["layers"]]
    max_rank = [layer["max_rank"] for layer in result["layers"]]
    n_layer = len(rank)
    s = result["settings"]
    fig, (ax_map, ax_max) = plt.subplots(1, 2, figsize=(11, 2 + 0.22 * n_layer), sharey=True,
                                          gridspec_kw={"width_ratios": [3, 1.3]})
    im = ax_map.imshow(rank, aspect='auto', cmap='viridis', interpolation='nearest', vmin=1)
    fig.colorbar(im, ax=ax_map, label="Rank(l, h) = mean k*")
    for axis in (ax_map.xaxis, ax_map.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    ax_map.set_xlabel("head")
    ax_map.set_ylabel("layer")
    ax_map.set_title(f"attention rank k* (tau={s['tau']})")
    colors = ['tab:red' if layer["lazy"] else 'tab:orange' if layer["near_lazy"] else 'tab:blue'
              for layer in result["layers"]]
    ax_max.barh(range(n_layer), max_rank, color=colors)
    ax_max.axvline(1, color='tab:red', linestyle=':', linewidth=1)
    ax_max.set_xlabel("MaxRank")
    ax_max.set_title("MaxRank per layer\n(red: lazy, orange: near-lazy)", fontsize=10)
    ax_max.set_xlim(0, max(max_rank) * 1.05 + 0.5)
    fig.suptitle(f"{s['source']} on {s['dataset']} val: {s['num_seqs']} x {s['seq_len']} tokens; "
                 f"suggested inherit depth {result['suggested_inherit_depth']}")
    fig.tight_layout()
    fig.savefig(path, format='png', dpi=100)
    plt.close(fig)


def plot_ablation(result, path):
    """Bar chart of the attention-ablation delta per layer."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ablation, s = result["attention_ablation"], result["settings"]
    delta = ablation["delta"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(range(len(delta)), delta, color=['tab:orange' if layer["near_lazy"] else 'tab:blue' for layer in result["layers"]])
    ax.bar_label(bars, fmt='%+.3f', fontsize=8)  # the values, since one layer often dwarfs the others
    ax.axhline(0, color='k', linewidth=0.8)
    ax.set_xticks(range(len(delta)))
    ax.set_xlabel("layer")
    ax.set_ylabel("val loss increase")
    ax.set_title(f"{s['source']}: val loss without one layer's attention output\n(intact {ablation['val_loss']:.4f}; "
                 f"{ablation['windows']} windows of {ablation['block_size']} tokens; orange: near-lazy)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format='png', dpi=100)
    plt.close(fig)


def run(cfg):
    """Probe cfg.source as configured (a ProbeConfig); writes probe.json and probe.png into
    cfg.out_dir and returns the probe.json content. Every check runs before any work, so a failure writes nothing."""
    if not cfg.source:
        fail("no model given; pass --source=<checkpoint file | run dir | gpt2* | HF GPT-2 dir>")
    if cfg.num_seqs < 1 or cfg.seq_len < 1 or cfg.batch_size < 1 or cfg.ablation_windows < 1:
        fail("num_seqs, seq_len, batch_size and ablation_windows must be at least 1")
    if not (0 < cfg.tau <= 1 and 0 < cfg.eta <= 1):
        fail(f"tau={cfg.tau} and eta={cfg.eta} must lie in (0, 1]; the paper uses 0.9")
    data_dir = os.path.join(cfg.data_root, cfg.dataset)
    tokens = open_tokens(data_dir, 'val')
    if len(tokens) < cfg.seq_len + 1:
        fail(f"{data_dir}/val.bin has {len(tokens)} tokens, too few for windows of seq_len={cfg.seq_len}; "
             f"use a smaller --seq_len")
    dev, _, ptdtype, autocast = setup_device(cfg.device, cfg.dtype)
    model, info = load_model(cfg.source, dev)
    mc = model.config
    if cfg.seq_len > mc.block_size:
        fail(f"seq_len={cfg.seq_len} is longer than the model's block_size {mc.block_size}; use --seq_len<={mc.block_size}")
    data_vocab = load_meta(data_dir)['vocab_size']
    if data_vocab > mc.vocab_size:
        fail(f"{cfg.dataset} has a vocabulary of {data_vocab} tokens but the model only "
             f"{mc.vocab_size}; probe with a dataset tokenized for this model")
    if cfg.ablate_attention and len(tokens) < mc.block_size + 1:
        fail(f"{data_dir}/val.bin has {len(tokens)} tokens, too few for the ablation's windows of the model's "
             f"block_size {mc.block_size}; run without --ablate_attention")

    print(f"probing {cfg.source} ({mc.n_layer} layers, {mc.n_head} heads, {mc.n_embd} wide) on {cfg.num_seqs} "
          f"x {cfg.seq_len} tokens of {data_dir}/val.bin, {dev} float32"
          + (f" (ablation {str(ptdtype).removeprefix('torch.')})" if cfg.ablate_attention else "")
          + f", {torch.get_num_threads()} threads")
    t0 = time.time()
    rank, mass = probe(model, tokens, cfg.num_seqs, cfg.seq_len, cfg.tau, cfg.eta, cfg.batch_size,
                       cfg.seed, dev)
    wall_s = time.time() - t0
    result = summarize(rank, mass, cfg.near_lazy, cfg.group_size)
    if cfg.ablate_attention:
        t0 = time.time()
        intact, deltas = attention_ablation(model, tokens, cfg.ablation_windows, cfg.batch_size, dev, autocast)
        result["attention_ablation"] = {"val_loss": intact, "delta": deltas, "windows": cfg.ablation_windows,
                                        "block_size": mc.block_size, "wall_s": time.time() - t0}
    result["settings"] = {**{k: getattr(cfg, k) for k in ('source', 'dataset', 'data_root', 'num_seqs', 'seq_len', 'tau', 'eta',
                                                  'near_lazy', 'group_size', 'batch_size', 'seed', 'ablate_attention')},
                          "device": dev, "dtype": "float32",
                          "ablation_dtype": str(ptdtype).removeprefix('torch.')}
    result["model"] = {**info["model_args"], "kind": info["kind"], "iter_num": info.get("iter_num"),
                       "best_val_loss": info.get("best_val_loss")}
    result["wall_s"] = wall_s
    print(format_table(result))
    print(f"probe took {wall_s:.1f}s")

    with atomic_write(os.path.join(cfg.out_dir, 'probe.png')) as tmp:
        plot(result, tmp)
    if cfg.ablate_attention:
        with atomic_write(os.path.join(cfg.out_dir, 'ablation.png')) as tmp:
            plot_ablation(result, tmp)
    write_json(result, os.path.join(cfg.out_dir, 'probe.json'))
    print(f"wrote {os.path.join(cfg.out_dir, 'probe.json')} and probe.png" +
          (", ablation.png" if cfg.ablate_attention else ""))
    return result


if __name__ == '__main__':
    run(configure(ProbeConfig, sys.argv[1:]))
