"""inherit.py: bit-exact copies, every option, layer lists, provenance, fresh-init statistics, bad inputs, train.py."""
import json
import math
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

import inherit
from checkpoint import load_checkpoint, load_model, save_checkpoint
from configurator import configure
from conftest import REPO, run_script
from model import GPT, GPTConfig

SRC = dict(block_size=32, vocab_size=96, n_layer=6, n_head=4, n_embd=64, dropout=0.0, bias=True,
           scale_attn_by_inverse_layer_idx=False, gelu_approximate='tanh')
PARTS = {'attn': ('attn.',), 'mlp': ('mlp.',), 'ln': ('ln_1.', 'ln_2.')}  # state-dict prefixes inside a block


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    """One random 6-layer model saved as this project's checkpoint, as a nanoGPT one, and a 3-layer HF GPT-2 dir."""
    root = tmp_path_factory.mktemp('sources')
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SRC))
    with torch.no_grad():  # move every tensor off its init (LN gains, zero biases), so a re-init cannot pass for a copy
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), 'cpu')
    x = torch.randint(0, SRC['vocab_size'], (2, 16))
    model(x, x)[1].backward()
    optimizer.step()
    save_checkpoint({'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'model_args': dict(SRC),
                     'iter_num': 5, 'best_val_loss': 3.25, 'config': {'dataset': 'toy'}}, root / 'ckpt.pt')
    # nanoGPT: torch.compile'd keys, its model_args (no scale_attn_by_inverse_layer_idx, exact GELU), best_val_loss a tensor
    nano_args = {k: v for k, v in SRC.items() if k not in ('scale_attn_by_inverse_layer_idx', 'gelu_approximate')}
    torch.save({'model': {'_orig_mod.' + k: v for k, v in model.state_dict().items()}, 'model_args': nano_args,
                'iter_num': 7, 'best_val_loss': torch.tensor(3.5), 'config': {}}, root / 'nanogpt.pt')

    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=96, n_positions=32, n_embd=64, n_layer=3, n_head=4, resid_pdrop=0, embd_pdrop=0,
                     attn_pdrop=0, bos_token_id=0, eos_token_id=0, scale_attn_by_inverse_layer_idx=True)
    hf = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf.save_pretrained(root / 'hf')
    return {'project': str(root / 'ckpt.pt'), 'nanogpt': str(root / 'nanogpt.pt'), 'hf': str(root / 'hf')}


def run_inherit(tmp_path, *args):
    """inherit.py in-process; returns the written checkpoint as train.py would read it."""
    out = tmp_path / 'inherited.pt'
    inherit.main([*args, f'--out={out}'])
    return load_checkpoint(out)


def source_state(source):
    return load_model(source)[0].state_dict()


def block_keys(state):
    """Names inside a block: 'ln_1.weight', 'attn.c_attn.weight', ..."""
    return [k.removeprefix('transformer.h.0.') for k in state if k.startswith('transformer.h.0.')]


def fresh_state(model_args, seed=1337):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**model_args)).state_dict()


def full_logits(model, idx):
    return model(idx, targets=idx)[0]


@pytest.mark.parametrize('kind', ['project', 'nanogpt'])
def test_default_copies_embeddings_first_blocks_and_ln_f(tmp_path, sources, kind):
    src = source_state(sources[kind])
    ckpt = run_inherit(tmp_path, f'--source={sources[kind]}', '--inherit_layers=3')
    assert ckpt['model_args'] == dict(SRC, n_layer=3) | ({'gelu_approximate': 'none'} if kind == 'nanogpt' else {})
    assert (ckpt['iter_num'], ckpt['best_val_loss'], ckpt['config']) == (0, 1e9, {})
    assert 'optimizer' not in ckpt
    tgt = ckpt['model']
    assert set(tgt) == {k for k in src if not k.startswith(('transformer.h.3.', 'transformer.h.4.', 'transformer.h.5.'))}
    for k in tgt:
        assert torch.equal(tgt[k], src[k]), k
    model, info = load_model(str(tmp_path / 'inherited.pt'))
    assert model.lm_head.weight is model.transformer.wte.weight
    assert info['inherit']['layers'] == [0, 1, 2] and info['iter_num'] == 0


@pytest.mark.parametrize('kind', ['project', 'nanogpt', 'hf'])
def test_full_depth_reproduces_source_logits_exactly(tmp_path, sources, kind):
    source, _ = load_model(sources[kind])
    L = source.config.n_layer
    run_inherit(tmp_path, f'--source={sources[kind]}', f'--inherit_layers={L}')
    target, _ = load_model(str(tmp_path / 'inherited.pt'))
    idx = torch.randint(0, SRC['vocab_size'], (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(full_logits(target.eval(), idx), full_logits(source.eval(), idx))


@pytest.mark.parametrize('args, inherited', [
    (['--inherit_wpe=False'], {'wte', 'ln_f', 'attn', 'mlp', 'ln'}),
    (['--inherit_ln_f=False'], {'wte', 'wpe', 'attn', 'mlp', 'ln'}),
    (['--inherit_wpe=False', '--inherit_ln_f=False'], {'wte', 'attn', 'mlp', 'ln'}),  # the authors' script
    (['--inherit_block_parts=attn,ln'], {'wte', 'wpe', 'ln_f', 'attn', 'ln'}),  # Table 3 rows
    (['--inherit_block_parts=mlp,ln'], {'wte', 'wpe', 'ln_f', 'mlp', 'ln'}),
    (['--inherit_block_parts=attn,mlp'], {'wte', 'wpe', 'ln_f', 'attn', 'mlp'}),
    (['--inherit_block_parts=none', '--seed=7'], {'wte', 'wpe', 'ln_f'}),
])
def test_options_inherit_exactly_the_chosen_parts(tmp_path, sources, args, inherited):
    src = source_state(sources['project'])
    ckpt = run_inherit(tmp_path, f'--source={sources["project"]}', '--inherit_layers=4', *args)
    seed = 7 if '--seed=7' in args else 1337
    fresh = fresh_state(ckpt['model_args'], seed)  # what inherit.py must leave in the parts it does not copy
    for k, v in ckpt['model'].items():
        if k.startswith('transformer.h.'):
            rest = k.split('.', 3)[3]
            group = next(part for part, prefixes in PARTS.items() if rest.startswith(prefixes))
        else:
            group = {'transformer.wte.weight': 'wte', 'lm_head.weight': 'wte', 'transformer.wpe.weight': 'wpe'}.get(k, 'ln_f')
        if group in inherited:
            assert torch.equal(v, src[k]), k
        else:
            assert torch.equal(v, fresh[k]) and not torch.allclose(v, src[k]), k
    p = ckpt['inherit']
    names = {'wte/lm_head': 'wte', 'wpe': 'wpe', 'ln_f': 'ln_f', 'blocks.attn': 'attn', 'blocks.mlp': 'mlp', 'blocks.ln': 'ln'}
    assert {names[g] for g in p['inherited']} == inherited
    assert {names[g] for g in p['reinitialized']} == set(names.values()) - inherited
    assert p['seed'] == seed
    assert p['params_inherited'] + p['params_fresh'] == GPT(GPTConfig(**ckpt['model_args'])).get_num_params(non_embedding=False)


def test_fresh_parts_have_gpt2_init_statistics_of_the_target_depth(tmp_path, sources):
    ckpt = run_inherit(tmp_path, f'--source={sources["project"]}', '--inherit_layers=3', '--inherit_block_parts=none',
                       '--inherit_wpe=False', '--inherit_ln_f=False')
    sd = ckpt['model']
    stacked = lambda suffix: torch.cat([sd[f'transformer.h.{i}.{suffix}'].flatten() for i in range(3)])
    proj_std = 0.02 / math.sqrt(2 * 3)  # the target's 3 layers, not the source's 6 (0.02 / sqrt(12) = 0.0058)
    for suffix, std in [('attn.c_attn.weight', 0.02), ('mlp.c_fc.weight', 0.02),
                        ('attn.c_proj.weight', proj_std), ('mlp.c_proj.weight', proj_std)]:
        assert stacked(suffix).std().item() == pytest.approx(std, rel=0.05), suffix
        assert abs(stacked(suffix).mean().item()) < 0.1 * std
    assert sd['transformer.wpe.weight'].std().item() == pytest.approx(0.02, rel=0.05)
    for suffix in ('ln_1.weight', 'ln_2.weight'):
        assert torch.equal(stacked(suffix), torch.ones(3 * SRC['n_embd']))
    assert torch.equal(sd['transformer.ln_f.weight'], torch.ones(SRC['n_embd']))
    for k, v in sd.items():
        if k.endswith('.bias'):
            assert not v.any(), k


@pytest.mark.parametrize('spec, expected', [
    ('0-2,0-2', [0, 1, 2, 0, 1, 2]),  # hybrid stacking
    ('3-5', [3, 4, 5]),  # later layers (Table 4)
    ('0,2,4', [0, 2, 4]),  # DistilBERT-style
    ('5, 0,5', [5, 0, 5]),
    ('[4]', [4]),  # a one-block list; a bare 4 means the first four blocks, as in train.py
    ('4', [0, 1, 2, 3]),
    ('0-5,0-5', list(range(6)) * 2),  # deeper than the source
])
def test_layers_map_source_blocks_to_target_positions(tmp_path, sources, spec, expected):
    src = source_state(sources['project'])
    ckpt = run_inherit(tmp_path, f'--source={sources["project"]}', f'--inherit_layers={spec}')
    assert ckpt['model_args']['n_layer'] == len(expected)
    assert ckpt['inherit']['layers'] == expected
    for i, s in enumerate(expected):
        for k in block_keys(src):
            assert torch.equal(ckpt['model'][f'transformer.h.{i}.{k}'], src[f'transformer.h.{s}.{k}']), (i, k)
    assert not any(k.startswith(f'transformer.h.{len(expected)}.') for k in ckpt['model'])


@pytest.mark.parametrize('args, expected, label', [
    (['--inherit_place=2-5'], [None, None, 2, 3, 4, 5], 'inherited blocks 2-5 of {src} (6L), in place of 6 layers, 0-1 fresh'),  # v4 Fig. 23
    (['--inherit_layers=4', '--inherit_place=0-1=4-5'], [4, 5, None, None],
     'inherited blocks 4-5 of {src} (6L), at positions 0-1 of 4 layers, 2-3 fresh'),
    (['--inherit_place=3=1,0=5, 5=5'], [5, None, None, 1, None, 5],
     'stacked blocks 5,1,5 of {src} (6L), at positions 0,3,5 of 6 layers, 1-2,4 fresh'),
])
def test_place_puts_source_blocks_at_positions_and_leaves_the_rest_fresh(tmp_path, sources, args, expected, label):
    src = source_state(sources['project'])
    ckpt = run_inherit(tmp_path, f'--source={sources["project"]}', *args)
    fresh = fresh_state(ckpt['model_args'])  # a fresh GPT of the target's shape under the same seed
    assert ckpt['model_args']['n_layer'] == len(expected) and ckpt['inherit']['layers'] == expected
    for i, s in enumerate(expected):
        for k in block_keys(src):
            target = ckpt['model'][f'transformer.h.{i}.{k}']
            if s is not None:
                assert torch.equal(target, src[f'transformer.h.{s}.{k}']), (i, k)
            else:
                assert torch.equal(target, fresh[f'transformer.h.{i}.{k}']), (i, k)
                assert not any(torch.equal(target, src[f'transformer.h.{b}.{k}']) for b in range(SRC['n_layer'])), (i, k)
    for k in ('transformer.wte.weight', 'transformer.wpe.weight', 'transformer.ln_f.weight'):
        assert torch.equal(ckpt['model'][k], src[k]), k
    per_block = sum(v.numel() for k, v in src.items() if k.startswith('transformer.h.0.'))
    assert ckpt['inherit']['params_fresh'] == expected.count(None) * per_block
    assert inherit.describe_warm_start(ckpt['inherit']) == label.format(src=inherit.short_source(sources['project']))


PLACEMENTS_THAT_CANNOT_BE_MADE = [
    (['--inherit_place=6'], "inherit_place='6': position 6 is out of range: the target has 6 layers, numbered 0-5; a "
                            "deeper target: inherit_layers=k"),
    (['--inherit_layers=2', '--inherit_place=2=0'], "inherit_place='2=0': position 2 is out of range: the target has 2 "
                                                    "layers, numbered 0-1; a deeper target: inherit_layers=k"),
    (['--inherit_place=0=6'], "inherit_place='0=6': block 6 is out of range: the source has 6 blocks, numbered 0-5"),
    (['--inherit_place=1=0,0-2'], "inherit_place='1=0,0-2' places two blocks at position 1"),
    (['--inherit_place=0-1=3'], "inherit_place='0-1=3': '0-1=3' puts 1 blocks at 2 positions"),
    (['--inherit_place=0=x'], "inherit_place='0=x': 'x' is not a block index or an a-b range; write e.g. '0-5,0-5' or "
                              "'0,2,4,6'"),
    (['--inherit_layers=0,1', '--inherit_place=0'], "inherit_place='0' says which block goes where; give only the "
                                                    "target's depth (inherit_layers=k, or unset: the source's) and no inherit_select"),
]


@pytest.mark.parametrize('args, message', PLACEMENTS_THAT_CANNOT_BE_MADE)
def test_impossible_placements_exit_1_in_one_line_and_write_nothing(tmp_path, sources, args, message):
    out = tmp_path / 'out.pt'
    proc = run_script('inherit.py', f'--source={sources["project"]}', *args, f'--out={out}', check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith('error: inherit_') and message in lines[0], proc.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('args, message', [
    *PLACEMENTS_THAT_CANNOT_BE_MADE,
    (['--inherit_place=5', '--inherit_layers=5'], "inherit_place='5': position 5 is out of range: the target has 5 "
                                                  "layers, numbered 0-4; a deeper target: inherit_layers=k"),
    (['--inherit_place=0=5', '--inherit_layers=5'], None),  # the last block, at the first position: fine
    (['--inherit_layers=2', '--inherit_select=deepest_but_last', '--inherit_place=0'],
     "inherit_place='0' says which block goes where; give only the target's depth (inherit_layers=k, or unset: the "
     "source's) and no inherit_select"),
])
def test_placements_that_cannot_be_made_are_one_line_errors_in_process(tmp_path, sources, args, message):
    """The same checks in the pytest process, where mutation testing sees them (tests/mutate.py)."""
    if message is None:
        assert run_inherit(tmp_path, f'--source={sources["project"]}', *args)['inherit']['layers'][0] == 5
        return
    with pytest.raises(SystemExit) as e:
        inherit.main([f'--source={sources["project"]}', *args, f'--out={tmp_path / "out.pt"}'])
    assert str(e.value) == f'error: {message}'
    assert os.listdir(tmp_path) == []


def test_out_directory_gets_ckpt_pt(tmp_path, sources):
    inherit.main([f'--source={sources["project"]}', '--inherit_layers=1', f'--out={tmp_path / "run"}{os.sep}'])
    assert load_checkpoint(tmp_path / 'run')['model_args']['n_layer'] == 1  # reads run/ckpt.pt


def test_provenance_is_stored_and_printed(tmp_path, sources, capsys):
    ckpt = run_inherit(tmp_path, f'--source={sources["project"]}', '--inherit_layers=0-1,4', '--inherit_ln_f=False')
    p = ckpt['inherit']
    assert p['source'] == os.path.abspath(sources['project']) and p['source_kind'] == 'checkpoint'
    assert p['source_model_args'] == SRC
    assert (p['source_iter_num'], p['source_best_val_loss']) == (5, 3.25)
    assert p['layers'] == [0, 1, 4] and p['block_parts'] == ['attn', 'mlp', 'ln'] and p['seed'] == 1337
    ln_f = 2 * SRC['n_embd']
    assert p['params_fresh'] == ln_f
    printed = capsys.readouterr().out
    assert 'source blocks 0-1,4' in printed and 'ln_f' in printed and f"{p['params_inherited']:,} inherited" in printed
    assert f'{ln_f:,} fresh' in printed and 'note' not in printed


def test_moved_blocks_under_inverse_layer_scaling_are_noted_not_rescaled(tmp_path, sources, capsys):
    ckpt = run_inherit(tmp_path, f'--source={sources["hf"]}', '--inherit_layers=2,1')
    assert ckpt['model_args']['scale_attn_by_inverse_layer_idx'] is True
    assert any('2->0' in note and 'scale' in note for note in ckpt['inherit']['notes'])
    assert '2->0' in capsys.readouterr().out
    model, _ = load_model(str(tmp_path / 'inherited.pt'))
    head_dim = SRC['n_embd'] // SRC['n_head']
    assert model.transformer.h[0].attn.scale == 1 / math.sqrt(head_dim)  # position 0's scale, as the model defines it
    assert run_inherit(tmp_path, f'--source={sources["hf"]}', '--inherit_layers=2')['inherit']['notes'] == []
    note = ("scale_attn_by_inverse_layer_idx: attention logits are scaled by 1/(position+1) at each block's new position, "
            "so moved blocks (source->target {}) see a different scale than in the source")
    for layers, moved in (('2,2,1,0', '2->0, 2->1, 1->2, 0->3'), ('2,2,1,0,2', '2->0, 2->1, 1->2, 0->3, ...')):
        assert run_inherit(tmp_path, f'--source={sources["hf"]}', f'--inherit_layers={layers}')['inherit']['notes'] == [
            note.format(moved)]
    assert run_inherit(tmp_path, f'--source={sources["hf"]}', '--inherit_layers=2,1',  # no attention weights moved
                       '--inherit_block_parts=mlp,ln')['inherit']['notes'] == []


def test_half_width_takes_the_first_heads_hidden_units_and_dims(tmp_path, sources):
    src = source_state(sources['project'])  # 4 heads of 16 dims, 64 wide, biases
    ckpt = run_inherit(tmp_path, f'--source={sources["project"]}', '--inherit_layers=6', '--inherit_n_head=2', '--inherit_n_embd=32')
    assert ckpt['model_args'] == dict(SRC, n_head=2, n_embd=32)
    tgt, C, D = ckpt['model'], SRC['n_embd'], 32
    for i in range(6):
        s, t = (lambda k: src[f'transformer.h.{i}.{k}']), (lambda k: tgt[f'transformer.h.{i}.{k}'])
        w = s('attn.c_attn.weight')  # rows: q (0-63), k (64-127), v (128-191), 16 rows per head
        assert torch.equal(t('attn.c_attn.weight'), torch.cat([w[0:32, :32], w[64:96, :32], w[128:160, :32]]))
        for h in range(2):  # head h's key rows in the target are head h's key rows in the source
            assert torch.equal(t('attn.c_attn.weight')[D + 16 * h:D + 16 * (h + 1)], w[C + 16 * h:C + 16 * (h + 1), :32])
        b = s('attn.c_attn.bias')
        assert torch.equal(t('attn.c_attn.bias'), torch.cat([b[0:32], b[64:96], b[128:160]]))
        assert torch.equal(t('attn.c_proj.weight'), s('attn.c_proj.weight')[:32, :32])  # residual rows, heads' columns
        assert torch.equal(t('mlp.c_fc.weight'), s('mlp.c_fc.weight')[:128, :32])  # the first 4 * 32 hidden units
        assert torch.equal(t('mlp.c_fc.bias'), s('mlp.c_fc.bias')[:128])
        assert torch.equal(t('mlp.c_proj.weight'), s('mlp.c_proj.weight')[:32, :128])
        for k in ('attn.c_proj.bias', 'mlp.c_proj.bias', 'ln_1.weight', 'ln_1.bias', 'ln_2.weight', 'ln_2.bias'):
            assert torch.equal(t(k), s(k)[:32]), k
    for k in ('transformer.wte.weight', 'lm_head.weight', 'transformer.wpe.weight'):
        assert torch.equal(tgt[k], src[k][:, :32]), k
    for k in ('transformer.ln_f.weight', 'transformer.ln_f.bias'):
        assert torch.equal(tgt[k], src[k][:32]), k
    p = ckpt['inherit']
    assert p['width'] == {'n_head': 2, 'n_embd': 32} and p['params_fresh'] == 0
    assert p['notes'] == ['width: the first 2 of 4 heads and 32 of 64 dimensions']
    model, _ = load_model(str(tmp_path / 'inherited.pt'))
    assert model.transformer.h[0].attn.scale == 1 / math.sqrt(16)  # heads keep the source's size and scale
    # one of the two options is enough: 32 dims of 16-dim heads are 2 heads
    assert run_inherit(tmp_path, f'--source={sources["project"]}', '--inherit_layers=1', '--inherit_n_embd=32')['model_args']['n_head'] == 2


def test_full_width_is_the_identity(tmp_path, sources):
    source, _ = load_model(sources['project'])
    ckpt = run_inherit(tmp_path, f'--source={sources["project"]}', '--inherit_layers=6', '--inherit_n_head=4', '--inherit_n_embd=64')
    assert ckpt['inherit']['width'] is None and ckpt['inherit']['notes'] == []
    src = source.state_dict()
    assert set(ckpt['model']) == set(src) and all(torch.equal(v, src[k]) for k, v in ckpt['model'].items())
    target, _ = load_model(str(tmp_path / 'inherited.pt'))
    idx = torch.randint(0, SRC['vocab_size'], (2, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(full_logits(target.eval(), idx), full_logits(source.eval(), idx))


def test_dropout_and_block_size_can_change(tmp_path, sources):
    src = source_state(sources['project'])
    ckpt = run_inherit(tmp_path, f'--source={sources["project"]}', '--inherit_layers=2', '--dropout=0.1', '--block_size=16')
    assert ckpt['model_args'] == dict(SRC, n_layer=2, dropout=0.1, block_size=16)
    assert torch.equal(ckpt['model']['transformer.wpe.weight'], src['transformer.wpe.weight'][:16])
    assert any('cropped' in note for note in ckpt['inherit']['notes'])
    longer = run_inherit(tmp_path, f'--source={sources["project"]}', '--inherit_layers=2', '--block_size=64', '--inherit_wpe=False')
    assert longer['model']['transformer.wpe.weight'].shape == (64, SRC['n_embd'])
    load_model(str(tmp_path / 'inherited.pt'))
    with pytest.raises(SystemExit) as e:  # a longer context with the source's position embeddings
        run_inherit(tmp_path / 'long', f'--source={sources["project"]}', '--inherit_layers=2', '--block_size=33')
    assert str(e.value) == ("error: block_size=33 is longer than the source's 32, so its position embeddings cannot be "
                            "inherited; add --inherit_wpe=False or use a block_size <= 32")


def test_inherit_function_leaves_the_callers_rng_alone(sources):
    model, info = load_model(sources['project'])
    torch.manual_seed(123)
    state = torch.get_rng_state()
    options = inherit.InheritScriptConfig(inherit_layers=[1, 1], inherit_block_parts='attn', seed=3)
    a = inherit.inherit(model, info, options)
    assert torch.equal(torch.get_rng_state(), state)
    b = inherit.inherit(model, info, options)
    c = inherit.inherit(model, info, replace(options, seed=4))
    fresh_key = 'transformer.h.0.mlp.c_fc.weight'
    assert all(torch.equal(a['model'][k], b['model'][k]) for k in a['model'])
    assert not torch.equal(a['model'][fresh_key], c['model'][fresh_key])
    with pytest.raises(SystemExit, match='^error: block index 6 is out of range'):
        inherit.inherit(model, info, replace(options, inherit_layers=[0, 6]))
    with pytest.raises(SystemExit, match='^error: the layer list is empty'):
        inherit.inherit(model, info, replace(options, inherit_layers=[]))


@pytest.mark.parametrize('parts, message', [
    ('attn,foo', "inherit_block_parts='attn,foo'"),
    (['attn'], "inherit_block_parts must be a string such as 'all' or 'attn,ln', got ['attn']"),
])
def test_block_parts_errors_name_the_option(sources, parts, message):
    model, info = load_model(sources['project'])
    with pytest.raises(SystemExit) as e:
        inherit.inherit(model, info, inherit.InheritScriptConfig(inherit_layers=2, inherit_block_parts=parts))
    assert str(e.value).startswith(f'error: {message}'), str(e.value)


@pytest.mark.parametrize('layers, message', [
    ([0, True], 'block index True is out of range'),  # a bool is no block index, though True == 1
    ([0, 1.0], 'block index 1.0 is out of range'),
    ([0, -1], 'block index -1 is out of range'),
    ((2, 6, 1), 'block index 6 is out of range: the source has 6 blocks, numbered 0-5'),
])
def test_layer_lists_of_other_than_block_indices_are_one_line_errors(sources, layers, message):
    model, info = load_model(sources['project'])
    with pytest.raises(SystemExit) as e:
        inherit.inherit(model, info, inherit.InheritScriptConfig(inherit_layers=layers))
    assert str(e.value).startswith(f'error: {message}') and '\n' not in str(e.value), str(e.value)


@pytest.mark.parametrize('args, message', [
    (['--inherit_layers=7'], 'only 6 blocks'),
    (['--inherit_layers=0'], 'positive integer'),
    (['--inherit_layers=-2'], 'positive integer'),
    (['--inherit_layers=two'], 'not a block index'),
    (['--inherit_layers=0,6'], 'out of range'),
    (['--inherit_layers=,'], 'not a block index'),
    (['--inherit_layers=0-2-4'], 'not a block index'),
    (['--inherit_layers=0-1,a'], 'not a block index'),
    (['--inherit_layers=3-1'], 'runs backwards'),
    (['--inherit_layers=2', '--inherit_n_embd=40'], "not a multiple of the source's head size 16"),
    (['--inherit_layers=2', '--inherit_n_head=8'], 'wider than the source'),
    (['--inherit_layers=2', '--inherit_n_embd=128'], 'wider than the source'),
    (['--inherit_layers=2', '--inherit_n_head=1', '--inherit_n_embd=32'], "must equal the source's head size 16"),
    (['--inherit_layers=2', '--inherit_n_head=0'], 'positive integer'),
    (['--inherit_layers=2', '--vocab_size=128'], "unknown config key 'vocab_size'"),
    (['--inherit_layers=2', '--block_size=64'], 'inherit_wpe=False'),
    (['--inherit_layers=2', '--dropout=1.5'], 'dropout'),
    (['--inherit_layers=2', '--inherit_block_parts=attn,foo'], "unknown block part 'foo'"),
    (['--n_layers=2'], 'unknown config key'),
])
def test_bad_selections_fail_in_one_line_and_write_nothing(tmp_path, sources, args, message):
    out = tmp_path / 'out.pt'
    with pytest.raises(SystemExit) as e:
        inherit.main([f'--source={sources["project"]}', *args, f'--out={out}'])
    assert str(e.value).startswith('error: ') and '\n' not in str(e.value) and message in str(e.value)
    assert os.listdir(tmp_path) == []


def test_cli_bad_inputs_exit_1_with_one_stderr_line(tmp_path, sources):
    out = tmp_path / 'out.pt'
    out.write_bytes(b'previous')  # a failed run leaves an existing output as it was
    for args in (['--inherit_layers=9'], ['--inherit_layers=2', '--source=nowhere.pt']):  # the other cases run in-process above
        proc = run_script('inherit.py', f'--source={sources["project"]}', *args, f'--out={out}', check=False)
        assert proc.returncode == 1, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: '), (args, proc.stderr)
        assert out.read_bytes() == b'previous' and os.listdir(tmp_path) == ['out.pt']


# the steps of inherit() called one by one, on hand-written model_args, with the expected values worked out by hand
# (their errors are compared whole: a wrong number or name in a message is a bug too)
GPT2_ARGS = dict(n_head=4, n_embd=64)  # heads of 16 dimensions
ROPE_ARGS = dict(GPT2_ARGS, position='rope')
QWEN3_ARGS = dict(n_head=4, n_kv_head=2, n_embd=48, head_dim=16)  # heads of their own size, 4 * 16 != 48
GQA_ARGS = dict(n_head=8, n_kv_head=2, n_embd=128, mlp='swiglu', mlp_hidden=344)  # 4 query heads per key/value head


def fails_with(message, function, *args):
    with pytest.raises(SystemExit) as e:
        function(*args)
    assert str(e.value) == f'error: {message}'


@pytest.mark.parametrize('source, n_head, n_embd, expected', [
    (GPT2_ARGS, None, None, (4, 64)),
    (GPT2_ARGS, 2, None, (2, 32)),  # 2 heads of 16
    (GPT2_ARGS, None, 32, (2, 32)),
    (GPT2_ARGS, 1, None, (1, 16)),  # one head is a width
    (QWEN3_ARGS, 2, None, (2, 48)),  # with head_dim the two narrow apart: n_embd stays the source's
    (QWEN3_ARGS, None, 20, (4, 20)),
    (QWEN3_ARGS, 2, 20, (2, 20)),  # 20 is no multiple of 48 / 4, which only matters without head_dim
])
def test_width_step_target_width(source, n_head, n_embd, expected):
    assert inherit.target_width(source, n_head, n_embd) == expected


@pytest.mark.parametrize('source, n_head, n_embd, message', [
    (GPT2_ARGS, 0, None, "n_head must be a positive integer, got 0"),
    (GPT2_ARGS, True, None, "n_head must be a positive integer, got True"),
    (GPT2_ARGS, None, 0, "n_embd must be a positive integer, got 0"),
    (GPT2_ARGS, None, 40, "n_embd=40 is not a multiple of the source's head size 16 (64/4); heads are copied whole, "
                          "so use a multiple of 16"),
    (ROPE_ARGS, None, 40, "n_embd=40 is not a multiple of the source's head size 16 (64/4); heads are copied whole "
                          "(RoPE rotates dimension j with j + head_size/2), so use a multiple of 16"),
    (GPT2_ARGS, 8, None, "n_head=8, n_embd=128 is wider than the source (4 heads, 64 wide); a warm start keeps the "
                         "source's first heads and dimensions, so it can only shrink"),
    (QWEN3_ARGS, 2, 96, "n_head=2, n_embd=96 is wider than the source (4 heads, 48 wide); a warm start keeps the "
                        "source's first heads and dimensions, so it can only shrink"),  # wider in n_embd only
    (GPT2_ARGS, 1, 32, "n_embd/n_head = 32/1 must equal the source's head size 16 (heads are copied whole); for 1 "
                       "heads use n_embd=16"),
])
def test_width_step_target_width_errors(source, n_head, n_embd, message):
    fails_with(message, inherit.target_width, source, n_head, n_embd)


def test_width_step_narrowed_fields():
    # 4 of 8 query heads read 4 / (8 / 2) = 1 key/value head; 344 hidden units of 128 dims -> 344 * 64 / 128 = 172
    for n_head, n_embd, expected in ((4, 64, {'n_kv_head': 1, 'mlp_hidden': 172}),
                                     (8, 48, {'n_kv_head': 2, 'mlp_hidden': 129})):
        scaled = inherit.narrowed_fields(GQA_ARGS, n_head, n_embd)
        assert scaled == expected and all(type(v) is int for v in scaled.values())  # 1.0 == 1 but breaks a shape
    assert inherit.narrowed_fields(GPT2_ARGS, 2, 32) == {}  # GPT-2 has neither field
    fails_with("n_head=6 would split a key/value group: the source's 8 query heads share 2 key/value heads, 4 each; "
               "pass an inherit_n_head that is a multiple of 4", inherit.narrowed_fields, GQA_ARGS, 6, 128)
    fails_with("n_embd=40 scales mlp_hidden=344 (of n_embd=128) to 107.5 hidden units, not a whole number; pass an "
               "inherit_n_embd that makes 344 * n_embd / 128 an integer", inherit.narrowed_fields, GQA_ARGS, 8, 40)


def test_width_step_stacked_rows():
    # c_attn stacks q (n_head heads), k and v (n_kv_head heads each) of 16 rows; SwiGLU's c_fc stacks gate and up
    assert inherit.stacked_rows('transformer.h.3.attn.c_attn.weight', GQA_ARGS) == [128, 32, 32]
    assert inherit.stacked_rows('transformer.h.3.attn.c_attn.bias', GPT2_ARGS) == [64, 64, 64]
    assert inherit.stacked_rows('transformer.h.3.mlp.c_fc.weight', GQA_ARGS) == [344, 344]
    assert inherit.stacked_rows('transformer.h.3.mlp.c_fc.weight', dict(GQA_ARGS, mlp_hidden=None)) == [512, 512]
    assert inherit.stacked_rows('transformer.h.3.mlp.c_fc.weight', GPT2_ARGS) is None  # GELU's c_fc stacks nothing
    assert inherit.stacked_rows('transformer.h.3.mlp.c_proj.weight', GQA_ARGS) is None
    assert inherit.stacked_rows('transformer.h.3.attn.c_proj.weight', GQA_ARGS) is None


def test_layers_step_target_depth_and_parse_layers():
    assert [inherit.target_depth(k, 6) for k in (None, 1, 6)] == [None, 1, 6]
    for spec in ('3', True):  # a string reaches parse_layers elsewhere; a bool is no number of blocks
        fails_with(f"inherit_layers={spec!r} must be a number of blocks k, a list of block indices or a string such as "
                   "'0-5,0-5'", inherit.target_depth, spec, 6)
    fails_with("inherit_layers must be a positive integer, got 0", inherit.target_depth, 0, 6)
    fails_with("inherit_layers=7 but the source has only 6 blocks; to repeat blocks list them (e.g. '0-5,0-5')",
               inherit.target_depth, 7, 6)
    assert inherit.parse_layers(' 2-4,0, 1-1') == [2, 3, 4, 0, 1]
    fails_with("layers='x': 'x' is not a block index or an a-b range; write e.g. '0-5,0-5' or '0,2,4,6'",
               inherit.parse_layers, 'x')
    # ASCII digits only: Python's int() reads the Arabic-Indic three, which no one means as a block index
    fails_with("inherit_layers='\u0663': '\u0663' is not a block index or an a-b range; write e.g. '0-5,0-5' or "
               "'0,2,4,6'", inherit.parse_layers, '\u0663', 'inherit_layers')
    fails_with("inherit_layers='3-1': range 3-1 runs backwards; list the indices one by one to reverse the order",
               inherit.parse_layers, '3-1', 'inherit_layers')


def test_overrides_step_target_model_args():
    args = inherit.target_model_args(GPT2_ARGS, {'dropout': 0, 'block_size': 1})  # both ends of what is allowed
    assert args == dict(GPT2_ARGS, dropout=0.0, block_size=1) and type(args['dropout']) is float
    assert inherit.target_model_args(GPT2_ARGS, {}) == GPT2_ARGS
    for value in (1, False):  # 1 is no dropout rate; a bool is no number here
        fails_with(f"dropout must be a number in [0, 1), got {value!r}", inherit.target_model_args, GPT2_ARGS,
                   {'dropout': value})
    for value in (0, True):
        fails_with(f"block_size must be a positive integer, got {value!r}", inherit.target_model_args, GPT2_ARGS,
                   {'block_size': value})
    fails_with("cannot set 'vocab_size' on the inherited model; settable: inherit_n_head, inherit_n_embd, block_size, "
               "dropout", inherit.target_model_args, GPT2_ARGS, {'vocab_size': 128})


def test_place_step_parse_place():
    assert inherit.parse_place('15-17') == {15: 15, 16: 16, 17: 17}
    assert inherit.parse_place('0-1=20-21,5=3') == {0: 20, 1: 21, 5: 3}
    for spec in (None, '  '):
        fails_with(f"inherit_place={spec!r} must be a string of 'P=B' items such as '15-23=15-23' (a bare '15-23': "
                   "in place)", inherit.parse_place, spec)
    not_an_index = "inherit_place='{}': '{}' is not a block index or an a-b range; write e.g. '0-5,0-5' or '0,2,4,6'"
    fails_with(not_an_index.format('y=0', 'y'), inherit.parse_place, 'y=0')  # the position
    fails_with(not_an_index.format('1,0=x', 'x'), inherit.parse_place, '1,0=x')  # the block, in the second item
    fails_with("inherit_place='0=3-1': range 3-1 runs backwards; list the indices one by one to reverse the order",
               inherit.parse_place, '0=3-1')
    fails_with("inherit_place='0-1=3': '0-1=3' puts 1 blocks at 2 positions", inherit.parse_place, '0-1=3')
    fails_with("inherit_place='1=0,0-2' places two blocks at position 1", inherit.parse_place, '1=0,0-2')


def write_tiny_dataset(root):
    data = root / 'tiny'
    data.mkdir()
    rng = np.random.default_rng(0)
    sizes = {'train': 4000, 'val': 1000}
    for split, n in sizes.items():
        rng.integers(0, SRC['vocab_size'], n, dtype=np.uint16).tofile(data / f'{split}.bin')
    meta = {'tokenizer': 'toy', 'vocab_size': SRC['vocab_size'], 'dtype': 'uint16', 'eot_token': 0,
            'train_tokens': sizes['train'], 'val_tokens': sizes['val'], 'source': 'random'}
    (data / 'meta.json').write_text(json.dumps(meta))


@pytest.mark.skipif(not (REPO / 'train.py').exists(), reason='train.py not written yet')
def test_cli_checkpoint_trains_with_train_py(tmp_path, sources):
    out = tmp_path / 'inherited.pt'
    out.write_bytes(b'an older file')  # replaced atomically
    proc = run_script('inherit.py', f'--source={sources["nanogpt"]}', '--inherit_layers=3', f'--out={out}')
    assert 'source blocks 0-2' in proc.stdout and f'--init_from={out}' in proc.stdout
    assert sorted(os.listdir(tmp_path)) == ['inherited.pt']
    inherited = load_checkpoint(out)['model']
    write_tiny_dataset(tmp_path)
    import train  # in-process, as grow.py calls it
    train.train(configure(train.TrainConfig, [
        f'--init_from={out}', f'--data_root={tmp_path}', '--dataset=tiny', f'--out_dir={tmp_path / "run"}', '--device=cpu',
        '--compile=False', '--dtype=float32', '--max_iters=2', '--eval_interval=2', '--eval_iters=2', '--batch_size=2',
        '--block_size=16', '--gradient_accumulation_steps=1', '--warmup_iters=0', '--lr_decay_iters=2']))
    trained = load_checkpoint(tmp_path / 'run' / 'ckpt.pt')
    assert trained['iter_num'] == 2 and trained['model_args']['n_layer'] == 3
    assert not torch.equal(trained['model']['transformer.h.2.attn.c_attn.weight'], inherited['transformer.h.2.attn.c_attn.weight'])


# ----------------------------------------------------------------------------- selection strategies


def per_layer(values):
    return {'per_layer': list(values)}


def angular_matrix(steps):
    """d(a, b) of a stream whose block l turns it by steps[l] (in units of pi), all turns in one plane and one sense."""
    boundary = np.concatenate([[0.0], np.cumsum(steps)])
    return {'matrix': np.abs(boundary[:, None] - boundary[None, :]).tolist()}


@pytest.mark.parametrize('name, metrics, k, expected', [
    ('first', {}, 3, [0, 1, 2]),
    ('first', {}, None, [0, 1, 2, 3, 4, 5]),  # inherit_layers unset: every block
    ('lazy_cut', {'max_rank': per_layer([9, 4, 2.5, 1, 1.2, 1])}, None, [0, 1, 2]),  # before the first lazy layer
    ('lazy_cut', {'max_rank': per_layer([9, 4, 2.5, 1, 1.2, 1])}, 3, [0, 1, 2]),
    ('shortgpt', {'block_influence': per_layer([0.9, 0.01, 0.3, 0.02, 0.5, 0.4])}, 4, [0, 2, 4, 5]),
    ('shortgpt', {'block_influence': per_layer([0.9, 0.2, 0.2, 0.2, 0.5, 0.2])}, 3, [0, 1, 4]),  # ties: the deeper go
    ('shortgpt', {'block_influence': per_layer([0.9, 0.01, 0.3, 0.02, 0.5, 0.4])}, None, [0, 1, 2, 3, 4, 5]),
    ('angular', {'angular_distance': angular_matrix([0.3, 0.1, 0.01, 0.02, 0.05, 0.2])}, 4, [0, 1, 4, 5]),
    ('angular', {'angular_distance': angular_matrix([0.3, 0.1, 0.01, 0.02, 0.05, 0.2])}, 3, [0, 1, 5]),  # 2-4: 0.08
    ('angular', {'angular_distance': angular_matrix([0.3, 0.1, 0.01, 0.02, 0.05, 0.2])}, 1, [0]),
    ('angular', {'angular_distance': angular_matrix([0.1] * 6)}, 4, [0, 1, 2, 3]),  # ties: the deepest run goes
    ('angular', {'angular_distance': angular_matrix([0.1] * 6)}, 6, [0, 1, 2, 3, 4, 5]),
    ('deepest_but_last', {}, 4, [0, 1, 2, 5]),
    ('deepest_but_last', {}, 1, [5]),
    ('deepest_but_last', {}, 6, [0, 1, 2, 3, 4, 5]),
    ('ablation', {'attention_ablation': per_layer([1.2, 0.0, 0.2, 0.05, 0.1, -0.01]),
                  'mlp_ablation': per_layer([0.5, 0.0, 0.1, 0.01, -0.02, 0.3])}, 3, [0, 2, 5]),  # costs 1.7 0 .3 .06 .08 .29
])
def test_selection_functions_on_hand_made_metrics(name, metrics, k, expected):
    strategy = inherit.SELECTIONS[name]
    assert set(strategy.needs) == set(metrics)
    if k is None and not strategy.picks_depth:
        k = 6  # what select_blocks hands a strategy when inherit_layers is unset
    assert strategy.choose(metrics, 6, k) == expected


@pytest.mark.parametrize('max_rank, k, message', [
    ([9, 4, 2.5, 1.1, 1.2, 1.05], None, 'no layer of the source is lazy (MaxRank = 1), so lazy_cut has no blocks to '
                                         'keep; give the depth with inherit_layers=k and another inherit_select'),
    ([1, 4, 2.5, 1, 1.2, 1], None, "the source's layer 0 is lazy already, so lazy_cut has no blocks to keep; give the "
                                   "depth with inherit_layers=k and another inherit_select"),
    ([9, 4, 2.5, 1, 1.2, 1], 4, 'lazy_cut keeps the 3 blocks before the first lazy layer, but inherit_layers=4; set '
                                'inherit_layers=3 or leave it unset'),
])
def test_lazy_cut_without_a_place_to_cut_is_one_line_error(max_rank, k, message):
    with pytest.raises(SystemExit) as e:
        inherit.SELECTIONS['lazy_cut'].choose({'max_rank': per_layer(max_rank)}, 6, k)
    assert str(e.value) == f'error: {message}'


def constant_dataset(root, token=5, n=3000):
    """A val (and train) split that is one token over and over, so that a block adding the direction of that
    token's embedding lowers the loss and removing it raises the loss."""
    data = root / 'constant'
    data.mkdir()
    for split in ('train', 'val'):
        np.full(n, token, dtype=np.uint16).tofile(data / f'{split}.bin')
    (data / 'meta.json').write_text(json.dumps({'tokenizer': 'toy', 'vocab_size': SRC['vocab_size'], 'dtype': 'uint16',
                                                'eot_token': None, 'train_tokens': n, 'val_tokens': n, 'source': 'constant'}))
    return str(root)


def helpful_model(idle, token=5):
    """A 6-layer GPT whose blocks in `idle` add nothing (output projections zero: BI 0, ablation deltas 0, no
    angular distance across them) and whose other blocks add a constant along `token`'s embedding from both their
    attention and their MLP (zero weights, biases along it), each of which helps predict `token`."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SRC))
    direction = model.transformer.wte.weight[token].detach() / model.transformer.wte.weight[token].norm().item()
    with torch.no_grad():
        for i, block in enumerate(model.transformer.h):
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                proj.weight.zero_()
                proj.bias.copy_(torch.zeros_like(direction) if i in idle else (0.2 + 0.1 * i) * direction)
    return model.eval()


@pytest.mark.parametrize('name, idle, expected', [
    ('shortgpt', (1, 4), [0, 2, 3, 5]),
    ('ablation', (1, 4), [0, 2, 3, 5]),
    ('shortgpt', (2, 3), [0, 1, 4, 5]),
    ('ablation', (2, 3), [0, 1, 4, 5]),
    ('angular', (2, 3), [0, 1, 4, 5]),  # the one run of 2 blocks that adds nothing
])
def test_probe_driven_selection_drops_the_blocks_that_add_nothing(tmp_path, name, idle, expected, capsys):
    model = helpful_model(idle)
    cfg = inherit.InheritScriptConfig(inherit_layers=4, inherit_select=name, dataset='constant',
                                      data_root=constant_dataset(tmp_path))
    ckpt = inherit.inherit(model, {'source': 'helpful'}, cfg)
    p = ckpt['inherit']
    assert p['layers'] == expected and ckpt['model_args']['n_layer'] == 4
    scores = p['selection']['scores']
    assert p['selection']['method'] == name and set(scores) == set(inherit.SELECTIONS[name].needs)
    for metric, result in scores.items():
        if metric != 'angular_distance':  # per layer: exactly nothing where the block adds nothing, more elsewhere
            assert all((abs(v) < 1e-9) == (l in idle) for l, v in enumerate(result['per_layer'])), (metric, result)
    if name == 'ablation':
        assert all(v > 0 for l, v in enumerate(scores['attention_ablation']['per_layer']) if l not in idle)
    assert p['selection']['probe'] == {'dataset': 'constant', 'num_seqs': 100, 'seq_len': 32, 'tau': 0.9,
                                       'ablation_windows': 256, 'seed': 1337}  # the probe's windows, cut to the context
    src = model.state_dict()
    for i, s in enumerate(expected):
        assert torch.equal(ckpt['model'][f'transformer.h.{i}.mlp.c_proj.bias'], src[f'transformer.h.{s}.mlp.c_proj.bias'])
    assert inherit.describe_layers(p).endswith(f'(6L), chosen by {name}')
    print(inherit.describe(p))
    assert f'chosen by {name} from the source\'s probe on constant val (100 x 32 tokens)' in capsys.readouterr().out


def test_lazy_cut_keeps_the_blocks_before_the_lazy_layers(tmp_path, sources):
    from test_probe import crafted_model, ARGS as LAZY_ARGS, LAZY  # layers 2 and 3 of 4 attend to position 0 only
    root = tmp_path / 'data'
    (root / 'toy').mkdir(parents=True)
    np.random.default_rng(0).integers(0, LAZY_ARGS['vocab_size'], 3000, dtype=np.uint16).tofile(root / 'toy' / 'val.bin')
    (root / 'toy' / 'meta.json').write_text(json.dumps({'tokenizer': 'toy', 'vocab_size': LAZY_ARGS['vocab_size'],
                                                        'dtype': 'uint16', 'eot_token': None}))
    cfg = inherit.InheritScriptConfig(inherit_select='lazy_cut', dataset='toy', data_root=str(root))
    p = inherit.inherit(crafted_model(), {'source': 'crafted'}, cfg)['inherit']
    assert p['layers'] == list(range(LAZY[0])) and p['selection']['scores']['max_rank']['per_layer'][LAZY[0]] == 1.0
    # a random model has no lazy layers, so nowhere to cut
    write_tiny_dataset(tmp_path)
    with pytest.raises(SystemExit, match='no layer of the source is lazy'):
        inherit.inherit(load_model(sources['project'])[0], {'source': 'x'}, replace(cfg, dataset='tiny', data_root=str(tmp_path)))


def test_deepest_but_last_needs_no_probe_and_first_records_nothing(tmp_path, sources):
    model, info = load_model(sources['project'])
    cfg = inherit.InheritScriptConfig(inherit_layers=3, inherit_select='deepest_but_last', dataset='nowhere')
    p = inherit.inherit(model, info, cfg)['inherit']
    assert p['layers'] == [0, 1, 5] and p['selection'] == {'method': 'deepest_but_last', 'scores': {}, 'probe': None}
    assert 'selection' not in inherit.inherit(model, info, replace(cfg, inherit_select='first'))['inherit']


@pytest.mark.parametrize('args, message', [
    (['--inherit_layers=0,2', '--inherit_select=shortgpt'], "lists the blocks, which leaves inherit_select='shortgpt' nothing to choose"),
    (['--inherit_layers=2', '--inherit_select=longgpt'], "inherit_select='longgpt' is not a selection strategy; use one of first, lazy_cut"),
    (['--inherit_layers=2', '--inherit_select=shortgpt', '--dataset=nowhere'], 'nowhere/val.bin not found'),
    (['--inherit_layers=9', '--inherit_select=shortgpt'], 'only 6 blocks'),
])
def test_bad_selection_settings_fail_in_one_line(tmp_path, sources, args, message):
    with pytest.raises(SystemExit) as e:
        inherit.main([f'--source={sources["project"]}', *args, f'--data_root={tmp_path}', f'--out={tmp_path / "out.pt"}'])
    assert str(e.value).startswith('error: ') and '\n' not in str(e.value) and message in str(e.value), str(e.value)
    assert not (tmp_path / 'out.pt').exists()


def test_cli_selection_on_a_dataset(tmp_path, sources):
    write_tiny_dataset(tmp_path)
    proc = run_script('inherit.py', f'--source={sources["project"]}', '--inherit_layers=4', '--inherit_select=angular',
                      '--dataset=tiny', f'--data_root={tmp_path}', '--device=cpu', f'--out={tmp_path / "out.pt"}')
    p = load_checkpoint(tmp_path / 'out.pt')['inherit']
    d = np.array(p['selection']['scores']['angular_distance']['matrix'])
    start = min(range(5), key=lambda l: (d[l, l + 2], -l))  # the run of 2 blocks with the smallest d(l, l+2)
    assert p['layers'] == [l for l in range(6) if not start <= l < start + 2]
    assert 'chosen by angular' in proc.stdout and 'angular_distance: ' in proc.stdout
