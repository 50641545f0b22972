"""The Llama family as settings of model.py's GPT: Hugging Face Llama and Qwen2 folders load with transformers'
logits, export back to folders transformers reloads with the same logits, train with train.py, and whatever the GPT
cannot compute exactly is a one-line error. Tiny random HF models are built with transformers in tmp dirs (offline)."""
import json
import math
import os
from dataclasses import replace

import pytest
import torch

import export_hf
import inherit
from checkpoint import load_model, save_checkpoint
from configurator import configure
from data import get_batch, open_tokens
from losses import LossSpec, plain_loss
from model import GPT, GPTConfig
from train import TrainConfig, train

# GQA (2 key/value heads for 4 query heads), an untied lm_head, a base other than 10000 and Llama 2's epsilon
LLAMA = dict(vocab_size=96, hidden_size=64, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=48, rms_norm_eps=1e-6, rope_theta=500.0,
             tie_word_embeddings=False)
# Qwen2: q/k/v biases and none elsewhere, here one key/value head and a tied lm_head
QWEN2 = dict(LLAMA, num_key_value_heads=1, rope_theta=20000.0, tie_word_embeddings=True)
TOKENS = torch.randint(0, 96, (2, 48), generator=torch.Generator().manual_seed(1))


def write_hf(path, kind="llama", seed=0, base=None, **overrides):
    """A random HF model of the model_type kind saved to path, its config base | overrides (base None: LLAMA or
    QWEN2), made sharp enough that a wrong rotation, head grouping, bias or norm gain shows in the logits: q and k
    scaled up, random norm gains (q/k norms' too) and biases."""
    from transformers import AutoConfig, AutoModelForCausalLM
    base = base or {"llama": LLAMA, "qwen2": QWEN2}[kind]
    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(AutoConfig.for_model(kind, **(base | overrides)))
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(8)
            elif "norm" in name or name.endswith("bias"):
                p.add_(0.3 * torch.randn_like(p))
    hf.save_pretrained(path)
    return hf.eval()


def hf_logits(hf, idx=TOKENS):
    with torch.no_grad():
        return hf(idx).logits


def gpt_logits(model, idx=TOKENS):
    with torch.no_grad():
        return model.eval()(idx, idx.contiguous())[0]  # with targets: every position's logits


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def hf_dir(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    return path, write_hf(path, request.param)


def test_load_matches_transformers(hf_dir):
    path, hf = hf_dir
    model, info = load_model(str(path))
    qwen2 = hf.config.model_type == "qwen2"
    c = model.config
    assert info["kind"] == "hf" and info["model_args"]["position"] == "rope"
    assert (c.norm, c.position, c.mlp, c.n_head, c.n_kv_head, c.mlp_hidden) == ("rmsnorm", "rope", "swiglu", 4,
                                                                                hf.config.num_key_value_heads, 80)
    assert c.norm_eps == 1e-6 and c.rope_theta == (20000.0 if qwen2 else 500.0)
    assert (c.bias, c.qkv_bias, c.tie_embeddings) == ((False, True, True) if qwen2 else (False, None, False))
    assert model.transformer.wpe is None and "transformer.wpe.weight" not in model.state_dict()
    assert (model.lm_head.weight is model.transformer.wte.weight) == qwen2
    # c_attn stacks q (4 heads), k and v (n_kv_head heads each) of head size 16
    assert model.transformer.h[0].attn.c_attn.weight.shape == ((4 + 2 * c.n_kv_head) * 16, 64)
    ref = hf_logits(hf)
    assert torch.allclose(gpt_logits(model), ref, atol=1e-5), (gpt_logits(model) - ref).abs().max()
    # the tolerance means something: another RoPE base moves the logits far beyond it
    model.config.rope_theta = 10000.0
    assert (gpt_logits(model) - ref).abs().max() > 1e-2


def test_export_reloads_in_transformers_with_the_same_logits(hf_dir, tmp_path):
    from transformers import AutoModelForCausalLM
    path, hf = hf_dir
    (path / "tokenizer.json").write_text('{"stand-in": "copied as it is"}')
    out = tmp_path / "export"
    config = export_hf.export(str(path), str(out))
    assert sorted(os.listdir(out)) == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]
    assert (out / "tokenizer.json").read_text() == (path / "tokenizer.json").read_text()
    written = json.loads((out / "config.json").read_text())
    assert written["model_type"] == hf.config.model_type
    assert written["num_key_value_heads"] == config.n_kv_head and written["rope_theta"] == config.rope_theta
    back, loading = AutoModelForCausalLM.from_pretrained(str(out), output_loading_info=True, dtype=torch.float32)
    assert not any(loading.values()), loading  # no missing, unexpected or mismatched weights
    assert type(back) is type(hf)
    assert torch.allclose(hf_logits(back.eval()), hf_logits(hf), atol=1e-5)
    # and the exported folder loads back into the very same GPT
    again, _ = load_model(str(out))
    original, _ = load_model(str(path))
    assert again.config == original.config
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in again.state_dict().items())


def test_gpt_built_with_the_llama_settings_exports_as_llama(tmp_path):
    # a model trained here (not imported): GQA, biases everywhere, its own mlp_hidden, untied
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=32, vocab_size=96, n_layer=2, n_head=4, n_embd=32, bias=True, norm="rmsnorm", position="rope",
                    mlp="swiglu", mlp_hidden=48, n_kv_head=2, tie_embeddings=False, rope_theta=300.0)
    model = GPT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.3 * torch.randn_like(p))
            elif "c_attn" in name:
                p.mul_(10)
    save_checkpoint({"model": model.state_dict(), "model_args": vars(cfg)}, tmp_path / "ckpt.pt")
    export_hf.export(str(tmp_path / "ckpt.pt"), str(tmp_path / "hf"))
    from transformers import LlamaForCausalLM
    hf, loading = LlamaForCausalLM.from_pretrained(str(tmp_path / "hf"), output_loading_info=True, dtype=torch.float32)
    assert not any(loading.values()), loading
    assert hf.config.attention_bias and hf.config.mlp_bias and hf.config.intermediate_size == 48
    idx = TOKENS[:, :32]
    assert torch.allclose(hf_logits(hf.eval(), idx), gpt_logits(model, idx), atol=1e-5)


@pytest.mark.parametrize("fields,message", [
    (dict(norm="rmsnorm"), "Llama has no position='learned'"),  # a mix of the two families
    (dict(n_kv_head=2), "GPT-2 has no n_kv_head=2"),
    (dict(norm="rmsnorm", position="rope", mlp="swiglu", scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
    (dict(norm="rmsnorm", position="rope", mlp="swiglu", bias=True, qkv_bias=False), "Llama has no qkv_bias=False"),
])
def test_export_of_what_no_hf_architecture_computes_is_one_line_error(tmp_path, fields, message):
    model = GPT(GPTConfig(block_size=16, vocab_size=64, n_layer=1, n_head=4, n_embd=32, **fields))
    save_checkpoint({"model": model.state_dict(), "model_args": vars(model.config)}, tmp_path / "ckpt.pt")
    with pytest.raises(SystemExit) as e:
        export_hf.export(str(tmp_path / "ckpt.pt"), str(tmp_path / "hf"))
    msg = str(e.value)
    assert msg.startswith("error: ") and "\n" not in msg and message in msg, msg
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]  # nothing written


def edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("kind,changes,field", [
    ("llama", dict(rope_scaling={"rope_type": "linear", "factor": 2.0}), "rope_scaling"),  # transformers 4's key
    ("llama", dict(rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}), "rope_parameters"),
    ("llama", dict(rope_parameters={"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}), "rope_parameters"),
    ("qwen2", dict(use_sliding_window=True, sliding_window=16), "use_sliding_window"),
    ("qwen2", dict(layer_types=["full_attention", "sliding_attention", "full_attention"]), "layer_types"),
    ("llama", dict(hidden_act="gelu"), "hidden_act"),
    ("llama", dict(head_dim=32), "head_dim"),
    ("llama", dict(attention_bias=True), "attention_bias"),
    ("llama", dict(num_key_value_heads=3), "num_key_value_heads"),
])
def test_what_the_gpt_cannot_compute_is_a_one_line_error(tmp_path, kind, changes, field):
    write_hf(tmp_path, kind)
    edit_config(tmp_path, **changes)
    with pytest.raises(SystemExit) as e:
        load_model(str(tmp_path))
    msg = str(e.value)
    assert msg.startswith("error: ") and "\n" not in msg and field in msg, msg


def test_weights_the_config_does_not_announce_are_one_line_errors(tmp_path):
    from safetensors.torch import load_file, save_file
    write_hf(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    save_file({**weights, "model.layers.0.self_attn.q_proj.bias": torch.zeros(64)}, tmp_path / "model.safetensors")
    with pytest.raises(SystemExit, match=r"^error: .* no place for \(first: model.layers.0.self_attn.q_proj.bias\)$"):
        load_model(str(tmp_path))
    del weights["model.layers.2.mlp.up_proj.weight"]
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(SystemExit, match=r"^error: .* lacks the weight model.layers.2.mlp.up_proj.weight"):
        load_model(str(tmp_path))


def test_sharded_safetensors_load(tmp_path):
    from safetensors.torch import load_file, save_file
    hf = write_hf(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    os.remove(tmp_path / "model.safetensors")
    names = sorted(weights)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: weights[k] for k in keys}, tmp_path / file)
    index = {"weight_map": {k: file for file, keys in shards.items() for k in keys}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    model, _ = load_model(str(tmp_path))
    assert torch.allclose(gpt_logits(model), hf_logits(hf), atol=1e-5)


def test_hub_ids_go_through_a_snapshot(tmp_path, monkeypatch):
    import huggingface_hub
    hf = write_hf(tmp_path / "snapshot")
    calls = []

    def snapshot_download(repo_id, allow_patterns):
        calls.append((repo_id, allow_patterns))
        return str(tmp_path / "snapshot")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    model, info = load_model("hf:someone/tiny-llama")
    assert calls[0][0] == "someone/tiny-llama" and "*.safetensors" in calls[0][1] and "*.json" in calls[0][1]
    assert info["source"] == "hf:someone/tiny-llama"
    assert torch.allclose(gpt_logits(model), hf_logits(hf), atol=1e-5)

    def offline(repo_id, allow_patterns):
        raise OSError("no network")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(SystemExit, match=r"^error: could not download someone/tiny-llama from the Hugging Face hub \(OSError\)"):
        load_model("hf:someone/tiny-llama")


def rotate_by_hand(x, theta):
    """RoPE written independently of model.py: dimensions j and j + d/2 are one complex number, turned by
    position * theta^(-2j/d)."""
    T, d = x.shape[-2], x.shape[-1]
    angle = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.complex(x[..., :d // 2].double(), x[..., d // 2:].double()) * torch.polar(torch.ones_like(angle), angle)
    return torch.cat((z.real, z.imag), dim=-1).float()


def test_attention_maps_of_a_gqa_model_are_softmax_qk_per_query_head(hf_dir):
    path, hf = hf_dir
    model, _ = load_model(str(path))
    c = model.config
    H, d, group = c.n_head, c.n_embd // c.n_head, c.n_head // c.n_kv_head
    B, T = TOKENS.shape
    maps = list(model.eval().attention_maps(TOKENS))
    streams = list(model.hidden_states(TOKENS))
    for (i, att), x, block in zip(maps, streams, model.transformer.h):
        assert att.shape == (B, H, T, T) and att.dtype == torch.float32
        with torch.no_grad():
            qkv = block.attn.c_attn(block.ln_1(x))
        q = qkv[..., :H * d].view(B, T, H, d).transpose(1, 2)
        k = qkv[..., H * d:(H + c.n_kv_head) * d].view(B, T, c.n_kv_head, d).transpose(1, 2)
        q, k = rotate_by_hand(q, c.rope_theta), rotate_by_hand(k, c.rope_theta)
        for h in range(H):  # query head h reads key/value head h // group
            scores = q[:, h] @ k[:, h // group].transpose(-2, -1) / math.sqrt(d)
            ref = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf")).softmax(-1)
            assert torch.allclose(att[:, h], ref, atol=1e-5), (i, h, (att[:, h] - ref).abs().max())
    # the two heads of a group share keys but not queries: their maps differ
    assert (maps[0][1][:, 0] - maps[0][1][:, 1]).abs().max() > 1e-2


def test_explicit_attention_sdpa_and_cpu_autocast_agree_under_gqa(hf_dir):
    model, _ = load_model(str(hf_dir[0]))
    with torch.no_grad():
        sdpa = gpt_logits(model)
        explicit = model(TOKENS, TOKENS, attention_hook=lambda i, att: None)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(TOKENS, TOKENS)[0]
    assert torch.allclose(explicit, sdpa, atol=1e-5)
    assert bf16.dtype == torch.bfloat16 and (bf16.float() - sdpa).abs().max() < 0.1 * sdpa.abs().max()


LLAMA_SMALL = dict(block_size=32, vocab_size=96, n_layer=2, n_head=4, n_embd=32, bias=False, norm="rmsnorm",
                   position="rope", mlp="swiglu", mlp_hidden=48, n_kv_head=1, tie_embeddings=False)


def test_param_count_flops_crop_and_generate():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**LLAMA_SMALL)).eval()
    C, V, L, F, hd = 32, 96, 2, 48, 8
    per_block = 2 * C + C * (4 + 2 * 1) * hd + C * C + C * 2 * F + F * C  # norms, c_attn (q + 1 k/v head), c_proj, c_fc, c_proj
    assert model.get_num_params(non_embedding=False) == 2 * V * C + L * per_block + C  # wte, lm_head, ln_f
    assert model.get_num_params() == V * C + L * per_block + C  # wte is a lookup: left out
    assert model.flops_per_token() == 3 * (2 * model.get_num_params() + 4 * L * 4 * hd * 32)
    idx = TOKENS[:, :32] % V
    before = gpt_logits(model, idx)
    model.crop_block_size(16)
    assert model.config.block_size == 16 and model.get_num_params(non_embedding=False) == 2 * V * C + L * per_block + C
    assert torch.allclose(gpt_logits(model, idx[:, :16]), before[:, :16], atol=1e-6)  # RoPE's first positions unchanged
    torch.manual_seed(3)
    out = model.generate(idx[:, :20], max_new_tokens=5, top_k=10)  # a prompt longer than the context is cut to it
    assert out.shape == (2, 25) and torch.equal(out[:, :20], idx[:, :20]) and int(out.max()) < V


def test_optimizer_decays_an_untied_lm_head_but_no_lookup_table():
    model = GPT(GPTConfig(**LLAMA_SMALL))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu", decay_embeddings=False)
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    assert id(model.lm_head.weight) in decayed and id(model.transformer.wte.weight) not in decayed
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.get_num_params(non_embedding=False)


@pytest.mark.parametrize("fields,message", [
    (dict(norm="batchnorm"), "norm='batchnorm' is not one of layernorm, rmsnorm"),
    (dict(position="alibi"), "position='alibi' is not one of learned, rope"),
    (dict(n_kv_head=3), "n_kv_head=3 must divide n_head=4"),
    (dict(n_embd=12, n_head=4, position="rope"), "must be even"),
])
def test_bad_settings_are_one_line_errors(fields, message):
    with pytest.raises(SystemExit) as e:
        GPTConfig(**{**dict(n_head=4, n_embd=32), **fields})
    assert str(e.value).startswith("error: ") and "\n" not in str(e.value) and message in str(e.value), str(e.value)


def train_args(root, out_dir, *extra):
    return ["--dataset=shakespeare", f"--data_root={root}", f"--out_dir={out_dir}", "--block_size=32", "--batch_size=4",
            "--gradient_accumulation_steps=1", "--eval_iters=2", "--eval_interval=6", "--max_iters=6", "--log_interval=1",
            "--warmup_iters=0", "--learning_rate=1e-2", "--decay_lr=False", "--compile=False", "--device=cpu",
            "--dtype=float32", *extra]


# the Llama settings as train.py flags: a 2-layer GQA model with SwiGLU, RoPE of another base and an untied lm_head
LLAMA_FLAGS = ["--n_layer=2", "--n_head=4", "--n_embd=32", "--norm=rmsnorm", "--position=rope", "--mlp=swiglu",
               "--mlp_hidden=48", "--n_kv_head=2", "--tie_embeddings=False", "--rope_theta=500.0"]


def step_losses(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [m["loss"] for m in map(json.loads, f) if "loss" in m]


@pytest.mark.parametrize("start", ["hf", "scratch"])
def test_train_py_trains_the_llama_settings(shakespeare_root, tmp_path, start):
    # from an HF Llama folder (GPT-2 token ids: a vocab of 50304 holds the data's 50257), or from scratch by settings
    if start == "hf":
        write_hf(tmp_path / "hf", vocab_size=50304, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                 max_position_embeddings=64)
        extra = [f"--init_from={tmp_path / 'hf'}"]
    else:
        extra = LLAMA_FLAGS
    out_dir = tmp_path / "run"
    result = train(configure(TrainConfig, train_args(shakespeare_root, out_dir, *extra)))
    losses = step_losses(out_dir)
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.5, losses
    ckpt = torch.load(out_dir / "ckpt.pt", weights_only=True)
    args = ckpt["model_args"]
    assert (args["norm"], args["position"], args["mlp"], args["n_kv_head"], args["tie_embeddings"]) == \
        ("rmsnorm", "rope", "swiglu", 2, False)
    assert args["block_size"] == 32 and args["rope_theta"] == 500.0  # cropped to the run's context; RoPE's base kept
    assert "transformer.wpe.weight" not in ckpt["model"]
    assert not torch.equal(ckpt["model"]["lm_head.weight"], ckpt["model"]["transformer.wte.weight"])
    # the checkpoint loads back as the same model and gives the loss train.py measured
    model, _ = load_model(str(out_dir))
    assert model.config == GPTConfig.from_dict(args)
    evaluated = train(configure(TrainConfig, train_args(shakespeare_root, tmp_path / "eval", f"--init_from={out_dir}/ckpt.pt",
                                                         "--eval_only=True")))
    assert evaluated["val_loss"] == pytest.approx(result["val_loss"], abs=1e-4)


def test_inherit_copies_an_untied_gqa_llama(tmp_path, hf_dir):
    # inherit.py's depth-only warm start: the first blocks, the embedding, an untied lm_head and ln_f, bit for bit
    path, _ = hf_dir
    source, _ = load_model(str(path))
    for layers in (3, 2):
        inherit.main([f"--source={path}", f"--inherit_layers={layers}", f"--out={tmp_path / f'{layers}.pt'}"])
        target, _ = load_model(str(tmp_path / f"{layers}.pt"))
        assert target.config == replace(source.config, n_layer=layers)
        assert all(torch.equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())
        if layers == 3:  # all of it: the same model
            assert torch.allclose(gpt_logits(target), gpt_logits(source), atol=1e-6)
    # the provenance names the groups the source has: an untied lm_head on its own, no wpe under RoPE
    p = torch.load(tmp_path / "2.pt", weights_only=True)["inherit"]
    embeddings = ["wte/lm_head"] if source.config.tie_embeddings else ["wte", "lm_head"]
    assert p["inherited"] == embeddings + ["ln_f", "blocks.attn", "blocks.mlp", "blocks.ln"] and p["reinitialized"] == []
    assert "wpe" not in inherit.describe(p)
    # a fresh ln_f leaves the untied embedding and lm_head inherited
    inherit.main([f"--source={path}", "--inherit_layers=2", "--inherit_ln_f=False", f"--out={tmp_path / 'no_ln_f.pt'}"])
    ckpt = torch.load(tmp_path / "no_ln_f.pt", weights_only=True)
    assert ckpt["inherit"]["reinitialized"] == ["ln_f"]
    for k in ("transformer.wte.weight", "lm_head.weight"):
        assert torch.equal(ckpt["model"][k], source.state_dict()[k]), k
    # without a wpe to crop or extend, a longer context than the source's is no error
    inherit.main([f"--source={path}", "--inherit_layers=2", "--block_size=96", f"--out={tmp_path / 'long.pt'}"])
    longer, _ = load_model(str(tmp_path / "long.pt"))
    assert longer.config.block_size == 96
    assert torch.allclose(gpt_logits(longer), gpt_logits(target), atol=1e-6)  # same weights, same rotations


def narrowed_hf_weights(hf, layers, heads, kv_heads, width, hidden):
    """The HF state dict of the first `layers` layers of hf cut to its first query heads, the key/value heads they
    read, `width` dimensions and `hidden` MLP units, sliced from transformers' own q/k/v/gate/up/... tensors."""
    sd, d = hf.state_dict(), getattr(hf.config, "head_dim", None) or hf.config.hidden_size // hf.config.num_attention_heads
    rows = {"q_proj": heads * d, "k_proj": kv_heads * d, "v_proj": kv_heads * d, "o_proj": width,
            "gate_proj": hidden, "up_proj": hidden, "down_proj": width}
    cols = {"o_proj": heads * d, "down_proj": hidden}
    out = {}
    for name, w in sd.items():
        if name.startswith("model.layers.") and int(name.split(".")[2]) >= layers:
            continue
        module = name.split(".")[-2]
        if module in rows:
            w = w[:rows[module]] if w.dim() == 1 else w[:rows[module], :cols.get(module, width)]
        else:  # norms (width,), embed_tokens and lm_head (vocab, width)
            w = w[..., :width]
        out[name] = w
    return out


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_half_width_of_a_gqa_swiglu_model_slices_q_k_v_gate_and_up_each(tmp_path, kind):
    # 4 query heads reading 2 key/value heads (two each) -> the first 2 query heads and the 1 key/value head they
    # read; 64 -> 32 wide, so the 80 SwiGLU hidden units -> 40; Qwen2 with its q/k/v biases
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    hf = write_hf(tmp_path / "hf", kind, num_key_value_heads=2)
    inherit.main([f"--source={tmp_path / 'hf'}", "--inherit_layers=2", "--inherit_n_head=2", "--inherit_n_embd=32",
                  f"--out={tmp_path / 'narrow.pt'}"])
    ckpt = torch.load(tmp_path / "narrow.pt", weights_only=True)
    args = ckpt["model_args"]
    assert (args["n_layer"], args["n_head"], args["n_kv_head"], args["n_embd"], args["mlp_hidden"]) == (2, 2, 1, 32, 40)
    assert ckpt["inherit"]["params_fresh"] == 0
    assert "width: the first 2 of 4 heads (and 1 of 2 key/value heads) and 32 of 64 dimensions" in ckpt["inherit"]["notes"]
    embeddings = [g for g in ckpt["inherit"]["inherited"] if g in ("wte", "lm_head", "wte/lm_head")]
    assert embeddings == (["wte/lm_head"] if args.get("tie_embeddings", True) else ["wte", "lm_head"])  # Llama's are untied
    ref = narrowed_hf_weights(hf, layers=2, heads=2, kv_heads=1, width=32, hidden=40)
    got = ckpt["model"]
    for i in range(2):
        hf_i, gpt_i = (lambda k: ref[f"model.layers.{i}.{k}"]), (lambda k: got[f"transformer.h.{i}.{k}"])
        assert torch.equal(gpt_i("attn.c_attn.weight"), torch.cat([hf_i(f"self_attn.{p}_proj.weight") for p in "qkv"]))
        if kind == "qwen2":
            assert torch.equal(gpt_i("attn.c_attn.bias"), torch.cat([hf_i(f"self_attn.{p}_proj.bias") for p in "qkv"]))
        assert torch.equal(gpt_i("attn.c_proj.weight"), hf_i("self_attn.o_proj.weight"))
        assert torch.equal(gpt_i("mlp.c_fc.weight"), torch.cat([hf_i("mlp.gate_proj.weight"), hf_i("mlp.up_proj.weight")]))
        assert torch.equal(gpt_i("mlp.c_proj.weight"), hf_i("mlp.down_proj.weight"))
        assert torch.equal(gpt_i("ln_1.weight"), hf_i("input_layernorm.weight"))
        assert torch.equal(gpt_i("ln_2.weight"), hf_i("post_attention_layernorm.weight"))
    assert torch.equal(got["transformer.wte.weight"], ref["model.embed_tokens.weight"])
    assert torch.equal(got["lm_head.weight"], ref["lm_head.weight"])  # Llama's own lm_head, Qwen2's tied one
    assert torch.equal(got["transformer.ln_f.weight"], ref["model.norm.weight"])
    # the narrowed GPT computes what transformers computes with those slices as a model of the narrow shape
    config_class, model_class, base = {"llama": (LlamaConfig, LlamaForCausalLM, LLAMA),
                                       "qwen2": (Qwen2Config, Qwen2ForCausalLM, QWEN2)}[kind]
    small = model_class(config_class(**(base | dict(hidden_size=32, num_attention_heads=2, num_key_value_heads=1,
                                                    intermediate_size=40, num_hidden_layers=2))))
    small.load_state_dict(ref)
    target, _ = load_model(str(tmp_path / "narrow.pt"))
    assert torch.allclose(gpt_logits(target), hf_logits(small.eval()), atol=1e-5)


@pytest.mark.parametrize("kind,hf_changes,width,message", [
    ("qwen2", {}, ["--inherit_n_head=2"], "n_head=2 would split a key/value group: the source's 4 query heads share 1 "
                                          "key/value heads, 4 each; pass an inherit_n_head that is a multiple of 4"),
    ("llama", dict(intermediate_size=81), ["--inherit_n_head=2"], "scales mlp_hidden=81 (of n_embd=64) to 40.5 hidden units"),
    ("llama", {}, ["--inherit_n_head=2", "--inherit_n_embd=16"], "RoPE rotates dimension j with j + head_size/2"),
])
def test_narrowing_that_breaks_a_group_a_hidden_unit_or_a_rotary_pair_is_one_line_error(tmp_path, kind, hf_changes, width, message):
    write_hf(tmp_path / "hf", kind, **hf_changes)
    with pytest.raises(SystemExit) as e:
        inherit.main([f"--source={tmp_path / 'hf'}", *width, f"--out={tmp_path / 'narrow.pt'}"])
    msg = str(e.value)
    assert msg.startswith("error: ") and "\n" not in msg and message in msg, msg
    assert not (tmp_path / "narrow.pt").exists()


def test_deeper_target_stacks_the_blocks_of_a_gqa_llama(tmp_path, hf_dir):
    # inherit_layers deeper than the source: every target block is its source block, tensor by tensor
    path, _ = hf_dir
    source, _ = load_model(str(path))
    src = source.state_dict()
    inherit.main([f"--source={path}", "--inherit_layers=0-2,0-1", f"--out={tmp_path / 'deep.pt'}"])
    target, info = load_model(str(tmp_path / "deep.pt"))
    assert target.config == replace(source.config, n_layer=5) and info["inherit"]["layers"] == [0, 1, 2, 0, 1]
    for k, v in target.state_dict().items():
        s = k if not k.startswith("transformer.h.") else f"transformer.h.{[0, 1, 2, 0, 1][int(k.split('.')[2])]}.{k.split('.', 3)[3]}"
        assert torch.equal(v, src[s]), k
    assert gpt_logits(target).isfinite().all()


def llama_reference(path, n_layer=4):
    """A random Llama-setting checkpoint of GPT-2's vocabulary (untied lm_head, RoPE, GQA), its norms off their init."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**(LLAMA_SMALL | dict(block_size=64, vocab_size=50304, n_layer=n_layer, n_kv_head=2, rope_theta=500.0))))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_f.weight") or ".ln_" in name:
                p.add_(0.3 * torch.randn_like(p))
    save_checkpoint({"model": model.state_dict(), "model_args": model.config.model_args(), "iter_num": 0,
                     "best_val_loss": 1e9, "config": {}}, path)
    return model.state_dict(), model.config.model_args()


@pytest.mark.parametrize("mode", ["paper", "continue"])
def test_grow_on_a_llama_reference(shakespeare_root, tmp_path, mode):
    import grow
    ref, ref_args = llama_reference(tmp_path / "ref.pt")
    out_dir = tmp_path / "grow"
    args = train_args(shakespeare_root, out_dir, f"--reference={tmp_path / 'ref.pt'}", "--reference_val_loss=0.5",
                      f"--grow_mode={mode}", "--max_iters=2", "--eval_interval=2")
    state = grow.grow(configure(grow.GrowConfig, args))
    assert [r["n_layer"] for r in state["rounds"]] == [2, 4] and all(r["steps"] == 2 for r in state["rounds"])
    init2 = torch.load(out_dir / "round_2" / "init.pt", weights_only=True)
    assert init2["model_args"] == ref_args | dict(n_layer=2, block_size=32)  # GQA, untied, RoPE: the reference's settings
    # round 2 starts from the reference's first blocks, its own lm_head and its final norm, bit for bit
    assert set(init2["model"]) == {k for k in ref if not k.startswith(("transformer.h.2.", "transformer.h.3."))}
    assert all(torch.equal(v, ref[k]) for k, v in init2["model"].items())
    trained2 = torch.load(out_dir / "round_2" / "ckpt.pt", weights_only=True)["model"]
    assert not torch.equal(trained2["lm_head.weight"], trained2["transformer.wte.weight"])  # still untied after training
    init4 = torch.load(out_dir / "round_4" / "init.pt", weights_only=True)["model"]
    # paper mode: round 4 is the reference again; continue mode: round 2's trained blocks, lm_head and ln_f, then
    # the reference's blocks 2 and 3
    kept = ref if mode == "paper" else trained2
    for k, v in init4.items():
        assert torch.equal(v, (ref if k.startswith(("transformer.h.2.", "transformer.h.3.")) else kept)[k]), k
    assert not torch.equal(trained2["lm_head.weight"], ref["lm_head.weight"])  # so the two modes are told apart
    final = torch.load(out_dir / "round_4" / "ckpt.pt", weights_only=True)
    assert final["model_args"]["n_layer"] == 4 and "transformer.wpe.weight" not in final["model"]


def test_fused_and_plain_kd_agree_with_untied_lm_heads():
    # a Llama-setting student and teacher, both untied: the fused loss's gradient wrt lm_head is lm_head's alone
    torch.manual_seed(0)
    student = GPT(GPTConfig(**LLAMA_SMALL))
    teacher = GPT(GPTConfig(**(LLAMA_SMALL | dict(n_layer=3, n_embd=48, n_kv_head=2)))).eval()
    idx, y = TOKENS[:, :32], TOKENS[:, 1:33].clone()
    y[0, 5:9] = -1
    with torch.no_grad():
        hidden = teacher.final_hidden(idx)

    def run(fused):
        student.zero_grad()
        spec = LossSpec(fused=fused, teacher_hidden=hidden, teacher_weight=teacher.lm_head.weight, kd_alpha=0.4, kd_temperature=2.0)
        _, loss, terms = student(idx, y, loss_spec=spec)
        loss.backward()
        return loss, terms, {n: p.grad.clone() for n, p in student.named_parameters()}

    (fused, fused_terms, g_fused), (plain, plain_terms, g_plain) = run(True), run(False)
    torch.testing.assert_close(fused, plain)
    assert fused_terms["kd"] > 0.01
    for k in ("ce", "kd"):
        torch.testing.assert_close(fused_terms[k], plain_terms[k])
    for n in g_plain:
        torch.testing.assert_close(g_fused[n], g_plain[n], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(g_plain["lm_head.weight"], g_plain["transformer.wte.weight"])


def kd_teacher(path, **overrides):
    """A 2-layer HF Llama of GPT-2's (padded) vocabulary: a teacher for students of the Shakespeare tokens, its
    (untied) lm_head scaled up so that its predictions are far from uniform and KD has something to teach."""
    hf = write_hf(path, **(dict(vocab_size=50304, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                max_position_embeddings=64) | overrides))
    with torch.no_grad():
        hf.lm_head.weight.mul_(30)
    hf.save_pretrained(path)
    return hf


def test_kd_from_an_hf_llama_teacher_logs_plain_loss_terms(shakespeare_root, tmp_path):
    # the student inherits the teacher's first block; the first step's logged CE and KD (the fused loss, the default)
    # are what losses.plain_loss gives on the first batch from the weights before the step
    kd_teacher(tmp_path / "hf")
    warm_start = ["--inherit_layers=1", f"--init_from={tmp_path / 'hf'}"]
    out_dir = tmp_path / "kd"
    train(configure(TrainConfig, train_args(shakespeare_root, out_dir, *warm_start, f"--teacher={tmp_path / 'hf'}",
                                            "--kd_temperature=2.0", "--max_iters=2", "--eval_interval=2")))
    with open(out_dir / "metrics.jsonl") as f:
        steps = [m for m in map(json.loads, f) if "loss" in m]
    assert len(steps) == 2 and all(m["loss"] == pytest.approx(0.6 * m["ce"] + 0.4 * m["kd"], rel=1e-5) for m in steps)
    inherit.main([f"--source={tmp_path / 'hf'}", "--inherit_layers=1", f"--out={tmp_path / 'student.pt'}"])
    student, _ = load_model(str(tmp_path / "student.pt"))
    teacher, _ = load_model(str(tmp_path / "hf"))
    assert not student.config.tie_embeddings and student.config.n_layer == 1
    train_data = open_tokens(str(shakespeare_root / "shakespeare"), "train")
    offsets = torch.randint(len(train_data) - 32, (1, 4), generator=torch.Generator().manual_seed(1337))[0]  # train.py's first draw
    x, y = get_batch(train_data, offsets.numpy(), 32, "cpu")
    with torch.no_grad():
        spec = LossSpec(fused=False, teacher_hidden=teacher.final_hidden(x), teacher_weight=teacher.lm_head.weight,
                        kd_alpha=0.4, kd_temperature=2.0)
        _, terms = plain_loss(student.lm_head(student.final_hidden(x)), y, spec)
    assert terms["kd"] > 0.1  # one of the teacher's two blocks: the student is not the teacher
    assert steps[0]["kd"] == pytest.approx(terms["kd"].item(), rel=1e-5)
    assert steps[0]["ce"] == pytest.approx(terms["ce"].item(), rel=1e-5)


def test_kd_teacher_of_another_vocabulary_is_one_line_error(shakespeare_root, tmp_path):
    kd_teacher(tmp_path / "hf")
    kd_teacher(tmp_path / "other", vocab_size=50368)
    out_dir = tmp_path / "kd"
    with pytest.raises(SystemExit) as e:
        train(configure(TrainConfig, train_args(shakespeare_root, out_dir, f"--init_from={tmp_path / 'hf'}",
                                                f"--teacher={tmp_path / 'other'}")))
    msg = str(e.value)
    assert msg.startswith("error: teacher ") and "\n" not in msg and "vocab_size 50368" in msg and "the student 50304" in msg, msg
    assert not out_dir.exists()


@pytest.mark.parametrize("start", ["scratch", "inherited"])
def test_kill_and_resume_of_a_llama_run_is_bit_identical(shakespeare_root, tmp_path, start):
    # test_train.py's kill-and-resume on the Llama settings, with dropout; or a student inherited from an HF Llama
    # and distilled from it (the teacher reloaded from its folder on resume)
    from test_train import interrupt_and_resume
    args = [*LLAMA_FLAGS, "--max_iters=12", "--eval_interval=3", "--dropout=0.1"]
    if start == "inherited":
        kd_teacher(tmp_path / "hf")
        args += [f"--init_from={tmp_path / 'hf'}", "--inherit_layers=1", f"--teacher={tmp_path / 'hf'}"]
    full, killed, resumed = interrupt_and_resume(shakespeare_root, tmp_path, args)
    model_args = resumed["model_args"]
    assert (model_args["n_layer"], model_args["n_kv_head"], model_args["tie_embeddings"], model_args["position"]) == \
        (1 if start == "inherited" else 2, 2, False, "rope")
    if start == "inherited":
        assert [m.get("kd") for m in killed] == [m.get("kd") for m in full] and full[1]["kd"] > 0.1
        assert resumed["inherit"]["layers"] == [0]


def test_ddp_gloo_on_the_llama_settings_matches_one_process(shakespeare_root, tmp_path):
    # two gloo ranks, each half of the global batch, against one process: the same losses (test_train.py's check)
    from test_train import ddp_matches_one_process
    ddp_matches_one_process(shakespeare_root, tmp_path, [*LLAMA_FLAGS, "--max_iters=4", "--eval_interval=4",
                                                         "--dtype=float32", "--log_interval=100", "--log_seconds=1e-9"])
    args = torch.load(tmp_path / "ddp" / "ckpt.pt", weights_only=True)["model_args"]
    assert (args["n_kv_head"], args["mlp"], args["tie_embeddings"]) == (2, "swiglu", False)


def block_influence_by_transformers(folder, x):
    """ShortGPT's BI per layer computed on transformers' own model of an HF folder: 1 - mean cos(input, output) of
    every decoder layer over the tokens of x, from hooks on the layers."""
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    cosines = []

    def hook(layer, args, kwargs, output):
        before = (args[0] if args else kwargs["hidden_states"]).double()
        after = (output[0] if isinstance(output, tuple) else output).double()
        cosines.append(torch.nn.functional.cosine_similarity(before, after, dim=-1).mean().item())
    for layer in hf.model.layers:
        layer.register_forward_hook(hook, with_kwargs=True)
    with torch.no_grad():
        hf(x)
    return [1 - c for c in cosines]


def test_probe_and_results_on_a_llama_run(shakespeare_root, tmp_path, capsys):
    # a half-width student of an HF Llama's first 2 blocks, distilled from it: the probe reads the HF folder and the
    # trained run (its BI as transformers computes it on the folder and on the run's export), results.py labels it
    import attention_probe
    import results
    from attention_probe import ProbeConfig
    from data import fixed_windows
    kd_teacher(tmp_path / "hf", num_hidden_layers=3)
    run = tmp_path / "run"
    train(configure(TrainConfig, train_args(shakespeare_root, run, f"--init_from={tmp_path / 'hf'}", "--inherit_layers=2",
                                            "--inherit_n_head=2", f"--teacher={tmp_path / 'hf'}", "--max_iters=2",
                                            "--eval_interval=2")))
    export_hf.export(str(run), str(tmp_path / "run_hf"))
    val = open_tokens(str(shakespeare_root / "shakespeare"), "val")
    window = ["--num_seqs=6", "--seq_len=32", "--batch_size=6", "--sink_seqs=6", "--sink_seq_len=32"]
    x, _ = get_batch(val, fixed_windows(len(val), 32, 6, seed=1337), 32, "cpu")  # the probe's windows
    for source, folder, n_layer in ((tmp_path / "hf", tmp_path / "hf", 3), (run, tmp_path / "run_hf", 2)):
        out_dir = tmp_path / f"probe_{source.name}"
        result = attention_probe.run(configure(ProbeConfig, [f"--source={source}", "--dataset=shakespeare", f"--data_root={shakespeare_root}",
                                                             f"--out_dir={out_dir}", *window, "--device=cpu", "--ablate_mlp=True",
                                                             "--ablation_windows=4"]))
        assert (out_dir / "probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert json.loads((out_dir / "probe.json").read_text())["model"] == result["model"]
        assert (result["model"]["position"], result["model"]["n_kv_head"]) == ("rope", 2 if n_layer == 3 else 1)
        layers = result["layers"]
        assert len(layers) == n_layer and all(1 <= layer["max_rank"] <= 32 and "mlp_ablation" in layer for layer in layers)
        bi = block_influence_by_transformers(folder, x)
        assert [layer["block_influence"] for layer in layers] == pytest.approx(bi, abs=1e-5)
        assert min(bi) > 1e-3  # every block turns the stream: BI is not vacuously 0
    assert result["model"]["kind"] == "checkpoint" and result["model"]["iter_num"] == 2
    rows = results.main([str(run)])
    row = rows[0]
    assert row["init"] == "inherited blocks 0-1 of hf (3L), width 2x16 of 4x32; KD from hf (alpha 0.4, T 1.0)"
    student = GPT(GPTConfig.from_dict(torch.load(run / "ckpt.pt", weights_only=True)["model_args"]))
    assert (row["n_layer"], row["n_head"], row["n_embd"], row["params"], row["steps"]) == (2, 2, 16, student.get_num_params(), 2)
    assert f"| {run} | 2 | 2 x 16 | {student.get_num_params() / 1e6:.2f}M | {row['init']} | 2 |" in capsys.readouterr().out
