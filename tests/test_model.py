"""model.py: Hugging Face parity, the two attention paths, init, optimizer groups, generate, nanoGPT compatibility."""
import json
import math

import pytest
import torch
from safetensors.torch import save_file

from checkpoint import load_model
import model as model_module
from model import GPT, GPTConfig

SMALL = dict(block_size=64, vocab_size=101, n_layer=3, n_head=4, n_embd=48)


def hf_gpt2(scale_attn_by_inverse_layer_idx, seed=0):
    """A random transformers GPT-2 whose biases and LayerNorm gains are random too, so every weight matters."""
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=SMALL["vocab_size"], n_positions=SMALL["block_size"], n_embd=SMALL["n_embd"],
                     n_layer=SMALL["n_layer"], n_head=SMALL["n_head"], resid_pdrop=0, embd_pdrop=0, attn_pdrop=0,
                     bos_token_id=0, eos_token_id=0, scale_attn_by_inverse_layer_idx=scale_attn_by_inverse_layer_idx)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
            elif "c_attn.weight" in name:
                p.mul_(10)  # sharp attention, so that a wrong attention scale shows in the logits
    return model


def tokens(batch=2, t=40, seed=1):
    return torch.randint(0, SMALL["vocab_size"], (batch, t), generator=torch.Generator().manual_seed(seed))


def full_logits(model, idx):
    """forward() returns every position's logits only when targets are given (nanoGPT's convention)."""
    logits, _ = model(idx, targets=idx)
    return logits


@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_from_pretrained_matches_transformers(tmp_path, scale, fmt):
    hf = hf_gpt2(scale)
    if fmt == "safetensors":
        hf.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").is_file()
    else:
        # the hub's original pytorch_model.bin: GPT2Model keys (no "transformer."), with the causal-mask buffers
        hf.config.save_pretrained(tmp_path)
        sd = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
        T = SMALL["block_size"]
        for i in range(SMALL["n_layer"]):
            sd[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, T, T, dtype=torch.uint8))
            sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        torch.save(sd, tmp_path / "pytorch_model.bin")
    model = GPT.from_pretrained(str(tmp_path)).eval()
    assert model.config.scale_attn_by_inverse_layer_idx == scale
    assert model.config.block_size == SMALL["block_size"] and model.config.vocab_size == SMALL["vocab_size"]
    idx = tokens()
    with torch.no_grad():
        ref = hf(idx).logits
        ours = full_logits(model, idx)
        last, _ = model(idx)
    assert torch.allclose(ours, ref, atol=1e-4, rtol=0), (ours - ref).abs().max()
    assert torch.allclose(last[:, 0], ref[:, -1], atol=1e-4, rtol=0)
    # the same directory through the one loader every script uses
    loaded, info = load_model(str(tmp_path))
    assert info["kind"] == "hf" and info["model_args"]["scale_attn_by_inverse_layer_idx"] == scale
    with torch.no_grad():
        assert torch.equal(full_logits(loaded.eval(), idx), ours)


def test_scale_attn_by_inverse_layer_idx_changes_logits():
    torch.manual_seed(0)
    a = GPT(GPTConfig(**SMALL))
    with torch.no_grad():
        for block in a.transformer.h:
            block.attn.c_attn.weight.mul_(10)  # sharp attention, as in a trained model
    b = GPT(GPTConfig(**SMALL, scale_attn_by_inverse_layer_idx=True))
    b.load_state_dict(a.state_dict())
    idx = tokens()
    with torch.no_grad():
        assert not torch.allclose(full_logits(a, idx), full_logits(b, idx), atol=1e-3)


@pytest.mark.parametrize("scale", [False, True])
def test_sdpa_and_explicit_attention_agree(scale):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, scale_attn_by_inverse_layer_idx=scale)).eval()
    idx, targets = tokens(seed=2), tokens(seed=3)
    seen = []
    with torch.no_grad():
        logits_sdpa, loss_sdpa = model(idx, targets)
        logits_explicit, loss_explicit = model(idx, targets, attention_hook=lambda i, att: seen.append(i))
    assert seen == list(range(SMALL["n_layer"]))
    assert torch.allclose(logits_sdpa, logits_explicit, atol=1e-5, rtol=0)
    assert abs(loss_sdpa.item() - loss_explicit.item()) < 1e-5


@pytest.mark.parametrize("T, attention_dtype", [(model_module.CPU_FP32_ATTENTION_T, torch.float32),
                                                 (model_module.CPU_FP32_ATTENTION_T + 1, torch.bfloat16)])
@pytest.mark.parametrize("qwen3", [False, True])  # q/k norms' float32 gains promote q and k back to float32
def test_cpu_autocast_runs_short_attention_in_float32(T, attention_dtype, qwen3, monkeypatch):
    # what SDPA gets: q, k, v of one dtype, and autocast off on the float32 path (on, it would run SDPA in bf16)
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(model_module.F, "scaled_dot_product_attention", lambda q, k, v, **kw: seen.append(
        (q.dtype, k.dtype, v.dtype, torch.is_autocast_enabled("cpu"))) or sdpa(q, k, v, **kw))
    torch.manual_seed(0)
    llama_settings = dict(position="rope", qk_norm=True, head_dim=16) if qwen3 else {}
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=T, vocab_size=64, dropout=0.0, **llama_settings))
    idx = torch.randint(64, (1, T))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = model(idx)
    assert seen == [(attention_dtype,) * 3 + (attention_dtype == torch.bfloat16,)] * 2
    exact, _ = model(idx)  # float32 throughout
    assert (logits.float() - exact).abs().max() < 0.05  # bf16 rounding only


@pytest.mark.parametrize("T", [model_module.CPU_FP32_ATTENTION_T, model_module.CPU_FP32_ATTENTION_T + 1])
@pytest.mark.parametrize("dtype, attention_dtype, tolerance", [
    (torch.bfloat16, {True: torch.float32, False: torch.bfloat16}, 0.02),  # bf16 rounding only (logits up to ~0.7)
    (torch.float64, {True: torch.float64, False: torch.float64}, 1e-5),
])
@pytest.mark.parametrize("llama", [False, True])  # RMSNorm (float32 inside, back in the model's dtype) and RoPE
def test_model_cast_to_another_dtype_runs_on_cpu_without_autocast(T, dtype, attention_dtype, tolerance, llama, monkeypatch):
    """model.to(dtype) with no autocast: the short-sequence float32 attention is for bf16 only and hands c_proj bf16."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(model_module.F, "scaled_dot_product_attention",
                        lambda q, k, v, **kw: seen.append(q.dtype) or sdpa(q, k, v, **kw))
    torch.manual_seed(0)
    llama_settings = dict(norm="rmsnorm", position="rope") if llama else {}
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=T, vocab_size=64, **llama_settings)).eval()
    idx = torch.randint(64, (1, T))
    with torch.no_grad():
        exact = full_logits(model, idx)
        logits = full_logits(model.to(dtype), idx)
    assert logits.dtype == dtype
    assert seen == [torch.float32] * 2 + [attention_dtype[T <= model_module.CPU_FP32_ATTENTION_T]] * 2
    assert (logits.double() - exact.double()).abs().max() < tolerance


def written_out_attention(attn, h, divisor, rope_theta=None):
    """c_proj(softmax(Q K^T / sqrt(head_dim) / divisor + causal mask) V) of a CausalSelfAttention on h, float64, each
    query head reading KV head j // (n_head / n_kv_head); with q_norm / k_norm each head's q and k RMS-normalised and
    scaled by their gains, then with rope_theta rotated (RoPE: dimension j pairs with j + head_dim / 2)."""
    B, T, _ = h.shape
    H, KV, D = attn.n_head, attn.n_kv_head, attn.head_dim
    bias = attn.c_attn.bias.double() if attn.c_attn.bias is not None else None
    qkv = torch.nn.functional.linear(h.double(), attn.c_attn.weight.double(), bias)
    q, k, v = qkv.split([H * D, KV * D, KV * D], dim=-1)
    q = q.view(B, T, H, D).transpose(1, 2)
    k, v = (t.view(B, T, KV, D).transpose(1, 2) for t in (k, v))
    if attn.q_norm is not None:
        rms = lambda x, norm: x / (x.pow(2).mean(-1, keepdim=True) + norm.eps).sqrt() * norm.weight.double()
        q, k = rms(q, attn.q_norm), rms(k, attn.k_norm)
    if rope_theta is not None:
        angles = torch.arange(T, dtype=torch.float64)[:, None] * rope_theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
        cos, sin = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
        turn = lambda x: x * cos + torch.cat((-x[..., D // 2:], x[..., :D // 2]), -1) * sin
        q, k = turn(q), turn(k)
    k, v = (t.repeat_interleave(H // KV, dim=1) for t in (k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(D) / divisor
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * D)
    bias = attn.c_proj.bias.double() if attn.c_proj.bias is not None else None
    return torch.nn.functional.linear(y, attn.c_proj.weight.double(), bias)


def attend_by(path, attn, h, rope):
    """attn(h) through one of model.py's attention paths."""
    if path == "sdpa":
        return attn(h, rope=rope)
    if path == "explicit":  # the probe's path: a hook sees the maps
        return attn(h, attention_hook=lambda att: None, rope=rope)
    if path in ("cpu_bf16_short", "cpu_bf16_long"):  # autocast; float32 attention up to CPU_FP32_ATTENTION_T tokens
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return attn(h, rope=rope)
    if path == "explicit_bf16_model":  # the probe's path in a model cast to bf16: float32 maps, bf16 weighting of v
        return attn.to(torch.bfloat16)(h.bfloat16(), attention_hook=lambda att: None, rope=rope)
    return attn.to(torch.bfloat16)(h.bfloat16(), rope=rope)  # cpu_bf16_model: a model cast to bf16, no autocast


@pytest.mark.parametrize("path", ["sdpa", "explicit", "cpu_bf16_short", "cpu_bf16_long", "cpu_bf16_model",
                                  "explicit_bf16_model"])
@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("n_kv_head", [None, 2])
@pytest.mark.parametrize("llama", [False, True])  # RoPE (theta 100) after Qwen3's q/k norms, head_dim 16 of 32 wide
def test_every_attention_path_is_the_written_out_causal_softmax(path, scale, n_kv_head, llama):
    """Sharp attention (q and k weights x5), so a lost 1/sqrt(head_dim), 1/(l+1) or causal mask moves the output by
    ~10% of its largest value or more, while bf16 rounding moves it by < 1%."""
    T = model_module.CPU_FP32_ATTENTION_T + 1 if path == "cpu_bf16_long" else 24
    tolerance = 2e-2 if "bf16" in path else 1e-5
    torch.manual_seed(0)
    llama_settings = dict(position="rope", rope_theta=100.0, qk_norm=True, head_dim=16) if llama else {}
    model = GPT(GPTConfig(block_size=512, vocab_size=64, n_layer=3, n_head=4, n_embd=32, n_kv_head=n_kv_head,
                          scale_attn_by_inverse_layer_idx=scale, **llama_settings)).eval()
    rope = model.rope_tables(T, "cpu")
    with torch.no_grad():
        for i, block in enumerate(model.transformer.h):
            attn = block.attn
            attn.c_attn.weight.mul_(5)
            attn.c_attn.bias.normal_(std=0.1)
            attn.c_proj.bias.normal_(std=0.1)
            if llama:  # gains away from 1, so that a skipped norm shows
                attn.q_norm.weight.uniform_(0.5, 2.0)
                attn.k_norm.weight.uniform_(0.5, 2.0)
            h = torch.randn(2, T, 32)
            expected = written_out_attention(attn, h, (i + 1) if scale else 1, 100.0 if llama else None)
            y = attend_by(path, attn, h, rope)
            assert y.dtype == (torch.bfloat16 if "bf16" in path else torch.float32)
            error = ((y.double() - expected).abs().max() / expected.abs().max()).item()
            assert error < tolerance, (i, error)


def test_heads_of_their_own_size_in_any_width_are_the_written_out_attention():
    # head_dim set (Qwen3): 3 heads of 8 dimensions in a 20-wide model, whose width no head count divides
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=64, n_layer=1, n_head=3, n_embd=20, head_dim=8, position="rope",
                          rope_theta=100.0)).eval()
    attn, h = model.transformer.h[0].attn, torch.randn(2, 16, 20)
    with torch.no_grad():
        error = (attn(h, rope=model.rope_tables(16, "cpu")).double() - written_out_attention(attn, h, 1, 100.0)).abs().max()
    assert error < 1e-5


def test_attention_dropout_only_in_training():
    """dropout > 0: eval mode is deterministic and equals the dropout-free model; training mode drops (differs)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, dropout=0.5))
    plain = GPT(GPTConfig(**SMALL, dropout=0.0))
    plain.load_state_dict(model.state_dict())
    idx = tokens()
    for attn_path in (None, lambda i, att: None):
        with torch.no_grad():
            expected = plain.eval()(idx, idx, attention_hook=attn_path)[0]
            assert torch.equal(model.eval()(idx, idx, attention_hook=attn_path)[0], expected)
            a, b = (model.train()(idx, idx, attention_hook=attn_path)[0] for _ in range(2))
        assert not torch.allclose(a, b) and not torch.allclose(a, expected)
    model.eval()
    attn = model.transformer.h[0].attn
    q = k = v = torch.randn(1, 4, 10, 12)
    attn.train()
    assert not torch.equal(attn.attend(q, k, v), attn.attend(q, k, v))  # SDPA's own attention dropout
    attn.eval()
    assert torch.equal(attn.attend(q, k, v), attn.attend(q, k, v))


@pytest.mark.parametrize("scale", [False, True])
def test_attention_maps_are_the_causal_softmax_of_each_layer(scale):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, scale_attn_by_inverse_layer_idx=scale)).eval()
    idx = tokens(batch=2, t=17)
    B, T, C, H = 2, 17, SMALL["n_embd"], SMALL["n_head"]
    maps = list(model.attention_maps(idx))
    assert [i for i, _ in maps] == list(range(SMALL["n_layer"]))
    # reference: recompute every layer's attention by hand from the SDPA forward's residual stream
    with torch.no_grad():
        x = model.embed(idx)
        for (i, att), block in zip(maps, model.transformer.h):
            assert att.shape == (B, H, T, T) and att.dtype == torch.float32
            assert torch.allclose(att.sum(-1), torch.ones(B, H, T), atol=1e-5)
            assert torch.all(att.triu(1) == 0)
            assert torch.all(att[:, :, 0, 0] == 1)
            q, k, _ = block.attn.c_attn(block.ln_1(x)).split(C, dim=2)
            q = q.view(B, T, H, C // H).transpose(1, 2)
            k = k.view(B, T, H, C // H).transpose(1, 2)
            scores = q @ k.transpose(-2, -1) / math.sqrt(C // H) / ((i + 1) if scale else 1)
            ref = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf")).softmax(-1)
            assert torch.allclose(att, ref, atol=1e-6), (i, (att - ref).abs().max())
            x = block(x)


def test_gpt2_init_statistics():
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=256, vocab_size=1024, n_layer=4, n_head=4, n_embd=128)
    model = GPT(cfg)
    proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert abs(p.std().item() - proj_std) < 0.05 * proj_std, name
        elif name.endswith(("wte.weight", "wpe.weight", "c_attn.weight", "c_fc.weight")):
            assert abs(p.std().item() - 0.02) < 0.05 * 0.02, name
            assert abs(p.mean().item()) < 1e-3, name
        elif ".ln_" in name and name.endswith("weight"):
            assert torch.all(p == 1), name
        elif name.endswith("bias"):
            assert torch.all(p == 0), name
        else:
            raise AssertionError(f"unexpected parameter {name}")


def test_tied_embedding_and_param_count():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL))
    assert model.lm_head.weight is model.transformer.wte.weight
    C, V, T, L = SMALL["n_embd"], SMALL["vocab_size"], SMALL["block_size"], SMALL["n_layer"]
    per_block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    assert model.get_num_params(non_embedding=False) == V * C + T * C + L * per_block + 2 * C
    assert model.get_num_params() == V * C + L * per_block + 2 * C
    # still tied after loading a state dict and after a training step
    model.load_state_dict(GPT(GPTConfig(**SMALL)).state_dict())
    assert model.lm_head.weight is model.transformer.wte.weight
    opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu")
    _, loss = model(tokens(), tokens(seed=5))
    loss.backward()
    opt.step()
    assert torch.equal(model.lm_head.weight, model.transformer.wte.weight)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("decay_embeddings", [True, False])
def test_configure_optimizers_groups(bias, decay_embeddings):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, bias=bias))
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=6e-4, betas=(0.9, 0.95), device_type="cpu",
                                     decay_embeddings=decay_embeddings)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decay["lr"] == 6e-4 and decay["betas"] == (0.9, 0.95)
    # by name: named_parameters() lists the tied wte/lm_head weight once, as transformer.wte.weight
    names = {id(p): n for n, p in model.named_parameters()}
    decayed, not_decayed = ({names[id(p)] for p in g["params"]} for g in (decay, no_decay))
    matrices = {f"transformer.h.{i}.{k}" for i in range(SMALL["n_layer"])
                for k in ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")}
    embeddings = {"transformer.wte.weight", "transformer.wpe.weight"}
    assert decayed == (matrices | embeddings if decay_embeddings else matrices)
    assert not_decayed == set(names.values()) - decayed  # every parameter exactly once
    assert all(model.get_parameter(n).dim() < 2 for n in not_decayed - embeddings)  # biases and LayerNorm gains
    # the tied output layer goes with wte
    assert any(p is model.lm_head.weight for p in (decay if decay_embeddings else no_decay)["params"])
    # with zero gradients AdamW's step is the decay alone: it shrinks exactly the decayed weights
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, before[n] * (1 - 6e-4 * 0.1) if n in decayed else before[n], rtol=0, atol=1e-9, msg=n)
    assert opt.defaults["fused"]  # the installed torch has a fused AdamW for CPU
    assert not model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cpu", fused=False).defaults.get("fused")


def test_fused_adamw_steps_equal_unfused():
    torch.manual_seed(0)
    fused_model = GPT(GPTConfig(**SMALL))
    plain_model = GPT(GPTConfig(**SMALL))
    plain_model.load_state_dict(fused_model.state_dict())
    start = {n: p.detach().clone() for n, p in fused_model.named_parameters()}
    for model, fused in ((fused_model, True), (plain_model, False)):
        opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu", fused=fused)
        assert bool(opt.defaults.get("fused")) == fused
        g = torch.Generator().manual_seed(1)
        for _ in range(3):  # the same random gradients for both (real ones include near-zero ones Adam amplifies)
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
        assert (a - start[name]).abs().mean() > 3e-3  # the weights took the steps (lr 1e-2)


def test_generate():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).eval()
    prompt = tokens(batch=3, t=5)

    def sample(seed, **kw):
        torch.manual_seed(seed)
        return model.generate(prompt, max_new_tokens=12, **kw)

    out = sample(1, top_k=10)
    assert out.shape == (3, 17) and torch.equal(out[:, :5], prompt)
    assert torch.equal(out, sample(1, top_k=10))
    assert not torch.equal(out, sample(2, top_k=10))
    # top_k=1 is greedy decoding, whatever the seed and temperature
    greedy = prompt
    with torch.no_grad():
        for _ in range(12):
            logits, _ = model(greedy)
            greedy = torch.cat((greedy, logits[:, -1].argmax(-1, keepdim=True)), dim=1)
    assert torch.equal(sample(3, top_k=1, temperature=0.7), greedy)
    # every sampled token lies in the top k of its step
    with torch.no_grad():
        for t in range(5, 17):
            logits, _ = model(out[:, :t])
            top = logits[:, -1].topk(10).indices
            assert all(out[b, t] in top[b] for b in range(3))
    # longer than the context window: the model sees only the last block_size tokens
    short = GPT(GPTConfig(block_size=8, vocab_size=101, n_layer=1, n_head=2, n_embd=16)).eval()
    long = short.generate(prompt, max_new_tokens=10, top_k=1)
    assert long.shape == (3, 15)
    with torch.no_grad():
        assert torch.equal(long[:, -1], short(long[:, -9:-1])[0][:, -1].argmax(-1))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU answer")
def test_estimate_mfu_unknown_on_cpu():
    model = GPT(GPTConfig(**SMALL))
    assert model.estimate_mfu(fwdbwd_per_iter=8, dt=0.1) is None


def test_mfu_counts_a_kd_teachers_forward_pass(monkeypatch):
    student = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64))
    teacher = GPT(GPTConfig(n_layer=3, n_head=2, n_embd=48, block_size=16, vocab_size=64))
    n_student, n_teacher = student.get_num_params(), teacher.get_num_params()
    # PaLM's count by hand: 6N + 12 L H Q T per trained token, 2N + 4 L H Q T per token of a forward pass
    assert student.flops_per_token() == 6 * n_student + 12 * 2 * 2 * 16 * 16
    assert teacher.flops_per_token(backward=False) == 2 * n_teacher + 4 * 3 * 2 * 24 * 16
    monkeypatch.setattr(model_module, "peak_flops", lambda device, dtype: 1e12)
    tokens = 8 * 16  # 8 sequences of 16 tokens in 0.5 s
    assert student.estimate_mfu(8, 0.5) == pytest.approx(student.flops_per_token() * tokens / 0.5 / 1e12)
    with_teacher = (student.flops_per_token() + teacher.flops_per_token(backward=False)) * tokens / 0.5 / 1e12
    assert student.estimate_mfu(8, 0.5, teacher=teacher) == pytest.approx(with_teacher)


NANOGPT_BLOCK_KEYS = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                      "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                      "mlp.c_proj.weight", "mlp.c_proj.bias"]


@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_keys_are_nanogpts(bias):
    model = GPT(GPTConfig(**SMALL, bias=bias))
    expected = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(SMALL["n_layer"]):
        expected += [f"transformer.h.{i}.{k}" for k in NANOGPT_BLOCK_KEYS if bias or not k.endswith("bias")]
    expected += ["transformer.ln_f.weight"] + (["transformer.ln_f.bias"] if bias else []) + ["lm_head.weight"]
    sd = model.state_dict()
    assert list(sd) == expected
    C = SMALL["n_embd"]
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (3 * C, C)  # nn.Linear (out, in), not HF's Conv1D
    assert sd["transformer.h.0.mlp.c_fc.weight"].shape == (4 * C, C)


def test_load_model_reads_a_nanogpt_checkpoint(tmp_path):
    """A checkpoint as nanoGPT's train.py writes it with compile=True (keys '_orig_mod.x', best_val_loss a tensor),
    plus the causal-mask buffers that nanoGPT's non-flash attention kept in its state dict."""
    torch.manual_seed(0)
    args = dict(n_layer=2, n_head=4, n_embd=48, block_size=32, bias=False, vocab_size=101, dropout=0.0)
    model = GPT(GPTConfig(**args, gelu_approximate="none"))  # nanoGPT's MLP uses the exact GELU
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    sd = {"_orig_mod." + k: v for k, v in model.state_dict().items()}
    for i in range(2):
        sd[f"_orig_mod.transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(32, 32)).view(1, 1, 32, 32)
    ckpt = {"model": sd, "optimizer": opt.state_dict(), "model_args": args, "iter_num": 250,
            "best_val_loss": torch.tensor(2.5), "config": {"dataset": "shakespeare_char", "batch_size": 12}}
    run_dir = tmp_path / "out"
    run_dir.mkdir()
    torch.save(ckpt, run_dir / "ckpt.pt")
    for source in (run_dir, run_dir / "ckpt.pt"):
        loaded, info = load_model(str(source))
        assert info["iter_num"] == 250 and info["best_val_loss"] == 2.5 and info["model_args"]["bias"] is False
        assert info["model_args"]["gelu_approximate"] == "none"
        for k, v in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k
        assert loaded.lm_head.weight is loaded.transformer.wte.weight
        idx = tokens(t=20)
        with torch.no_grad():
            assert torch.equal(full_logits(loaded.eval(), idx), full_logits(model.eval(), idx))


@pytest.mark.parametrize("extra, gelu", [
    ({}, "none"),  # nanoGPT: no scale_attn_by_inverse_layer_idx, exact GELU
    ({"scale_attn_by_inverse_layer_idx": True}, "tanh"),  # the paper authors' fork records it and uses the tanh GELU
    ({"scale_attn_by_inverse_layer_idx": False}, "tanh"),  # whatever its value
    ({"scale_attn_by_inverse_layer_idx": True, "gelu_approximate": "none"}, "none"),  # as written
    ({"gelu_approximate": "tanh"}, "tanh"),
])
def test_gelu_of_model_args(extra, gelu):
    assert GPTConfig.from_dict({**SMALL, **extra}).gelu_approximate == gelu


def authors_checkpoint(path, reference_n_layer):
    """A sliced checkpoint as the paper authors' train script saves it: their model_args (no gelu_approximate,
    scale_attn_by_inverse_layer_idx recorded, the reference's n_layer), compiled keys and causal-mask buffers."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, scale_attn_by_inverse_layer_idx=True, gelu_approximate="tanh")).eval()
    args = dict(SMALL, n_layer=reference_n_layer, bias=True, dropout=0.0, scale_attn_by_inverse_layer_idx=True)
    sd = {"_orig_mod." + k: v for k, v in model.state_dict().items()}
    T = SMALL["block_size"]
    for i in range(SMALL["n_layer"]):
        sd[f"_orig_mod.transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
    torch.save({"model": sd, "model_args": args, "iter_num": 100, "best_val_loss": torch.tensor(3.0), "config": {}}, path)
    return model


@pytest.mark.parametrize("reference_n_layer", [SMALL["n_layer"], 5])
def test_load_model_reads_the_authors_checkpoints(tmp_path, capsys, reference_n_layer):
    path = tmp_path / "ckpt.pt"
    model = authors_checkpoint(path, reference_n_layer)
    loaded, info = load_model(str(path))
    assert info["model_args"]["gelu_approximate"] == "tanh" and info["model_args"]["n_layer"] == SMALL["n_layer"]
    idx = tokens()
    with torch.no_grad():
        assert torch.equal(full_logits(loaded.eval(), idx), full_logits(model, idx))
    notes = capsys.readouterr().out.splitlines()
    if reference_n_layer == SMALL["n_layer"]:
        assert notes == []
    else:
        assert notes == [f"note: {path} says n_layer=5 but holds 3 blocks; loading 3"]


def test_checkpoint_blocks_with_gaps_or_other_mismatches_are_one_line_errors(tmp_path):
    model = GPT(GPTConfig(**SMALL))
    sd, args = model.state_dict(), vars(model.config)
    renumbered = {k.replace("transformer.h.2.", "transformer.h.3."): v for k, v in sd.items()}
    cases = {
        "gap": (renumbered, dict(args, n_layer=5), "says n_layer=5 but holds 3 blocks numbered 0..3, not 0..2"),
        "gap, right count": (renumbered, args, "12 missing and 12 unexpected keys"),
        "width": (sd, dict(args, n_embd=64, n_layer=2), "has shape"),
        "no ln_f": ({k: v for k, v in sd.items() if "ln_f" not in k}, dict(args, n_layer=4), "missing"),
    }
    for case, (state, model_args, words) in cases.items():
        path = tmp_path / f"{case}.pt"
        torch.save({"model": state, "model_args": model_args}, path)
        with pytest.raises(SystemExit) as e:
            load_model(str(path))
        msg = str(e.value)
        assert msg.startswith("error: ") and "\n" not in msg and words in msg, (case, msg)


def test_load_model_takes_a_checkpoint_without_history(tmp_path):
    """A checkpoint written by hand (weights and model_args, best_val_loss None) loads with no history."""
    model = GPT(GPTConfig(**SMALL))
    path = tmp_path / "bare.pt"
    torch.save({"model": model.state_dict(), "model_args": vars(model.config), "best_val_loss": None}, path)
    loaded, info = load_model(str(path))
    assert info["best_val_loss"] is None and info["iter_num"] is None
    assert torch.equal(loaded.transformer.h[2].mlp.c_fc.weight, model.transformer.h[2].mlp.c_fc.weight)


def write_hf_dir(path, config=None, weights=None):
    path.mkdir()
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    if weights is not None:
        save_file(weights, str(path / "model.safetensors"))
    return str(path)


def test_bad_hf_dirs_fail_with_one_line(tmp_path):
    hf = hf_gpt2(False)
    hf.save_pretrained(tmp_path / "good")
    good_cfg = json.loads((tmp_path / "good" / "config.json").read_text())
    weights = {k: v.contiguous() for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    cases = {
        "empty": (write_hf_dir(tmp_path / "empty"), "not a Hugging Face GPT-2 directory"),
        "no weights": (write_hf_dir(tmp_path / "noweights", good_cfg), "not a Hugging Face GPT-2 directory"),
        "llama": (write_hf_dir(tmp_path / "llama", dict(good_cfg, model_type="llama"), weights), "only GPT-2"),
        "relu": (write_hf_dir(tmp_path / "relu", dict(good_cfg, activation_function="relu"), weights), "activation"),
        "wrong shape": (write_hf_dir(tmp_path / "shape", dict(good_cfg, vocab_size=200), weights), "shape"),
        "missing weights": (write_hf_dir(tmp_path / "missing", good_cfg,
                                         {k: v for k, v in weights.items() if ".h.1." not in k}), "lacks"),
        "unknown name": ("gpt3-mini", "neither a local HF GPT-2 directory"),
    }
    for case, (source, words) in cases.items():
        with pytest.raises(SystemExit) as e:
            GPT.from_pretrained(source)
        msg = str(e.value)
        assert msg.startswith("error: ") and "\n" not in msg and words in msg, (case, msg)


def test_too_long_sequence_fails():
    model = GPT(GPTConfig(**SMALL))
    with pytest.raises(SystemExit, match="longer than the model's block_size"):
        model(torch.zeros(1, SMALL["block_size"] + 1, dtype=torch.long))
