"""What only a CUDA GPU runs, skipped without one: the fused loss against the plain one in bf16, compiled (Triton)
against eager gradients with and without a KD teacher, flash attention selected with the per-layer attention scale,
bench.py's MFU and peak memory of GPT-2 124M and medium (compiled + fused loss, eager + fused, eager + nanoGPT's plain
loss: one compile per model shape), FSDP against DDP through train.py, and a torchrun NCCL run with KD that resumes
exactly.

    python -m pytest tests/test_gpu.py -v -s                   # docs/speed.md's GPU check, within 8 minutes on one H100
    GPU_CHECK=quick python -m pytest tests/test_gpu.py -v -s   # its quick subset, within 5: the kernels and 124M
"""
import json
import os

import pytest
import torch

from conftest import REPO, run_script
from data import write_dataset
from losses import LossSpec, fused_loss, plain_loss
from model import GPT, GPTConfig
from test_train import write_teacher

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
# what the quick subset leaves out: GPT-2 medium's compile, the torchrun runs
full_check = pytest.mark.skipif(os.environ.get("GPU_CHECK") == "quick", reason="GPU_CHECK=quick")
BF16 = dict(device_type="cuda", dtype=torch.bfloat16)


def relative(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def loss_grads(fn, h, w):
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss = fn(h, w)[0]
    loss.backward()
    return loss.detach().float(), h.grad, w.grad


@pytest.mark.parametrize("teacher", [False, True])
def test_fused_loss_matches_plain_in_bf16(teacher):
    """GPT-2's shapes (4096 tokens of 768 wide, 50304 logits, 2 chunks): the fused loss under bf16 autocast is no
    further from float32 than the plain path under the same autocast."""
    torch.manual_seed(0)
    N, C, V = 4096, 768, 50304
    h, w = torch.randn(N, C, device="cuda"), torch.randn(V, C, device="cuda") * 0.02
    th, tw = (torch.randn(N, 1024, device="cuda"), torch.randn(V, 1024, device="cuda") * 0.02) if teacher else (None, None)
    y = torch.randint(V, (N,), device="cuda")
    y[:100] = -1
    spec = LossSpec(teacher_hidden=th, teacher_weight=tw, kd_alpha=0.4 if teacher else 0.0, kd_temperature=2.0)
    exact = loss_grads(lambda h, w: plain_loss(h @ w.t(), y, spec), h.double(), w.double())
    with torch.autocast(**BF16):
        plain = loss_grads(lambda h, w: plain_loss(h @ w.t(), y, spec), h, w)
        fused = loss_grads(lambda h, w: fused_loss(h, w, y, spec), h, w)
    for i, name in enumerate(("loss", "grad h", "grad W")):
        plain_err, fused_err = relative(plain[i], exact[i]), relative(fused[i], exact[i])
        print(f"\n{name}: relative error vs float64, plain bf16 {plain_err:.2e}, fused bf16 {fused_err:.2e}")
        assert fused_err <= 1.5 * plain_err + 1e-6, name


@pytest.mark.parametrize("teacher", [False, True])
def test_compiled_gradients_equal_eager(teacher):
    """A small GPT through GPT.forward's fused loss, compiled with Triton against eager, bf16 autocast."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=4, n_embd=128, block_size=128, vocab_size=4096)).cuda()
    x = torch.randint(4096, (8, 128), device="cuda")
    y = torch.randint(4096, (8, 128), device="cuda")
    y[0, :10] = -1
    spec = LossSpec()
    if teacher:
        big = GPT(GPTConfig(n_layer=3, n_head=4, n_embd=192, block_size=128, vocab_size=4096)).cuda().eval()
        with torch.no_grad(), torch.autocast(**BF16):
            spec = LossSpec(teacher_hidden=big.final_hidden(x), teacher_weight=big.lm_head.weight, kd_alpha=0.4,
                            kd_temperature=2.0)

    def grads(fn):
        model.zero_grad(set_to_none=True)
        with torch.autocast(**BF16):
            loss = fn(x, y, loss_spec=spec)[1]
        loss.backward()
        return loss.detach().float(), [p.grad.clone() for p in model.parameters()]

    eager = grads(model)
    compiled = grads(torch.compile(model))
    print(f"\nteacher={teacher}: loss eager {eager[0].item():.5f} compiled {compiled[0].item():.5f}, worst relative "
          f"gradient difference {max(relative(c, e) for c, e in zip(compiled[1], eager[1])):.2e}")
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-2, atol=1e-2)
    for (name, _), c, e in zip(model.named_parameters(), compiled[1], eager[1]):
        assert relative(c, e) < 3e-2, name  # a lost term of the gradient moves it by 50% and more


def test_flash_attention_runs_with_the_per_layer_scale():
    """scale_attn_by_inverse_layer_idx passes SDPA a scale per block; flash attention must still be the kernel
    (sdpa_kernel(FLASH_ATTENTION) raises if it cannot run) and agree with the math kernel, forward and backward."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=4, n_head=4, n_embd=256, block_size=256, vocab_size=512,
                          scale_attn_by_inverse_layer_idx=True)).cuda()
    x = torch.randint(512, (4, 256), device="cuda")
    out = {}
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.MATH):
        model.zero_grad(set_to_none=True)
        with sdpa_kernel(backend), torch.autocast(**BF16):
            logits, loss = model(x, x)
        loss.backward()
        out[backend] = logits.float(), model.transformer.h[3].attn.c_attn.weight.grad.clone()
    flash, math_ = out[SDPBackend.FLASH_ATTENTION], out[SDPBackend.MATH]
    assert relative(flash[0], math_[0]) < 1e-2 and relative(flash[1], math_[1]) < 5e-2


def repo_text_dataset(root):
    """A small real-text dataset with no download: the repo's own README and Python files, GPT-2 tokens."""
    texts = [open(os.path.join(REPO, name), encoding="utf-8").read() for name in sorted(os.listdir(REPO))
             if name.endswith((".py", ".md"))]
    write_dataset(os.path.join(root, "repo_text"), {"train": [texts[1:]], "val": [texts[:1]]}, source="this repo's files")
    return root


@full_check
def test_torchrun_nccl_kd_run_resumes_exactly(tmp_path):
    """torchrun with NCCL (two GPUs where there are two), compile and bf16 as defaults, KD with dropout: 8 steps in
    one go against 4 steps, then a resume to 8."""
    nproc = min(2, torch.cuda.device_count())
    root = repo_text_dataset(tmp_path / "data")
    teacher = write_teacher(tmp_path / "teacher.pt", block_size=64)
    args = ["train.py", "--dataset=repo_text", f"--data_root={root}", "--n_layer=2", "--n_head=2", "--n_embd=64",
            "--block_size=64", "--batch_size=4", f"--gradient_accumulation_steps={2 * nproc}", "--eval_iters=2",
            "--eval_interval=4", "--warmup_iters=2", "--lr_decay_iters=8", "--learning_rate=1e-3", "--dropout=0.1",
            f"--teacher={teacher}", "--log_interval=1"]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    full = run_script(*launcher, *args, f"--out_dir={tmp_path / 'full'}", "--max_iters=8")
    assert f"{nproc} process(es), cuda:0" in full.stdout  # backend auto: NCCL on CUDA
    run_script(*launcher, *args, f"--out_dir={tmp_path / 'resumed'}", "--max_iters=4")
    run_script(*launcher, *args, f"--out_dir={tmp_path / 'resumed'}", "--max_iters=8", "--init_from=resume")
    a = torch.load(tmp_path / "full" / "ckpt.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "ckpt.pt", weights_only=True)
    assert a["iter_num"] == b["iter_num"] == 8 and len(a["rng"]["cuda"]) == nproc
    worst = max((a["model"][k].float() - b["model"][k].float()).abs().max().item() for k in a["model"])
    exact = all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    print(f"\n{nproc} process(es), NCCL: resumed vs uninterrupted, bit-identical {exact}, worst weight difference {worst:.2e}")
    # AdamW steps move weights by ~1e-3: another data order or dropout mask shows far above this; GPU kernels
    # that add with atomics (compiled embedding backward) may leave differences near float32 rounding
    assert worst < 1e-4


# (compile, bench_path): compiled against eager with the fused loss, the fused loss against nanoGPT's plain one in eager
VARIANTS = {"compiled, fused loss": ("True", "optimised"), "eager, fused loss": ("False", "optimised"),
            "eager, plain loss": ("False", "plain")}


@pytest.mark.parametrize("config", ["config/train_gpt2.py", pytest.param("config/train_gpt2m_24.py", marks=full_check)])
def test_bench_mfu_compiled_eager_fused_plain(config):
    """bench.py's MFU and peak memory of one model in each VARIANTS way, each in a fresh process (its own peak)."""
    results = {}
    for name, (compile, path) in VARIANTS.items():
        proc = run_script("bench.py", config, "--gradient_accumulation_steps=1", f"--compile={compile}",
                          f"--bench_path={path}", "--bench_warmup=3", "--bench_iters=10", timeout=400)
        results[name] = r = json.loads(proc.stdout.strip().splitlines()[-1])
        assert r["device"].startswith("cuda") and r["tokens_per_s"] > 0 and r["compile"] == (compile == "True")
        assert r["mfu"] is None or 0 < r["mfu"] < 1  # None: a GPU missing from model.GPU_PEAK_FLOPS
    first = results["compiled, fused loss"]
    print(f"\n{config}, {first['device_name']}, {first['batch_size']} x {first['block_size']} tokens:")
    for name, r in results.items():
        mfu = "n/a" if r["mfu"] is None else f"{r['mfu'] * 100:.1f}%"
        print(f"  {name:22s} {r['ms_per_iter']:7.1f} ms/iter  MFU {mfu:>6s}  peak {r['peak_memory_mib'] / 1024:5.1f} GiB")


@full_check
def test_fsdp_against_ddp(tmp_path):
    """train.py on GPT-2 medium's shape under torchrun (one process each, eager: no compile beyond the bench's),
    FSDP against DDP: the same losses within bf16's rounding, and each one's MFU from its last logged steps."""
    root = repo_text_dataset(tmp_path / "data")
    args = ["train.py", "config/train_gpt2m_24.py", "--dataset=repo_text", f"--data_root={root}", "--compile=False",
            "--gradient_accumulation_steps=1", "--max_iters=12", "--eval_interval=1000", "--eval_windows=12", "--log_interval=1",
            "--warmup_iters=2", "--probe_interval=6"]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    runs = {}
    for parallelism in ("ddp", "fsdp"):
        out = run_script(*launcher, *args, f"--parallelism={parallelism}", f"--out_dir={tmp_path / parallelism}",
                         timeout=300).stdout
        records = [json.loads(line) for line in open(tmp_path / parallelism / "metrics.jsonl")]
        runs[parallelism] = steps = [m for m in records if "loss" in m]
        mfu = [m["mfu"] for m in steps[-5:] if m["mfu"] is not None]
        probe_s = [m["probe_s"] for m in records if "probe_s" in m]
        print(f"\n{parallelism}: losses {[round(m['loss'], 3) for m in steps[:3]]}..., {steps[-1]['ms_per_iter']:.1f} ms/iter, "
              f"MFU {sum(mfu) / len(mfu) * 100 if mfu else float('nan'):.1f}% (mean of the last 5 steps), "
              f"probe {max(probe_s):.1f} s at most (the other ranks' wait)")
        assert "1 process(es), cuda:0" in out
    ddp, fsdp = ([m["loss"] for m in runs[p]] for p in ("ddp", "fsdp"))
    # bf16 parameters and residual stream (FSDP) against bf16 autocast of float32 ones (DDP): the same run within
    # bf16's rounding, well below the loss's fall over these 12 steps
    assert fsdp == pytest.approx(ddp, abs=5e-2) and ddp[-1] < ddp[0]
