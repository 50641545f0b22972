"""
Gather training runs into the paper's tables: one row per run (or per group of seed replicates), with its shape,
parameters, how it was initialised, steps, tokens, training FLOPs, val loss and the difference to a reference run.

    python results.py out/gpt2m_24 out/inherit_gpt2m_16 out/baseline_gpt2m_16 --reference=out/gpt2m_24
    python results.py 'out/shakespeare/*' --reference=out/shakespeare/ref_12 --out=out/shakespeare/results
    python results.py out/cpu/ref_s1 out/cpu/ref_s2 out/cpu/inherit_s1 out/cpu/inherit_s2 --group=_s1,_s2

Arguments are run directories (holding ckpt.pt and metrics.jsonl), checkpoint files, grow.py directories (every
round becomes a row) and shell globs of them (directories a glob matches that hold no run are skipped). Options:
  --reference=RUN   the row Δ is measured against (a name as printed, or the path given)
  --group=_s1,_s2   runs whose names differ only in one of these suffixes become one row: mean ± std (n-1)
  --out=PREFIX      also write PREFIX.md, PREFIX.csv, PREFIX.json and PREFIX.png (val loss against step)
Val losses are the last evaluation in metrics.jsonl, on the fixed windows train.py records in the checkpoint
('eval_set': dataset, val split length, block_size, window count and a digest of the offsets). A run evaluated on
other windows than the reference (or than the first row, without --reference) is marked † and gets no Δ.
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import csv
import glob
import json
import os
import statistics
import sys
from dataclasses import dataclass

import torch

from checkpoint import load_checkpoint, new_model
from common import atomic_write, fail, write_json
from configurator import configure
from inherit import describe_warm_start, short_source


@dataclass
class ResultsConfig:
    """results.py's settings (the runs themselves are the positional arguments)."""
    reference: str = ''  # the run (path or name) every delta is against; '' = no delta column
    group: str = ''  # comma-separated suffixes (e.g. _s1,_s2,_s3) whose runs merge into one mean +- std row
    out: str = ''  # write OUT.md, .csv, .json and .png besides printing the table
    title: str = 'val loss'  # the plot's title

COLUMNS = ('name', 'n_layer', 'n_head', 'n_embd', 'params', 'init', 'steps', 'tokens', 'flops', 'val_loss', 'val_loss_std',
           'runs', 'delta', 'same_windows', 'path')


def describe_init(ckpt):
    """scratch / inherited blocks / stacked blocks / width / sink layers / KD teacher, from the provenance and the config."""
    p, cfg = ckpt.get('inherit'), ckpt.get('config') or {}
    if p is None:
        init_from = cfg.get('init_from', 'scratch')
        label = 'scratch' if init_from in ('scratch', 'resume') else f"from {short_source(init_from)}"
    else:
        label = describe_warm_start(p)
        if p.get('grow_mode') == 'continue' and p.get('trained_from'):
            label += f", continued from {short_source(p['trained_from'])}"
    if cfg.get('sink_layers'):
        label += (f", sink-collapsed layers {cfg['sink_layers']} (eps {cfg.get('sink_eps')}, "
                  f"margin {cfg.get('sink_margin', 2.0):g}, marker {cfg.get('sink_marker', 4.0):g})")
    if cfg.get('teacher'):
        label += f"; KD from {short_source(cfg['teacher'])} (alpha {cfg.get('kd_alpha')}, T {cfg.get('kd_temperature')})"
    return label


def eval_set_of(ckpt):
    """What identifies the val windows; checkpoints from before eval_set was recorded give what their config says."""
    if ckpt.get('eval_set'):
        return ckpt['eval_set']
    cfg = ckpt.get('config') or {}
    windows = cfg.get('eval_windows') or cfg.get('eval_iters', 0) * cfg.get('batch_size', 0)
    return {'dataset': cfg.get('dataset'), 'val_tokens': None, 'block_size': cfg.get('block_size'), 'windows': windows,
            'offsets_sha1': None}


def val_curve(run_dir):
    """(steps, val losses) from run_dir/metrics.jsonl; empty lists when there is none."""
    path = os.path.join(run_dir, 'metrics.jsonl')
    if not os.path.exists(path):
        return [], []
    with open(path) as f:
        evals = [m for m in map(json.loads, f) if 'val_loss' in m]
    return [m['iter'] for m in evals], [m['val_loss'] for m in evals]


def load_run(path, name=None):
    """One row for the run in path (a run directory or a checkpoint file)."""
    ckpt = load_checkpoint(path, mmap=True)  # an xl checkpoint with its optimizer is ~18 GB; only metadata is read
    run_dir = path if os.path.isdir(path) else os.path.dirname(path)
    cfg = ckpt.get('config') or {}
    with torch.device('meta'):  # shapes only: no memory for the weights of a 1.5B model
        model = new_model(ckpt['model_args'], path)
    steps, losses = val_curve(run_dir)
    last_step = steps[-1] if steps else ckpt['iter_num']
    tokens = last_step * cfg.get('gradient_accumulation_steps', 0) * cfg.get('batch_size', 0) * cfg.get('block_size', 0)
    return {'name': name or os.path.normpath(path), 'path': os.path.abspath(path), 'n_layer': model.config.n_layer,
            'n_head': model.config.n_head, 'n_embd': model.config.n_embd, 'params': model.get_num_params(),
            'init': describe_init(ckpt), 'steps': last_step, 'tokens': tokens,
            'flops': model.flops_per_token() * tokens, 'val_loss': losses[-1] if losses else float(ckpt['best_val_loss']),
            'val_loss_std': None, 'runs': 1, 'eval_set': eval_set_of(ckpt), 'curves': [(steps, losses)]}


def expand(args):
    """Run paths from the arguments: globs expanded, grow.py directories replaced by their rounds."""
    paths = []
    for arg in args:
        matches = sorted(glob.glob(arg)) or [arg]
        if matches == [arg] and any(c in arg for c in '*?[') and not os.path.exists(arg):
            fail(f"no run matches {arg!r}; give run directories, checkpoint files or grow.py directories")
        for path in matches:
            if os.path.isdir(path) and os.path.exists(os.path.join(path, 'grow.json')):
                rounds = sorted(glob.glob(os.path.join(path, 'round_*')), key=lambda d: int(d.rsplit('_', 1)[1]))
                paths += [d for d in rounds if os.path.exists(os.path.join(d, 'ckpt.pt'))]
            elif os.path.isfile(path) or os.path.exists(os.path.join(path, 'ckpt.pt')):
                paths.append(path)
            elif len(matches) == 1:
                fail(f"{path} is neither a checkpoint, a run directory with ckpt.pt nor a grow.py directory")
    if not paths:
        fail("no runs found; give run directories, checkpoint files or grow.py directories (globs allowed)")
    return paths


def group_replicates(rows, suffixes):
    """Merge rows whose names differ only in one of the suffixes into one row with the mean and std of val loss."""
    groups = {}
    for row in rows:
        suffix = next((s for s in suffixes if row['name'].endswith(s)), None)
        stem = row['name'][:-len(suffix)] if suffix else row['name']
        groups.setdefault(stem, []).append(row)
    merged = []
    for stem, members in groups.items():
        if len(members) == 1:
            merged.append(members[0])
            continue
        first = members[0]
        for key in ('n_layer', 'n_head', 'n_embd', 'steps', 'tokens', 'eval_set'):
            if any(m[key] != first[key] for m in members):
                fail(f"group {stem!r} mixes runs with different {key} ({', '.join(str(m[key]) for m in members)}); "
                     "replicates must differ only in their seed")
        losses = [m['val_loss'] for m in members]
        merged.append({**first, 'name': stem, 'path': ';'.join(m['path'] for m in members), 'runs': len(members),
                       'val_loss': statistics.mean(losses), 'val_loss_std': statistics.stdev(losses),
                       'curves': [c for m in members for c in m['curves']]})
    return merged


def compare(rows, reference_loss, reference_eval_set):
    """Set each row's delta to the reference loss and whether it was evaluated on the reference's windows."""
    for row in rows:
        row['same_windows'] = row['eval_set'] == reference_eval_set
        row['delta'] = row['val_loss'] - reference_loss if reference_loss is not None and row['same_windows'] else None
    return rows


def markdown_table(rows):
    lines = ["| run | layers | heads x width | params | init | steps | tokens | train FLOPs | val loss | Δ |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        loss = f"{r['val_loss']:.4f}" + (f" ± {r['val_loss_std']:.4f} (n={r['runs']})" if r['runs'] > 1 else '')
        delta = '' if r['delta'] is None else f"{r['delta']:+.4f}"
        mark = '' if r['same_windows'] else ' †'
        lines.append(f"| {r['name']} | {r['n_layer']} | {r['n_head']} x {r['n_embd']} | {r['params'] / 1e6:.2f}M | "
                     f"{r['init']} | {r['steps']:,} | {r['tokens']:,} | {r['flops']:.3g} | {loss}{mark} | {delta} |")
    if not all(r['same_windows'] for r in rows):
        lines += ["", "† evaluated on other val windows than the reference (another dataset, block_size, window count "
                      "or val split): not comparable, so no Δ"]
    return '\n'.join(lines)


def plot_curves(rows, path, title, hline=None):
    """PNG of every row's val-loss curves (replicates share a colour); hline = (loss, label) for a reference level."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, row in enumerate(rows):
        for j, (steps, losses) in enumerate(row['curves']):
            ax.plot(steps, losses, marker='o', ms=3, color=f'C{i % 10}', label=row['name'] if j == 0 else None)
    if hline is not None:
        ax.axhline(hline[0], color='k', ls='--', label=hline[1])
    # y range: the evals after each run's first (and the reference line), so a random init's ln(vocab) at step 0
    # does not flatten the curves people compare
    shown = [loss for row in rows for _, losses in row['curves'] for loss in losses[1:]]
    shown += [hline[0]] if hline else []
    if shown:
        pad = 0.05 * (max(shown) - min(shown)) or 0.05
        ax.set_ylim(min(shown) - pad, max(shown) + pad)
    ax.set_xlabel('step')
    ax.set_ylabel('val loss')
    ax.set_title(title)
    # beside the axes (many runs would hide the curves), in as many columns as the figure's height needs (~28 a column)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1), ncol=1 + len(rows) // 28)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    plt.close(fig)


def write_outputs(rows, prefix, table, title):
    """PREFIX.md, .csv, .json and .png."""
    with atomic_write(prefix + '.md') as tmp, open(tmp, 'w') as f:
        f.write(table + '\n')
    with atomic_write(prefix + '.csv') as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    write_json([{k: r[k] for k in (*COLUMNS, 'eval_set')} for r in rows], prefix + '.json')
    plot_curves(rows, prefix + '.png', title)


def main(argv):
    cfg = configure(ResultsConfig, [a for a in argv if a.startswith('--')])
    rows = [load_run(path) for path in expand([a for a in argv if not a.startswith('--')])]
    if cfg.group:
        rows = group_replicates(rows, [s for s in cfg.group.split(',') if s])
    ref = rows[0]
    if cfg.reference:
        wanted = cfg.reference
        ref = next((r for r in rows if os.path.normpath(wanted) == r['name'] or os.path.abspath(wanted) == r['path']), None)
        if ref is None:
            fail(f"reference {cfg.reference!r} is not one of the runs: {', '.join(r['name'] for r in rows)}")
    compare(rows, ref['val_loss'] if cfg.reference else None, ref['eval_set'])
    table = markdown_table(rows)
    print(table)
    if cfg.out:
        write_outputs(rows, cfg.out, table, cfg.title)
        print(f"wrote {cfg.out}.md, .csv, .json and .png")
    return rows


if __name__ == '__main__':
    main(sys.argv[1:])
