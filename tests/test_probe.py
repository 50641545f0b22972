"""attention_probe.py: k* and m* on matrices with known answers and against a slow float64 reference, the
per-sequence averaging, the inherit-depth rule, a crafted model with lazy layers, the CLI outputs, bad inputs."""
import inspect
import json
import math
import os
import types

import numpy as np
import pytest
import torch

import attention_probe
from attention_probe import attention_mass, attention_rank, probe, suggest_inherit_depth
from checkpoint import load_model, save_checkpoint
from conftest import run_script
from data import fixed_windows, get_batch
from model import GPT, GPTConfig

VOCAB = 256
ARGS = dict(block_size=48, vocab_size=VOCAB, n_layer=4, n_head=2, n_embd=32, dropout=0.0, bias=True,
            scale_attn_by_inverse_layer_idx=False)
LAZY = (2, 3)  # the layers the crafted model forces onto one column


def reference_count(values, frac):
    """Fewest leading entries of the descending list `values` reaching frac of the total: a plain loop."""
    total, running = sum(values), 0.0
    for k, v in enumerate(values, 1):
        running += v
        if running >= frac * total:
            return k
    return len(values)


def reference_rank(a, tau):
    s = np.linalg.svd(np.asarray(a, dtype=np.float64), compute_uv=False)
    return reference_count(list(s ** 2), tau)


def reference_mass(a, eta):
    cols = (np.asarray(a, dtype=np.float64) ** 2).sum(0)
    return reference_count(sorted(cols, reverse=True), eta)


def causal_softmax(batch, T, temperature, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, T, T, generator=g) * temperature
    return torch.softmax(logits.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float('-inf')), -1)


# ----------------------------------------------------------------------------- the metrics


def test_single_column_is_rank_one_mass_one():
    T = 12
    A = torch.zeros(3, T, T)
    for i, j in enumerate((0, 5, 11)):
        A[i, :, j] = 1.0  # every query attends only to key j
    assert attention_rank(A).tolist() == [1, 1, 1]
    assert attention_mass(A).tolist() == [1, 1, 1]
    assert attention_rank(A, tau=1.0).tolist() == [1, 1, 1]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_identity_needs_a_tau_share_of_all_columns(dtype):
    T = 10
    I = torch.eye(T, dtype=dtype)
    # every singular value and column holds 1/T of the total: k* = m* = ceil(tau * T); 0.9 * 10 = 9 exactly
    for frac, expected in [(1.0, T), (0.9, 9), (0.85, 9), (0.5, 5), (0.05, 1), (1e-6, 1)]:
        assert attention_rank(I, frac).item() == expected, frac
        assert attention_mass(I, frac).item() == expected, frac


def test_uniform_causal_rows():
    T = 100
    A = torch.ones(T, T).tril()
    A = A / A.sum(-1, keepdim=True)  # row i spreads 1/(i+1) over keys 0..i: a random-init model's attention
    # columns: ||A[:, j]||^2 = sum_{i>=j} 1/(i+1)^2, decreasing in j, so m* is the first j reaching eta of the sum
    col = [sum(1 / (i + 1) ** 2 for i in range(j, T)) for j in range(T)]
    assert attention_mass(A, 0.9).item() == reference_count(col, 0.9) == 30
    assert attention_rank(A, 0.9).item() == reference_rank(A, 0.9) == 5
    assert attention_rank(A, 0.5).item() == 1  # sigma_1^2 holds 51% of the energy
    assert attention_rank(A, 0.52).item() == 2


def test_rank_two_construction_and_exact_boundary():
    T = 20
    A = torch.zeros(T, T)
    A[0::2, 0] = 1.0  # half the queries attend to key 0, half to key 1: two equal singular values
    A[1::2, 1] = 1.0
    for fn in (attention_rank, attention_mass):
        assert fn(A, 0.5).item() == 1  # the top one holds exactly half
        assert fn(A, 0.5 + 1e-6).item() == 2
        assert fn(A, 0.9).item() == 2
        assert fn(A, 1.0).item() == 2
    # a general rank-2 row-stochastic matrix: rows mix two fixed distributions with random weights
    g = torch.Generator().manual_seed(0)
    p, q = torch.rand(2, T, generator=g).softmax(-1)
    w = torch.rand(T, 1, generator=g)
    B = w * p + (1 - w) * q
    for tau in (0.5, 0.9, 0.99, 0.999999):
        assert attention_rank(B, tau).item() == reference_rank(B, tau) <= 2


def test_batched_shapes_match_single_calls():
    A = causal_softmax(2 * 3 * 5, 16, 2.0, seed=1).view(2, 3, 5, 16, 16)
    k, m = attention_rank(A), attention_mass(A)
    assert k.shape == m.shape == (2, 3, 5) and k.dtype == m.dtype == torch.int64
    flat = A.reshape(-1, 16, 16)
    assert k.flatten().tolist() == [attention_rank(a).item() for a in flat]
    assert m.flatten().tolist() == [attention_mass(a).item() for a in flat]
    assert ((k >= 1) & (k <= 16)).all() and ((m >= 1) & (m <= 16)).all()


@pytest.mark.parametrize('temperature', [0.1, 1.0, 4.0, 30.0])
def test_matches_float64_reference_loop(temperature):
    T, tau, eta = 40, 0.9, 0.9
    A = causal_softmax(150, T, temperature, seed=int(temperature * 10))
    k, m = attention_rank(A, tau), attention_mass(A, eta)
    assert k.tolist() == [reference_rank(a, tau) for a in A]
    assert m.tolist() == [reference_mass(a, eta) for a in A]
    assert k.tolist() == attention_rank(A.double(), tau).tolist()  # float32 fast path == float64 svdvals
    assert attention_rank(A.to(torch.bfloat16), tau).shape == (150,)  # a bf16 input is upcast


def test_metrics_ignore_the_callers_autocast():
    A = causal_softmax(64, 32, 3.0, seed=3)
    with torch.autocast('cpu', dtype=torch.bfloat16):  # the probe calls them inside the forward's autocast
        k, m = attention_rank(A), attention_mass(A)
    assert k.tolist() == attention_rank(A).tolist() and m.tolist() == attention_mass(A).tolist()


def test_rank_grows_with_tau():
    A = causal_softmax(50, 32, 3.0, seed=2)
    ks = torch.stack([attention_rank(A, t) for t in (0.8, 0.85, 0.9, 0.95)])
    assert (ks[1:] >= ks[:-1]).all() and (ks[-1] > ks[0]).any()


# ----------------------------------------------------------------------------- the protocol


def test_suggest_inherit_depth():
    tail = "layers {}-{} are lazy and form the tail of the model: inherit the {} blocks before them"
    default = ": start from the paper's default L/2 = {} and let grow.py add layers"
    assert suggest_inherit_depth([False] * 4 + [True] * 2) == (4, tail.format(4, 5, 4))  # keep what precedes it
    assert suggest_inherit_depth([False] * 5 + [True]) == (5, tail.format(5, 5, 5))  # a tail of one layer
    assert suggest_inherit_depth([False] + [True] * 3) == (1, tail.format(1, 3, 1))  # all but the first
    # lazy, but not a tail: the paper's L/2
    assert suggest_inherit_depth([False, True, False, False]) == (2, "the lazy layers [1] do not form a tail of the model" + default.format(2))
    assert suggest_inherit_depth([True, False, False, False, True]) == (4, tail.format(4, 4, 4))  # only the tail counts
    assert suggest_inherit_depth([False] * 12) == (6, "no layer is lazy" + default.format(6))
    assert suggest_inherit_depth([False] * 5) == (2, "no layer is lazy" + default.format(2))  # an int: L // 2
    assert suggest_inherit_depth([True] * 6) == (3, "every layer is lazy" + default.format(3))
    assert suggest_inherit_depth([False]) == (1, "no layer is lazy" + default.format(1))


def test_probe_defaults_are_the_papers_protocol():
    """PAPER.md §1: N = 100 sequences of T = 100 tokens, tau = eta = 0.9, m* the fewest (sorted) columns."""
    defaults = {k: v.default for k, v in inspect.signature(attention_probe.probe).parameters.items()}
    assert (defaults['num_seqs'], defaults['seq_len'], defaults['tau'], defaults['eta'], defaults['seed']) == (100, 100, 0.9, 0.9, 1337)
    cfg = attention_probe.ProbeConfig()
    assert (cfg.num_seqs, cfg.seq_len, cfg.tau, cfg.eta, cfg.mass_order) == (100, 100, 0.9, 0.9, 'sorted')
    # and the functions run it when called without them: 100 windows (seed 1337) of 100 tokens, where an identity
    # map needs 90 columns at 0.9 and the last-column head 1 taken by mass (100 in index order)
    tokens = np.random.default_rng(0).integers(0, VOCAB, 20000).astype(np.uint16)
    share_even = np.mean(tokens[fixed_windows(len(tokens), 100, 100, seed=1337)] % 2 == 0)
    expected = torch.tensor([[share_even + (1 - share_even) * 90] * 2, [90.0, 1.0]], dtype=torch.float64)
    rank, mass = probe(LastColumnModel(), tokens, progress=False)
    assert torch.allclose(rank, expected) and torch.allclose(mass, expected)
    stats = attention_probe.head_statistics(LastColumnModel(), tokens, progress=False)
    assert torch.equal(stats.ranks[0], rank) and torch.equal(stats.mass, mass)
    # the lowest sink mass over the windows, per head, float64: identity maps 0, the last-column head 1
    assert stats.sink_mass.dtype == torch.float64 and stats.sink_mass.tolist() == [[0.0, 0.0], [0.0, 1.0]]


def test_probe_progress_bar_counts_layers_and_clears_itself(capsys):
    tokens = np.random.default_rng(0).integers(0, VOCAB, 5000).astype(np.uint16)
    attention_probe.head_statistics(ScriptedModel(), tokens, num_seqs=3, seq_len=10, batch_size=2, progress=False)
    assert capsys.readouterr().err == ''
    attention_probe.head_statistics(ScriptedModel(), tokens, num_seqs=3, seq_len=10, batch_size=2, progress=True)
    err = capsys.readouterr().err  # 2 batches x 2 layers; leave=False erases the bar at the end
    assert err.startswith('\rprobe:   0%|          | 0/4 [00:00<?, ?layer/s]') and err.endswith(' \r'), repr(err)
    for function in (probe, attention_probe.head_statistics):  # both show it by default
        function(ScriptedModel(), tokens, num_seqs=3, seq_len=10, batch_size=2)
        assert capsys.readouterr().err.startswith('\rprobe:   0%')



def test_head_count_of_one_head_and_of_no_measured_head():
    one = attention_probe.head_count(torch.tensor([[True]]), torch.tensor([[1.0]]))
    assert one == {'per_layer': [1.0], 'count_per_layer': [1], 'count': 1, 'heads': 1, 'fraction': 1.0}
    none = attention_probe.head_count(torch.tensor([[True, False]]), torch.tensor([[math.nan, math.nan]]))
    assert math.isnan(none.pop('per_layer')[0]) and none == {'count_per_layer': [0], 'count': 0, 'heads': 0, 'fraction': 0.0}


class ScriptedModel:
    """Stands in for a GPT: in layer 0 a sequence whose first token is even gets single-column maps (k* = m* = 1)
    and an odd one the identity (k* = m* = 9 at tau = 0.9, T = 10); layer 1 head 1 is always single-column."""

    def __init__(self):
        self.config = GPTConfig(n_layer=2, n_head=2, n_embd=8, block_size=16, vocab_size=VOCAB)

    def eval(self):
        return self

    def attention_maps(self, idx):
        B, T = idx.shape
        single = torch.zeros(T, T)
        single[:, 0] = 1.0
        even = (idx[:, 0] % 2 == 0).view(B, 1, 1, 1)
        yield 0, torch.where(even, single, torch.eye(T)).expand(B, 2, T, T)
        yield 1, torch.stack([torch.eye(T).expand(B, T, T), single.expand(B, T, T)], 1)


class LastColumnModel(ScriptedModel):
    """ScriptedModel with layer 1 head 1 on the last column: m* = 1 taking columns by mass, T in index order."""

    def attention_maps(self, idx):
        maps = dict(super().attention_maps(idx))
        B, T = idx.shape
        last = torch.zeros(T, T)
        last[:, -1] = 1.0
        maps[1] = torch.stack([torch.eye(T).expand(B, T, T), last.expand(B, T, T)], 1)
        yield from maps.items()


class NaNModel(ScriptedModel):
    def attention_maps(self, idx):
        yield 0, torch.full((len(idx), 2, idx.shape[1], idx.shape[1]), math.nan)


def test_non_finite_attention_is_a_one_line_error():
    tokens = np.random.default_rng(0).integers(0, VOCAB, 5000).astype(np.uint16)
    with pytest.raises(SystemExit) as e:
        attention_probe.head_statistics(NaNModel(), tokens, num_seqs=3, seq_len=10, progress=False)
    assert str(e.value) == "error: layer 0 produced non-finite attention; run with --dtype=float32"


def test_probe_takes_its_windows_among_starts_and_its_mass_by_column_mass():
    tokens = np.random.default_rng(0).integers(0, VOCAB, 5000).astype(np.uint16)
    even = np.flatnonzero(tokens[:len(tokens) - 11] % 2 == 0)  # windows that start on an even token: layer 0 is k* = 1
    rank, mass = probe(LastColumnModel(), tokens, num_seqs=23, seq_len=10, batch_size=4, seed=7, progress=False,
                       starts=even)
    assert rank.tolist() == [[1.0, 1.0], [9.0, 1.0]] and mass.tolist() == [[1.0, 1.0], [9.0, 1.0]]


def test_probe_averages_per_sequence_then_over_sequences():
    tokens = np.random.default_rng(0).integers(0, VOCAB, 5000).astype(np.uint16)
    rank, mass = probe(ScriptedModel(), tokens, num_seqs=23, seq_len=10, batch_size=4, seed=7)
    offsets = fixed_windows(len(tokens), 10, 23, seed=7)
    share_even = np.mean(tokens[offsets] % 2 == 0)
    assert 0 < share_even < 1
    expected0 = share_even * 1 + (1 - share_even) * 9  # mean of k*, not k* of the mean matrix
    assert torch.allclose(rank[0], torch.tensor([expected0] * 2, dtype=torch.float64))
    assert torch.allclose(mass[0], torch.tensor([expected0] * 2, dtype=torch.float64))
    assert rank[1].tolist() == [9.0, 1.0] and mass[1].tolist() == [9.0, 1.0]
    metrics = attention_probe.Measurements(ScriptedModel(), tokens, attention_probe.ProbeConfig(
        num_seqs=23, seq_len=10, batch_size=4, seed=7), 'cpu').metrics(['max_rank', 'avg_mass'])
    result = attention_probe.summarize(metrics, rank, mass)
    assert [l['max_rank'] for l in result['layers']] == pytest.approx([expected0, 9.0])
    assert result['layers'][1]['avg_mass'] == 5.0 and not any(l['lazy'] for l in result['layers'])


# ----------------------------------------------------------------------------- end to end


def crafted_model():
    """A tiny GPT whose layers in LAZY attend only to position 0. Every block's output projections are zero, so each
    block sees the bare embeddings; position 0 alone has a 1 in channel 0 (wte and the other wpe rows have 0 there),
    so after ln_1 its channel 0 stands out (~5.5 against < 1). In the lazy layers the queries are a constant
    (c_attn's q bias) and the keys read channel 0, which puts a logit gap of ~100 on key 0 for every query."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**ARGS))
    C, hs = ARGS['n_embd'], ARGS['n_embd'] // ARGS['n_head']
    with torch.no_grad():
        tr = model.transformer
        tr.wte.weight[:, 0] = 0.0
        tr.wpe.weight[:, 0] = 0.0
        tr.wpe.weight[0, 0] = 1.0
        for i, block in enumerate(tr.h):
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                proj.weight.zero_()
                proj.bias.zero_()
            if i in LAZY:
                w, b = block.attn.c_attn.weight, block.attn.c_attn.bias
                w[:2 * C] = 0.0
                b[:2 * C] = 0.0
                for h in range(ARGS['n_head']):
                    b[h * hs] = 8.0  # query of head h: 8 in its first coordinate, whatever the token
                    w[C + h * hs, 0] = 10.0  # key of head h: 10 x channel 0 in its first coordinate
    return model


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny dataset (uint16 bins + meta.json) and the crafted model saved as a checkpoint with model_args."""
    root = tmp_path_factory.mktemp('probe')
    data_dir = root / 'data' / 'toy'
    data_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sizes = {'train': 3000, 'val': 2000}
    for split, n in sizes.items():
        rng.integers(0, VOCAB, n).astype(np.uint16).tofile(data_dir / f'{split}.bin')
    (data_dir / 'meta.json').write_text(json.dumps({'tokenizer': 'toy', 'vocab_size': VOCAB, 'dtype': 'uint16',
                                                    'eot_token': None, 'train_tokens': sizes['train'],
                                                    'val_tokens': sizes['val'], 'source': 'random'}))
    ckpt = root / 'run' / 'ckpt.pt'
    save_checkpoint({'model': crafted_model().state_dict(), 'model_args': dict(ARGS), 'iter_num': 3,
                     'best_val_loss': 9.9, 'config': {}}, ckpt)
    return {'root': root, 'data_root': str(root / 'data'), 'ckpt': str(ckpt)}


def config(setup, tmp_path, **overrides):
    return attention_probe.ProbeConfig(**{'source': setup['ckpt'], 'dataset': 'toy', 'data_root': setup['data_root'],
            'out_dir': str(tmp_path / 'out'), 'num_seqs': 9, 'seq_len': 24, 'batch_size': 4, 'device': 'cpu',
            **overrides})


def test_crafted_lazy_layers_are_found(setup, tmp_path):
    result = attention_probe.run(config(setup, tmp_path))
    layers = result['layers']
    assert result['lazy_layers'] == list(LAZY)
    for layer in layers:
        if layer['layer'] in LAZY:
            assert layer['max_rank'] == 1.0 and layer['avg_mass'] == 1.0 and layer['near_lazy']
        else:  # random init: near-uniform causal attention, far from rank 1
            assert layer['max_rank'] > 2 and layer['avg_mass'] > 2 and not layer['near_lazy']
    assert result['suggested_inherit_depth'] == LAZY[0]  # the lazy layers are the tail
    assert result['avg_rank']['second_half'] == 1.0 and result['avg_rank']['first_half'] > 2
    # the same windows whatever the batching, and the same numbers on a second run
    again = attention_probe.run(config(setup, tmp_path, batch_size=9))
    assert [l['rank_per_head'] for l in again['layers']] == [l['rank_per_head'] for l in layers]


def test_probe_attention_is_float32_whatever_dtype_says(setup, tmp_path, monkeypatch):
    """--dtype=bfloat16 (the default on CUDA) must not round the attention logits the probe measures: the maps it
    reduces equal float32 ones bit for bit, and so do the ranks and masses."""
    maps = {}
    attention_maps = GPT.attention_maps

    def recording(model, idx):
        for layer, att in attention_maps(model, idx):
            maps.setdefault(torch.get_autocast_dtype('cpu') if torch.is_autocast_enabled('cpu') else 'off', []).append(att)
            yield layer, att

    monkeypatch.setattr(GPT, 'attention_maps', recording)
    results = {dtype: attention_probe.run(config(setup, tmp_path, dtype=dtype, out_dir=str(tmp_path / dtype), num_seqs=4,
                                                 sink_seqs=4)) for dtype in ('float32', 'bfloat16')}
    per_run = 2 * ARGS['n_layer']  # one batch of the rank probe's windows, one of the sink score's
    assert list(maps) == ['off'] and len(maps['off']) == 2 * per_run
    for a, b in zip(maps['off'][:per_run], maps['off'][per_run:]):
        assert a.dtype == torch.float32 and torch.equal(a, b)
    assert results['bfloat16']['layers'] == results['float32']['layers']
    assert results['bfloat16']['settings']['dtype'] == 'float32'


def test_sources_nanogpt_ckpt_and_run_dir(setup, tmp_path):
    """A nanoGPT checkpoint (torch.compile key prefixes, no scale_attn key) and a run directory give the same probe."""
    model, _ = load_model(setup['ckpt'])
    nano = tmp_path / 'nanogpt.pt'
    torch.save({'model': {'_orig_mod.' + k: v for k, v in model.state_dict().items()},
                'model_args': {k: v for k, v in ARGS.items() if k != 'scale_attn_by_inverse_layer_idx'},
                'iter_num': 1, 'best_val_loss': torch.tensor(3.0), 'config': {}}, nano)
    a = attention_probe.run(config(setup, tmp_path, source=str(nano), num_seqs=3))
    b = attention_probe.run(config(setup, tmp_path, source=os.path.dirname(setup['ckpt']), num_seqs=3))
    assert a['lazy_layers'] == b['lazy_layers'] == list(LAZY)
    assert a['layers'] == b['layers']


def test_cli_writes_json_and_png(setup, tmp_path):
    out = tmp_path / 'cli'
    proc = run_script('attention_probe.py', f"--source={setup['ckpt']}", '--dataset=toy',
                      f"--data_root={setup['data_root']}", f'--out_dir={out}', '--num_seqs=6', '--seq_len=20',
                      '--tau=0.85', '--device=cpu')
    assert 'suggested inherit depth: 2' in proc.stdout and 'MaxRank' in proc.stdout
    result = json.loads((out / 'probe.json').read_text())
    assert result['settings'] == {**result['settings'], 'source': setup['ckpt'], 'dataset': 'toy', 'num_seqs': 6,
                                  'seq_len': 20, 'tau': 0.85, 'eta': 0.9, 'seed': 1337}
    assert len(result['layers']) == ARGS['n_layer'] and result['suggested_inherit_depth'] == 2
    for i, layer in enumerate(result['layers']):
        assert layer['layer'] == i and len(layer['rank_per_head']) == len(layer['mass_per_head']) == ARGS['n_head']
        assert all(1 <= v <= 20 for v in layer['rank_per_head'] + layer['mass_per_head'])
        assert layer['max_rank'] == max(layer['rank_per_head'])
        assert layer['avg_mass'] == pytest.approx(sum(layer['mass_per_head']) / ARGS['n_head'])
        assert layer['lazy'] == (layer['max_rank'] == 1) and isinstance(layer['near_lazy'], bool)
    png = (out / 'probe.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    import matplotlib.image
    height, width, _ = matplotlib.image.imread(out / 'probe.png').shape
    assert height > 100 and width > 300
    assert sorted(os.listdir(out)) == ['probe.json', 'probe.png']  # no temp files left behind


@pytest.mark.parametrize('overrides, message', [
    ({'seq_len': 49}, 'block_size 48'),
    ({'dataset': 'nope'}, 'nope/val.bin not found'),
    ({'source': 'no-such-model'}, 'model source'),
    ({'source': ''}, 'no model given'),
    ({'tau': 1.5}, 'must lie in (0, 1]'),
    ({'num_seqs': 0}, 'at least 1'),
    ({'seq_len': 2000}, 'too few for windows'),
])
def test_bad_inputs_fail_in_one_line_and_write_nothing(setup, tmp_path, overrides, message):
    with pytest.raises(SystemExit) as e:
        attention_probe.run(config(setup, tmp_path, **overrides))
    text = str(e.value)
    assert text.startswith('error: ') and message in text and '\n' not in text
    assert not (tmp_path / 'out').exists()


def test_cli_bad_input_exit_code(setup, tmp_path):
    proc = run_script('attention_probe.py', f"--source={setup['ckpt']}", '--dataset=toy',
                      f"--data_root={setup['data_root']}", f'--out_dir={tmp_path / "out"}', '--seq_len=64',
                      check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith('error: ')
    assert 'block_size' in proc.stderr and not (tmp_path / 'out').exists()


# ----------------------------------------------------------------------------- the other layer metrics


def weighty_model(seed=0, block_size=ARGS['block_size']):
    """A random GPT whose blocks matter (output projections far above GPT-2's init), block 1's attention and block 2's
    MLP adding exactly nothing, and a first-token logit boost in layer 3 that turns its heads into attention sinks."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**ARGS, 'block_size': block_size}))
    C, hs = ARGS['n_embd'], ARGS['n_embd'] // ARGS['n_head']
    with torch.no_grad():
        model.transformer.wpe.weight[0, 0] = 3.0  # position 0 stands out in channel 0 ...
        for block in model.transformer.h:
            block.attn.c_proj.weight.mul_(300)
            block.mlp.c_proj.weight.mul_(30)
        for proj in (model.transformer.h[1].attn.c_proj, model.transformer.h[2].mlp.c_proj):
            proj.weight.zero_()
            proj.bias.zero_()
        attn = model.transformer.h[3].attn.c_attn
        attn.bias[:C] = 0.0
        attn.bias[0] = 6.0  # ... and layer 3's head 0 queries it, so that head sinks while head 1 stays random
        attn.weight[C, :] = 0.0
        attn.weight[C, 0] = 4.0
    return model.eval()


@torch.no_grad()
def manual_states(model, x):
    """The residual stream x_0 .. x_L written out by hand."""
    h = model.transformer.wte(x) + model.transformer.wpe(torch.arange(x.shape[1]))
    states = [h]
    for block in model.transformer.h:
        h = h + block.attn(block.ln_1(h))
        h = h + block.mlp(block.ln_2(h))
        states.append(h)
    return [s.double().numpy() for s in states]


def windows(tokens, seq_len, count, seed=1337, starts=None):
    return get_batch(tokens, fixed_windows(len(tokens), seq_len, count, seed=seed, starts=starts), seq_len, 'cpu')[0]


def toy_tokens(n=3000, seed=1):
    return np.random.default_rng(seed).integers(0, VOCAB, n).astype(np.uint16)


def test_hidden_states_are_the_residual_stream():
    model, x = weighty_model(), windows(toy_tokens(), 24, 3)
    states = list(model.hidden_states(x))
    assert len(states) == ARGS['n_layer'] + 1
    for ours, manual in zip(states, manual_states(model, x)):
        assert np.allclose(ours.double().numpy(), manual, atol=1e-5)
    with torch.no_grad():  # the last one is what ln_f and lm_head read
        assert torch.allclose(model.lm_head(model.transformer.ln_f(states[-1]))[:, -1], model(x)[0][:, -1], atol=1e-5)


def manual_geometry(model, x):
    """(mean cosine of x_l and x_l+1 over every token, per layer; mean arccos / pi between every two boundaries at
    the windows' last token), numpy float64 from the hand-written residual stream."""
    unit = [s / np.linalg.norm(s, axis=-1, keepdims=True) for s in manual_states(model, x)]
    cos = [(unit[l] * unit[l + 1]).sum(-1).mean() for l in range(len(unit) - 1)]
    last = [u[:, -1] for u in unit]
    return np.array(cos), np.array([[np.mean(np.arccos(np.clip((a * b).sum(-1), -1, 1))) / np.pi for b in last] for a in last])


def test_block_influence_and_angular_distance_match_numpy():
    model, tokens = weighty_model(), toy_tokens()
    cfg = attention_probe.ProbeConfig(num_seqs=7, seq_len=24, batch_size=3)
    metrics = attention_probe.Measurements(model, tokens, cfg, 'cpu').metrics(['block_influence', 'angular_distance'])
    cos, angle = manual_geometry(model, windows(tokens, 24, 7))
    bi = 1 - cos
    assert metrics['block_influence']['per_layer'] == pytest.approx(bi, abs=1e-6)
    assert min(bi) > 1e-3  # every block turns the stream (block 1's MLP and block 2's attention still work)
    matrix = metrics['angular_distance']['matrix']
    assert np.allclose(matrix, angle, atol=1e-6) and np.allclose(matrix, np.transpose(matrix))
    assert metrics['angular_distance']['per_layer'] == pytest.approx([angle[l][l + 1] for l in range(ARGS['n_layer'])], abs=1e-6)


def test_residual_geometry_measures_its_windows_in_float64():
    # by default 100 windows of 100 tokens from seed 1337's fixed_windows; else the seed and the starts given, also
    # through the block_influence and angular_distance metrics; sums in float64 (the same float32 stream as by hand)
    model, tokens = weighty_model(block_size=100), toy_tokens()
    geometry = attention_probe.residual_geometry

    def close(ours, manual):  # to float64 rounding; the diagonal's arccos near 1 turns it into ~1e-9
        (cos, angle), off = (np.asarray(t) for t in ours), 1 - np.eye(len(manual[1]))
        return (np.allclose(cos, manual[0], rtol=0, atol=1e-12) and np.allclose(angle * off, manual[1] * off, rtol=0, atol=1e-12)
                and np.abs(np.diag(angle)).max() < 1e-8)

    assert close(geometry(model, tokens), manual_geometry(model, windows(tokens, 100, 100)))
    starts = np.arange(0, 2000, 7)
    among_starts = windows(tokens, 20, 6, seed=7, starts=starts)
    cfg = attention_probe.ProbeConfig(num_seqs=6, seq_len=20, batch_size=4, seed=7)
    for x, starts_given in ((windows(tokens, 20, 6, seed=7), None), (among_starts, starts)):
        expected = manual_geometry(model, x)
        assert not np.allclose(expected[0], manual_geometry(model, windows(tokens, 20, 6))[0], atol=1e-4)  # other windows
        assert close(geometry(model, tokens, 6, 20, 4, seed=7, starts=starts_given), expected)
        m = attention_probe.Measurements(model, tokens, cfg, 'cpu', starts=starts_given)
        metrics = m.metrics(['block_influence', 'angular_distance'])
        assert close((1 - np.array(metrics['block_influence']['per_layer']), metrics['angular_distance']['matrix']), expected)


class Flipping:
    """Stands in for a model whose two blocks each turn the residual stream around: x, -x, x, a random x per window."""
    config = types.SimpleNamespace(n_layer=2)

    def eval(self):
        return self

    def hidden_states(self, idx):
        x = torch.randn(*idx.shape, 16, generator=torch.Generator().manual_seed(int(idx.sum())))
        yield from (x, -x, x)


def test_opposite_streams_are_at_the_largest_distance():
    # cos(x, -x) rounds below -1 for some vectors; arccos would give NaN without the clamp
    cos, angle = attention_probe.residual_geometry(Flipping(), toy_tokens(), num_seqs=64, seq_len=4, batch_size=64)
    assert torch.allclose(cos, torch.tensor([-1.0, -1.0], dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.allclose(angle, torch.tensor([[0.0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=torch.float64), rtol=0, atol=1e-7)


def test_a_block_that_adds_nothing_has_zero_influence_and_distance():
    model = weighty_model()
    with torch.no_grad():
        for proj in (model.transformer.h[2].attn.c_proj, model.transformer.h[2].mlp.c_proj):
            proj.weight.zero_()
            proj.bias.zero_()
    cfg = attention_probe.ProbeConfig(num_seqs=5, seq_len=24)
    metrics = attention_probe.Measurements(model, toy_tokens(), cfg, 'cpu').metrics(['block_influence', 'angular_distance'])
    assert abs(metrics['block_influence']['per_layer'][2]) < 1e-12
    assert metrics['angular_distance']['matrix'][2][3] < 1e-7 and metrics['angular_distance']['matrix'][1][2] > 1e-3


@torch.no_grad()
def manual_first_token_attention(model, x):
    """Each head's mean attention on token 0, from softmax(q k^T * scale) computed here from c_attn's weights."""
    C, H = ARGS['n_embd'], ARGS['n_head']
    hs, T = C // H, x.shape[1]
    h = torch.from_numpy(manual_states(model, x)[0]).float()
    result = []
    for block in model.transformer.h:
        a = block.ln_1(h)
        w, b = block.attn.c_attn.weight, block.attn.c_attn.bias
        q, k = (a @ w[i * C:(i + 1) * C].T + b[i * C:(i + 1) * C] for i in (0, 1))
        q, k = (t.view(len(x), T, H, hs).transpose(1, 2).double() for t in (q, k))
        logits = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = torch.softmax(logits.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float('-inf')), -1)
        result.append(att[..., :, 0].mean(-1).mean(0))  # over queries, then windows
        h = h + block.attn(a)
        h = h + block.mlp(block.ln_2(h))
    return torch.stack(result)


def test_attention_sink_matches_a_manual_softmax():
    model, tokens = weighty_model(), toy_tokens()
    cfg = attention_probe.ProbeConfig(sink_seqs=6, sink_seq_len=20, batch_size=4)
    sink = attention_probe.Measurements(model, tokens, cfg, 'cpu').metrics(['attention_sink'])['attention_sink']
    expected = manual_first_token_attention(model, windows(tokens, 20, 6))
    assert np.allclose(sink['first_token_attention'], expected, atol=1e-6)
    assert sink['per_layer'] == ((expected > 0.3).double().mean(1)).tolist()
    assert sink['per_layer'][3] == 0.5  # the crafted sink head, not its neighbour
    assert (sink['eps'], sink['seqs'], sink['seq_len']) == (0.3, 6, 20)
    crafted = attention_probe.Measurements(crafted_model(), tokens, cfg, 'cpu').metrics(['attention_sink'])['attention_sink']
    assert crafted['per_layer'] == [1.0 if l in LAZY else 0.0 for l in range(ARGS['n_layer'])]  # lazy: every head on token 0
    long = attention_probe.Measurements(model, tokens, attention_probe.ProbeConfig(sink_seqs=2), 'cpu').metrics(['attention_sink'])
    assert long['attention_sink']['seq_len'] == ARGS['block_size']  # 64 tokens do not fit: cut to the context


def test_first_token_attention_measures_its_windows():
    # by default 100 windows of 64 tokens from seed 1337's fixed_windows; else the seed and the starts given, also
    # through the attention_sink metric; each against the softmax written out
    model, tokens = weighty_model(block_size=64), toy_tokens()
    first, manual = attention_probe.first_token_attention, manual_first_token_attention
    assert np.allclose(first(model, tokens), manual(model, windows(tokens, 64, 100)), atol=1e-6)
    starts = np.arange(0, 2000, 7)
    among_starts = windows(tokens, 20, 6, seed=7, starts=starts)
    cfg = attention_probe.ProbeConfig(sink_seqs=6, sink_seq_len=20, batch_size=4, seed=7)
    for expected, starts_given in ((manual(model, windows(tokens, 20, 6, seed=7)), None), (manual(model, among_starts), starts)):
        assert not np.allclose(expected, manual(model, windows(tokens, 20, 6)), atol=1e-4)  # other windows, other values
        assert np.allclose(first(model, tokens, 6, 20, 4, seed=7, starts=starts_given), expected, atol=1e-6)
        sink = attention_probe.Measurements(model, tokens, cfg, 'cpu', starts=starts_given).metrics(['attention_sink'])
        assert np.allclose(sink['attention_sink']['first_token_attention'], expected, atol=1e-6)


def manual_loss_without(model, x, y, layer, part):
    """The forward written out by hand, with block `layer`'s attention ('attn') or MLP ('mlp') branch left out."""
    h = model.transformer.wte(x) + model.transformer.wpe(torch.arange(x.shape[1]))
    for i, block in enumerate(model.transformer.h):
        if (i, part) != (layer, 'attn'):
            h = h + block.attn(block.ln_1(h))
        if (i, part) != (layer, 'mlp'):
            h = h + block.mlp(block.ln_2(h))
    logits = model.lm_head(model.transformer.ln_f(h))
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()).item()


@pytest.mark.parametrize('part', ['attn', 'mlp'])
def test_ablation_progress_bar_counts_layers_and_clears_itself(part, capsys):
    attention_probe.ablation(weighty_model(), toy_tokens(), part, num_windows=2, batch_size=2)
    err = capsys.readouterr().err  # one step per layer; leave=False erases the bar at the end
    assert err.startswith(f'\r{part} ablation:   0%|          | 0/{ARGS["n_layer"]} [00:00<?, ?layer/s]'), repr(err)
    assert err.endswith(' \r'), repr(err)


def test_ablation_defaults_to_256_fixed_windows_of_the_models_context():
    model, tokens = weighty_model(), toy_tokens()
    intact, _ = attention_probe.ablation(model, tokens, 'mlp')
    x, y = get_batch(tokens, fixed_windows(len(tokens), ARGS['block_size'], 256), ARGS['block_size'], 'cpu')
    with torch.no_grad():
        assert intact == pytest.approx(model(x, y)[1].item(), rel=1e-6)


@pytest.mark.parametrize('part, silent', [('attn', 1), ('mlp', 2)])
def test_ablation_matches_a_manual_forward(part, silent):
    model, tokens = weighty_model(), toy_tokens()
    intact, delta = attention_probe.ablation(model, tokens, part, num_windows=10, batch_size=4)
    x, y = get_batch(tokens, fixed_windows(len(tokens), ARGS['block_size'], 10), ARGS['block_size'], 'cpu')
    with torch.no_grad():
        assert intact == pytest.approx(model(x, y)[1].item(), rel=1e-6)
        for layer in range(ARGS['n_layer']):
            if layer != silent:
                assert intact + delta[layer] == pytest.approx(manual_loss_without(model, x, y, layer, part), rel=1e-6)
                assert abs(delta[layer]) > 1e-5  # far above float32 noise at this loss
    assert delta[silent] == 0.0  # removing an output that is exactly zero changes nothing
    assert model(x, y)[1].item() == pytest.approx(intact, rel=1e-6)  # the hooks are gone afterwards


def test_ablation_metric_hands_ablation_the_probe_settings():
    # the window length (ablation_len, else the model's), the windows' starts and the caller's autocast all reach
    # ablation(), and the result names what was measured
    model, tokens = weighty_model(), toy_tokens()
    starts, autocast = np.arange(0, 2000, 7), torch.autocast('cpu', dtype=torch.bfloat16)
    for length, block_size in ((20, 20), (None, ARGS['block_size'])):
        cfg = attention_probe.ProbeConfig(ablation_windows=6, batch_size=4, ablation_len=length)
        m = attention_probe.Measurements(model, tokens, cfg, 'cpu', autocast=autocast, starts=starts)
        intact, deltas = attention_probe.ablation(model, tokens, 'attn', 6, 4, 'cpu', autocast, starts, block_size)
        assert attention_probe.ablation_metric(m, 'attn') == {'per_layer': deltas, 'val_loss': intact, 'windows': 6,
                                                               'block_size': block_size}
    # each setting shows in the losses
    loss = lambda autocast, starts: attention_probe.ablation(model, tokens, 'attn', 6, 4, 'cpu', autocast, starts, 20)[0]
    assert loss(None, starts) != loss(autocast, starts) != loss(autocast, None)


def test_cli_ablations(setup, tmp_path):
    out = tmp_path / 'cli'
    proc = run_script('attention_probe.py', f"--source={setup['ckpt']}", '--dataset=toy',
                      f"--data_root={setup['data_root']}", f'--out_dir={out}', '--num_seqs=6', '--seq_len=20',
                      '--device=cpu', '--ablate_attention=True', '--ablate_mlp=True', '--ablation_windows=12',
                      '--sink_seqs=8')
    result = json.loads((out / 'probe.json').read_text())
    # the crafted model's output projections are all zero, so no layer's attention or MLP changes the loss
    for name in ('attention_ablation', 'mlp_ablation'):
        assert [layer[name] for layer in result['layers']] == [0.0] * ARGS['n_layer']
        assert (result[name]['windows'], result[name]['block_size']) == (12, 48)
        assert result[name]['val_loss'] > 5  # random tokens: near log(256) = 5.55
    assert 'AttnAbl' in proc.stdout and 'MLPAbl' in proc.stdout and '+0.0000' in proc.stdout
    assert "without the layer's MLP output" in proc.stdout
    assert sorted(os.listdir(out)) == ['probe.json', 'probe.png']


def test_cli_table_has_every_metric(setup, tmp_path):
    out = tmp_path / 'cli'
    proc = run_script('attention_probe.py', f"--source={setup['ckpt']}", '--dataset=toy',
                      f"--data_root={setup['data_root']}", f'--out_dir={out}', '--num_seqs=6', '--seq_len=20',
                      '--device=cpu', '--sink_seqs=8', '--sink_eps=0.5')
    result = json.loads((out / 'probe.json').read_text())
    header = next(line for line in proc.stdout.splitlines() if line.lstrip().startswith('layer'))
    assert header.split() == ['layer', 'MaxRank', 'HeadMean', 'AvgMass', 'BI', 'AngDist', 'Sink', 'lazy']
    for layer in result['layers']:
        # every block of the crafted model adds nothing to the residual stream (zero output projections)
        assert abs(layer['block_influence']) < 1e-12 and layer['angular_distance'] < 1e-7
        assert layer['attention_sink'] == (1.0 if layer['layer'] in LAZY else 0.0)
    L = ARGS['n_layer']
    assert np.array(result['angular_distance']['matrix']).shape == (L + 1, L + 1)
    assert result['attention_sink']['eps'] == 0.5 and result['settings']['sink_seqs'] == 8
    assert 'exceeds 0.5 (8 windows of 48 tokens)' in proc.stdout


def test_per_layer_rank_and_mass_metrics_read_their_own_tensor():
    ranks = torch.tensor([[1.0, 3.0], [2.0, 2.5]], dtype=torch.float64)
    mass = torch.tensor([[0.5, 0.75], [1.0, 0.25]], dtype=torch.float64)
    m = types.SimpleNamespace(rank_and_mass=(ranks, mass))
    metrics = attention_probe.METRICS
    assert metrics['max_rank'].compute(m) == {'per_layer': [3.0, 2.5]}
    assert metrics['head_mean_rank'].compute(m) == {'per_layer': [2.0, 2.25]}
    assert metrics['avg_mass'].compute(m) == {'per_layer': [0.625, 0.625]}
