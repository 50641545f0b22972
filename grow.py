"""
Inheritune's Algorithm 1, automated: inherit the first l blocks of a reference model, train, evaluate, and grow
l by step_layers (the last step capped at max_layers) until the val loss reaches the reference's (plus tolerance)
or l reaches max_layers.

    python grow.py config/shakespeare_grow.py
    torchrun --standalone --nproc_per_node=8 grow.py config/grow_gpt2m.py

Every train.py key sets the per-round training (each round trains max_iters steps with a fresh optimizer and the
warmup + cosine schedule); train.py's inherit_* keys (block parts, wpe, ln_f, width) say what each round inherits,
while grow.py sets its depth l and inherit_select which l blocks (first: 0..l-1, the paper; a probe-driven strategy
probes the reference every round). grow_mode='paper' (default) builds every round from the reference; 'continue'
keeps the previous round's trained model and appends the next reference blocks (cheaper in spirit; not in the
paper; first blocks only). new_blocks='deepest' takes the blocks each round adds from the reference's deepest
(v4's variant: its lazy layers): a paper-mode round of l layers inherits blocks 0..start_layers-1 and the last
l - start_layers; a continue-mode round appends the reference's last step_layers blocks.
Rerunning the same command after a kill skips finished rounds and resumes the interrupted one exactly. A rerun
whose settings differ from those grow.json stored (any key that changes what a round computes or when grow stops)
stops with an error naming them, unless --allow_changes=True.
Writes out_dir/round_<l>/ckpt.pt, grow.json, grow.md (results.py's table) and grow.png.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import json
import os
import sys
from dataclasses import asdict, dataclass, fields, replace

import torch.distributed as dist

import results
import train
from checkpoint import load_checkpoint, load_model, save_checkpoint
from common import atomic_write, fail, init_distributed, setup_device, write_json
from configurator import configure
from inherit import InheritConfig, describe, inherit, parse_parts, selection_named


@dataclass
class GrowConfig(train.TrainConfig):
    """grow.py's settings: every train.py setting (the per-round training) plus these."""
    out_dir: str = 'out/grow'
    reference: str = ''  # the reference model: checkpoint file, run directory, nanoGPT ckpt, 'gpt2*' or local HF directory
    reference_val_loss: float | None = None  # None: measured here on the same fixed val windows train.py evaluates on
    start_layers: int | None = None  # None: half the reference's depth
    step_layers: int = 2
    max_layers: int | None = None  # None: the reference's depth
    tolerance: float = 0.0  # stop when val loss <= reference_val_loss + tolerance
    grow_mode: str = 'paper'  # 'paper' or 'continue'
    new_blocks: str = 'next'  # the blocks each round adds: 'next' (the reference's next ones, Algorithm 1) or 'deepest' (its last ones, the lazy layers: v4's variant)
    compare_runs: str = ''  # comma-separated train.py out_dirs (e.g. a same-depth random-init baseline) shown beside the rounds
    allow_changes: bool = False  # True: rerun into an out_dir made with other settings, keeping its finished rounds; the new ones apply from here on


DEFAULTS = GrowConfig()
# keys that change no round's result (where files are, what is shown, which hardware runs it): a rerun may change
# them freely. Every other key is stored in grow.json and compared on a rerun.
RERUN_FREE_KEYS = ('out_dir', 'data_root', 'log_interval', 'log_seconds', 'eval_interval', 'always_save_checkpoint',
                   'wandb_log', 'wandb_project', 'wandb_run_name', 'backend', 'device', 'compile', 'dist_timeout',
                   'compare_runs', 'allow_changes', 'probe_interval')


def round_layers(cfg, depth, start, ref_depth):
    """What a round of `depth` layers inherits (inherit_layers): with new_blocks='next' its depth (the first blocks,
    or those inherit_select picks); with 'deepest' the first round's blocks 0..start-1, then the reference's last
    depth - start blocks in order (v4's Algorithm 1: "newly added blocks can be initialized with lazy layers")."""
    if cfg.new_blocks == 'next':
        return depth
    return [*range(start), *range(ref_depth - (depth - start), ref_depth)]


def round_init(cfg, depth, start, ref_model, ref_info, previous_round_dir):
    """The inherited checkpoint a round starts from."""
    # crop to the training context now (train.py would anyway), so rounds of both modes have the same shapes
    overrides = {'block_size': min(cfg.block_size, ref_model.config.block_size)}
    layers = round_layers(cfg, depth, start, ref_model.config.n_layer)
    ckpt = inherit(ref_model, ref_info, replace(cfg, inherit_layers=layers), overrides)
    ckpt['inherit'].update(grow_mode=cfg.grow_mode, new_blocks=cfg.new_blocks)
    if cfg.grow_mode == 'continue' and previous_round_dir is not None:
        # keep everything the previous round trained (embeddings, its blocks, ln_f); only the new blocks come from the reference
        trained = load_checkpoint(previous_round_dir, mmap=True)['model']
        ckpt['model'].update(trained)
        ckpt['inherit']['trained_from'] = os.path.abspath(previous_round_dir)
    return ckpt


def write_report(state, out_dir, compare_runs):
    """grow.md (results.py's table of the rounds and any compared runs) and grow.png (their val loss against the reference)."""
    ref = state['reference_val_loss']
    rows = [results.load_run(os.path.join(out_dir, f"round_{r['n_layer']}"), f"Inheritune round, {r['n_layer']} layers")
            for r in state['rounds']]
    rows += [results.load_run(run_dir) for run_dir in compare_runs]
    results.compare(rows, ref, rows[0]['eval_set'])  # the rounds are evaluated on the windows the reference was
    lines = [f"# grow: {state['reference']} ({state['reference_n_layer']} layers), mode {state['grow_mode']}", "",
             f"Reference val loss: {ref:.4f} (target: <= {ref + state['tolerance']:.4f}); Δ is against it.", "",
             results.markdown_table(rows)]
    if state.get('result'):
        lines += ["", state['result']]
    with atomic_write(os.path.join(out_dir, 'grow.md')) as tmp, open(tmp, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    results.plot_curves(rows, os.path.join(out_dir, 'grow.png'), f"Inheritune rounds ({state['grow_mode']} mode)",
                        (ref, f"reference ({state['reference_n_layer']} layers)"))


def grow(cfg):
    if not cfg.reference:
        fail("give the reference model: --reference=<checkpoint, run directory, gpt2*, HF model directory or hf:owner/name>")
    if cfg.grow_mode not in ('paper', 'continue'):
        fail(f"grow_mode must be 'paper' or 'continue', got {cfg.grow_mode!r}")
    if cfg.step_layers < 1:
        fail(f"step_layers must be at least 1, got {cfg.step_layers}")
    if cfg.inherit_layers is not None or cfg.inherit_place is not None:
        fail("grow.py sets each round's depth itself (inherit_select and new_blocks pick which blocks); drop "
             "inherit_layers and inherit_place, and set start_layers/step_layers/max_layers")
    if cfg.new_blocks not in ('next', 'deepest'):
        fail(f"new_blocks must be 'next' or 'deepest', got {cfg.new_blocks!r}")
    if cfg.new_blocks == 'deepest' and cfg.inherit_select != 'first':
        fail(f"new_blocks='deepest' fixes every round's blocks (the first start_layers, then the deepest), which leaves "
             f"inherit_select={cfg.inherit_select!r} nothing to pick; use one of the two")
    if selection_named(cfg.inherit_select).picks_depth:
        fail(f"inherit_select={cfg.inherit_select!r} sets the depth itself, which grow.py steps; use it with train.py or inherit.py")
    if cfg.grow_mode == 'continue' and cfg.inherit_select != 'first':
        fail("grow_mode='continue' appends the next reference blocks to the trained ones, so it needs inherit_select='first'")
    parse_parts(cfg.inherit_block_parts, 'inherit_block_parts')  # fail now, not after the reference's evaluation
    compare_runs = [d for d in cfg.compare_runs.split(',') if d]
    for run_dir in compare_runs:  # fail now, not after hours of training: the report reads both files of each
        missing = [name for name in ('metrics.jsonl', 'ckpt.pt') if not os.path.exists(os.path.join(run_dir, name))]
        if missing:
            fail(f"{run_dir}/{missing[0]} not found; compare_runs takes out_dirs of finished train.py runs")
    ddp, rank, _, _, device = init_distributed(cfg.backend, cfg.device, cfg.dist_timeout)
    master = rank == 0
    # a probe-driven inherit_select probes the reference every round, so it waits on the training device
    probe_device = 'cpu' if cfg.inherit_select == 'first' else setup_device(device, cfg.dtype)[0]
    ref_model, ref_info = load_model(cfg.reference, probe_device, cfg.model_path)
    ref_depth = ref_model.config.n_layer
    start = cfg.start_layers if cfg.start_layers is not None else max(1, ref_depth // 2)
    stop = cfg.max_layers if cfg.max_layers is not None else ref_depth
    if not 1 <= start <= stop:
        fail(f"start_layers={start} must be between 1 and max_layers={stop}")
    if stop > ref_depth:
        fail(f"max_layers={stop} is deeper than the reference ({ref_depth} layers)")
    out_dir = cfg.out_dir
    state_path = os.path.join(out_dir, 'grow.json')
    # train.py trains what round_init built (and evaluates the reference as it is): no second inheritance
    train_cfg = train.TrainConfig(**{f.name: getattr(cfg, f.name) for f in fields(train.TrainConfig)
                                     if f.name not in {g.name for g in fields(InheritConfig)}})
    tokens_per_step = cfg.gradient_accumulation_steps * cfg.batch_size * cfg.block_size

    settings = {k: v for k, v in asdict(cfg).items() if k not in RERUN_FREE_KEYS}
    state, changed = None, []
    if os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
        stored = state.get('settings', {k: state[k] for k in ('reference', 'grow_mode')})  # an older grow.py kept only these
        keys = set(stored) | set(settings) if 'settings' in state else set(stored)
        before = {k: stored.get(k, getattr(DEFAULTS, k, None)) for k in keys}  # a key added to grow.py since: its default
        changed = [k for k in sorted(keys) if before[k] != settings.get(k)]
        if changed and not cfg.allow_changes:
            diffs = ', '.join(f"{k} {before[k]!r} -> {settings.get(k)!r}" for k in changed)
            fail(f"{state_path} was made with other settings ({diffs}), so its rounds would not match them; start fresh "
                 f"with another --out_dir (or delete {out_dir}), or pass --allow_changes=True to keep its finished rounds")
    if state is None or changed:
        ref_loss = cfg.reference_val_loss
        if ref_loss is None:  # the reference measured on exactly the windows the rounds are evaluated on
            ref_loss = train.train(replace(train_cfg, init_from=cfg.reference, eval_only=True))['val_loss']
        rounds = state['rounds'] if state is not None else []
        for r in rounds:
            r['reached_target'] = r['val_loss'] <= ref_loss + cfg.tolerance
        state = {'reference': cfg.reference, 'reference_n_layer': ref_depth, 'reference_val_loss': ref_loss,
                 'tolerance': cfg.tolerance, 'grow_mode': cfg.grow_mode, 'start_layers': start,
                 'step_layers': cfg.step_layers, 'max_layers': stop, 'settings': settings, 'rounds': rounds}
        if master:
            if changed:
                print(f"note: settings changed since {state_path} was written ({', '.join(changed)}); "
                      f"keeping its finished rounds {[r['n_layer'] for r in rounds]}")
            write_json(state, state_path)
    target = state['reference_val_loss'] + state['tolerance']
    if master:
        print(f"reference {cfg.reference}: {ref_depth} layers, val loss {state['reference_val_loss']:.4f}; "
              f"growing {start} -> {stop} by {cfg.step_layers} until val loss <= {target:.4f}")

    done = {r['n_layer']: r for r in state['rounds']}
    depth, previous_dir = start, None
    while True:
        round_dir = os.path.join(out_dir, f'round_{depth}')
        if depth in done:
            val_loss = done[depth]['val_loss']
            if master:
                print(f"round {depth} layers: finished earlier, val loss {val_loss:.4f}")
        else:
            init_path = os.path.join(round_dir, 'init.pt')
            resuming = os.path.exists(os.path.join(round_dir, 'ckpt.pt'))
            if master and not resuming:
                ckpt = round_init(cfg, depth, start, ref_model, ref_info, previous_dir)
                save_checkpoint(ckpt, init_path)
                print(f"round {depth} layers: {describe(ckpt['inherit'])}")
            if ddp:
                dist.barrier()  # the other ranks read init.pt
            result = train.train(replace(train_cfg, n_layer=depth, out_dir=round_dir,
                                         init_from='resume' if resuming else init_path))
            val_loss = result['val_loss']
            record = {'n_layer': depth, 'val_loss': val_loss, 'steps': result['iter_num'],
                      'tokens': result['iter_num'] * tokens_per_step, 'wall_s': result['wall_s'],
                      'reached_target': val_loss <= target}
            state['rounds'].append(record)
            if master:
                write_json(state, state_path)
                write_report(state, out_dir, compare_runs)
        previous_dir = round_dir
        if val_loss <= target or depth >= stop:
            break
        depth = min(depth + cfg.step_layers, stop)  # a step that overshoots max_layers still ends with a round at it

    state['result'] = (f"reached the reference with {depth} layers (val loss {val_loss:.4f} <= {target:.4f})" if val_loss <= target
                       else f"stopped at max_layers={depth}: val loss {val_loss:.4f} is still above {target:.4f}")
    if master:
        write_json(state, state_path)
        write_report(state, out_dir, compare_runs)
        print(state['result'])
    return state


if __name__ == '__main__':
    grow(configure(GrowConfig, sys.argv[1:]))
    if dist.is_initialized():
        dist.destroy_process_group()
