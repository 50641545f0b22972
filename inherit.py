"""
Inheritune, step 1: build a shallower (or narrower) GPT from a pretrained one's token embedding and (parts of) its blocks.

    python inherit.py --source=out/ref/ckpt.pt --inherit_layers=6 --out=out/inherit6.pt   # first 6 blocks (the paper)
    python train.py config/train_shakespeare.py --init_from=out/inherit6.pt               # then train it

More selections (block indices are 0-based, ranges a-b include b; the paper's "layers 5-8 of 12" is 4-7); the
options are train.py's inherit_* settings, spelled the same:
    --source=gpt2-medium --inherit_layers=16 --inherit_wpe=False --inherit_ln_f=False   # as the authors' script does
    --source=gpt2-medium --inherit_layers=16 --inherit_block_parts=attn,ln              # Table 3: attention + LN only
    --source=gpt2 --inherit_layers=4-7                                                  # Table 4: later layers
    --source=out/ref --inherit_layers=0-5,0-5                                           # hybrid stacking
    --source=gpt2 --inherit_layers=0,2,4,6,8,10                                         # DistilBERT-style alternate layers
    --source=gpt2-medium --inherit_n_head=8 --inherit_n_embd=512                        # half-width warm start (Table 2)
    --source=out/ref --inherit_layers=6 --inherit_select=shortgpt --dataset=shakespeare  # the 6 blocks of highest block influence
    --source=out/gpt2m_24 --inherit_place=15-23                                         # v4 Fig. 23: blocks 15-23 in place, 0-14 fresh
    --source=out/gpt2m_24 --inherit_layers=12 --inherit_place=0-3=20-23                 # 12 layers: 0-3 from blocks 20-23, 4-11 fresh

Sources: a checkpoint of this project or nanoGPT (a file, or a run directory holding ckpt.pt), 'gpt2'..'gpt2-xl',
a local Hugging Face GPT-2, Llama or Qwen2 folder, or 'hf:owner/name' (downloaded; README, Other model families),
whose tokenizer the inherited model keeps. The output is a checkpoint with model, model_args, iter_num=0,
best_val_loss=1e9, config={} and the provenance under 'inherit'; an existing --out file is replaced atomically.
Inherited tensors are copied bit for bit; everything else keeps the GPT-2 init of a fresh GPT of the target's shape
(seeded by --seed), so residual projections get 0.02/sqrt(2 * target n_layer). A narrower target (inherit_n_head/_n_embd)
keeps the source's first heads (their q/k/v rows and attention c_proj columns; under GQA the key/value heads they read,
n_kv_head scaled alike), first MLP hidden units (4*n_embd, or mlp_hidden scaled by the width; SwiGLU's gate and up
alike) and first n_embd dimensions of the embeddings, every norm and the residual outputs; heads keep the source's size.
inherit_select picks which k blocks inherit_layers=k keeps: 'first' (0..k-1, the paper) or a strategy of SELECTIONS
that probes the source on the val split of data_root/dataset (lazy_cut, shortgpt, angular, deepest_but_last,
ablation; docs/inheriting.md); the provenance records the method, its scores and the chosen blocks. inherit_place puts
source blocks at chosen positions of a target of the source's depth (or inherit_layers=k) and leaves every other
position fresh; the provenance's layers then hold None at the fresh positions.
A source that runs through transformers (model_path; hf_adapter.py) is inherited by depth: its decoder layers by index
(repeats allowed) and every per-layer list of its config with them (hf_adapter.cut_layers: layer_types, no_rope_layers,
...), the chunks of weights packed per layer outside them (hf_adapter.cut_weights: Gemma 4's per-layer embeddings), block parts by the layer's child names, no narrower width; the checkpoint keeps transformers' names and config.
inherit() is the one entry point: this CLI, train.py (inherit_* keys) and grow.py all call it; each step of it is an
entry of WARM_STARTS (layers, place, parts, width), so a new warm start is one registered function (README, Extending),
and a new selection strategy one function registered in SELECTIONS.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import os
import re
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import torch

import attention_probe
import hf_adapter
from checkpoint import FreshInit, load_model, new_model, save_checkpoint, strip_wrapper_prefixes
from common import fail, setup_device, tensor_of
from configurator import configure
from data import open_tokens
from model import GPT, GPTConfig



@dataclass
class InheritConfig:
    """What a warm start takes from its source: the options of train.py (init_from), grow.py (the reference) and
    this script alike."""
    inherit_layers: int | list[int] | str | None = None  # source blocks to keep: k (which k: inherit_select), a list [0, 2, 4] / '0,2,4', or ranges '0-5,0-5'; None: all
    inherit_select: str = 'first'  # which k blocks inherit_layers=k keeps: first (0..k-1, the paper) or a probe-driven strategy of inherit.SELECTIONS (docs/inheriting.md)
    inherit_block_parts: str = 'all'  # what each kept block inherits: 'all', 'none' or a comma list of attn (c_attn, c_proj, q/k norms), mlp (c_fc, c_proj), ln (ln_1, ln_2) (Table 3)
    inherit_wpe: bool = True  # False: fresh position embeddings (the authors' script)
    inherit_ln_f: bool = True  # False: fresh final LayerNorm (the authors' script)
    inherit_n_head: int | None = None  # half-width warm start: keep the first n heads (None: the source's)
    inherit_n_embd: int | None = None  # half-width warm start: keep the first n dimensions (None: the source's width)
    inherit_place: str | None = None  # placement warm start: 'P=B' items put source blocks B at target positions P ('15-23=15-23', a bare '15-23' in place), every other position fresh; the depth is inherit_layers=k's (None: the source's)



@dataclass
class InheritScriptConfig(InheritConfig):
    source: str = ''  # checkpoint file, run directory, nanoGPT ckpt.pt, 'gpt2'..'gpt2-xl', 'hf:owner/name' or local HF GPT-2/Llama/Qwen2 directory
    out: str = ''  # checkpoint to write (a directory gets ckpt.pt inside)
    seed: int = 1337  # seeds the fresh init of whatever is not inherited
    block_size: int | None = None  # the target's context (None: the source's); longer needs --inherit_wpe=False
    dropout: float | None = None  # the target's dropout (None: the source's; train.py applies its own --dropout)
    dataset: str = 'openwebtext'  # inherit_select's probe reads the val split of data_root/<dataset>
    data_root: str = 'data'
    device: str = 'auto'  # where the source is loaded and inherit_select's probe runs
    model_path: str = 'auto'  # how an HF source runs: 'auto' (model.py where exact, else transformers), 'gpt' (model.py) or 'transformers' (any decoder)


# state-dict name prefixes (inside transformer.h.<i>.) of each part of a block
BLOCK_PARTS = {'attn': ('attn.',), 'mlp': ('mlp.c_fc.', 'mlp.c_proj.'), 'ln': ('ln_1.', 'ln_2.')}


def parse_layers(spec, name='layers', whole=None):
    """'0-5,0-5' -> [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]: the source block of every target position. Errors quote
    name=whole, whole being the option's value when spec is a part of it (inherit_place's), else spec."""
    option = f"{name}={spec if whole is None else whole!r}"
    result = []
    for item in spec.split(','):
        match = re.fullmatch(r'(\d+)(?:-(\d+))?', item.strip(), re.ASCII)
        if match is None:
            fail(f"{option}: {item.strip()!r} is not a block index or an a-b range; write e.g. '0-5,0-5' or '0,2,4,6'")
        lo, hi = int(match[1]), int(match[2] or match[1])
        if hi < lo:
            fail(f"{option}: range {lo}-{hi} runs backwards; list the indices one by one to reverse the order")
        result.extend(range(lo, hi + 1))
    return result


def target_depth(spec, source_n_layer):
    """k of inherit_layers=k (None stays None: all blocks, or the depth a selection picks), checked against the source."""
    if spec is None:
        return None
    if isinstance(spec, bool) or not isinstance(spec, int):
        fail(f"inherit_layers={spec!r} must be a number of blocks k, a list of block indices or a string such as '0-5,0-5'")
    if spec < 1:
        fail(f"inherit_layers must be a positive integer, got {spec!r}")
    if spec > source_n_layer:
        fail(f"inherit_layers={spec} but the source has only {source_n_layer} blocks; to repeat blocks list them (e.g. '0-{source_n_layer - 1},0-{source_n_layer - 1}')")
    return spec


def parse_parts(spec, name='block_parts'):
    """'attn,ln' -> ('attn', 'ln'); 'all' -> every part; 'none' -> ()."""
    if not isinstance(spec, str):
        fail(f"{name} must be a string such as 'all' or 'attn,ln', got {spec!r}")
    names = [part.strip() for part in spec.split(',')]
    if names == ['all']:
        return tuple(BLOCK_PARTS)
    if names == ['none']:
        return ()
    check_parts(names, f"{name}={spec!r}")
    return tuple(part for part in BLOCK_PARTS if part in names)


def check_parts(parts, where):
    unknown = [part for part in parts if part not in BLOCK_PARTS]
    if unknown:
        fail(f"{where}: unknown block part {unknown[0]!r}; use 'all', 'none' or a comma list of {', '.join(BLOCK_PARTS)}")


def target_width(source_args, n_head, n_embd):
    """(n_head, n_embd) of the target: the source's first n_head heads and n_embd dimensions (None: the source's; with
    n_embd / n_head the head size, one of them set sets the other). A source whose heads have a head_dim of their own
    (Qwen3) keeps it, and its n_head and n_embd narrow apart."""
    C, source_heads = source_args['n_embd'], source_args['n_head']
    head_size = C // source_heads
    for key, value in (('n_head', n_head), ('n_embd', n_embd)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            fail(f"{key} must be a positive integer, got {value!r}")
    # a cut head would lose RoPE's rotary pairs besides its own attention pattern
    whole = ("heads are copied whole (RoPE rotates dimension j with j + head_size/2)" if source_args.get('position') == 'rope'
             else "heads are copied whole")
    head_dim = source_args.get('head_dim')
    if head_dim is not None:
        n_head, n_embd = n_head or source_heads, n_embd or C
    if n_embd is None:
        n_embd = C if n_head is None else n_head * head_size
    if head_dim is None and n_embd % head_size:
        fail(f"n_embd={n_embd} is not a multiple of the source's head size {head_size} ({C}/{source_heads}); {whole}, "
             f"so use a multiple of {head_size}")
    if n_head is None:
        n_head = n_embd // head_size
    if n_embd > C or n_head > source_heads:
        fail(f"n_head={n_head}, n_embd={n_embd} is wider than the source ({source_heads} heads, {C} wide); a warm start "
             "keeps the source's first heads and dimensions, so it can only shrink")
    if head_dim is None and n_embd != n_head * head_size:
        fail(f"n_embd/n_head = {n_embd}/{n_head} must equal the source's head size {head_size} ({whole}); for {n_head} "
             f"heads use n_embd={n_head * head_size}")
    return n_head, n_embd


def narrowed_fields(source_args, n_head, n_embd):
    """The Llama fields a narrower target scales with it: n_kv_head by n_head's ratio (the first n_head query heads
    read the first n_kv_head key/value heads: whole groups only) and a set mlp_hidden by n_embd's ratio."""
    scaled = {}
    source_heads, source_kv = source_args['n_head'], source_args.get('n_kv_head')
    if source_kv is not None:
        group = source_heads // source_kv
        if n_head % group:
            fail(f"n_head={n_head} would split a key/value group: the source's {source_heads} query heads share "
                 f"{source_kv} key/value heads, {group} each; pass an inherit_n_head that is a multiple of {group}")
        scaled['n_kv_head'] = n_head // group
    hidden = source_args.get('mlp_hidden')
    if hidden is not None:
        if hidden * n_embd % source_args['n_embd']:
            fail(f"n_embd={n_embd} scales mlp_hidden={hidden} (of n_embd={source_args['n_embd']}) to "
                 f"{hidden * n_embd / source_args['n_embd']:g} hidden units, not a whole number; pass an inherit_n_embd "
                 f"that makes {hidden} * n_embd / {source_args['n_embd']} an integer")
        scaled['mlp_hidden'] = hidden * n_embd // source_args['n_embd']
    return scaled


def stacked_rows(name, args):
    """The row counts of the projections stacked along a tensor's rows for a model of args: c_attn's q, k and v
    (k and v with n_kv_head heads each), SwiGLU's gate and up in c_fc; None for a tensor that stacks nothing."""
    if '.attn.c_attn.' in name:
        head_size = GPTConfig(**args).head_size
        kv_rows = (args.get('n_kv_head') or args['n_head']) * head_size
        return [args['n_head'] * head_size, kv_rows, kv_rows]
    if '.mlp.c_fc.' in name and args.get('mlp') == 'swiglu':
        hidden = args.get('mlp_hidden') or 4 * args['n_embd']
        return [hidden, hidden]
    return None


def leading_slice(name, source_tensor, shape, source_args, args):
    """The part of a source tensor that the target tensor of `shape` (a model of args) takes: the leading entries of
    every dimension (first positions, dimensions, heads, hidden units; all of it at equal shapes). A tensor that
    stacks projections along its rows (stacked_rows) keeps the leading rows of each projection."""
    rows = stacked_rows(name, source_args)
    if rows is None:
        return source_tensor[tuple(slice(0, n) for n in shape)]
    columns = tuple(slice(0, n) for n in shape[1:])
    return torch.cat([part[(slice(0, n), *columns)] for part, n in zip(source_tensor.split(rows), stacked_rows(name, args))])


def target_model_args(source_args, overrides):
    """The source's GPTConfig fields with block_size and dropout overridden (None: the source's)."""
    args = dict(source_args)
    for key, value in overrides.items():
        if key == 'dropout':
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                fail(f"dropout must be a number in [0, 1), got {value!r}")
            value = float(value)
        elif key == 'block_size':
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(f"block_size must be a positive integer, got {value!r}")
        else:  # vocabulary, biases, attention scaling: inherited tensors keep the source's
            fail(f"cannot set {key!r} on the inherited model; settable: inherit_n_head, inherit_n_embd, block_size, dropout")
        args[key] = value
    return args


@dataclass
class Plan:
    """A warm start as it is being built. The WARM_STARTS entries edit it in order; then inherited_weights() builds a
    fresh GPT(args) under the seed and fills it from `tensors` (each target tensor's leading part; leading_slice)."""
    source_model: GPT  # the source itself, which a selection strategy probes (a GPT or an hf_adapter.HFModel; on the meta device when read lazily)
    source_args: dict  # the source's GPTConfig fields (an HFModel's: its model_args, hf_config among them)
    source_state: dict  # the source's state dict; read lazily, memory-mapped tensors or functions making them (common.tensor_of)
    args: dict  # the target's GPTConfig fields
    layer_prefix: str = 'transformer.h.'  # the state-dict names of block i start with layer_prefix + 'i.'
    tensors: dict = field(default_factory=dict)  # target parameter name -> the source tensor it copies; absent: fresh init
    record: dict = field(default_factory=dict)  # what the provenance says about each entry's choice
    notes: list = field(default_factory=list)  # lines for the terminal and the provenance


@dataclass(frozen=True)
class WarmStart:
    """One registered step of a warm start: apply(plan, cfg) edits the plan from cfg's inherit_* options;
    describe(provenance) is its phrase in results.py's "init" column ('' when it has nothing to say)."""
    apply: Callable
    describe: Callable


WARM_STARTS = {}  # name -> WarmStart, applied in this order


def warm_start(name, describe=lambda provenance: ''):
    """Register a warm-start step: @warm_start('name', describe=...) over a function (plan, cfg) -> None."""
    def register(apply):
        WARM_STARTS[name] = WarmStart(apply, describe)
        return apply
    return register


@dataclass(frozen=True)
class Selection:
    """A way to pick the k source blocks a target of depth k inherits: choose(metrics, L, k) -> the sorted block
    indices, from the attention_probe.METRICS results named in `needs`, measured on the source. picks_depth: it sets
    k itself when inherit_layers is unset (k is None then); for the others an unset inherit_layers is k = L."""
    choose: Callable
    needs: tuple
    picks_depth: bool


SELECTIONS = {}  # name -> Selection, the values of inherit_select


def selection(name, needs=(), picks_depth=False):
    """Register a selection strategy: @selection('name', needs=(metric, ...)) over a function (metrics, L, k) -> blocks."""
    def register(choose):
        SELECTIONS[name] = Selection(choose, tuple(needs), picks_depth)
        return choose
    return register


def selection_named(name):
    if name not in SELECTIONS:
        fail(f"inherit_select={name!r} is not a selection strategy; use one of {', '.join(SELECTIONS)}")
    return SELECTIONS[name]


@selection('first')
def first_blocks(metrics, L, k):
    """Blocks 0..k-1: the paper's Inheritune."""
    return list(range(k))


@selection('lazy_cut', needs=('max_rank',), picks_depth=True)
def blocks_before_first_lazy(metrics, L, k):
    """Blocks 0..j-1, j the first lazy layer (MaxRank = 1): all of the model before its attention collapses. It sets
    the depth, so inherit_layers must be unset or j."""
    lazy = [l for l, rank in enumerate(metrics['max_rank']['per_layer']) if rank == 1]
    if not lazy or lazy[0] == 0:
        why = "no layer of the source is lazy (MaxRank = 1)" if not lazy else "the source's layer 0 is lazy already"
        fail(f"{why}, so lazy_cut has no blocks to keep; give the depth with inherit_layers=k and another inherit_select")
    if k not in (None, lazy[0]):
        fail(f"lazy_cut keeps the {lazy[0]} blocks before the first lazy layer, but inherit_layers={k}; set "
             f"inherit_layers={lazy[0]} or leave it unset")
    return list(range(lazy[0]))


def keep_highest(scores, k):
    """The k blocks of highest score, in order; of equal scores the shallower block stays."""
    return sorted(sorted(range(len(scores)), key=lambda l: (-scores[l], l))[:k])


@selection('shortgpt', needs=('block_influence',))
def least_influential_dropped(metrics, L, k):
    """ShortGPT (arXiv 2403.03853): drop the L - k blocks of lowest Block Influence."""
    return keep_highest(metrics['block_influence']['per_layer'], k)


@selection('angular', needs=('angular_distance',))
def closest_run_dropped(metrics, L, k):
    """Gromov et al. (arXiv 2403.17887): drop the n = L - k consecutive blocks l*..l*+n-1 whose input x_l* and output
    x_l*+n are closest, l* = argmin over l of d(l, l+n); of equal distances the deeper run goes."""
    n, d = L - k, metrics['angular_distance']['matrix']
    start = min(range(k + 1), key=lambda l: (d[l][l + n], -l))
    return [l for l in range(L) if not start <= l < start + n]


@selection('deepest_but_last')
def deepest_but_last_dropped(metrics, L, k):
    """Drop the L - k deepest blocks but the last: keep blocks 0..k-2 and L-1."""
    return [*range(k - 1), L - 1]


@selection('ablation', needs=('attention_ablation', 'mlp_ablation'))
def least_needed_dropped(metrics, L, k):
    """Drop the L - k blocks the model needs least: the smallest sum of the attention- and the MLP-ablation delta
    (the val-loss increase without the block's attention output, plus that without its MLP output)."""
    cost = [a + m for a, m in zip(metrics['attention_ablation']['per_layer'], metrics['mlp_ablation']['per_layer'])]
    return keep_highest(cost, k)


# the probe settings a selection's metrics depend on, kept in the provenance
PROBE_RECORD = ('num_seqs', 'seq_len', 'tau', 'ablation_windows', 'seed')


def choose_blocks(plan, cfg, k):
    """The k source blocks cfg.inherit_select picks; a probe-driven strategy measures the metrics it needs on the
    source (probe_source) and the provenance records the method, its scores and the probe's windows."""
    L = plan.source_args['n_layer']
    strategy = selection_named(cfg.inherit_select)
    if k is None and not strategy.picks_depth:
        k = L
    metrics, settings = probe_source(plan.source_model, cfg, strategy.needs) if strategy.needs else ({}, None)
    layers = strategy.choose(metrics, L, k)
    if cfg.inherit_select != 'first':
        probe = None if settings is None else {'dataset': cfg.dataset, **{key: getattr(settings, key) for key in PROBE_RECORD}}
        plan.record['selection'] = {'method': cfg.inherit_select, 'scores': metrics, 'probe': probe}
    return layers


def probe_source(model, cfg, names):
    """(the named attention_probe metrics, the probe settings) of the source on the val split of data_root/dataset,
    with the probe's default windows (cut to the source's context), on the device the source is on."""
    data_dir = os.path.join(cfg.data_root, cfg.dataset)
    tokens = open_tokens(data_dir, 'val')
    settings = attention_probe.fitted_settings(model.config.block_size)
    attention_probe.check_inputs(settings, model, data_dir, tokens)
    return attention_probe.Measurements(model, tokens, settings, model.lm_head.weight.device).metrics(names), settings


def describe_layers(p):
    layers = [s for s in p['layers'] if s is not None]  # None: a fresh position (inherit_place)
    kind = 'stacked blocks' if len(set(layers)) < len(layers) else 'inherited blocks'
    chosen = f", chosen by {p['selection']['method']}" if p.get('selection') else ''
    return f"{kind} {format_layers(layers)} of {short_source(p['source'])} ({p['source_model_args']['n_layer']}L){chosen}"


@warm_start('layers', describe_layers)
def select_blocks(plan, cfg):
    """Block i of the target is source block layers[i]: inherit_layers lists them (a list or ranges), or gives their
    number k and inherit_select picks which (SELECTIONS); the token embedding, lm_head (tied to it or not), wpe and
    ln_f come along."""
    L = plan.source_args['n_layer']
    spec = cfg.inherit_layers
    if isinstance(spec, (list, tuple, str)):
        if cfg.inherit_select != 'first':
            fail(f"inherit_layers={spec!r} lists the blocks, which leaves inherit_select={cfg.inherit_select!r} "
                 "nothing to choose; give their number (inherit_layers=k) or drop inherit_select")
        layers = parse_layers(spec) if isinstance(spec, str) else list(spec)
    else:
        layers = choose_blocks(plan, cfg, target_depth(spec, L))
    if not layers:
        fail("the layer list is empty; inherit at least one block")
    bad = [i for i in layers if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < L]
    if bad:
        fail(f"block index {bad[0]!r} is out of range: the source has {L} blocks, numbered 0-{L - 1}")
    plan.args['n_layer'] = len(layers)
    if 'hf_config' in plan.args:  # transformers' config: num_hidden_layers and every per-layer list with the blocks
        plan.args['hf_config'] = hf_adapter.cut_layers(plan.args['hf_config'], layers)
    plan.tensors = dict(plan.source_state)
    copy_blocks(plan, layers)
    if 'hf_config' in plan.args:  # and the weights outside the layers that hold a chunk per layer (Gemma 4's)
        plan.tensors = hf_adapter.cut_weights(plan.source_model, plan.tensors, plan.args['hf_config'], layers)


def copy_blocks(plan, layers):
    """Target block i copies source block layers[i] (None: it keeps its fresh init); the record says which."""
    plan.tensors = {k: v for k, v in plan.tensors.items() if not k.startswith(plan.layer_prefix)}
    for i, s in enumerate(layers):
        if s is not None:
            prefix = f'{plan.layer_prefix}{s}.'
            plan.tensors.update({f'{plan.layer_prefix}{i}.{k[len(prefix):]}': v for k, v in plan.source_state.items()
                                 if k.startswith(prefix)})
    plan.record['layers'] = list(layers)


def parse_place(spec):
    """'15-23' -> {15: 15, ..., 23: 23}; '0-1=20-21,5=3' -> {0: 20, 1: 21, 5: 3}: target position -> source block."""
    if not isinstance(spec, str) or not spec.strip():
        fail(f"inherit_place={spec!r} must be a string of 'P=B' items such as '15-23=15-23' (a bare '15-23': in place)")
    placed = {}
    for item in spec.split(','):
        where, _, which = item.partition('=')
        positions = parse_layers(where, 'inherit_place', spec)
        blocks = parse_layers(which, 'inherit_place', spec) if which else positions
        if len(positions) != len(blocks):
            fail(f"inherit_place={spec!r}: {item.strip()!r} puts {len(blocks)} blocks at {len(positions)} positions")
        for position, block in zip(positions, blocks):
            if position in placed:
                fail(f"inherit_place={spec!r} places two blocks at position {position}")
            placed[position] = block
    return placed


def describe_place(p):
    if not p.get('place'):
        return ''
    positions = [i for i, s in enumerate(p['layers']) if s is not None]
    fresh = format_layers([i for i, s in enumerate(p['layers']) if s is None]) or 'none'
    where = 'in place' if all(p['layers'][i] == i for i in positions) else f"at positions {format_layers(positions)}"
    return f", {where} of {len(p['layers'])} layers, {fresh} fresh"


@warm_start('place', describe_place)
def place_blocks(plan, cfg):
    """Placement warm start (v4's Fig. 23): target position P gets source block B for every 'P=B' of inherit_place,
    every other position keeps its fresh init; the depth is the layers step's (inherit_layers=k, or the source's)."""
    if cfg.inherit_place is None:
        return
    if isinstance(cfg.inherit_layers, (list, tuple, str)) or cfg.inherit_select != 'first':
        fail(f"inherit_place={cfg.inherit_place!r} says which block goes where; give only the target's depth "
             "(inherit_layers=k, or unset: the source's) and no inherit_select")
    if 'hf_config' in plan.args:
        fail(f"inherit_place leaves positions fresh, which a model run through transformers ({plan.args['architecture']}) "
             "cannot be built with here; place blocks of a model.py source, or list them with inherit_layers")
    placed = parse_place(cfg.inherit_place)
    depth, L = plan.args['n_layer'], plan.source_args['n_layer']
    for position, block in placed.items():
        if position >= depth:
            fail(f"inherit_place={cfg.inherit_place!r}: position {position} is out of range: the target has {depth} "
                 f"layers, numbered 0-{depth - 1}; a deeper target: inherit_layers=k")
        if block >= L:
            fail(f"inherit_place={cfg.inherit_place!r}: block {block} is out of range: the source has {L} blocks, "
                 f"numbered 0-{L - 1}")
    copy_blocks(plan, [placed.get(i) for i in range(depth)])
    plan.record['place'] = cfg.inherit_place


def describe_parts(p):
    label = f" [{'+'.join(p['block_parts']) or 'no block weights'}]" if p['block_parts'] != list(BLOCK_PARTS) else ''
    fresh = [g for g in p['reinitialized'] if g in ('wpe', 'ln_f')]
    return label + (f", fresh {'+'.join(fresh)}" if fresh else '')


@warm_start('parts', describe_parts)
def keep_parts(plan, cfg):
    """Only the block parts in inherit_block_parts (Table 3), and wpe / ln_f unless inherit_wpe / inherit_ln_f are
    False; the rest keeps its fresh init."""
    parts = parse_parts(cfg.inherit_block_parts, 'inherit_block_parts')
    # the groups the source has: an untied lm_head is its own, and RoPE models have no wpe
    embedding_group = {'transformer.wte.weight': 'wte/lm_head', 'lm_head.weight': 'wte/lm_head'}
    hf = isinstance(plan.source_model, hf_adapter.HFModel)
    if not (plan.source_model.tied if hf else plan.source_args.get('tie_embeddings', True)):
        embedding_group = {'transformer.wte.weight': 'wte', 'lm_head.weight': 'lm_head'}
    groups = {**dict.fromkeys(embedding_group.values(), True),
              **({'wpe': cfg.inherit_wpe} if 'transformer.wpe.weight' in plan.source_state else {}),
              'ln_f': cfg.inherit_ln_f, **{f'blocks.{part}': part in parts for part in BLOCK_PARTS}}

    def group(name):
        if hf:  # found by the layer's child names
            return plan.source_model.tensor_group(name)
        if name.startswith('transformer.h.'):
            rest = name.split('.', 3)[3]
            return 'blocks.' + next(part for part, prefixes in BLOCK_PARTS.items() if rest.startswith(prefixes))
        return {**embedding_group, 'transformer.wpe.weight': 'wpe'}.get(name, 'ln_f')

    every_part = len(parts) == len(BLOCK_PARTS)  # then a layer's tensors need no group (Gemma 4's per-layer gates have none)
    plan.tensors = {k: v for k, v in plan.tensors.items()
                    if (every_part and k.startswith(plan.layer_prefix)) or groups[group(k)]}
    plan.record.update(block_parts=list(parts), inherited=[g for g, kept in groups.items() if kept],
                       reinitialized=[g for g, kept in groups.items() if not kept])
    moved = [(i, s) for i, s in enumerate(plan.record['layers']) if s not in (i, None)]
    if plan.args.get('scale_attn_by_inverse_layer_idx') and 'attn' in parts and moved:
        plan.notes.append("scale_attn_by_inverse_layer_idx: attention logits are scaled by 1/(position+1) at each block's new "
                          "position, so moved blocks (source->target " + ', '.join(f'{s}->{i}' for i, s in moved[:4]) +
                          (', ...' if len(moved) > 4 else '') + ") see a different scale than in the source")
    src_T, T = plan.source_args['block_size'], plan.args['block_size']
    if T > src_T and groups.get('wpe'):
        fail(f"block_size={T} is longer than the source's {src_T}, so its position embeddings cannot be inherited; "
             f"add --inherit_wpe=False or use a block_size <= {src_T}")
    if T < src_T and groups.get('wpe'):
        plan.notes.append(f"wpe cropped to the first {T} of {src_T} positions")


def describe_width(p):
    w, src = p.get('width'), p['source_model_args']
    return f", width {w['n_head']}x{w['n_embd']} of {src['n_head']}x{src['n_embd']}" if w else ''


@warm_start('width', describe_width)
def keep_first_heads(plan, cfg):
    """Half-width (or any narrower) warm start: the first inherit_n_head query heads (and the key/value heads they
    read) and inherit_n_embd dimensions of every inherited tensor, the first hidden units of the MLP (leading_slice)."""
    n_head, n_embd = target_width(plan.source_args, cfg.inherit_n_head, cfg.inherit_n_embd)
    narrower = (n_head, n_embd) != (plan.source_args['n_head'], plan.source_args['n_embd'])
    if narrower and 'hf_config' in plan.args:
        fail(f"a narrower warm start slices model.py's blocks (heads, q/k/v, MLP units); {plan.source_args['architecture']} "
             f"runs through transformers, whose layers are inherited by depth only: leave inherit_n_head and inherit_n_embd unset")
    plan.args.update(n_head=n_head, n_embd=n_embd, **narrowed_fields(plan.source_args, n_head, n_embd))
    plan.record['width'] = {'n_head': n_head, 'n_embd': n_embd} if narrower else None
    if narrower:
        kv = plan.args.get('n_kv_head')
        plan.notes.append(f"width: the first {n_head} of {plan.source_args['n_head']} heads" +
                          (f" (and {kv} of {plan.source_args['n_kv_head']} key/value heads)" if kv is not None else '') +
                          f" and {n_embd} of {plan.source_args['n_embd']} dimensions")


def inherited_weights(source_model, source_info, cfg, overrides=None):
    """(target, weights, the checkpoint's other entries: model_args, the provenance under 'inherit', ...) of the GPT
    that cfg's inherit_* options make of source_model: every WARM_STARTS entry edits the plan in turn; the target is
    a fresh GPT(target config) built under torch.manual_seed(cfg.seed) (the caller's RNG state is left untouched);
    weights {name: function} makes each target parameter when called: the planned source tensor's leading part
    (leading_slice), bit for bit, else the target's fresh init. Where source_info holds the source's weights read
    lazily (load_model(meta=True)), the source is on the meta device and the target is built there too: each fresh
    tensor is then made alone, as the whole build makes it (FreshInit); a transformers target with fresh tensors is
    built whole for them (transformers skips its init on the meta device)."""
    source_args = source_model.config.model_args()
    meta = source_info.get('weights') is not None
    source_state = source_info['weights'] if meta else strip_wrapper_prefixes(source_model.state_dict())
    plan = Plan(source_model, source_args, source_state, target_model_args(source_args, overrides or {}))
    if isinstance(source_model, hf_adapter.HFModel):
        plan.layer_prefix = source_model.layer_prefix
    for entry in WARM_STARTS.values():
        entry.apply(plan, cfg)

    where, hf = source_info.get('source', 'the inherited model'), 'hf_config' in plan.args
    with torch.random.fork_rng(devices=[]), FreshInit() if meta and not hf else nullcontext() as init:
        torch.manual_seed(cfg.seed)
        target = new_model(plan.args, where, meta)
    whole = []  # a transformers target built whole under the seed, once a fresh tensor of it is asked for

    def fresh(name, param):
        if not meta:
            return param.detach()
        if not hf:
            return init.fresh(param)
        if not whole:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                whole.append(new_model(plan.args, where).state_dict())
        return whole[0][name]

    def inherited(name, source, shape):
        return leading_slice(name, tensor_of(source), shape, source_args, plan.args)

    weights, counts, seen = {}, {'inherited': 0, 'fresh': 0}, set()
    for name, p in target.state_dict(keep_vars=True).items():
        if id(p) in seen:  # a tied lm_head.weight comes up once, as wte's
            continue
        seen.add(id(p))
        if not isinstance(p, torch.nn.Parameter):  # buffers a checkpoint holds (Gemma 4's layer_scalar) come along
            if name in plan.tensors:
                weights[name] = partial(inherited, name, plan.tensors[name], p.shape)
            continue
        weights[name] = (partial(inherited, name, plan.tensors[name], p.shape) if name in plan.tensors
                         else partial(fresh, name, p))
        counts['inherited' if name in plan.tensors else 'fresh'] += p.numel()
    source = source_info.get('source', 'unknown')
    provenance = {
        'source': os.path.abspath(source) if os.path.exists(source) else source,
        'source_kind': source_info.get('kind'),
        'source_model_args': source_args,
        'source_iter_num': source_info.get('iter_num'),
        'source_best_val_loss': source_info.get('best_val_loss'),
        'source_inherit': source_info.get('inherit'),  # when the source was itself inherited
        'warm_starts': list(WARM_STARTS),
        **plan.record,
        'seed': cfg.seed,
        'params_inherited': counts['inherited'],
        'params_fresh': counts['fresh'],
        'notes': plan.notes,
    }
    return target, weights, {'model_args': plan.args, 'iter_num': 0, 'best_val_loss': 1e9, 'config': {},
                             'inherit': provenance}


def inherit(source_model, source_info, cfg, overrides=None):
    """A checkpoint dict of inherited_weights' target with its weights copied in. overrides: target block_size /
    dropout. source_model: a GPT or HFModel (unwrapped); source_info: load_model's info dict (source, kind, ...)."""
    target, weights, entries = inherited_weights(source_model, source_info, cfg, overrides)
    params = target.state_dict(keep_vars=True)
    with torch.no_grad():
        for name, weight in weights.items():
            params[name].copy_(weight())
    return {'model': target.state_dict(), **entries}


def describe_warm_start(provenance):
    """results.py's "init" phrase: each registered entry's part, in order."""
    return ''.join(entry.describe(provenance) for entry in WARM_STARTS.values())


def short_source(source):
    """'/x/out/gpt2m_24/ckpt.pt' -> 'gpt2m_24'; 'gpt2-medium' stays."""
    if source.endswith('.pt') and os.path.basename(source) in ('ckpt.pt', 'init.pt'):
        source = os.path.dirname(source)
    return os.path.basename(os.path.normpath(source)) or source


def format_layers(layers):
    """[0, 1, 2, 3, 0, 1, 2, 3] -> '0-3,0-3'; fresh positions (None) are left out."""
    runs = []
    for i in filter(lambda i: i is not None, layers):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ','.join(str(lo) if lo == hi else f'{lo}-{hi}' for lo, hi in runs)


def describe(provenance):
    """A few lines for the terminal."""
    p = provenance
    total = p['params_inherited'] + p['params_fresh']
    unplaced = [i for i, s in enumerate(p['layers']) if s is None]
    fresh_blocks = [f"the blocks at positions {format_layers(unplaced)}"] if unplaced else []
    lines = [f"{len(p['layers'])}-layer model from {p['source']} ({p['source_model_args']['n_layer']} layers, "
             f"{p['source_model_args']['n_embd']} wide): source blocks {format_layers(p['layers'])}{describe_place(p)}",
             f"  inherited: {', '.join(p['inherited'])}",
             f"  fresh GPT-2 init (seed {p['seed']}): {', '.join(p['reinitialized'] + fresh_blocks) or 'nothing'}",
             f"  parameters: {p['params_inherited']:,} inherited ({100 * p['params_inherited'] / total:.1f}%), "
             f"{p['params_fresh']:,} fresh"]
    if p.get('selection'):
        s = p['selection']
        lines.append(f"  chosen by {s['method']}" + (f" from the source's probe on {s['probe']['dataset']} val "
                     f"({s['probe']['num_seqs']} x {s['probe']['seq_len']} tokens)" if s['probe'] else ''))
        lines += [f"    {name}: {' '.join(f'{v:.4g}' for v in result['per_layer'])}" for name, result in s['scores'].items()]
    lines += [f"  note: {note}" for note in p['notes']]
    return '\n'.join(lines)


def main(argv):
    cfg = configure(InheritScriptConfig, argv)
    if not cfg.source:
        fail("give the model to inherit from: --source=<checkpoint, run directory, gpt2*, HF model directory or hf:owner/name>")
    if not cfg.out:
        fail("give the checkpoint to write: --out=PATH")
    parse_parts(cfg.inherit_block_parts, 'inherit_block_parts')  # fail before loading the source
    model, info = load_model(cfg.source, setup_device(cfg.device, 'float32')[0], cfg.model_path)
    overrides = {k: getattr(cfg, k) for k in ('block_size', 'dropout') if getattr(cfg, k) is not None}
    ckpt = inherit(model, info, cfg, overrides)
    path = cfg.out
    if os.path.isdir(path) or path.endswith(os.sep):
        path = os.path.join(path, 'ckpt.pt')
    save_checkpoint(ckpt, path)
    print(describe(ckpt['inherit']))
    print(f"wrote {path}; train from it with: python train.py ... --init_from={path}")


if __name__ == '__main__':
    main(sys.argv[1:])
