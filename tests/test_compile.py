"""torch.compile, as GPU users run by default, tested for real with CPU inductor: the fused loss's gradients
(CE and KD, float32 and bf16 autocast, one chunk and several, ignored targets), the Llama settings' loss and
gradients (RoPE, RMSNorm, SwiGLU, GQA, untied lm_head; Llama 3's RoPE scaling, Qwen3's head_dim and q/k norms),
train.py --compile=True against --compile=False with and without a KD teacher, and grow.py compiling more depths than
dynamo's recompile limit."""
import pytest
import torch
import torch._dynamo

from conftest import run_script
from losses import LossSpec, fused_loss
from model import GPT, GPTConfig
from test_grow import grow_args
from test_train import final_state, tiny, write_teacher

N, C, C_TEACHER, V = 48, 16, 24, 96


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()  # each test's graphs start from nothing and count against no earlier test's limit
    yield
    torch._dynamo.reset()


def loss_and_grads(fn, inputs, spec, dtype):
    h, weight = (inputs[k].detach().clone().requires_grad_(True) for k in ("h", "weight"))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else torch.autocast("cpu", enabled=False)
    with autocast:
        loss, terms = fn(h, weight, inputs["targets"], spec)
    loss.backward()
    return torch.stack([loss.detach(), *terms.values()]).float(), h.grad, weight.grad


@pytest.mark.parametrize("chunk_tokens", [N, 10])  # one chunk; five, the last one short
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("temperature", [None, 2.0])  # None: plain CE, no teacher
def test_fused_loss_compiled_equals_eager(temperature, dtype, chunk_tokens):
    torch.manual_seed(0)
    targets = torch.randint(0, V, (N,))
    targets[[0, 7, 31]] = -1  # ignored targets
    teacher = temperature is not None
    inputs = {"h": torch.randn(N, C), "weight": torch.randn(V, C) * 0.5, "targets": targets}
    spec = LossSpec(chunk_tokens=chunk_tokens)
    if teacher:  # the spec goes into the compiled function as train.py's does into the compiled model
        spec = LossSpec(teacher_hidden=torch.randn(N, C_TEACHER), teacher_weight=torch.randn(V, C_TEACHER) * 0.5,
                        kd_alpha=0.4, kd_temperature=temperature, chunk_tokens=chunk_tokens)

    eager = loss_and_grads(fused_loss, inputs, spec, dtype)
    compiled = loss_and_grads(torch.compile(fused_loss, backend="inductor"), inputs, spec, dtype)
    # float32: the same arithmetic in another order; bf16: the logits and gradients rounded at other places. A lost
    # term of the gradient (the -onehot, 1 - kd_alpha of it) moves these by 50-150%.
    tol = 1e-5 if dtype == "float32" else 2e-2
    torch.testing.assert_close(compiled[0], eager[0], rtol=tol, atol=tol)
    for name, a, b in (("h", compiled[1], eager[1]), ("weight", compiled[2], eager[2])):
        assert (a - b).norm() <= tol * b.norm(), f"grad wrt {name}: relative difference {((a - b).norm() / b.norm()).item():.2e}"


# every Llama setting at once: RoPE at a base of its own, RMSNorm, SwiGLU, 2 key/value heads for 4 query heads, untied
LLAMA = dict(block_size=32, vocab_size=V, n_layer=2, n_head=4, n_embd=32, bias=False, norm="rmsnorm", position="rope",
             rope_theta=500.0, mlp="swiglu", mlp_hidden=48, n_kv_head=2, tie_embeddings=False)
# and Llama 3's RoPE scaling from an original context of 16 (half the windows), Qwen3's head_dim (12, not 32 / 4) and
# q/k norms
LLAMA3_QWEN3 = LLAMA | dict(head_dim=12, qk_norm=True, rope_scaling=dict(
    rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=16))


@pytest.mark.parametrize("settings", [LLAMA, LLAMA3_QWEN3], ids=["llama", "llama3_qwen3"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_llama_settings_compiled_equal_eager(dtype, settings):
    """train.py's step (forward with the fused loss, backward) of the Llama settings: the compiled model's loss and
    every parameter's gradient are eager's. Under bf16 autocast the attention of these short windows runs in float32
    (CPU_FP32_ATTENTION_T) inside the compiled graph too."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**settings))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # norm gains away from 1, so a gain's gradient and a wrong norm show
                p.add_(0.3 * torch.randn_like(p))
            elif "c_attn" in name:  # sharp attention, so a wrong rotation or head grouping shows
                p.mul_(8)
    idx, targets = torch.randint(0, V, (3, 32)), torch.randint(0, V, (3, 32))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else torch.autocast("cpu", enabled=False)

    def loss_and_grads(m):
        model.zero_grad(set_to_none=True)
        with autocast:
            _, loss, _ = m(idx, targets, loss_spec=LossSpec(chunk_tokens=40))  # three chunks, the last one short
        loss.backward()
        return loss.detach().float(), {name: p.grad for name, p in model.named_parameters()}

    eager = loss_and_grads(model)
    compiled = loss_and_grads(torch.compile(model, backend="inductor"))
    # as the fused loss's test above; measured: 4e-7 (float32) and 8e-3 (bf16) at most, while another RoPE base
    # (10000 for 500) moves the gradients by 0.6
    tol = 1e-5 if dtype == "float32" else 2e-2
    torch.testing.assert_close(compiled[0], eager[0], rtol=tol, atol=tol)
    assert compiled[1].keys() == eager[1].keys() and "lm_head.weight" in eager[1]
    for name, b in eager[1].items():
        a = compiled[1][name]
        assert (a - b).norm() <= tol * b.norm(), f"grad wrt {name}: relative difference {((a - b).norm() / b.norm()).item():.2e}"


@pytest.mark.parametrize("kd", [False, True])
def test_train_compiled_equals_eager(shakespeare_root, tmp_path, kd):
    extra = ["--max_iters=4", "--eval_interval=4", "--dtype=float32"]
    if kd:
        extra += [f"--teacher={write_teacher(tmp_path / 'teacher.pt')}", "--kd_temperature=2.0"]
    run_script(*tiny(shakespeare_root, tmp_path / "eager", *extra))
    compiled = run_script(*tiny(shakespeare_root, tmp_path / "compiled", *extra, "--compile=True"))
    assert "compiling the model with torch.compile" in compiled.stdout
    eager_sd, compiled_sd = final_state(tmp_path / "eager")["model"], final_state(tmp_path / "compiled")["model"]
    assert eager_sd.keys() == compiled_sd.keys()
    for k, v in eager_sd.items():
        # 4 AdamW steps at lr 1e-3 move weights by ~4e-3: a wrong gradient shows far above this tolerance
        torch.testing.assert_close(compiled_sd[k], v, rtol=0, atol=2e-5, msg=k)


def test_grow_compiles_more_depths_than_the_recompile_limit(shakespeare_root, tmp_path):
    # every round compiles GPT.forward at a new depth; dynamo would fall back to eager (here: fail) once the
    # depths outnumber its recompile limit, unless train() starts each model from fresh caches
    reference = tmp_path / "ref.pt"
    write_teacher(reference, block_size=64)  # any 3-layer checkpoint
    args = grow_args(shakespeare_root, reference, tmp_path / "grow", "--start_layers=1", "--step_layers=1",
                     "--max_layers=2", "--max_iters=2", "--eval_interval=2", "--compile=True")
    code = ("import runpy, sys, torch._dynamo; torch._dynamo.config.recompile_limit = 1; "
            "torch._dynamo.config.fail_on_recompile_limit_hit = True; sys.argv = sys.argv[1:]; "
            "runpy.run_path('grow.py', run_name='__main__')")
    proc = run_script("-c", code, *args)
    assert "reached the reference" in proc.stdout or "stopped at max_layers=2" in proc.stdout
