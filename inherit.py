"""
Inheritune, step 1: build a shallower (or narrower) GPT from a pretrained one's token embedding and (parts of) its blocks.

    python inherit.py --source=out/ref/ckpt.pt --n_layer=6 --out=out/inherit6.pt    # first 6 blocks (the paper)
    python train.py config/train_shakespeare.py --init_from=out/inherit6.pt        # then train it

More selections (block indices are 0-based, ranges a-b include b; the paper's "layers 5-8 of 12" is --layers=4-7):
    --source=gpt2-medium --n_layer=16 --inherit_wpe=False --inherit_ln_f=False   # as the authors' script does
    --source=gpt2-medium --n_layer=16 --block_parts=attn,ln                      # Table 3: attention + LN only
    --source=gpt2 --layers=4-7                                                   # Table 4: later layers
    --source=out/ref --layers=0-5,0-5                                            # hybrid stacking
    --source=gpt2 --layers=0,2,4,6,8,10                                          # DistilBERT-style alternate layers
    --source=gpt2-medium --n_layer=24 --n_head=8 --n_embd=512                    # half-width warm start (Table 2)

Sources: a checkpoint of this project or nanoGPT (a file, or a run directory holding ckpt.pt), 'gpt2'..'gpt2-xl',
or a local Hugging Face GPT-2 directory. The output is a checkpoint with model, model_args, iter_num=0,
best_val_loss=1e9, config={} and the provenance under 'inherit'; an existing --out file is replaced atomically.
Inherited tensors are copied bit for bit; everything else keeps the GPT-2 init of a fresh GPT of the target's shape
(seeded by --seed), so residual projections get 0.02/sqrt(2 * target n_layer). A narrower target (--n_head, --n_embd)
keeps the source's first heads (their q/k/v rows and attention c_proj columns), first 4*n_embd MLP hidden units and
first n_embd dimensions of the embeddings, every LayerNorm and the residual outputs; heads keep the source's size.
inherit_from_config() is the one entry point: this CLI, train.py (inherit_* keys) and grow.py all call it.
"""
import os
import re
import sys

import torch

from checkpoint import load_model, save_checkpoint, strip_wrapper_prefixes
from common import fail
from configurator import configure
from model import GPT, GPTConfig

# -----------------------------------------------------------------------------
# default config values
source = ''  # checkpoint file, run directory, nanoGPT ckpt.pt, 'gpt2'..'gpt2-xl' or local HF GPT-2 directory
out = ''  # checkpoint to write (a directory gets ckpt.pt inside)
n_layer = None  # k: inherit source blocks 0..k-1 (shorthand for --layers=0-<k-1>)
layers = ''  # the source block of every target position, e.g. '0-5,0-5', '4-7', '0,2,4,6' (a string in config files too)
block_parts = 'all'  # what each block inherits: 'all', 'none' or a comma list of attn (c_attn, c_proj), mlp (c_fc, c_proj), ln (ln_1, ln_2)
inherit_wpe = True  # False: position embeddings keep their fresh init (the authors' script)
inherit_ln_f = True  # False: the final LayerNorm keeps its fresh init (the authors' script)
seed = 1337  # seeds the fresh init of whatever is not inherited
# target model fields; None keeps the source's value. dropout and block_size may change (a larger block_size needs
# --inherit_wpe=False; note train.py applies its own --dropout); n_head/n_embd may shrink (heads keep the source's
# size, so n_embd / n_head must equal it; one of the two is enough); the others must equal the source's
dropout = None
block_size = None
n_head = None
n_embd = None
vocab_size = None
bias = None
scale_attn_by_inverse_layer_idx = None
# -----------------------------------------------------------------------------
DEFAULTS = {k: v for k, v in globals().items() if not k.startswith('_') and isinstance(v, (int, float, bool, str, type(None)))}

OVERRIDABLE = ('dropout', 'block_size', 'vocab_size', 'bias', 'scale_attn_by_inverse_layer_idx')
# train.py's and grow.py's names for the options of inherit_from_config (None for inherit_layers: every source block)
INHERIT_KEYS = ('inherit_layers', 'inherit_block_parts', 'inherit_wpe', 'inherit_ln_f', 'inherit_n_head', 'inherit_n_embd')
# state-dict name prefixes (inside transformer.h.<i>.) of each part of a block
BLOCK_PARTS = {'attn': ('attn.c_attn.', 'attn.c_proj.'), 'mlp': ('mlp.c_fc.', 'mlp.c_proj.'), 'ln': ('ln_1.', 'ln_2.')}


def parse_layers(spec):
    """'0-5,0-5' -> [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]: the source block of every target position."""
    result = []
    for item in spec.split(','):
        match = re.fullmatch(r'(\d+)(?:-(\d+))?', item.strip(), re.ASCII)
        if match is None:
            fail(f"layers={spec!r}: {item.strip()!r} is not a block index or an a-b range; write e.g. '0-5,0-5' or '0,2,4,6'")
        lo, hi = int(match[1]), int(match[2] or match[1])
        if hi < lo:
            fail(f"layers={spec!r}: range {lo}-{hi} runs backwards; list the indices one by one to reverse the order")
        result.extend(range(lo, hi + 1))
    return result


def layer_list(spec, source_n_layer, name='layers'):
    """The source block of every target position, from k (blocks 0..k-1), a list of block indices or a string
    such as '0-5,0-5' / '0,2,4,6'. Indices are checked against the source by inherit()."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 1:
            fail(f"{name} must be a positive integer, got {spec!r}")
        if spec > source_n_layer:
            fail(f"{name}={spec} but the source has only {source_n_layer} blocks; to repeat blocks list them (e.g. '0-{source_n_layer - 1},0-{source_n_layer - 1}')")
        return list(range(spec))
    if isinstance(spec, (list, tuple)):
        return list(spec)
    if isinstance(spec, str):
        return parse_layers(spec)
    fail(f"{name}={spec!r} must be a number of blocks k (blocks 0..k-1), a list of block indices or a string such as '0-5,0-5'")


def select_layers(n_layer, layers, source_n_layer):
    """The layer list from --n_layer and/or --layers, checked against each other and the source's depth."""
    if n_layer is not None and (not isinstance(n_layer, int) or isinstance(n_layer, bool) or n_layer < 1):
        fail(f"n_layer must be a positive integer, got {n_layer!r}")
    if not layers:
        if n_layer is None:
            fail("say which blocks to inherit: --n_layer=k (the first k) or --layers=... (e.g. '0-5' or '0-5,0-5')")
        return layer_list(n_layer, source_n_layer, 'n_layer')
    selected = parse_layers(layers)
    if n_layer is not None and n_layer != len(selected):
        fail(f"n_layer={n_layer} but layers={layers!r} lists {len(selected)} blocks; drop --n_layer or make them agree")
    return selected


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
    """(n_head, n_embd) of the target: the source's first n_head heads and n_embd dimensions (None: the source's)."""
    C, source_heads = source_args['n_embd'], source_args['n_head']
    head_size = C // source_heads
    for key, value in (('n_head', n_head), ('n_embd', n_embd)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            fail(f"{key} must be a positive integer, got {value!r}")
    if n_embd is None:
        n_embd = C if n_head is None else n_head * head_size
    if n_embd % head_size:
        fail(f"n_embd={n_embd} is not a multiple of the source's head size {head_size} ({C}/{source_heads}); heads are "
             f"copied whole, so use a multiple of {head_size}")
    if n_head is None:
        n_head = n_embd // head_size
    if n_embd > C or n_head > source_heads:
        fail(f"n_head={n_head}, n_embd={n_embd} is wider than the source ({source_heads} heads, {C} wide); a warm start "
             "keeps the source's first heads and dimensions, so it can only shrink")
    if n_embd != n_head * head_size:
        fail(f"n_embd/n_head = {n_embd}/{n_head} must equal the source's head size {head_size}; for {n_head} heads use "
             f"n_embd={n_head * head_size}")
    return n_head, n_embd


def target_model_args(source_args, n_layer, overrides, inherit_wpe):
    """The source's GPTConfig fields with n_layer, the width and the allowed overrides applied."""
    overrides = dict(overrides)
    n_head, n_embd = target_width(source_args, overrides.pop('n_head', None), overrides.pop('n_embd', None))
    args = dict(source_args, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    for key, value in overrides.items():
        if key not in OVERRIDABLE:
            fail(f"cannot set {key!r} on the inherited model; settable: n_head, n_embd, {', '.join(OVERRIDABLE)} (n_layer comes from the layer list)")
        if key == 'dropout':
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                fail(f"dropout must be a number in [0, 1), got {value!r}")
            value = float(value)
        elif key == 'block_size':
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(f"block_size must be a positive integer, got {value!r}")
            if value > source_args['block_size'] and inherit_wpe:
                fail(f"block_size={value} is longer than the source's {source_args['block_size']}, so its position "
                     f"embeddings cannot be inherited; add --inherit_wpe=False or use a block_size <= {source_args['block_size']}")
        elif value != source_args[key]:
            fail(f"{key}={value!r} differs from the source's {source_args[key]!r}; inherited tensors keep their "
                 "vocabulary, biases and attention scaling, so those must stay the source's")
        args[key] = value
    return args


def source_key(name, layers, parts, inherit_wpe, inherit_ln_f):
    """The source state-dict entry a target parameter is copied from, or None when it keeps its fresh init."""
    if name == 'transformer.wte.weight':  # tied to lm_head.weight
        return name
    if name == 'transformer.wpe.weight':
        return name if inherit_wpe else None
    if name.startswith('transformer.ln_f.'):
        return name if inherit_ln_f else None
    _, _, index, rest = name.split('.', 3)  # transformer.h.<index>.<rest>
    part = next(p for p, prefixes in BLOCK_PARTS.items() if rest.startswith(prefixes))
    return f'transformer.h.{layers[int(index)]}.{rest}' if part in parts else None


def leading_slice(name, source_tensor, shape, source_n_embd):
    """The part of a source tensor that a target tensor of `shape` takes: the leading entries of every dimension
    (first positions, dimensions, heads, hidden units; all of it at equal shapes). c_attn stacks q, k and v along
    its rows, so each of the three keeps its own first rows (the first heads)."""
    if '.attn.c_attn.' in name:
        qkv = source_tensor.view(3, source_n_embd, *source_tensor.shape[1:])
        return qkv[(slice(None), *(slice(0, n) for n in (shape[0] // 3, *shape[1:])))].reshape(shape)
    return source_tensor[tuple(slice(0, n) for n in shape)]


def inherit(source_model, source_info, layers, block_parts=tuple(BLOCK_PARTS), inherit_wpe=True, inherit_ln_f=True,
            seed=1337, overrides=None):
    """A checkpoint dict for a GPT whose block i is source block layers[i] (the parts in block_parts), with the
    source's tied wte/lm_head and, if asked, its wpe and ln_f; every other tensor keeps the init of a fresh
    GPT(target config) built under torch.manual_seed(seed) (the caller's RNG state is left untouched).
    source_model: a GPT (unwrapped); source_info: load_model's info dict (source, kind, iter_num, ...)."""
    source_args = {k: getattr(source_model.config, k) for k in GPTConfig.__dataclass_fields__}
    L = source_args['n_layer']
    if not layers:
        fail("the layer list is empty; inherit at least one block")
    bad = [i for i in layers if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < L]
    if bad:
        fail(f"block index {bad[0]!r} is out of range: the source has {L} blocks, numbered 0-{L - 1}")
    if isinstance(block_parts, str):
        block_parts = parse_parts(block_parts)
    check_parts(block_parts, f"block_parts={list(block_parts)!r}")
    args = target_model_args(source_args, len(layers), overrides or {}, inherit_wpe)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        target = GPT(GPTConfig(**args))
    source_state = strip_wrapper_prefixes(source_model.state_dict())
    counts = {'inherited': 0, 'fresh': 0}
    with torch.no_grad():
        for name, p in target.named_parameters():  # the tied lm_head.weight comes up once, as transformer.wte.weight
            key = source_key(name, layers, block_parts, inherit_wpe, inherit_ln_f)
            if key is not None:
                p.copy_(leading_slice(name, source_state[key], p.shape, source_args['n_embd']))
            counts['inherited' if key is not None else 'fresh'] += p.numel()

    groups = {'wte/lm_head': True, 'wpe': inherit_wpe, 'ln_f': inherit_ln_f}
    groups.update({f'blocks.{part}': part in block_parts for part in BLOCK_PARTS})
    notes = []
    if args['block_size'] < source_args['block_size'] and inherit_wpe:
        notes.append(f"wpe cropped to the first {args['block_size']} of {source_args['block_size']} positions")
    narrower = (args['n_head'], args['n_embd']) != (source_args['n_head'], source_args['n_embd'])
    if narrower:
        notes.append(f"width: the first {args['n_head']} of {source_args['n_head']} heads and {args['n_embd']} of "
                     f"{source_args['n_embd']} dimensions")
    moved = [(i, s) for i, s in enumerate(layers) if i != s]
    if args['scale_attn_by_inverse_layer_idx'] and 'attn' in block_parts and moved:
        notes.append("scale_attn_by_inverse_layer_idx: attention logits are scaled by 1/(position+1) at each block's new "
                     "position, so moved blocks (source->target " + ', '.join(f'{s}->{i}' for i, s in moved[:4]) +
                     (', ...' if len(moved) > 4 else '') + ") see a different scale than in the source")
    source = source_info.get('source', 'unknown')
    provenance = {
        'source': os.path.abspath(source) if os.path.exists(source) else source,
        'source_kind': source_info.get('kind'),
        'source_model_args': source_args,
        'source_iter_num': source_info.get('iter_num'),
        'source_best_val_loss': source_info.get('best_val_loss'),
        'source_inherit': source_info.get('inherit'),  # when the source was itself inherited
        'layers': list(layers),
        'width': {'n_head': args['n_head'], 'n_embd': args['n_embd']} if narrower else None,
        'block_parts': [part for part in BLOCK_PARTS if part in block_parts],
        'inherited': [group for group, kept in groups.items() if kept],
        'reinitialized': [group for group, kept in groups.items() if not kept],
        'seed': seed,
        'params_inherited': counts['inherited'],
        'params_fresh': counts['fresh'],
        'notes': notes,
    }
    return {'model': target.state_dict(), 'model_args': args, 'iter_num': 0, 'best_val_loss': 1e9, 'config': {},
            'inherit': provenance}


def inherit_from_config(source_model, source_info, cfg, overrides=None):
    """inherit() with the options named by INHERIT_KEYS in cfg (train.py's, grow.py's, or inherit.py's CLI mapped onto
    them) and cfg['seed']; overrides are further target model fields (block_size, dropout)."""
    layers = cfg['inherit_layers'] if cfg['inherit_layers'] is not None else source_model.config.n_layer
    width = {'n_head': cfg['inherit_n_head'], 'n_embd': cfg['inherit_n_embd']}
    overrides = {**(overrides or {}), **{k: v for k, v in width.items() if v is not None}}
    return inherit(source_model, source_info, layer_list(layers, source_model.config.n_layer, 'inherit_layers'),
                   parse_parts(cfg['inherit_block_parts'], 'inherit_block_parts'), cfg['inherit_wpe'], cfg['inherit_ln_f'],
                   cfg['seed'], overrides)


def format_layers(layers):
    """[0, 1, 2, 3, 0, 1, 2, 3] -> '0-3,0-3'."""
    runs = []
    for i in layers:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ','.join(str(lo) if lo == hi else f'{lo}-{hi}' for lo, hi in runs)


def describe(provenance):
    """A few lines for the terminal."""
    p = provenance
    total = p['params_inherited'] + p['params_fresh']
    lines = [f"{len(p['layers'])}-layer model from {p['source']} ({p['source_model_args']['n_layer']} layers, "
             f"{p['source_model_args']['n_embd']} wide): source blocks {format_layers(p['layers'])}",
             f"  inherited: {', '.join(p['inherited'])}",
             f"  fresh GPT-2 init (seed {p['seed']}): {', '.join(p['reinitialized']) or 'nothing'}",
             f"  parameters: {p['params_inherited']:,} inherited ({100 * p['params_inherited'] / total:.1f}%), "
             f"{p['params_fresh']:,} fresh"]
    lines += [f"  note: {note}" for note in p['notes']]
    return '\n'.join(lines)


def main(argv):
    cfg = configure(DEFAULTS, argv)
    if not cfg['source']:
        fail("give the model to inherit from: --source=<checkpoint, run directory, gpt2*, or HF GPT-2 directory>")
    if not cfg['out']:
        fail("give the checkpoint to write: --out=PATH")
    parse_parts(cfg['block_parts'])  # fail before loading the source
    model, info = load_model(cfg['source'])
    spec = {'inherit_layers': select_layers(cfg['n_layer'], cfg['layers'], model.config.n_layer),
            'inherit_block_parts': cfg['block_parts'], 'inherit_wpe': cfg['inherit_wpe'], 'inherit_ln_f': cfg['inherit_ln_f'],
            'inherit_n_head': cfg['n_head'], 'inherit_n_embd': cfg['n_embd'], 'seed': cfg['seed']}
    ckpt = inherit_from_config(model, info, spec, {k: cfg[k] for k in OVERRIDABLE if cfg[k] is not None})
    path = cfg['out']
    if os.path.isdir(path) or path.endswith(os.sep):
        path = os.path.join(path, 'ckpt.pt')
    save_checkpoint(ckpt, path)
    print(describe(ckpt['inherit']))
    print(f"wrote {path}; train from it with: python train.py ... --init_from={path}")


if __name__ == '__main__':
    main(sys.argv[1:])
