"""attention_probe.py on today's decoder families through transformers (hf_adapter.py): tiny random models of each,
built in tmp folders with sharp attention. Every head's Rank(h, l) and m* against float64 numpy on transformers' own
attention maps (output_attentions=True); model.py and transformers on the same GPT-2 and Llama; the ablations against
hand-written hooks; per-head collapse, sink collapse, the tau sweep and both m* readings on known answers."""
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attention_probe
import bench_probe
import hf_adapter
import inherit
from attention_probe import Measurements, ProbeConfig, attention_mass, head_statistics, sink_mass
from checkpoint import load_model
from data import fixed_windows, get_batch
from test_probe import VOCAB, causal_softmax, reference_count, reference_mass, reference_rank

transformers = pytest.importorskip("transformers")

T, NUM_SEQS, BATCH, BLOCK = 24, 6, 4, 48  # two batches, the second one short
TAUS = (0.8, 0.85, 0.9, 0.95)
SMALL = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=BLOCK, initializer_range=0.5)  # weights 25x the usual init (0.02): sharp maps
FAMILIES = {
    # multi-query attention (one key/value head), attention and MLP in parallel, rotary
    "falcon": ("FalconConfig", dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                    multi_query=True, parallel_attn=True, new_decoder_architecture=False, alibi=False,
                                    bias=False, max_position_embeddings=BLOCK, initializer_range=0.5)),
    "olmo": ("OlmoConfig", dict(SMALL, pad_token_id=0, bos_token_id=1, eos_token_id=2)),  # non-parametric LayerNorm
    "llama3": ("LlamaConfig", dict(SMALL, num_key_value_heads=2, rope_parameters=dict(
        rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
        original_max_position_embeddings=16))),
    # layer 0 slides a window of 8 tokens, shorter than the probe's 24
    "gemma3": ("Gemma3TextConfig", dict(SMALL, num_key_value_heads=2, head_dim=8, sliding_window=8,
                                        layer_types=["sliding_attention", "full_attention"])),
    "qwen3": ("Qwen3Config", dict(SMALL, num_key_value_heads=2, head_dim=8)),  # per-head q/k norms
    "gpt2_gelu": ("GPT2Config", dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=BLOCK,
                                     activation_function="gelu", initializer_range=0.5)),  # Cerebras-GPT's exact GELU
    "llama": ("LlamaConfig", dict(SMALL, num_key_value_heads=2, tie_word_embeddings=False)),
    # 3 linear-attention layers (no maps), then a full-attention one
    "qwen3_5": ("Qwen3_5TextConfig", dict(SMALL, num_hidden_layers=4, num_key_value_heads=2, head_dim=8,
                                          linear_num_key_heads=2, linear_num_value_heads=2, linear_key_head_dim=8,
                                          linear_value_head_dim=8)),
}
# each family's layers, attention and MLP modules, written out here independently of hf_adapter's search
SUBLAYERS = {"falcon": ("transformer.h", "self_attention", "mlp"), "olmo": ("model.layers", "self_attn", "mlp"),
             "gemma3": ("model.layers", "self_attn", "mlp"), "gpt2_gelu": ("transformer.h", "attn", "mlp")}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """family -> a folder of a tiny random model of it, built on first use. q/k norm gains are raised too, so the
    families that normalize q and k (Gemma 3, Qwen3) also get sharp maps."""
    root, built = tmp_path_factory.mktemp("hf"), {}

    def folder(family):
        if family not in built:
            config_class, args = FAMILIES[family]
            torch.manual_seed(0)
            hf = transformers.AutoModelForCausalLM.from_config(getattr(transformers, config_class)(**args))
            with torch.no_grad():
                for name, p in hf.named_parameters():
                    if name.endswith(("q_norm.weight", "k_norm.weight")):
                        p.fill_(3.0)
            built[family] = str(root / family)
            hf.save_pretrained(built[family])
        return built[family]
    return folder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """data_root holding a val split of random tokens, dataset 'toy'."""
    root = tmp_path_factory.mktemp("data")
    (root / "toy").mkdir()
    tokens(2000).tofile(root / "toy" / "val.bin")
    (root / "toy" / "meta.json").write_text(json.dumps({"tokenizer": "toy", "vocab_size": VOCAB, "dtype": "uint16",
                                                        "eot_token": None}))
    return str(root)


def tokens(n=3000, seed=1):
    return np.random.default_rng(seed).integers(0, VOCAB, n).astype(np.uint16)


def transformers_model(folder):
    """transformers' own model of the folder, eager attention, without the adapter."""
    return transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()


def settings(**overrides):
    return ProbeConfig(**{"num_seqs": NUM_SEQS, "seq_len": T, "batch_size": BATCH, "sink_seqs": NUM_SEQS,
                          "ablation_windows": 3, **overrides})


@torch.no_grad()
def reference_heads(folder, toks, order):
    """Rank(l, h) at every tau of TAUS and mean m* (reading `order`), float64 numpy on the maps transformers hands
    out with output_attentions=True, over the probe's windows in the probe's batches."""
    hf = transformers_model(folder)
    offsets = fixed_windows(len(toks), T, NUM_SEQS, seed=1337)
    ranks, masses = [], []
    for start in range(0, NUM_SEQS, BATCH):
        x, _ = get_batch(toks, offsets[start:start + BATCH], T, "cpu")
        maps = np.stack([a.double().numpy() for a in hf(input_ids=x, output_attentions=True, use_cache=False).attentions])
        for a in maps.transpose(1, 0, 2, 3, 4).reshape(-1, T, T):  # window by window, then layer and head
            ranks.append([reference_rank(a, tau) for tau in TAUS])
            masses.append(reference_mass(a, 0.9) if order == "sorted" else reference_count(list((a ** 2).sum(0)), 0.9))
    n_layer, n_head = maps.shape[0], maps.shape[2]
    rank = np.array(ranks, dtype=np.float64).reshape(NUM_SEQS, n_layer, n_head, len(TAUS)).mean(0).transpose(2, 0, 1)
    return rank, np.array(masses, dtype=np.float64).reshape(NUM_SEQS, n_layer, n_head).mean(0), maps


@pytest.mark.parametrize("family", ["falcon", "olmo", "llama3", "gemma3", "qwen3", "gpt2_gelu"])
def test_every_head_matches_numpy_on_transformers_maps(folders, family):
    folder, toks = folders(family), tokens()
    model, info = load_model(folder, model_path="transformers")
    assert isinstance(model, hf_adapter.HFModel) and info["model_path"] == "transformers"
    for order in attention_probe.MASS_ORDERS:
        stats = head_statistics(model, toks, NUM_SEQS, T, TAUS, 0.9, order, BATCH, progress=False)
        rank, mass, maps = reference_heads(folder, toks, order)
        assert stats.ranks.shape == (len(TAUS), model.config.n_layer, model.config.n_head)
        assert stats.ranks.numpy() == pytest.approx(rank, abs=1e-12)
        assert stats.mass.numpy() == pytest.approx(mass, abs=1e-12)
    assert 1 < rank.max() < T and 1 < mass.max() < T and (rank[0] < rank[-1]).any()  # sharp but not degenerate
    if family == "gemma3":  # the sliding layer's last rows see only its 8 tokens
        assert (maps[0][..., -1, :T - 8] == 0).all() and (maps[1][..., -1, :T - 8] > 0).all()


@pytest.mark.parametrize("family", ["gpt2_gelu", "llama"])
def test_model_py_and_transformers_give_the_same_metrics(folders, family):
    names = list(attention_probe.METRICS)
    cfg = settings(collapse_rank=3.0, collapse_eps=0.5)
    results = {}
    for path in ("gpt", "transformers"):
        model, info = load_model(folders(family), model_path=path)
        assert info["model_path"] == path and isinstance(model, hf_adapter.HFModel) == (path == "transformers")
        m = Measurements(model, tokens(), cfg, "cpu", progress=False)
        results[path] = (m.metrics(names), m.head_stats)
    (gpt, gpt_stats), (hf, hf_stats) = results["gpt"], results["transformers"]
    assert torch.equal(gpt_stats.ranks, hf_stats.ranks) and torch.equal(gpt_stats.mass, hf_stats.mass)
    for name in names:
        assert gpt[name]["per_layer"] == pytest.approx(hf[name]["per_layer"], rel=1e-4, abs=1e-5), name
    for name, key in (("angular_distance", "matrix"), ("attention_sink", "first_token_attention"),
                      ("sink_collapse", "sink_mass")):
        assert np.allclose(gpt[name][key], hf[name][key], atol=1e-5), name
    assert min(map(abs, gpt["attention_ablation"]["per_layer"] + gpt["mlp_ablation"]["per_layer"])) > 1e-3  # every branch matters
    assert gpt["attention_ablation"]["val_loss"] == pytest.approx(hf["attention_ablation"]["val_loss"], rel=1e-5)


def loss_without(hf, x, y, module):
    """The val loss of transformers' model with `module`'s output removed by a hook written here (None: intact)."""
    def remove(mod, args, out):
        return (out[0] * 0, *out[1:]) if isinstance(out, tuple) else out * 0
    handle = module.register_forward_hook(remove) if module is not None else None
    try:
        with torch.no_grad():
            logits = hf(input_ids=x, use_cache=False).logits
    finally:
        if handle is not None:
            handle.remove()
    return F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()


@pytest.mark.parametrize("family", list(SUBLAYERS))
def test_ablation_matches_hand_written_hooks(folders, family):
    folder, toks = folders(family), tokens()
    model, _ = load_model(folder, model_path="transformers")
    hf = transformers_model(folder)
    layers, attn, mlp = SUBLAYERS[family]
    x, y = get_batch(toks, fixed_windows(len(toks), BLOCK, 3), BLOCK, "cpu")
    for part, name in (("attn", attn), ("mlp", mlp)):
        intact, deltas = attention_probe.ablation(model, toks, part, num_windows=3, batch_size=2)
        assert intact == pytest.approx(loss_without(hf, x, y, None), rel=1e-6)
        for l, delta in enumerate(deltas):
            module = getattr(hf.get_submodule(layers)[l], name)
            assert intact + delta == pytest.approx(loss_without(hf, x, y, module), rel=1e-6), (part, l)
            assert abs(delta) > 1e-3
        assert model(x, y)[1].item() == pytest.approx(intact, rel=1e-6)  # the hooks are gone


def test_hidden_states_are_the_residual_stream(folders):
    """x_0 is what enters the first layer (Gemma scales its embeddings), x_L the last layer's output before the final
    norm: lm_head(final_norm(x_L)) gives the logits."""
    for family in ("gemma3", "llama3"):
        model, _ = load_model(folders(family), model_path="transformers")
        hf, x = transformers_model(folders(family)), torch.randint(0, VOCAB, (2, T))
        states = list(model.hidden_states(x))
        with torch.no_grad():
            ref = hf(input_ids=x, output_hidden_states=True, use_cache=False)
            logits = model.lm_head(model.final_norm(states[-1]))
        assert len(states) == model.config.n_layer + 1
        for ours, theirs in zip(states[:-1], ref.hidden_states):
            assert torch.equal(ours, theirs)
        assert torch.allclose(logits, ref.logits, atol=1e-5)
        assert torch.allclose(model(x, x)[0], ref.logits) and model(x)[0].shape == (2, 1, VOCAB)
        assert torch.equal(states[0], model.wte(x))  # Gemma's embedding module scales by sqrt(hidden_size) itself


def test_linear_attention_layers_are_nan_and_named(folders, tmp_path, capsys):
    """Qwen3.5: layers 0-2 are linear attention, with no maps; their attention metrics are NaN, the others stand."""
    model, _ = load_model(folders("qwen3_5"), model_path="auto")
    m = Measurements(model, tokens(), settings(collapse_rank=100.0, collapse_eps=0.5), "cpu", progress=False)
    metrics = m.metrics(["max_rank", "avg_mass", "block_influence", "attention_sink", "head_collapse", "sink_collapse"])
    result = attention_probe.summarize(metrics, *m.rank_and_mass)
    for name in ("max_rank", "avg_mass", "attention_sink", "head_collapse", "sink_collapse"):
        values = metrics[name]["per_layer"]
        assert all(math.isnan(v) for v in values[:3]) and not math.isnan(values[3]), name
    assert not any(math.isnan(v) for v in metrics["block_influence"]["per_layer"])
    assert metrics["head_collapse"]["heads"] == 4 and metrics["head_collapse"]["count"] == 4  # layer 3's heads only
    assert result["no_attention_maps"] == [0, 1, 2]
    assert result["avg_rank"]["all"] == pytest.approx(metrics["max_rank"]["per_layer"][3])
    result["settings"] = {"near_lazy": 1.5}
    assert "layers [0, 1, 2] hand out no attention maps" in attention_probe.format_table(result)


class CraftedModel:
    """Stands in for a model with known maps (T = 10): layer 0 heads one column, uniform causal, identity; layer 1 a
    first-token sink leaking 0.05 of every later row, every row uniform over all columns (rank 1, yet no sink), one
    column; layer 2 hands out no maps."""

    def __init__(self, leak=0.95):
        self.config = hf_adapter.AdapterConfig(n_layer=3, n_head=3, n_embd=8, block_size=16, vocab_size=VOCAB,
                                               architecture="Crafted")
        one = torch.zeros(10, 10)
        one[:, 0] = 1.0
        uniform = torch.ones(10, 10).tril()
        uniform /= uniform.sum(-1, keepdim=True)
        leak = leak * one + (1 - leak) * torch.cat([torch.zeros(10, 1), uniform[:, :-1]], 1)
        leak[0] = one[0]
        self.maps = [torch.stack([one, uniform, torch.eye(10)]), torch.stack([leak, torch.full((10, 10), 0.1), one])]

    def eval(self):
        return self

    def attention_maps(self, idx):
        for layer, maps in enumerate(self.maps):
            yield layer, maps.expand(len(idx), -1, -1, -1)


def test_head_collapse_and_sink_collapse_on_known_maps(tmp_path, monkeypatch):
    model = CraftedModel()
    leak_rank = reference_rank(model.maps[1][0].numpy(), 0.9)
    assert leak_rank == 1  # a sink that leaks 5% is still rank 1 at tau = 0.9
    rank = [[1, reference_rank(model.maps[0][1].numpy(), 0.9), 9], [1, 1, 1]]  # identity at 0.9: 9 of 10
    m = Measurements(model, tokens(), settings(seq_len=10, collapse_rank=1.5, collapse_eps=0.1), "cpu", progress=False)
    metrics = m.metrics(["max_rank", "head_collapse", "sink_collapse"])
    result = attention_probe.summarize(metrics, *m.rank_and_mass)
    assert [layer["rank_per_head"] for layer in result["layers"][:2]] == rank
    collapse = result["head_collapse"]
    assert collapse["collapsed"] == [[True, False, False], [True, True, True], [False, False, False]]
    assert (collapse["count"], collapse["heads"], collapse["fraction"]) == (4, 6, 4 / 6)
    assert collapse["count_per_layer"] == [1, 3, 0] and collapse["collapse_rank"] == 1.5
    assert metrics["head_collapse"]["per_layer"][:2] == [1 / 3, 1.0] and math.isnan(metrics["head_collapse"]["per_layer"][2])
    exact = Measurements(model, tokens(), settings(seq_len=10, collapse_rank=1.0), "cpu").metrics(["head_collapse"])
    assert exact["head_collapse"]["collapsed"] == collapse["collapsed"]  # the rule includes its bound: Rank 1 <= 1
    sink = result["sink_collapse"]
    assert np.allclose(sink["sink_mass"][:2], [[1.0, 0.1, 0.0], [0.95, 0.1, 1.0]]) and all(map(math.isnan, sink["sink_mass"][2]))
    assert sink["collapsed"] == [[True, False, False], [True, False, True], [False, False, False]]
    assert (sink["count"], sink["heads"], sink["threshold"]) == (3, 6, 0.9)
    strict = Measurements(model, tokens(), settings(seq_len=10, collapse_eps=0.01), "cpu").metrics(["sink_collapse"])
    assert strict["sink_collapse"]["count"] == 2  # the leaking sink puts only 0.95 on token 0
    edge = Measurements(CraftedModel(leak=0.875), tokens(), settings(seq_len=10, collapse_eps=0.125), "cpu", progress=False)
    assert edge.metrics(["sink_collapse"])["sink_collapse"]["collapsed"][1] == [True, False, True]  # 0.875 >= 1 - 0.125
    # the sink score's mean attention on token 0: float64 sums of the float32 maps, and its share of heads over sink_eps
    score = Measurements(model, tokens(), settings(seq_len=10, sink_seq_len=10, sink_eps=0.2), "cpu", progress=False)
    score = score.metrics(["attention_sink"])["attention_sink"]
    expected = torch.stack(model.maps).double()[..., 0].mean(-1)
    assert np.allclose(score["first_token_attention"][:2], expected, rtol=0, atol=1e-14)
    assert score["per_layer"][:2] == [2 / 3, 2 / 3]  # the identity (0.1) and all-columns (0.1) heads are not
    half = CraftedModel()
    half.maps = [torch.zeros(3, 10, 10).index_fill_(-1, torch.tensor([0, 1]), 0.5)] * 3  # every row: 0.5 on token 0
    at_eps = Measurements(half, tokens(), settings(seq_len=10, sink_seq_len=10, sink_eps=0.5), "cpu", progress=False)
    assert at_eps.metrics(["attention_sink"])["attention_sink"]["per_layer"] == [0.0] * 3  # a sink head's mean exceeds eps
    # the heatmaps draw these values and marks
    drawn = []
    monkeypatch.setattr(attention_probe, "head_map", lambda fig, ax, values, marks, *a, **k: drawn.append((values, marks)))
    result["settings"] = {"source": "crafted", "dataset": "toy", "num_seqs": NUM_SEQS, "seq_len": 10}
    attention_probe.plot_collapse(result, tmp_path / "collapse.png")
    assert drawn[0][0][:2] == rank and drawn[0][1] == collapse["collapsed"]
    assert drawn[1][0] == sink["sink_mass"] and drawn[1][1] == sink["collapsed"]


def test_sink_mass_and_mass_readings_on_hand_made_matrices():
    one, late = torch.zeros(10, 10), torch.zeros(10, 10)
    one[:, 0] = 1.0
    late[:, 5] = 1.0  # every row on column 5: one column, but the sixth in index order
    uniform = torch.ones(10, 10).tril() / torch.arange(1, 11.0)[:, None]
    assert sink_mass(torch.stack([one, late, uniform, torch.eye(10)])).tolist() == pytest.approx([1.0, 1.0, 0.1, 0.0])
    assert attention_mass(late, 0.9, "sorted").item() == 1 and attention_mass(late, 0.9, "index").item() == 6
    split = torch.zeros(10, 10)
    split[:, 2], split[:, 7] = 0.6, 0.4  # columns 2 and 7 hold 0.36 / 0.16 of the mass per row: 69% and 31%
    assert attention_mass(split, 0.6, "sorted").item() == 1 and attention_mass(split, 0.6, "index").item() == 3
    assert attention_mass(split, 0.9, "sorted").item() == 2 and attention_mass(split, 0.9, "index").item() == 8
    # uniform causal columns shrink with j: both readings agree
    assert attention_mass(uniform, 0.9, "sorted").item() == attention_mass(uniform, 0.9, "index").item() == 5
    A = causal_softmax(60, 20, 4.0, seed=5)
    assert attention_mass(A, 0.9, "index").tolist() == [reference_count(list((a.double() ** 2).sum(0).tolist()), 0.9)
                                                        for a in A]


def test_tau_sweep_equals_separate_runs(folders):
    model, _ = load_model(folders("falcon"), model_path="auto")
    sweep = attention_probe.tau_sweep(Measurements(model, tokens(), settings(taus=list(TAUS)), "cpu", progress=False))
    separate = [Measurements(model, tokens(), settings(tau=tau), "cpu", progress=False).metrics(["max_rank"])
                ["max_rank"]["per_layer"] for tau in TAUS]
    assert sweep["taus"] == list(TAUS) and sweep["max_rank"] == separate
    assert separate[0] != separate[-1]  # the sweep moves MaxRank
    assert sweep["lazy_layers"] == [[l for l, r in enumerate(row) if r == 1] for row in separate]


def test_tau_sweep_names_the_lazy_layers_at_every_tau():
    # the crafted layer 1 is rank 1 in every head at any tau (a leaking sink, a constant map, a sink); layer 0 never
    m = Measurements(CraftedModel(), tokens(), settings(seq_len=10, taus=[0.5, 0.9]), "cpu", progress=False)
    sweep = attention_probe.tau_sweep(m)
    assert sweep["taus"] == [0.5, 0.9] and sweep["lazy_layers"] == [[1], [1]]
    assert [row[1] for row in sweep["max_rank"]] == [1.0, 1.0] and min(row[0] for row in sweep["max_rank"]) > 1


def test_tf32_is_off_while_the_probe_measures(folders, monkeypatch):
    model, _ = load_model(folders("falcon"), model_path="transformers")
    flags, logits = [], hf_adapter.HFModel.logits

    def recording(self, idx):
        flags.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return logits(self, idx)
    monkeypatch.setattr(hf_adapter.HFModel, "logits", recording)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    cfg = settings(ablate_attention=True, num_seqs=2, sink_seqs=2, ablation_windows=1)
    Measurements(model, tokens(), cfg, "cpu", progress=False).metrics(
        ["max_rank", "block_influence", "attention_sink", "attention_ablation"])
    assert len(flags) == 1 + 1 + 1 + (1 + model.config.n_layer) and set(flags) == {(False, False)}
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32  # restored


def test_every_inherit_select_score_works_through_transformers(folders):
    model, _ = load_model(folders("falcon"), model_path="transformers")
    L, k = model.config.n_layer, 2
    for name, strategy in inherit.SELECTIONS.items():
        metrics = Measurements(model, tokens(), settings(), "cpu", progress=False).metrics(strategy.needs)
        if name == "lazy_cut":  # random weights: no lazy layer to cut at
            with pytest.raises(SystemExit, match="no layer of the source is lazy"):
                strategy.choose(metrics, L, None)
            continue
        blocks = strategy.choose(metrics, L, k)
        assert len(blocks) == k and blocks == sorted(blocks) and set(blocks) <= set(range(L)), name


def test_cli_through_transformers_writes_every_output(folders, data_root, tmp_path, capsys):
    out = tmp_path / "out"
    result = attention_probe.run(ProbeConfig(source=folders("falcon"), dataset="toy", data_root=data_root,
                                             out_dir=str(out), num_seqs=NUM_SEQS, seq_len=T, batch_size=BATCH,
                                             device="cpu", sink_seqs=4, collapse_rank=2.0, collapse_eps=0.2,
                                             taus=list(TAUS), mass_order="index", ablate_attention=True,
                                             ablation_windows=2, ablation_len=20))
    stdout = capsys.readouterr().out
    assert "via transformers (FalconForCausalLM)" in stdout and "MaxRank by tau:" in stdout
    assert "Rank(h, l) <= 2.0" in stdout and "eps-sink-collapsed at eps=0.2" in stdout
    assert sorted(os.listdir(out)) == ["probe.json", "probe.png", "probe_collapse.png"]
    saved = json.loads((out / "probe.json").read_text())
    assert saved["model"]["model_path"] == "transformers" and saved["model"]["architecture"] == "FalconForCausalLM"
    assert saved["settings"]["mass_order"] == "index" and saved["settings"]["tf32"] is False
    assert saved["tau_sweep"]["max_rank"][TAUS.index(0.9)] == [layer["max_rank"] for layer in saved["layers"]]
    assert saved["head_collapse"]["collapse_rank"] == 2.0 and len(saved["sink_collapse"]["sink_mass"]) == 3
    assert saved["attention_ablation"]["block_size"] == 20 and "2 fixed windows of 20 tokens" in stdout
    assert saved == json.loads(json.dumps(result))
    for name in ("probe.png", "probe_collapse.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("overrides, message", [
    ({"model_path": "onnx"}, "model_path='onnx' is not one of"),
    ({"mass_order": "random"}, "mass_order='random'"),
    ({"taus": [0.9, 1.5]}, "must all lie in (0, 1]"),
    ({"collapse_rank": 0.5}, "collapse_rank=0.5 is below 1"),
    ({"collapse_eps": 1.0}, "collapse_eps=1.0 must lie in (0, 1)"),
    ({"ablation_len": BLOCK + 1}, f"ablation_len={BLOCK + 1} must lie in 1..{BLOCK}"),
])
def test_bad_settings_fail_in_one_line(folders, data_root, tmp_path, overrides, message):
    with pytest.raises(SystemExit) as e:
        attention_probe.run(ProbeConfig(source=folders("falcon"), dataset="toy", data_root=data_root, seq_len=T,
                                        out_dir=str(tmp_path / "out"), **overrides))
    assert str(e.value).startswith("error: ") and message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_model_path_picks_the_implementation(folders):
    """auto: model.py for the families it has, transformers for the others; gpt: model.py or its one-line refusal."""
    assert load_model(folders("gpt2_gelu"), model_path="auto")[1]["model_path"] == "gpt"
    model, info = load_model(folders("falcon"), model_path="auto")
    assert info["model_path"] == "transformers" and info["model_args"]["architecture"] == "FalconForCausalLM"
    for path in ("gpt", None):  # load_model's default is model.py: the scripts that need a GPT keep their error
        with pytest.raises(SystemExit, match="describes a 'falcon' model; model.py reads the model types gpt2, llama, qwen2, qwen3: pass model_path='auto'"):
            load_model(folders("falcon"), **({"model_path": path} if path else {}))


def test_layers_not_found_is_a_one_line_error(folders, monkeypatch):
    hf = transformers_model(folders("gpt2_gelu"))
    hf.config.n_layer = 5
    with pytest.raises(SystemExit, match="GPT2LMHeadModel has no list of num_hidden_layers=5 decoder layers"):
        hf_adapter.HFModel(hf, "here")
    hf.config.n_layer = 2
    monkeypatch.setattr(hf_adapter, "MLP_NAMES", ("feed_forward",))
    with pytest.raises(SystemExit, match="decoder layer GPT2Block has no child named feed_forward"):
        hf_adapter.HFModel(hf, "here")


def test_bench_probe_times_the_transformers_path():
    cfg = bench_probe.BenchProbeConfig(n_layer=2, n_head=2, n_embd=16, block_size=32, vocab_size=VOCAB, num_seqs=3,
                                       seq_len=16, batch_size=2, device="cpu", hf_model_type="llama")
    result = bench_probe.bench_probe(cfg)
    assert result["model_path"] == "transformers" and result["architecture"] == "LlamaForCausalLM"
    assert result["probe_s"] > 0 and result["forward_s"] > 0 and 1 <= result["max_rank_mean"] <= 16
    assert "peak_memory_mib" in result
