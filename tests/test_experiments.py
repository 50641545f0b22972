"""Every paper experiment at mini scale: each config of config/ run end to end on the real corpus with tiny models
(the references trained first, every warm start from those), the layer maps of stacking and hybrid stacking, layer
lists on the command line, eval windows that do not depend on the batch size, and results.py's table."""
import csv
import glob
import json
import os
import re
import statistics
from dataclasses import replace

import pytest
import torch

import grow
import inherit
import results
import train
from configurator import configure
from conftest import REPO, run_script

# shrink any paper config to seconds on a CPU: depth and layer lists stay the config's, width and data shrink
MINI = ['--dataset=shakespeare', '--device=cpu', '--compile=False', '--dtype=float32', '--max_iters=2',
        '--lr_decay_iters=2', '--warmup_iters=1', '--eval_interval=2', '--eval_windows=4', '--batch_size=2',
        '--block_size=32', '--gradient_accumulation_steps=1', '--log_interval=1', '--wandb_log=False']
MINI_WIDTH = ['--n_head=2', '--n_embd=32']  # scratch models: 2 heads of 16 dims
MINI_HALF_WIDTH = ['--inherit_n_head=1', '--inherit_n_embd=16']  # half of that, for the half-width configs
# nanoGPT's 124M recipe, the CPU demo, and the Llama-family configs, which start from HF folders and have their own
# windows (docs/other_models.md; config/tiny_llama.py runs in tests/test_llama_walk.py)
NOT_PAPER = ('train_gpt2.py', 'train_shakespeare.py', 'tiny_llama.py', 'inherit_openllama3b_13.py',
             'inherit_smollm2_360m_16.py')


def paper_configs():
    names = sorted(os.path.basename(p) for p in glob.glob(str(REPO / 'config' / '*.py')))
    return [n for n in names if not n.startswith(('shakespeare', 'eval_')) and n not in NOT_PAPER]


def mini_config(name, root, out_root, settings=train.TrainConfig):
    """The config as a user's file gives it, its out/ paths moved under out_root, shrunk by MINI."""
    os.chdir(REPO)  # configs exec() each other by repo-relative paths
    cfg = configure(settings, [f'config/{name}', *MINI, f'--data_root={root}'])
    moved = {key: os.path.join(out_root, os.path.relpath(getattr(cfg, key), 'out'))
             for key in ('out_dir', 'init_from', 'teacher', 'reference') if str(getattr(cfg, key, '')).startswith('out/')}
    extra = MINI_WIDTH if cfg.init_from == 'scratch' else []
    extra += MINI_HALF_WIDTH if cfg.inherit_n_embd is not None else []
    return configure(settings, [f'config/{name}', *MINI, f'--data_root={root}', *extra,
                                *(f'--{k}={v}' for k, v in moved.items())])


@pytest.fixture(scope='module')
def mini_runs(shakespeare_root, tmp_path_factory):
    """Every paper config at mini scale, in dependency order: models from scratch first (references, baselines,
    stacking's stage 1), then everything that starts from one of them (or distils from one), then grow.py."""
    out_root = tmp_path_factory.mktemp('out')
    cwd = os.getcwd()
    configs = {name: mini_config(name, shakespeare_root, out_root, grow.GrowConfig if name.startswith('grow') else train.TrainConfig)
               for name in paper_configs()}
    needs_a_model = lambda n: configs[n].init_from != 'scratch' or bool(configs[n].teacher)  # KD's teacher too
    order = sorted(configs, key=lambda n: (n.startswith('grow'), needs_a_model(n)))
    for name in order:
        if name.startswith('grow'):
            grow.grow(replace(configs[name], max_layers=configs[name].start_layers))  # one round
        else:
            train.train(configs[name])
    os.chdir(cwd)
    return out_root, configs


def test_every_paper_config_runs_at_mini_scale(mini_runs):
    out_root, configs = mini_runs
    assert len(configs) >= 40
    for name, cfg in configs.items():
        is_grow = name.startswith('grow')
        run_dir = os.path.join(cfg.out_dir, f"round_{cfg.start_layers}") if is_grow else cfg.out_dir
        ckpt = torch.load(os.path.join(run_dir, 'ckpt.pt'), weights_only=True)
        assert ckpt['iter_num'] == 2 and ckpt['eval_set']['windows'] == 4, name
        decayed = ckpt['optimizer']['param_groups'][0]['params']
        assert len(decayed) == 4 * ckpt['model_args']['n_layer'], name  # decay_embeddings=False: Linear weights only
        if is_grow:
            assert ckpt['inherit']['source'] == cfg.reference and ckpt['inherit']['layers'] == list(range(12))
        elif cfg.init_from == 'scratch':
            assert ckpt['model_args']['n_layer'] == cfg.n_layer and ckpt['inherit'] is None, name
        else:
            assert ckpt['inherit']['source'] == os.path.abspath(cfg.init_from), name
    shapes = {name: torch.load(os.path.join(configs[name].out_dir, 'ckpt.pt'), weights_only=True)['model_args']
              for name in ('halfwidth_gpt2m_24.py', 'hybrid_gpt2xl_24.py', 'stack_gpt2l_18.py', 'inherit_gpt2s_layers8-11.py')}
    assert (shapes['halfwidth_gpt2m_24.py']['n_layer'], shapes['halfwidth_gpt2m_24.py']['n_embd']) == (24, 16)
    assert [shapes[n]['n_layer'] for n in ('hybrid_gpt2xl_24.py', 'stack_gpt2l_18.py', 'inherit_gpt2s_layers8-11.py')] == [24, 18, 4]


def test_paper_configs_share_one_eval_set():
    os.chdir(REPO)
    names = paper_configs() + [os.path.basename(p) for p in glob.glob(str(REPO / 'config' / 'eval_gpt2*.py'))]
    for name in names:
        cfg = configure(grow.GrowConfig if name.startswith('grow') else train.TrainConfig, [f'config/{name}'])
        assert (cfg.eval_windows, cfg.block_size, cfg.dataset) == (2400, 1024, 'fineweb_edu' if 'dagger' in name or 'fineweb' in name else 'openwebtext'), name


def test_paper_configs_decay_no_embeddings_as_the_authors_runs():
    """The authors' AdamW (older nanoGPT's grouping) decays Linear weights only; nanoGPT's recipe and the CPU runs keep
    today's nanoGPT default."""
    os.chdir(REPO)
    for name in sorted(os.path.basename(p) for p in glob.glob(str(REPO / 'config' / '*.py'))):
        cfg = configure(grow.GrowConfig if 'grow' in name else train.TrainConfig, [f'config/{name}'])
        assert cfg.decay_embeddings == (name not in paper_configs()), name


@pytest.mark.parametrize('name, steps, tokens_per_step, n_layer', [
    ('transfer_gpt2m_12_last.py', 10_000, 393_216, 24), ('transfer_gpt2m_12_random.py', 10_000, 393_216, 12),
    ('transfer_gpt2l_18_last.py', 10_000, 131_072, 36), ('transfer_gpt2l_18_random.py', 10_000, 131_072, 18),
    ('train_gpt2m_24_b50k.py', 100_000, 49_152, 24), ('place_gpt2m_24_b50k.py', 100_000, 49_152, 24),
    ('train_gpt2m_24_b50k_200k.py', 200_000, 49_152, 24), ('inherit_gpt2m_18_b50k_200k.py', 200_000, 49_152, 24),
])
def test_v4_configs_train_the_papers_budget(name, steps, tokens_per_step, n_layer):
    """v4's Figs. 3, 23 and 24 (PAPER.md §6): 10K steps at the family's batch; 100K / 200K steps at 50K-token batches."""
    os.chdir(REPO)
    cfg = configure(train.TrainConfig, [f'config/{name}'])
    assert (cfg.max_iters, cfg.lr_decay_iters) == (steps, steps)
    assert cfg.batch_size * cfg.block_size * cfg.gradient_accumulation_steps == tokens_per_step
    assert cfg.n_layer == n_layer  # the family's shape; inheriting configs take the depth from init_from


def block(state, i):
    prefix = f'transformer.h.{i}.'
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.parametrize('name, source, expected', [
    ('hybrid_gpt2m_12.py', 'train_gpt2m_24.py', list(range(6)) * 2),
    ('hybrid_gpt2l_18.py', 'train_gpt2l_36.py', list(range(9)) * 2),
    ('hybrid_gpt2xl_24.py', 'train_gpt2xl_48.py', list(range(12)) * 2),
    ('stack_gpt2m_12.py', 'stack_gpt2m_6.py', list(range(6)) * 2),
    ('stack_gpt2xl_24.py', 'stack_gpt2xl_12.py', list(range(12)) * 2),
    ('inherit_gpt2s_layers4-7.py', 'train_gpt2s_12.py', [4, 5, 6, 7]),
    ('inherit_gpt2m_16.py', 'train_gpt2m_24.py', list(range(16))),
    ('transfer_gpt2m_12_last.py', 'train_gpt2m_24.py', list(range(12, 24))),  # v4 Fig. 3: the lazy layers
    ('transfer_gpt2m_12_first.py', 'train_gpt2m_24.py', list(range(12))),
    ('transfer_gpt2l_18_last.py', 'train_gpt2l_36.py', list(range(18, 36))),
    ('transfer_gpt2l_18_first.py', 'train_gpt2l_36.py', list(range(18))),
    ('place_gpt2m_24_b50k.py', 'train_gpt2m_24.py', [None] * 15 + list(range(15, 24))),  # v4 Fig. 23; None: fresh
    ('inherit_gpt2m_18_b50k_200k.py', 'train_gpt2m_24.py', list(range(18))),  # v4 Fig. 24
])
def test_stacking_and_layer_maps_copy_the_right_blocks(mini_runs, name, source, expected):
    """train.py's own model building for the config: target block i is exactly the source's block expected[i], or
    (None) unlike every source block."""
    _, configs = mini_runs
    cfg = configs[name]
    src = torch.load(os.path.join(configs[source].out_dir, 'ckpt.pt'), weights_only=True)['model']
    model, _, provenance, _ = train.build_model(cfg, 50257, 'cpu')
    state = model.state_dict()
    assert model.config.n_layer == len(expected) and provenance['layers'] == expected
    source_blocks = [block(src, s) for s in range(provenance['source_model_args']['n_layer'])]
    for i, s in enumerate(expected):
        target = block(state, i)
        if s is None:
            assert not any(torch.equal(target['attn.c_attn.weight'], b['attn.c_attn.weight']) for b in source_blocks), i
            continue
        source_block = source_blocks[s]
        assert target.keys() == source_block.keys() and all(torch.equal(target[k], source_block[k]) for k in target), (i, s)
    for k in ('transformer.wte.weight', 'transformer.wpe.weight', 'transformer.ln_f.weight'):
        assert torch.equal(state[k], src[k]), k


def test_table3_and_half_width_configs_build_what_they_say(mini_runs):
    _, configs = mini_runs
    ref = torch.load(os.path.join(configs['train_gpt2m_24.py'].out_dir, 'ckpt.pt'), weights_only=True)['model']
    for name, kept, fresh in [('inherit_gpt2m_16_attn_ln.py', 'attn.c_attn.weight', 'mlp.c_fc.weight'),
                              ('inherit_gpt2m_16_mlp_ln.py', 'mlp.c_fc.weight', 'attn.c_attn.weight'),
                              ('inherit_gpt2m_16_attn_mlp.py', 'attn.c_proj.weight', 'ln_1.weight')]:
        state = train.build_model(configs[name], 50257, 'cpu')[0].state_dict()
        assert torch.equal(state[f'transformer.h.3.{kept}'], ref[f'transformer.h.3.{kept}']), name
        assert not torch.equal(state[f'transformer.h.3.{fresh}'], ref[f'transformer.h.3.{fresh}']), name
    model, _, provenance, _ = train.build_model(configs['inherit_gpt2m_16_authors.py'], 50257, 'cpu')
    assert set(provenance['reinitialized']) == {'wpe', 'ln_f'}
    assert torch.equal(model.transformer.ln_f.weight, torch.ones(32))
    model, _, provenance, _ = train.build_model(configs['halfwidth_gpt2m_24.py'], 50257, 'cpu')
    state = model.state_dict()
    assert provenance['width'] == {'n_head': 1, 'n_embd': 16} and model.config.n_layer == 24
    assert torch.equal(state['transformer.h.23.mlp.c_fc.weight'], ref['transformer.h.23.mlp.c_fc.weight'][:64, :16])
    assert torch.equal(state['transformer.wte.weight'], ref['transformer.wte.weight'][:, :16])


def test_results_table_of_the_mini_runs(mini_runs, tmp_path, capsys):
    out_root, configs = mini_runs
    reference = configs['train_gpt2m_24.py'].out_dir
    rows = results.main([os.path.join(out_root, '*'), f'--reference={reference}', f'--out={tmp_path / "table"}'])
    by_name = {os.path.basename(r['name']): r for r in rows}
    assert 'round_12' in by_name  # the grow directory's round
    ref_loss = by_name['gpt2m_24']['val_loss']
    metrics = [json.loads(line) for line in open(os.path.join(configs['hybrid_gpt2m_12.py'].out_dir, 'metrics.jsonl'))]
    hybrid = by_name['hybrid_gpt2m_12']
    assert hybrid['val_loss'] == metrics[-1]['val_loss'] and hybrid['delta'] == pytest.approx(hybrid['val_loss'] - ref_loss)
    assert hybrid['init'] == 'stacked blocks 0-5,0-5 of gpt2m_24 (24L)'
    assert by_name['stack_gpt2m_12']['init'] == 'stacked blocks 0-5,0-5 of stack_gpt2m_6 (6L)'
    assert by_name['inherit_gpt2m_16_attn_ln']['init'] == 'inherited blocks 0-15 of gpt2m_24 (24L) [attn+ln]'
    assert by_name['inherit_gpt2m_16_authors']['init'] == 'inherited blocks 0-15 of gpt2m_24 (24L), fresh wpe+ln_f'
    assert by_name['halfwidth_gpt2m_24']['init'] == 'inherited blocks 0-23 of gpt2m_24 (24L), width 1x16 of 2x32'
    assert by_name['baseline_gpt2m_16_200k']['init'] == 'scratch'
    assert by_name['place_gpt2m_24_b50k']['init'] == 'inherited blocks 15-23 of gpt2m_24 (24L), in place of 24 layers, 0-14 fresh'
    assert by_name['transfer_gpt2l_18_last']['init'] == 'inherited blocks 18-35 of gpt2l_36 (36L)'
    from model import GPT, GPTConfig
    half = GPT(GPTConfig(n_layer=24, n_head=1, n_embd=16, block_size=32, vocab_size=50304, bias=False))
    row = by_name['halfwidth_gpt2m_24']
    assert (row['params'], row['steps'], row['tokens']) == (half.get_num_params(), 2, 2 * 2 * 32)
    assert row['flops'] == half.flops_per_token() * 2 * 2 * 32
    printed = capsys.readouterr().out
    assert f"| {hybrid['val_loss']:.4f} | {hybrid['delta']:+.4f} |" in printed
    with open(tmp_path / 'table.csv') as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert len(json.loads((tmp_path / 'table.json').read_text())) == len(rows)
    assert (tmp_path / 'table.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert (tmp_path / 'table.md').read_text().startswith('| run | layers |')


def test_results_groups_seeds_and_flags_other_windows(mini_runs, shakespeare_root, tmp_path):
    _, configs = mini_runs
    base = configs['baseline_gpt2s_4.py']
    for seed in (1, 2, 3):
        train.train(replace(base, seed=seed, out_dir=str(tmp_path / f'base_s{seed}')))
    train.train(replace(base, eval_windows=6, out_dir=str(tmp_path / 'other_windows')))
    losses = [[json.loads(line) for line in open(tmp_path / f'base_s{s}' / 'metrics.jsonl')][-1]['val_loss'] for s in (1, 2, 3)]
    assert len(set(losses)) == 3  # the seeds really differ
    rows = results.main([str(tmp_path / 'base_s*'), str(tmp_path / 'other_windows'), '--group=_s1,_s2,_s3',
                         f"--reference={tmp_path / 'base'}"])
    grouped, other = rows
    assert grouped['runs'] == 3 and grouped['val_loss'] == pytest.approx(statistics.mean(losses))
    assert grouped['val_loss_std'] == pytest.approx(statistics.stdev(losses)) and grouped['delta'] == 0
    assert not other['same_windows'] and other['delta'] is None
    table = results.markdown_table(rows)
    assert f"{statistics.mean(losses):.4f} ± {statistics.stdev(losses):.4f} (n=3)" in table and '†' in table


def test_eval_windows_do_not_depend_on_batch_size(mini_runs, tmp_path):
    _, configs = mini_runs
    base = replace(configs['baseline_gpt2s_4.py'], max_iters=0)  # evaluate the step-0 model only
    losses = []
    for batch_size, eval_iters in ((2, 1), (3, 7), (8, 2)):
        out_dir = tmp_path / f'b{batch_size}'
        train.train(replace(base, batch_size=batch_size, eval_iters=eval_iters, eval_windows=5, out_dir=str(out_dir)))
        losses.append([json.loads(line) for line in open(out_dir / 'metrics.jsonl')][0]['val_loss'])
    assert losses == pytest.approx([losses[0]] * 3, abs=1e-6)
    # the same model on other windows gives another loss, so the equality above is not a coincidence
    other = train.train(replace(base, eval_windows=6, out_dir=str(tmp_path / 'other')))
    assert other['val_loss'] != pytest.approx(losses[0], abs=1e-4)
    # without eval_windows: nanoGPT's eval_iters * batch_size windows
    train.train(replace(base, max_iters=1, eval_windows=None, eval_iters=3, batch_size=2, out_dir=str(tmp_path / 'nano')))
    assert torch.load(tmp_path / 'nano' / 'ckpt.pt', weights_only=True)['eval_set']['windows'] == 6


def test_eval_set_is_recorded_and_identifies_the_windows(mini_runs):
    _, configs = mini_runs
    a = torch.load(os.path.join(configs['train_gpt2m_24.py'].out_dir, 'ckpt.pt'), weights_only=True)['eval_set']
    b = torch.load(os.path.join(configs['baseline_gpt2s_4.py'].out_dir, 'ckpt.pt'), weights_only=True)['eval_set']
    assert a == b and a['dataset'] == 'shakespeare' and a['block_size'] == 32 and a['windows'] == 4
    from data import fixed_windows, open_tokens
    import hashlib
    val = open_tokens(os.path.join(configs['train_gpt2m_24.py'].data_root, 'shakespeare'), 'val')
    assert a['val_tokens'] == len(val)
    assert a['offsets_sha1'] == hashlib.sha1(fixed_windows(len(val), 32, 4).tobytes()).hexdigest()[:12]


def test_layer_list_on_the_command_line(mini_runs, shakespeare_root, tmp_path):
    _, configs = mini_runs
    reference = configs['train_gpt2s_12.py'].out_dir
    assert configure(train.TrainConfig, ['--inherit_layers=0,2,4,6']).inherit_layers == [0, 2, 4, 6]
    assert configure(train.TrainConfig, ['--inherit_layers=0-3,0-3']).inherit_layers == '0-3,0-3'
    assert configure(train.TrainConfig, ['--inherit_layers=[5]']).inherit_layers == [5]
    run_script('train.py', *MINI, f'--data_root={shakespeare_root}', f'--init_from={reference}', '--inherit_layers=0,2,4,6',
               f'--out_dir={tmp_path / "alternate"}', '--max_iters=1', '--eval_interval=1')
    ckpt = torch.load(tmp_path / 'alternate' / 'ckpt.pt', weights_only=True)
    assert ckpt['inherit']['layers'] == [0, 2, 4, 6] and ckpt['model_args']['n_layer'] == 4
    model, _, provenance, _ = train.build_model(replace(configs['train_gpt2s_12.py'], init_from=reference,
                                                     inherit_layers=[0, 2, 4, 6]), 50257, 'cpu')
    src = torch.load(os.path.join(reference, 'ckpt.pt'), weights_only=True)['model']
    state = model.state_dict()
    for i, s in enumerate([0, 2, 4, 6]):
        assert all(torch.equal(v, block(src, s)[k]) for k, v in block(state, i).items())


@pytest.mark.parametrize('extra, message', [
    (['--inherit_n_embd=24'], "not a multiple of the source's head size 16"),
    (['--inherit_n_embd=64'], 'wider than the source'),
    (['--inherit_n_head=4'], 'wider than the source'),
    (['--inherit_block_parts=attn,mlpp'], "unknown block part 'mlpp'"),
    (['--inherit_layers=0,12'], 'out of range'),
    (['--inherit_layers=13'], 'only 12 blocks'),
    (['--inherit_place=0=12'], 'block 12 is out of range'),
    (['--inherit_place=12'], 'position 12 is out of range'),
    (['--init_from=scratch', '--inherit_layers=2'], 'needs a model to inherit from'),
])
def test_bad_warm_starts_fail_in_one_line_and_write_nothing(mini_runs, shakespeare_root, tmp_path, extra, message):
    _, configs = mini_runs
    out_dir = tmp_path / 'run'
    proc = run_script('train.py', *MINI, f'--data_root={shakespeare_root}', f"--init_from={configs['train_gpt2s_12.py'].out_dir}",
                      f'--out_dir={out_dir}', *extra, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith('error:') and message in lines[0], proc.stderr
    assert not out_dir.exists()


def test_results_bad_input_is_one_line_error_and_writes_nothing(mini_runs, tmp_path):
    _, configs = mini_runs
    ref, small = configs['train_gpt2m_24.py'].out_dir, configs['baseline_gpt2s_4.py'].out_dir
    out = tmp_path / 'table'
    (tmp_path / 'links').mkdir()  # two runs of different depths named like seed replicates
    os.symlink(ref, tmp_path / 'links' / 'mix_s1')
    os.symlink(small, tmp_path / 'links' / 'mix_s2')
    for args, message in ([str(tmp_path / 'nowhere')], 'neither a checkpoint'), \
                         ([str(tmp_path / 'none_*')], 'no run matches'), \
                         ([ref, '--reference=out/other'], "reference 'out/other' is not one of the runs"), \
                         ([str(tmp_path / 'links' / '*'), '--group=_s1,_s2'], 'mixes runs with different n_layer'):
        with pytest.raises(SystemExit) as e:
            results.main([*args, f'--out={out}'])
        assert str(e.value).startswith('error: ') and '\n' not in str(e.value) and message in str(e.value), (args, e.value)
    assert os.listdir(tmp_path) == ['links']
    proc = run_script('results.py', str(tmp_path / 'nowhere'), check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'} is neither a checkpoint, a run directory with ckpt.pt nor a grow.py directory"]
    printed = run_script('results.py', ref, small, f'--reference={ref}').stdout
    assert printed.splitlines()[0].startswith('| run | layers |') and '| +0.0000 |' in printed


# PAPER.md §3, transcribed: family -> (n_head, n_embd, reference depth, Inheritune depth, tokens per step, peak lr);
# the paper gives no batch or lr for small (its 4-layer ablation), and large-dagger is large's recipe on FineWeb-edu
PAPER_FAMILIES = {
    'small': (12, 768, 12, 4, None, None),
    'medium': (16, 1024, 24, 16, 394e3, 3e-4),
    'large': (20, 1280, 36, 18, 128 * 1024, 2e-4),
    'large-dagger': (20, 1280, 32, 16, 128 * 1024, 2e-4),
    'xl': (25, 1600, 48, 24, 128 * 1024, 1.5e-4),
}
FAMILY_NAMES = {'small': 'gpt2s', 'medium': 'gpt2m', 'large': 'gpt2l', 'large-dagger': 'gpt2l_dagger', 'xl': 'gpt2xl'}
# PAPER.md §3, every run: AdamW, warmup + cosine to min_lr, OpenWebText's context and vocabulary; §2: the authors'
# GPT-2 models scale attention by 1/(l+1), no bias, no dropout; their AdamW decays no embedding (older nanoGPT)
PAPER_ALL = dict(beta1=0.9, beta2=0.95, weight_decay=0.1, grad_clip=1.0, warmup_iters=2000, decay_lr=True, min_lr=1e-5,
                 block_size=1024, scale_attn_by_inverse_layer_idx=True, bias=False, dropout=0.0, decay_embeddings=False,
                 kd_alpha=0.4, kd_temperature=1.0)
# what a run's name says beyond its family, the first matching pattern: §4's 200K rows; §6's 50K-token batches
# (Figs. 23, 24) and Fig. 3's 10K steps; the KD rows' 50K steps and schedule (§6: cosine to lr/10), which their no-KD
# control shares
PAPER_RUNS = [('_b50k_200k', dict(max_iters=200000, batch_tokens=50e3)), ('_b50k', dict(max_iters=100000, batch_tokens=50e3)),
              ('_200k', dict(max_iters=200000)), ('transfer_', dict(max_iters=10000)),
              ('_50k', dict(max_iters=50000, min_lr='lr/10')), ('kd_', dict(max_iters=50000, min_lr='lr/10')),
              ('', dict(max_iters=100000))]


def paper_family(name, cfg):
    family = {(12, 768): 'small', (16, 1024): 'medium', (20, 1280): 'large', (25, 1600): 'xl'}[(cfg.n_head, cfg.n_embd)]
    return 'large-dagger' if 'dagger' in name else family


def model_depth(cfg):
    """The depth of the model a config trains: the inherited blocks' count, else n_layer."""
    if isinstance(cfg.inherit_layers, int):
        return cfg.inherit_layers
    return len(inherit.parse_layers(cfg.inherit_layers)) if cfg.inherit_layers else cfg.n_layer


@pytest.mark.parametrize('name', paper_configs())
def test_paper_config_hyperparameters_are_the_papers(name):
    os.chdir(REPO)
    cfg = configure(grow.GrowConfig if name.startswith('grow') else train.TrainConfig, [f'config/{name}'])
    family = paper_family(name, cfg)
    n_head, n_embd, ref_depth, _, batch_tokens, lr = PAPER_FAMILIES[family]
    run = dict(next(settings for pattern, settings in PAPER_RUNS if pattern in name))
    batch_tokens = run.pop('batch_tokens', batch_tokens)
    expected = {**PAPER_ALL, **run, 'lr_decay_iters': run['max_iters'],
                'dataset': 'fineweb_edu' if 'dagger' in name or 'fineweb' in name else 'openwebtext'}
    if lr is not None:
        expected['learning_rate'] = lr
    if expected['min_lr'] == 'lr/10':
        expected['min_lr'] = cfg.learning_rate / 10
    for key, value in expected.items():
        assert getattr(cfg, key) == pytest.approx(value, rel=1e-9), (name, key)
    tokens = cfg.batch_size * cfg.gradient_accumulation_steps * cfg.block_size
    if batch_tokens is not None:  # "~394K": 12 x 32 x 1024 = 393,216; "50K": 6 x 8 x 1024 = 49,152
        assert tokens == pytest.approx(batch_tokens, rel=0.02), (name, tokens)
    # a warm start's source is the family's reference; the depth a name states is the model's
    if cfg.init_from != 'scratch' and not name.startswith('stack_'):
        assert cfg.n_layer == ref_depth, name
    stated = re.search(r'gpt2(?:s|m|l|xl)(?:_dagger)?_(\d+)', name)
    if stated:
        assert model_depth(cfg) == int(stated[1]), name


def test_every_paper_family_has_its_reference_and_inheritune_configs():
    """PAPER.md §3's depths: the reference trained from scratch at the family's depth, Inheritune at its depth."""
    os.chdir(REPO)
    for family, (n_head, n_embd, ref_depth, inheritune_depth, _, _) in PAPER_FAMILIES.items():
        reference = configure(train.TrainConfig, [f'config/train_{FAMILY_NAMES[family]}_{ref_depth}.py'])
        assert (reference.n_layer, reference.n_head, reference.n_embd, reference.init_from) == (ref_depth, n_head, n_embd, 'scratch')
        if family != 'small':  # small's 4-layer ablation inherits layer lists (inherit_gpt2s_layers*.py)
            inheritune = configure(train.TrainConfig, [f'config/inherit_{FAMILY_NAMES[family]}_{inheritune_depth}.py'])
            assert inheritune.inherit_layers == inheritune_depth and paper_family(family, inheritune) == family
