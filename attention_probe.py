"""
Find the lazy layers of a GPT (PAPER.md §1): layers whose attention has collapsed to rank 1, so every query
attends to (nearly) the same single column; and measure the other signals of a redundant layer that the pruning
literature uses.

    python attention_probe.py --source=out-shakespeare --dataset=shakespeare --out_dir=out-probe
    python attention_probe.py --source=gpt2-medium --dataset=openwebtext --out_dir=out-probe-gpt2m

source: a checkpoint file, a run directory holding ckpt.pt, 'gpt2*', hf:owner/name or a local Hugging Face folder of
any decoder family: model.py runs GPT-2, Llama and Qwen2 (exactly as transformers), transformers itself the others
(hf_adapter.py; model_path picks). Takes num_seqs random windows of seq_len tokens from data_root/dataset/val.bin
(the same windows for a given seed), and for every layer l and head h averages over the sequences
    k* (attention_rank): smallest k whose top-k squared singular values hold >= tau of their sum,
    m* (attention_mass): fewest columns whose squared norms hold >= eta of ||A||_F^2 (mass_order='index': fewest
        leading columns 0..m-1).
Rank(l, h) = mean k* (per sequence first, then averaged); MaxRank(l) = max over heads; AvgMass(l) = mean m* over
heads and sequences; AvgRank of a group of layers = mean MaxRank over them (halves and groups of group_size). Layer l
is lazy when MaxRank(l) = 1 and near-lazy when MaxRank(l) <= near_lazy.

Every per-layer metric is one entry of METRICS (docs/lazy_layers.md): besides the three above,
    BI (block influence, ShortGPT): 1 - mean cos(x_l, x_l+1) over the tokens of the same windows, x_l the residual
        stream entering block l (x_0: the embeddings' output);
    AngDist (Gromov et al.): d(a, b) = arccos(cos(x_a, x_b)) / pi at each window's last token, averaged; the table
        shows d(l, l+1), probe.json keeps the (L+1) x (L+1) matrix, d(l, l+n) = matrix[l][l+n];
    Sink (Gu et al.): the fraction of heads whose mean attention on the first token (over queries and sink_seqs
        windows of sink_seq_len tokens) exceeds sink_eps;
    AttnAbl / MLPAbl (--ablate_attention=True / --ablate_mlp=True): the increase of the mean val loss when block
        l's attention (MLP) output is removed (its branch adds zero to the residual stream), on ablation_windows
        fixed windows of the model's block_size (or ablation_len tokens): the windows train.py evaluates on when
        ablation_windows = eval_iters * batch_size. A layer the model barely uses has a delta near 0.
Per-head collapse (PAPER.md §6), on the same windows: --collapse_rank=c counts the heads with Rank(l, h) <= c, and
--collapse_eps=eps the eps-sink-collapsed heads (every row of every window puts >= 1 - eps on one column); --taus
adds MaxRank per layer at each tau (the paper's sweep: 0.8,0.85,0.9,0.95); they go to probe_collapse.png too.
Layers without attention maps (linear attention) get NaN attention metrics and are named in the output.
Prints a per-layer table and a suggested inherit depth (the first lazy layer when the lazy layers form the model's
tail, else the paper's L/2), and writes out_dir/probe.json and out_dir/probe.png (Rank(l, h), d(l, l+n) and every
per-layer metric).
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

import hf_adapter
from checkpoint import load_model
from common import atomic_write, fail, setup_device, write_json
from configurator import configure
from data import check_window_start, fixed_windows, get_batch, load_meta, open_tokens, window_starts

@dataclass
class ProbeConfig:
    """attention_probe.py's settings."""
    source: str = ''  # checkpoint file | run dir with ckpt.pt | gpt2, gpt2-medium, gpt2-large, gpt2-xl | hf:owner/name | local HF dir of any decoder
    model_path: str = 'auto'  # how an HF source runs: 'gpt' (model.py: GPT-2, Llama, Qwen2), 'transformers' (hf_adapter.py, any decoder) or 'auto' (model.py where it represents the model exactly)
    dataset: str = 'shakespeare'
    data_root: str = 'data'  # the dataset is read from data_root/<dataset>/val.bin
    window_start: str = 'anywhere'  # 'document': every window begins with a document's EOT, as train.py's window_start
    out_dir: str = 'out-probe'
    num_seqs: int = 100  # N in the paper
    seq_len: int = 100  # T in the paper
    tau: float = 0.9  # spectral energy that k* must hold
    eta: float = 0.9  # squared-column mass that m* must hold
    mass_order: str = 'sorted'  # m*'s columns: 'sorted' (fewest columns, by mass) or 'index' (leading columns 0..m-1); docs/lazy_layers.md
    taus: list[float] | None = None  # tau sweep: also MaxRank per layer at each of these, e.g. 0.8,0.85,0.9,0.95 (PAPER.md §6, Fig. 10)
    collapse_rank: float | None = None  # per-head collapse: count the heads with Rank(h, l) <= this (e.g. 1.5) and write probe_collapse.png
    collapse_eps: float | None = None  # eps-sink collapse per head: count the heads whose every row puts >= 1 - eps on one column (e.g. 0.1)
    near_lazy: float = 1.5  # MaxRank at or below this is reported as near-lazy
    group_size: int = 4  # AvgRank is also reported over consecutive groups of this many layers (the paper groups GPT-2 small 4 by 4)
    batch_size: int = 50  # sequences per forward pass; one layer's maps of one batch are alive at a time (through transformers every layer's)
    seed: int = 1337  # picks the windows
    device: str = 'auto'
    dtype: str = 'auto'  # of the ablations' forward passes (autocast); every other metric is measured in float32
    sink_seqs: int = 100  # windows of the attention-sink score (Gu et al.: 100 sequences ...)
    sink_seq_len: int = 64  # ... of 64 tokens); cut to the model's block_size where that is shorter
    sink_eps: float = 0.3  # a head is a sink head when its mean attention on the first token exceeds this
    ablate_attention: bool = False  # also measure each layer's attention-ablation delta (val-loss increase without its attention)
    ablate_mlp: bool = False  # also measure each layer's MLP-ablation delta (val-loss increase without its MLP)
    ablation_windows: int = 256  # fixed val windows of the model's block_size for the ablations
    ablation_len: int | None = None  # the ablations' window length; None: the model's block_size (a long-context model needs shorter, e.g. 1024)


# Partial sums within ROUNDOFF (relative) below the target count as reaching it, so exact boundary cases such as
# the identity at tau = 9/10 get the mathematically exact answer instead of one decided by round-off.
ROUNDOFF = 1e-9
# float32 partial sums this close to tau are redone in float64 (their float32 error is ~1e-6)
RECHECK = 1e-4


def _leading_count(values, frac):
    """For values (..., n) >= 0, in the order they are to be taken: the fewest leading entries whose sum is >= frac of
    the total (int64 (...)), and the cumulative fractions (..., n)."""
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
    the sum of all of them (= ||A||_F^2). Returns int64 (...) on the CPU."""
    return attention_ranks(A, (tau,))[0]


def attention_ranks(A, taus):
    """k* at every tau of taus for every matrix of A (..., T, T), from one spectrum per matrix: int64
    (len(taus), ...) on the CPU.

    Squared singular values are the eigenvalues of the Gram matrix A A^T, and float32 eigvalsh of it is ~2x faster
    than svdvals. The rare matrices whose float32 partial sums land within RECHECK of a tau are redone with float64
    svdvals, so the result equals a float64 SVD's; float64 input goes straight to float64 svdvals. Runs on the CPU
    whatever A's device: for thousands of 100 x 100 matrices CUDA's batched eigensolvers are ~10x slower."""
    A = A.detach().cpu()
    batch_shape = A.shape[:-2]
    A = A.reshape(-1, *A.shape[-2:])
    if A.dtype == torch.float64:
        energy = _on_cpu_threads(torch.linalg.svdvals, A).square()
        return torch.stack([_leading_count(energy, tau)[0] for tau in taus]).reshape(len(taus), *batch_shape)
    A = A.float()
    eigenvalues = _on_cpu_threads(_gram_eigenvalues, A).flip(-1).clamp(min=0)  # descending
    ks = []
    for tau in taus:
        k, cum = _leading_count(eigenvalues, tau)
        close = ((cum - tau).abs() < RECHECK).any(-1)
        if close.any():
            k[close] = attention_rank(A[close].double(), tau)
        ks.append(k)
    return torch.stack(ks).reshape(len(taus), *batch_shape)


# the two readings of m* (PAPER.md §6): the fewest columns, taken by mass (the prose's "minimal number of columns"),
# or the shortest run of columns 0..m-1 (the printed sum, in column index order)
MASS_ORDERS = ('sorted', 'index')


def attention_mass(A, eta=0.9, order='sorted'):
    """m* for every matrix of A (..., T, T): with order 'sorted', the fewest columns j whose squared norms
    ||A[:, j]||^2 sum to at least eta of ||A||_F^2 (1 = a single-column matrix); with 'index', the fewest leading
    columns 0..m-1 that do. Returns int64 (...) on the CPU. Computed in float64."""
    column_mass = A.detach().double().square().sum(-2)
    if order == 'sorted':
        column_mass = column_mass.sort(-1, descending=True).values
    return _leading_count(column_mass, eta)[0].cpu()


def sink_mass(A):
    """For every matrix of A (..., T, T): max over columns j of min over rows i of A[i, j], the share of its row's
    mass that the least attentive row still puts on the best column j*. A is eps-sink-collapsed (PAPER.md §6, App. H)
    when this is >= 1 - eps: every row puts at least 1 - eps on one column. Under a causal mask row 0 sees only
    column 0, so j* is the first token. Float64 (...) on the CPU."""
    return A.detach().double().amin(-2).amax(-1).cpu()


@contextmanager
def no_tf32():
    """Full float32 matmuls on CUDA (TF32 off) for the block, whatever the caller set; restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextmanager
def float32_pass(device):
    """The probe's forward passes: float32 with autocast and TF32 off, whatever the caller's settings."""
    with no_tf32(), torch.autocast(torch.device(device).type, enabled=False):
        yield


def missing_layers_nan(values, seen):
    """values (n_layer, ...) with the layers that handed out no attention maps (seen[l] False) set to NaN."""
    values[~seen] = math.nan
    return values


@dataclass
class HeadStats:
    """What the probe measures per head (float64; NaN in the layers without attention maps, such as Qwen3.5's
    linear-attention layers): Rank(l, h) at every tau of the probe (len(taus), n_layer, n_head), the mean m*
    (n_layer, n_head), and the lowest sink_mass over the windows (n_layer, n_head)."""
    ranks: torch.Tensor
    mass: torch.Tensor
    sink_mass: torch.Tensor


def head_statistics(model, tokens, num_seqs=100, seq_len=100, taus=(0.9,), eta=0.9, mass_order='sorted',
                    batch_size=50, seed=1337, device='cpu', progress=True, starts=None):
    """The HeadStats of num_seqs windows of seq_len tokens from `tokens` (chosen by seed, among `starts` when given:
    data.window_starts()); ranks and masses per sequence first, then averaged. Each layer's maps are reduced to a few
    numbers per matrix as soon as the model yields them, so with model.py's GPT memory holds one layer's maps of one
    batch, whatever the depth. The forward passes run in float32 (float32_pass): tau = eta = 0.9 and MaxRank = 1 sit
    where bf16 (or TF32) rounding of the attention logits can move a layer across the lazy line, and at 100 x 100
    tokens float32 costs little."""
    n_layer, n_head = model.config.n_layer, model.config.n_head
    offsets = fixed_windows(len(tokens), seq_len, num_seqs, seed=seed, starts=starts)
    rank_sum = torch.zeros(len(taus), n_layer, n_head, dtype=torch.float64)
    mass_sum = torch.zeros(n_layer, n_head, dtype=torch.float64)
    lowest_sink = torch.full((n_layer, n_head), math.inf, dtype=torch.float64)
    seen = torch.zeros(n_layer, dtype=torch.bool)
    model.eval()
    with tqdm(total=math.ceil(num_seqs / batch_size) * n_layer, unit='layer', desc='probe', leave=False,
              disable=not progress) as bar:
        for start in range(0, num_seqs, batch_size):
            x, _ = get_batch(tokens, offsets[start:start + batch_size], seq_len, device)
            with float32_pass(device):
                for layer, att in model.attention_maps(x):
                    if not torch.isfinite(att).all():
                        fail(f"layer {layer} produced non-finite attention; run with --dtype=float32")
                    rank_sum[:, layer] += attention_ranks(att, taus).sum(1)
                    mass_sum[layer] += attention_mass(att, eta, mass_order).sum(0)
                    lowest_sink[layer] = torch.minimum(lowest_sink[layer], sink_mass(att).amin(0))
                    seen[layer] = True
                    bar.update()
    ranks, mass = rank_sum / num_seqs, mass_sum / num_seqs
    for values in (ranks.transpose(0, 1), mass, lowest_sink):  # in place (a view of ranks, layers first)
        missing_layers_nan(values, seen)
    return HeadStats(ranks, mass, lowest_sink)


def probe(model, tokens, num_seqs=100, seq_len=100, tau=0.9, eta=0.9, batch_size=50, seed=1337, device='cpu',
          progress=True, starts=None):
    """Rank(l, h) and per-head mean mass, float64 (n_layer, n_head), at one tau (head_statistics)."""
    stats = head_statistics(model, tokens, num_seqs, seq_len, (tau,), eta, 'sorted', batch_size, seed, device,
                            progress, starts)
    return stats.ranks[0], stats.mass


@torch.no_grad()
def residual_geometry(model, tokens, num_seqs=100, seq_len=100, batch_size=50, seed=1337, device='cpu', starts=None):
    """How much each block turns the residual stream x_0 (the embeddings' output) .. x_L (after the last block), on
    the windows probe() reads: the mean cosine similarity of x_l and x_l+1 over every token, float64 (n_layer,), and
    the mean angular distance arccos(cos(x_a, x_b)) / pi between every two boundaries at each window's last token,
    float64 (n_layer + 1, n_layer + 1). One float32 forward pass (autocast off, as probe()); cosines in float64, so
    a block that adds exactly nothing gets 1 and 0."""
    n_layer = model.config.n_layer
    offsets = fixed_windows(len(tokens), seq_len, num_seqs, seed=seed, starts=starts)
    cos_sum = torch.zeros(n_layer, dtype=torch.float64)
    angle_sum = torch.zeros(n_layer + 1, n_layer + 1, dtype=torch.float64)
    model.eval()
    for start in range(0, num_seqs, batch_size):
        x, _ = get_batch(tokens, offsets[start:start + batch_size], seq_len, device)
        last, previous = [], None  # the last token's unit vector at every boundary; the stream one boundary back
        with float32_pass(device):
            for boundary, h in enumerate(model.hidden_states(x)):
                h = h.double()
                if previous is not None:
                    cos_sum[boundary - 1] += F.cosine_similarity(previous, h, dim=-1).sum().item()
                last.append(F.normalize(h[:, -1], dim=-1))
                previous = h
        cos = torch.einsum('abc,dbc->adb', torch.stack(last), torch.stack(last))  # (L+1, L+1, B)
        angle_sum += (torch.arccos(cos.clamp(-1, 1)) / math.pi).sum(-1).cpu()
    return cos_sum / (num_seqs * seq_len), angle_sum / num_seqs


@torch.no_grad()
def first_token_attention(model, tokens, num_seqs=100, seq_len=64, batch_size=50, seed=1337, device='cpu', starts=None):
    """Each head's mean attention on the first token of the window, over all queries and num_seqs windows of seq_len
    tokens, float64 (n_layer, n_head), NaN in layers without maps; float32 maps, as probe()."""
    offsets = fixed_windows(len(tokens), seq_len, num_seqs, seed=seed, starts=starts)
    total = torch.zeros(model.config.n_layer, model.config.n_head, dtype=torch.float64)
    seen = torch.zeros(model.config.n_layer, dtype=torch.bool)
    model.eval()
    for start in range(0, num_seqs, batch_size):
        x, _ = get_batch(tokens, offsets[start:start + batch_size], seq_len, device)
        with float32_pass(device):
            for layer, att in model.attention_maps(x):
                total[layer] += att[..., 0].double().mean(-1).sum(0).cpu()  # att[..., 0]: every query's weight on token 0
                seen[layer] = True
    return missing_layers_nan(total / num_seqs, seen)


def branches(model, part):
    """Every block's attention ('attn') or MLP ('mlp') module: model.py's, or those the transformers adapter found."""
    if isinstance(model, hf_adapter.HFModel):
        return model.parts[part]
    return [getattr(block, part) for block in model.transformer.h]


def without_output(module, args, out):
    """A forward hook that removes a branch: its output becomes zeros (the first element where it returns a tuple,
    as transformers' attention modules do with their maps)."""
    return (torch.zeros_like(out[0]), *out[1:]) if isinstance(out, tuple) else torch.zeros_like(out)


@torch.no_grad()
def ablation(model, tokens, part, num_windows=256, batch_size=50, device='cpu', autocast=None, starts=None,
             block_size=None):
    """(intact val loss, [delta per layer]): delta[l] = mean loss with the output of block l's `part` ('attn' or
    'mlp') replaced by zeros, minus the intact mean loss, over num_windows fixed windows of block_size tokens (None:
    the model's block_size; fixed_windows, seed 1337, as train.py's val windows)."""
    block_size = block_size or model.config.block_size
    offsets = fixed_windows(len(tokens), block_size, num_windows, starts=starts)

    def mean_loss():
        total = 0.0
        for start in range(0, num_windows, batch_size):
            x, y = get_batch(tokens, offsets[start:start + batch_size], block_size, device)
            with no_tf32(), autocast or nullcontext():
                _, loss = model(x, y)
            total += loss.item() * len(x)  # every window has block_size targets, so this weights tokens equally
        return total / num_windows

    model.eval()
    intact = mean_loss()
    deltas = []
    for module in tqdm(branches(model, part), unit='layer', desc=f'{part} ablation', leave=False):
        handle = module.register_forward_hook(without_output)
        try:
            deltas.append(mean_loss() - intact)
        finally:
            handle.remove()
    return intact, deltas


class Measurements:
    """A model on val tokens under a ProbeConfig's settings, where the metrics are measured. The passes that several
    metrics read (the attention ranks and masses, the residual stream) run once, when the first of them asks."""

    def __init__(self, model, tokens, cfg, device, autocast=None, progress=True, starts=None):
        self.model, self.tokens, self.cfg, self.device, self.autocast = model, tokens, cfg, device, autocast
        self.starts = starts  # where every window begins (data.window_starts() for the model's block_size); None: anywhere
        self.progress = progress  # the rank probe's progress bar (off inside training, which prints its own line)

    @cached_property
    def head_stats(self):
        """HeadStats at tau, then at every tau of the sweep (taus)."""
        c = self.cfg
        return head_statistics(self.model, self.tokens, c.num_seqs, c.seq_len, (c.tau, *(c.taus or ())), c.eta,
                               c.mass_order, c.batch_size, c.seed, self.device, self.progress, self.starts)

    @property
    def rank_and_mass(self):
        """Rank(l, h) at tau and the mean m* per head, float64 (n_layer, n_head) each."""
        return self.head_stats.ranks[0], self.head_stats.mass

    @cached_property
    def residual_stream(self):
        c = self.cfg
        return residual_geometry(self.model, self.tokens, c.num_seqs, c.seq_len, c.batch_size, c.seed, self.device,
                                 self.starts)

    def metrics(self, names):
        """{name: its METRICS entry's result} for the named metrics."""
        return {name: METRICS[name].compute(self) for name in names}


@dataclass(frozen=True)
class Metric:
    """One per-layer metric. compute(measurements) returns {'per_layer': one number per block, ...what else probe.json
    keeps of it}; column heads its table column and plot panel, fmt formats a value, legend (filled in from the
    result) explains it under the table, and enabled(cfg) says whether attention_probe.py measures it."""
    compute: Callable
    column: str
    fmt: str
    legend: str
    enabled: Callable


METRICS = {}  # name -> Metric, in table order


def metric(name, column, fmt, legend='', enabled=lambda cfg: True):
    """Register a per-layer metric: @metric('name', 'Column', '{:8.4f}', ...) over a function (measurements) -> dict."""
    def register(compute):
        METRICS[name] = Metric(compute, column, fmt, legend, enabled)
        return compute
    return register


@metric('max_rank', 'MaxRank', '{:8.2f}')
def max_rank(m):
    """MaxRank(l): the largest Rank(l, h) over the heads (PAPER.md §1); 1 is lazy."""
    return {'per_layer': m.rank_and_mass[0].max(1).values.tolist()}


@metric('head_mean_rank', 'HeadMean', '{:8.2f}')
def head_mean_rank(m):
    """Rank(l, h) averaged over the heads."""
    return {'per_layer': m.rank_and_mass[0].mean(1).tolist()}


@metric('avg_mass', 'AvgMass', '{:8.2f}')
def avg_mass(m):
    """AvgMass(l): m* averaged over heads and sequences (PAPER.md §1); 1 is a single column."""
    return {'per_layer': m.rank_and_mass[1].mean(1).tolist()}


@metric('block_influence', 'BI', '{:8.4f}',
        "1 - mean cos(x_l, x_l+1) over tokens, x_l the residual stream entering block l (ShortGPT); 0: the block changes nothing")
def block_influence(m):
    """ShortGPT's Block Influence (arXiv 2403.03853): BI_l = 1 - mean over tokens of cos(x_l, x_l+1)."""
    return {'per_layer': (1 - m.residual_stream[0]).tolist()}


@metric('angular_distance', 'AngDist', '{:8.4f}',
        "arccos(cos(x_l, x_l+1)) / pi at each window's last token (Gromov et al.); d(l, l+n) for every n in probe.json")
def angular_distance(m):
    """Gromov et al.'s (arXiv 2403.17887) d(l, l+n) = arccos(cos(x_l, x_l+n)) / pi at the last token, averaged over
    the windows: 'matrix' holds it for every pair of boundaries; per layer, d(l, l+1)."""
    matrix = m.residual_stream[1]
    return {'per_layer': matrix.diagonal(1).tolist(), 'matrix': matrix.tolist()}


def head_count(flags, values):
    """The METRICS result of a per-head property: flags (n_layer, n_head) bool, values the per-head measurements it
    comes from (NaN in layers without attention maps, which get NaN and count for nothing). Per layer the share of
    heads flagged; also the number per layer and the number and share over all measured heads."""
    measured = ~values.isnan()
    flags = flags & measured
    share = flags.double().sum(1) / measured.sum(1)  # 0 / 0: NaN for a layer without maps
    heads = int(measured.sum())
    return {'per_layer': share.tolist(), 'count_per_layer': flags.sum(1).tolist(), 'count': int(flags.sum()),
            'heads': heads, 'fraction': flags.sum().item() / max(heads, 1)}


@metric('attention_sink', 'Sink', '{:8.2f}',
        "fraction of heads whose mean attention on the first token exceeds {eps} ({seqs} windows of {seq_len} tokens)")
def attention_sink(m):
    """Gu et al.'s (arXiv 2410.10781) sink score per layer: the share of heads h with mean_i A[i, 0] > sink_eps."""
    c = m.cfg
    seq_len = min(c.sink_seq_len, m.model.config.block_size)
    attention = first_token_attention(m.model, m.tokens, c.sink_seqs, seq_len, c.batch_size, c.seed, m.device, m.starts)
    return {'per_layer': head_count(attention > c.sink_eps, attention)['per_layer'],
            'first_token_attention': attention.tolist(), 'eps': c.sink_eps, 'seqs': c.sink_seqs, 'seq_len': seq_len}


@metric('head_collapse', 'Collapsed', '{:8.2f}',
        "fraction of heads collapsed, Rank(h, l) <= {collapse_rank}: {count} of {heads} heads ({fraction:.1%}); per "
        "layer {count_per_layer}", enabled=lambda cfg: cfg.collapse_rank is not None)
def head_collapse(m):
    """The heads near rank 1 (PAPER.md §6, App. B.1: per-head collapse in today's models), under the rule
    Rank(h, l) <= collapse_rank; 'collapsed' marks them (n_layer x n_head)."""
    rank = m.rank_and_mass[0]
    flags = rank <= m.cfg.collapse_rank
    return {**head_count(flags, rank), 'collapse_rank': m.cfg.collapse_rank, 'collapsed': flags.tolist()}


@metric('sink_collapse', 'SinkCol', '{:8.2f}',
        "fraction of heads eps-sink-collapsed at eps={eps}: on every probe window every row puts >= {threshold:g} of "
        "its mass on one column: {count} of {heads} heads ({fraction:.1%}); per layer {count_per_layer}",
        enabled=lambda cfg: cfg.collapse_eps is not None)
def sink_collapse(m):
    """PAPER.md §6, App. H: A is eps-sink-collapsed when every row puts at least 1 - eps of its mass on one column;
    a head is when its maps are on every probe window. 'sink_mass' keeps each head's lowest sink_mass over the
    windows, 'collapsed' marks the heads (n_layer x n_head)."""
    lowest = m.head_stats.sink_mass
    flags = lowest >= 1 - m.cfg.collapse_eps
    return {**head_count(flags, lowest), 'eps': m.cfg.collapse_eps, 'threshold': 1 - m.cfg.collapse_eps,
            'sink_mass': lowest.tolist(), 'collapsed': flags.tolist()}


def ablation_metric(m, part):
    """The METRICS result of ablating `part` ('attn' or 'mlp'): the delta per layer, the intact loss, the windows."""
    block_size = m.cfg.ablation_len or m.model.config.block_size
    intact, deltas = ablation(m.model, m.tokens, part, m.cfg.ablation_windows, m.cfg.batch_size, m.device, m.autocast,
                              m.starts, block_size)
    return {'per_layer': deltas, 'val_loss': intact, 'windows': m.cfg.ablation_windows, 'block_size': block_size}


@metric('attention_ablation', 'AttnAbl', '{:+8.4f}',
        "val-loss increase without the layer's attention output (intact val loss {val_loss:.4f}, {windows} fixed "
        "windows of {block_size} tokens)", enabled=lambda cfg: cfg.ablate_attention)
def attention_ablation(m):
    return ablation_metric(m, 'attn')


@metric('mlp_ablation', 'MLPAbl', '{:+8.4f}',
        "val-loss increase without the layer's MLP output (intact val loss {val_loss:.4f}, {windows} fixed windows "
        "of {block_size} tokens)", enabled=lambda cfg: cfg.ablate_mlp)
def mlp_ablation(m):
    return ablation_metric(m, 'mlp')


def tau_sweep(m):
    """MaxRank per layer and the lazy layers at every tau of cfg.taus (PAPER.md §6, Fig. 10), from the same maps and
    spectra as the probe at tau."""
    max_rank = m.head_stats.ranks[1:].max(-1).values  # (len(taus), n_layer)
    return {'taus': list(m.cfg.taus), 'max_rank': max_rank.tolist(),
            'lazy_layers': [(row == 1).nonzero().flatten().tolist() for row in max_rank]}


def fitted_settings(block_size):
    """The probe's default settings, its windows cut to block_size where the model's context is shorter: the probe
    that other scripts run (train.py's probe_interval, inherit_select)."""
    return ProbeConfig(seq_len=min(ProbeConfig.seq_len, block_size))


def check_inputs(cfg, model, data_dir, tokens):
    """One-line errors for windows or a vocabulary that the model and the val split cannot serve."""
    block_size = model.config.block_size
    if len(tokens) < cfg.seq_len + 1:
        fail(f"{data_dir}/val.bin has {len(tokens)} tokens, too few for windows of seq_len={cfg.seq_len}; use a smaller --seq_len")
    if cfg.seq_len > block_size:
        fail(f"seq_len={cfg.seq_len} is longer than the model's block_size {block_size}; use --seq_len<={block_size}")
    data_vocab = load_meta(data_dir)['vocab_size']
    if data_vocab > model.config.vocab_size:
        fail(f"{data_dir} has a vocabulary of {data_vocab} tokens but the model only {model.config.vocab_size}; "
             f"probe with a dataset tokenized for this model")
    window = cfg.ablation_len or block_size
    if not 1 <= window <= block_size:
        fail(f"ablation_len={cfg.ablation_len} must lie in 1..{block_size}, the model's block_size")
    if (cfg.ablate_attention or cfg.ablate_mlp) and len(tokens) < window + 1:
        fail(f"{data_dir}/val.bin has {len(tokens)} tokens, too few for the ablation's windows of {window} tokens; "
             "run without --ablate_attention and --ablate_mlp, or with a shorter --ablation_len")


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


def summarize(metrics, rank, mass, near_lazy=1.5, group_size=4):
    """The probe.json content (less the settings) from the measured metrics {name: METRICS entry's result}, which
    include max_rank, and Rank(l, h) and the per-head mass, (n_layer, n_head) each: a record per layer with every
    metric's value, what else a metric keeps under its name, the lazy layers, AvgRank and the suggested depth."""
    max_rank = torch.tensor(metrics['max_rank']['per_layer'], dtype=torch.float64)
    layers = [{"layer": i, **{name: result['per_layer'][i] for name, result in metrics.items()},
               "rank_per_head": rank[i].tolist(), "mass_per_head": mass[i].tolist(),
               # k* >= 1 always, so MaxRank = 1 means k* = 1 for every head on every sequence
               "lazy": bool(max_rank[i] == 1), "near_lazy": bool(max_rank[i] <= near_lazy)}
              for i in range(len(rank))]
    extras = {name: {k: v for k, v in result.items() if k != 'per_layer'} for name, result in metrics.items()}
    n_layer = len(layers)
    half = n_layer // 2
    # layers without attention maps (NaN) are left out of the means
    avg_rank = {"all": max_rank.nanmean().item(), "first_half": max_rank[:half].nanmean().item() if half else None,
                "second_half": max_rank[half:].nanmean().item()}
    groups = [{"layers": [a, min(a + group_size, n_layer) - 1], "avg_rank": max_rank[a:a + group_size].nanmean().item()}
              for a in range(0, n_layer, group_size)] if group_size > 0 else []
    depth, rule = suggest_inherit_depth([layer["lazy"] for layer in layers])
    return {"layers": layers, **{name: extra for name, extra in extras.items() if extra}, "avg_rank": avg_rank,
            "avg_rank_groups": groups, "lazy_layers": [layer["layer"] for layer in layers if layer["lazy"]],
            "near_lazy_layers": [layer["layer"] for layer in layers if layer["near_lazy"]],
            "no_attention_maps": max_rank.isnan().nonzero().flatten().tolist(),
            "suggested_inherit_depth": depth, "suggestion_rule": rule}


def measured_names(result):
    """The METRICS entries a probe.json content holds, in table order."""
    return [name for name in METRICS if name in result["layers"][0]]


def format_table(result):
    names = measured_names(result)
    lines = [f"{'layer':>5} " + " ".join(f"{METRICS[name].column:>8}" for name in names) + "  lazy"]
    for layer in result["layers"]:
        flag = "lazy" if layer["lazy"] else "near" if layer["near_lazy"] else ""
        lines.append(f"{layer['layer']:>5} " + " ".join(METRICS[name].fmt.format(layer[name]) for name in names) + f"  {flag}")
    avg = result["avg_rank"]
    lines.append(f"AvgRank (mean MaxRank): all {avg['all']:.2f}" + "".join(
        f", {name.replace('_', ' ')} {avg[name]:.2f}" for name in ("first_half", "second_half") if avg[name] is not None))
    if result["avg_rank_groups"]:
        lines.append("AvgRank by group: " + ", ".join(
            f"{g['layers'][0]}-{g['layers'][1]}: {g['avg_rank']:.2f}" for g in result["avg_rank_groups"]))
    lines.append(f"lazy layers (MaxRank = 1): {result['lazy_layers'] or 'none'}; near-lazy (MaxRank <= "
                 f"{result['settings']['near_lazy']}): {result['near_lazy_layers'] or 'none'}")
    lines.append(f"suggested inherit depth: {result['suggested_inherit_depth']} ({result['suggestion_rule']})")
    if result["no_attention_maps"]:
        lines.append(f"layers {result['no_attention_maps']} hand out no attention maps (linear attention): their "
                     "attention metrics are NaN, and AvgRank and the head counts leave them out")
    lines += [f"{METRICS[name].column}: {METRICS[name].legend.format(**result.get(name, {}))}"
              for name in names if METRICS[name].legend]
    if "tau_sweep" in result:
        sweep = result["tau_sweep"]
        lines.append("MaxRank by tau:\n" + f"{'layer':>5} " + " ".join(f"{tau:>8g}" for tau in sweep["taus"]))
        lines += [f"{l:>5} " + " ".join(f"{row[l]:8.2f}" for row in sweep["max_rank"]) for l in range(len(result["layers"]))]
        lines.append("lazy layers by tau: " + ", ".join(f"{tau:g}: {lazy or 'none'}"
                                                        for tau, lazy in zip(sweep["taus"], sweep["lazy_layers"])))
    return "\n".join(lines)


def plot(result, path):
    """Rank(l, h) over layers x heads, d(l, l+n) over layers x block lengths n, and one bar panel per per-layer
    metric, layers top to bottom in every panel."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    rank = [layer["rank_per_head"] for layer in result["layers"]]
    n_layer = len(rank)
    s = result["settings"]
    names = measured_names(result)
    colors = ['tab:red' if layer["lazy"] else 'tab:orange' if layer["near_lazy"] else 'tab:blue' for layer in result["layers"]]
    fig, axes = plt.subplots(1, 2 + len(names), figsize=(7 + 1.9 * len(names), 2.5 + 0.22 * n_layer), sharey=True,
                             gridspec_kw={"width_ratios": [3, 3] + [1.3] * len(names)})
    ax_map, ax_angle, *ax_bars = axes
    im = ax_map.imshow(rank, aspect='auto', cmap='viridis', interpolation='nearest', vmin=1)
    fig.colorbar(im, ax=ax_map, label="Rank(l, h) = mean k*")
    for axis in (ax_map.xaxis, ax_map.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    ax_map.set_xlabel("head")
    ax_map.set_ylabel("layer")
    ax_map.set_title(f"attention rank k* (tau={s['tau']})")
    # Gromov et al.'s view: row l, column n is d(l, l+n), the distance a run of n blocks from block l covers
    matrix = torch.tensor(result["angular_distance"]["matrix"])
    by_length = torch.full((n_layer, n_layer), float('nan'))
    for l in range(n_layer):
        by_length[l, :n_layer - l] = matrix[l, l + 1:]
    im = ax_angle.imshow(by_length.numpy(), aspect='auto', cmap='magma', interpolation='nearest', vmin=0,
                         extent=(0.5, n_layer + 0.5, n_layer - 0.5, -0.5))
    fig.colorbar(im, ax=ax_angle, label="d(l, l+n)")
    ax_angle.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_angle.set_xlabel("blocks n")
    ax_angle.set_title("angular distance d(l, l+n)\n(last token)", fontsize=10)
    for ax, name in zip(ax_bars, names):
        ax.barh(range(n_layer), [layer[name] for layer in result["layers"]], color=colors)
        ax.axvline(0, color='k', linewidth=0.8)
        if name == 'max_rank':
            ax.axvline(1, color='tab:red', linestyle=':', linewidth=1)  # the lazy line
        ax.set_title(METRICS[name].column, fontsize=10)
        ax.tick_params(axis='x', labelsize=7)
    fig.suptitle(f"{s['source']} on {s['dataset']} val: {s['num_seqs']} x {s['seq_len']} tokens; suggested inherit "
                 f"depth {result['suggested_inherit_depth']} (bars: red lazy, orange near-lazy)")
    fig.tight_layout()
    fig.savefig(path, format='png', dpi=100)
    plt.close(fig)


def collapse_panels(result):
    """The panels of probe_collapse.png that result holds: per-head Rank(h, l) (head_collapse), per-head sink mass
    (sink_collapse), MaxRank by tau (tau_sweep)."""
    return [name for name in ('head_collapse', 'sink_collapse', 'tau_sweep') if name in result]


def head_map(fig, ax, values, collapsed, title, label, **scale):
    """A layers x heads heatmap of values, the collapsed heads marked with a white x (layers without maps blank)."""
    from matplotlib.ticker import MaxNLocator
    im = ax.imshow(values, aspect='auto', cmap='viridis', interpolation='nearest', **scale)
    fig.colorbar(im, ax=ax, label=label)
    layers, heads = torch.tensor(collapsed).nonzero(as_tuple=True)
    ax.scatter(heads.tolist(), layers.tolist(), marker='x', color='white', s=12, linewidths=1)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=10)


def plot_collapse(result, path):
    """Per-head collapse: Rank(h, l) with the collapsed heads marked, each head's lowest sink mass with the
    eps-sink-collapsed heads marked, and MaxRank per layer at every tau of the sweep; the panels result holds."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    panels = collapse_panels(result)
    n_layer, n_head = len(result["layers"]), len(result["layers"][0]["rank_per_head"])
    fig, axes = plt.subplots(1, len(panels), figsize=(1 + 5 * len(panels), 2.5 + 0.22 * n_layer), squeeze=False)
    for ax, name in zip(axes[0], panels):
        r = result[name]
        if name == 'head_collapse':
            head_map(fig, ax, [layer["rank_per_head"] for layer in result["layers"]], r["collapsed"],
                     f"Rank(h, l); x: Rank <= {r['collapse_rank']:g}\n{r['count']} of {r['heads']} heads "
                     f"({r['fraction']:.1%})", "Rank(h, l) = mean k*")
        elif name == 'sink_collapse':
            head_map(fig, ax, r["sink_mass"], r["collapsed"],
                     f"lowest mass on one column j*; x: >= {r['threshold']:g}\n{r['count']} of {r['heads']} heads "
                     f"eps-sink-collapsed ({r['fraction']:.1%})", "min over rows and windows", vmin=0, vmax=1)
        else:
            for tau, row in zip(r["taus"], r["max_rank"]):
                ax.plot(row, range(n_layer), marker='o', ms=3, label=f"tau={tau:g}")
            ax.axvline(1, color='tab:red', linestyle=':', linewidth=1)  # the lazy line
            ax.set_ylim(n_layer - 0.5, -0.5)  # layers top to bottom, as the heatmaps
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("MaxRank")
            ax.set_ylabel("layer")
            ax.set_title("MaxRank by tau", fontsize=10)
            ax.legend(fontsize=7)
    s = result["settings"]
    fig.suptitle(f"{s['source']} on {s['dataset']} val: {s['num_seqs']} x {s['seq_len']} tokens, {n_layer} layers x "
                 f"{n_head} heads")
    fig.tight_layout()
    fig.savefig(path, format='png', dpi=100)
    plt.close(fig)


def plot_history(metrics_path, path, title):
    """The probe records of a train.py run's metrics.jsonl ({'iter', 'probe': {metric: per-layer values}}, from
    probe_interval): one panel per metric, every layer's value against the step, deeper layers darker."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    with open(metrics_path) as f:
        records = [r for r in map(json.loads, f) if 'probe' in r]
    steps = [r['iter'] for r in records]
    names = list(records[0]['probe'])
    n_layer = len(records[0]['probe'][names[0]])
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for layer in range(n_layer):
            ax.plot(steps, [r['probe'][name][layer] for r in records], marker='o', ms=2, label=f"layer {layer}",
                    color=plt.cm.viridis_r(layer / max(1, n_layer - 1)))
        ax.set_xlabel("step")
        ax.set_title(METRICS[name].column)
    axes[0][-1].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1))
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format='png', dpi=100)
    plt.close(fig)


def run(cfg):
    """Probe cfg.source as configured (a ProbeConfig); writes probe.json and probe.png into cfg.out_dir and returns
    the probe.json content. Every check runs before any measurement, so a failure writes nothing."""
    if not cfg.source:
        fail("no model given; pass --source=<checkpoint file | run dir | gpt2* | hf:owner/name | HF model dir>")
    counts = ('num_seqs', 'seq_len', 'sink_seqs', 'sink_seq_len', 'batch_size', 'ablation_windows')
    if any(getattr(cfg, key) < 1 for key in counts):
        fail(f"{', '.join(counts)} must be at least 1")
    if not (0 < cfg.tau <= 1 and 0 < cfg.eta <= 1):
        fail(f"tau={cfg.tau} and eta={cfg.eta} must lie in (0, 1]; the paper uses 0.9")
    if not 0 <= cfg.sink_eps < 1:
        fail(f"sink_eps={cfg.sink_eps} must lie in [0, 1); Gu et al. use 0.3")
    if cfg.mass_order not in MASS_ORDERS:
        fail(f"mass_order={cfg.mass_order!r} is not one of {', '.join(MASS_ORDERS)}")
    if cfg.taus is not None and not all(0 < tau <= 1 for tau in cfg.taus):
        fail(f"taus={cfg.taus} must all lie in (0, 1]; the paper sweeps 0.8,0.85,0.9,0.95")
    if cfg.collapse_rank is not None and cfg.collapse_rank < 1:
        fail(f"collapse_rank={cfg.collapse_rank} is below 1, which no head reaches (k* >= 1); e.g. 1.5 counts the heads near rank 1")
    if cfg.collapse_eps is not None and not 0 < cfg.collapse_eps < 1:
        fail(f"collapse_eps={cfg.collapse_eps} must lie in (0, 1), e.g. 0.1")
    check_window_start(cfg.window_start)
    data_dir = os.path.join(cfg.data_root, cfg.dataset)
    tokens = open_tokens(data_dir, 'val')
    dev, _, ptdtype, autocast = setup_device(cfg.device, cfg.dtype)
    model, info = load_model(cfg.source, dev, cfg.model_path)
    check_inputs(cfg, model, data_dir, tokens)
    starts = window_starts(tokens, load_meta(data_dir), cfg.window_start, model.config.block_size, f"{data_dir}/val.bin")
    mc = model.config
    names = [name for name, entry in METRICS.items() if entry.enabled(cfg)]
    ablating = cfg.ablate_attention or cfg.ablate_mlp

    via = f" via transformers ({mc.architecture})" if info["model_path"] == "transformers" else ""
    print(f"probing {cfg.source}{via} ({mc.n_layer} layers, {mc.n_head} heads, {mc.n_embd} wide) on {cfg.num_seqs} "
          f"x {cfg.seq_len} tokens of {data_dir}/val.bin, {dev} float32"
          + (f" (ablations {str(ptdtype).removeprefix('torch.')})" if ablating else "")
          + f", {torch.get_num_threads()} threads")
    t0 = time.time()
    measurements = Measurements(model, tokens, cfg, dev, autocast, starts=starts)
    metrics = measurements.metrics(names)
    result = summarize(metrics, *measurements.rank_and_mass, cfg.near_lazy, cfg.group_size)
    if cfg.taus:
        result["tau_sweep"] = tau_sweep(measurements)
    wall_s = time.time() - t0
    result["settings"] = {**{k: getattr(cfg, k) for k in ('source', 'model_path', 'dataset', 'data_root', 'window_start',
                                                  'num_seqs', 'seq_len', 'tau', 'eta', 'mass_order', 'taus',
                                                  'collapse_rank', 'collapse_eps', 'near_lazy', 'group_size',
                                                  'batch_size', 'seed', 'sink_seqs', 'sink_seq_len', 'sink_eps',
                                                  'ablate_attention', 'ablate_mlp', 'ablation_len')},
                          "device": dev, "dtype": "float32", "tf32": False,
                          "ablation_dtype": str(ptdtype).removeprefix('torch.')}
    result["model"] = {**info["model_args"], "kind": info["kind"], "model_path": info["model_path"],
                       "iter_num": info.get("iter_num"), "best_val_loss": info.get("best_val_loss")}
    result["wall_s"] = wall_s
    print(format_table(result))
    print(f"probe took {wall_s:.1f}s")

    with atomic_write(os.path.join(cfg.out_dir, 'probe.png')) as tmp:
        plot(result, tmp)
    pngs = 'probe.png'
    if collapse_panels(result):
        with atomic_write(os.path.join(cfg.out_dir, 'probe_collapse.png')) as tmp:
            plot_collapse(result, tmp)
        pngs += ', probe_collapse.png'
    write_json(result, os.path.join(cfg.out_dir, 'probe.json'))
    print(f"wrote {os.path.join(cfg.out_dir, 'probe.json')} and {pngs}")
    return result


if __name__ == '__main__':
    run(configure(ProbeConfig, sys.argv[1:]))
