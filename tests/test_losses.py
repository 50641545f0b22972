"""losses.py: the fused, chunked lm_head + cross-entropy (+ KD) equals the plain computation on full logits, in
float32 and under bf16 autocast, with ignored targets and chunks that do not divide the token count."""
import math

import pytest
import torch
import torch.nn.functional as F

import losses
from losses import fused_linear_cross_entropy
from model import GPT, GPTConfig

N, C, CT, V = 37, 16, 24, 101  # 37 tokens: chunks of 8 and 10 leave a remainder


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, C, generator=g)
    w = torch.randn(V, C, generator=g) * 0.5
    th = torch.randn(N, CT, generator=g)
    tw = torch.randn(V, CT, generator=g) * 0.5
    y = torch.randint(V, (N,), generator=g)
    y[[0, 5, 6, 36]] = -1  # ignore_index
    return h, w, th, tw, y


def reference(h, w, y, th=None, tw=None, kd_alpha=0.0, T=1.0):
    """The hand computation on full logits: CE by F.cross_entropy, KD = T^2 KL(p_t || p_s) by the definition."""
    logits = h @ w.t()
    ce = F.cross_entropy(logits.float(), y, ignore_index=-1)
    if th is None:
        return ce, ce, torch.zeros(())
    t_logp = torch.log_softmax((th @ tw.t()).float() / T, dim=-1)
    s_logp = torch.log_softmax(logits.float() / T, dim=-1)
    kl = (t_logp.exp() * (t_logp - s_logp)).sum(-1)
    mask = y != -1
    kd = T ** 2 * kl[mask].mean()
    return (1 - kd_alpha) * ce + kd_alpha * kd, ce, kd


def grads(fn, h, w):
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss, ce, kd = fn(h, w)
    (2.5 * loss).backward()  # a non-unit upstream gradient, as grad accumulation's 1/steps
    return loss.detach(), ce, kd, h.grad, w.grad


@pytest.mark.parametrize("block", [None, 3])  # softmax blocks: the whole chunk here, or 3 rows (as a CPU's cache)
@pytest.mark.parametrize("chunk", [8, 10, 37, 1000])
@pytest.mark.parametrize("kd_alpha, T", [(None, 1.0), (0.0, 2.0), (0.4, 2.0), (1.0, 0.5), (0.4, 1.0)])
def test_fused_equals_plain_float32(chunk, kd_alpha, T, block, monkeypatch):
    if block:
        monkeypatch.setattr(losses, "CPU_BLOCK_BYTES", block * 4 * V)
        assert losses.block_rows(chunk, V, torch.device("cpu")) == min(block, chunk)
    h, w, th, tw, y = inputs()
    if kd_alpha is None:
        th = tw = None
    alpha = kd_alpha or 0.0
    fused = grads(lambda h, w: fused_linear_cross_entropy(h, w, y, th, tw, alpha, T, chunk), h, w)
    plain = grads(lambda h, w: reference(h, w, y, th, tw, alpha, T), h, w)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    if th is not None:
        assert fused[2] > 0.1  # the teacher really differs from the student, so the KD term is tested


def test_kd_matches_known_values():
    # two tokens, three classes, fixed logits: KL worked out by hand, T = 2, kd_alpha = 0.4
    s = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    t = torch.tensor([[0.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    eye = torch.eye(3)  # h = logits, W = I
    y = torch.tensor([0, 1])
    loss, ce, kd = fused_linear_cross_entropy(s, eye, y, t, eye, 0.4, 2.0, chunk_tokens=1)
    e = torch.e
    # token 0 at T = 2: p_s = (e, 1, 1) / (e + 2), p_t = (1, 1, e) / (e + 2), so KL = (e - 1) / (e + 2);
    # token 1: teacher = student, KL = 0. CE at T = 1: log(e^2 + 2) - 2 and log(e + 2) - 1
    kl0 = (e - 1) / (e + 2)
    ce_hand = (math.log(e ** 2 + 2) - 2 + math.log(e + 2) - 1) / 2
    assert kd.item() == pytest.approx(4 * kl0 / 2, rel=1e-6)
    assert ce.item() == pytest.approx(ce_hand, rel=1e-6)
    assert loss.item() == pytest.approx(0.6 * ce_hand + 0.4 * 4 * kl0 / 2, rel=1e-6)


@pytest.mark.parametrize("block", [None, 3])
@pytest.mark.parametrize("kd", [False, True])
def test_fused_equals_plain_under_bf16_autocast(kd, block, monkeypatch):
    if block:  # blocks of 3 rows go through a float32 copy and back into the bf16 logits one by one
        monkeypatch.setattr(losses, "CPU_BLOCK_BYTES", block * 4 * V)
    h, w, th, tw, y = inputs(1)
    th, tw = (th, tw) if kd else (None, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = grads(lambda h, w: fused_linear_cross_entropy(h, w, y, th, tw, 0.4, 2.0, 10), h, w)
        plain = grads(lambda h, w: reference(h, w, y, th, tw, 0.4, 2.0), h, w)
    exact = grads(lambda h, w: reference(h, w, y, th, tw, 0.4, 2.0), h, w)  # float32
    assert fused[3].dtype == torch.float32 and fused[4].dtype == torch.float32  # the parameters' dtype
    for a, b, c in zip(fused, plain, exact):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)
        # no worse than the plain bf16 path against float32 (the chunks accumulate in float32)
        assert (a - c).abs().max() <= 1.5 * (b - c).abs().max() + 1e-6


def test_gpt_forward_fused_equals_plain():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=96, dropout=0.0))
    idx = torch.randint(96, (3, 16))
    y = torch.randint(96, (3, 16))
    y[1, 4:9] = -1
    logits, plain = model(idx, y)
    assert logits.shape == (3, 16, 96)  # nanoGPT's contract: full logits when asked
    plain.backward()
    g_plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    none, fused, (ce, kd) = model(idx, y, fused_loss=True)
    fused.backward()
    assert none is None and kd.item() == 0.0
    torch.testing.assert_close(fused, plain)
    torch.testing.assert_close(ce, plain.detach())
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, g_plain[n], rtol=1e-4, atol=1e-6)
