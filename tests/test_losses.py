"""losses.py: the plain loss equals CE and KD computed by their definitions; the fused, chunked lm_head + loss equals
the plain loss (loss, terms and gradients) in float32 and under bf16 autocast, with ignored targets and chunks that
do not divide the token count; GPT.forward's three paths agree; a term without a fused port is refused."""
import math

import pytest
import torch

import losses
from losses import LossSpec, fused_loss, plain_loss
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


def kd_spec(th, tw, kd_alpha, T, chunk=losses.CHUNK_TOKENS):
    """The spec of a KD loss (kd_alpha None: no teacher, plain CE)."""
    if kd_alpha is None:
        return LossSpec(kd_temperature=T, chunk_tokens=chunk)
    return LossSpec(teacher_hidden=th, teacher_weight=tw, kd_alpha=kd_alpha, kd_temperature=T, chunk_tokens=chunk)


def plain(h, w, y, spec):
    return plain_loss(h @ w.t(), y, spec)


def definition(h, w, y, th, tw, kd_alpha, T):
    """(loss, ce, kd) token by token in float64, by the definitions: CE = -log softmax(s)[y], KD = T^2 sum_v
    p_t(v) log(p_t(v) / p_s(v)) at temperature T, each averaged over the tokens whose target is not -1."""
    def softmax(z):
        e = (z - z.max()).exp()
        return e / e.sum()

    s, t = h.double() @ w.double().t(), th.double() @ tw.double().t()
    ce, kd = [], []
    for i in range(len(y)):
        if y[i] == -1:
            continue
        ce.append(-softmax(s[i])[y[i]].log())
        p_s, p_t = softmax(s[i] / T), softmax(t[i] / T)
        kd.append(T ** 2 * sum(p_t[v] * (p_t[v].log() - p_s[v].log()) for v in range(len(p_t))))
    ce, kd = sum(ce) / len(ce), sum(kd) / len(kd)
    return (1 - kd_alpha) * ce + kd_alpha * kd, ce, kd


def grads(fn, h, w):
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss, terms = fn(h, w)
    (2.5 * loss).backward()  # a non-unit upstream gradient, as grad accumulation's 1/steps
    return loss.detach(), terms, h.grad, w.grad


def assert_same(a, b, **tol):
    """Two grads() results agree: loss, the same terms, both gradients."""
    assert a[1].keys() == b[1].keys()
    for x, y in [(a[0], b[0]), *((a[1][k], b[1][k]) for k in a[1]), (a[2], b[2]), (a[3], b[3])]:
        torch.testing.assert_close(x, y, **tol)


@pytest.mark.parametrize("kd_alpha, T", [(0.0, 2.0), (0.4, 2.0), (1.0, 0.5), (0.4, 1.0)])
def test_plain_loss_equals_the_definition(kd_alpha, T):
    h, w, th, tw, y = inputs()
    loss, ce, kd = definition(h, w, y, th, tw, kd_alpha, T)
    got = grads(lambda h, w: plain(h, w, y, kd_spec(th, tw, kd_alpha, T)), h, w)
    assert list(got[1]) == ["ce", "kd"]  # the order train.py logs them in
    for a, b in ((got[0], loss), (got[1]["ce"], ce), (got[1]["kd"], kd)):
        assert a.item() == pytest.approx(b.item(), rel=1e-5)
    assert kd > 0.1  # the teacher really differs from the student, so the KD term is tested
    # the gradients too: autograd through the definition, in float64
    h64, w64 = h.double().requires_grad_(), w.double().requires_grad_()
    (2.5 * definition(h64, w64, y, th, tw, kd_alpha, T)[0]).backward()
    torch.testing.assert_close(got[2], h64.grad.float(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got[3], w64.grad.float(), rtol=1e-4, atol=1e-6)
    # without a teacher the loss is plain CE, the only term
    loss, terms = plain(h, w, y, LossSpec())
    assert list(terms) == ["ce"] and loss.item() == pytest.approx(ce.item(), rel=1e-5)


@pytest.mark.parametrize("block", [None, 3])  # softmax blocks: the whole chunk here, or 3 rows (as a CPU's cache)
@pytest.mark.parametrize("chunk", [8, 10, 37, 1000])
@pytest.mark.parametrize("kd_alpha, T", [(None, 1.0), (0.0, 2.0), (0.4, 2.0), (1.0, 0.5), (0.4, 1.0)])
def test_fused_equals_plain_float32(chunk, kd_alpha, T, block, monkeypatch):
    if block:
        monkeypatch.setattr(losses, "CPU_BLOCK_BYTES", block * 4 * V)
        assert losses.block_rows(chunk, V, torch.device("cpu")) == min(block, chunk)
    h, w, th, tw, y = inputs()
    spec = kd_spec(th, tw, kd_alpha, T, chunk)
    fused = grads(lambda h, w: fused_loss(h, w, y, spec), h, w)
    assert_same(fused, grads(lambda h, w: plain(h, w, y, spec), h, w), rtol=1e-5, atol=1e-6)
    assert list(fused[1]) == (["ce"] if kd_alpha is None else ["ce", "kd"])
    if kd_alpha is not None:
        assert fused[1]["kd"] > 0.1


def test_kd_matches_known_values():
    # two tokens, three classes, fixed logits: KL worked out by hand, T = 2, kd_alpha = 0.4
    s = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    t = torch.tensor([[0.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    eye = torch.eye(3)  # h = logits, W = I
    y = torch.tensor([0, 1])
    spec = LossSpec(teacher_hidden=t, teacher_weight=eye, kd_alpha=0.4, kd_temperature=2.0, chunk_tokens=1)
    e = torch.e
    # token 0 at T = 2: p_s = (e, 1, 1) / (e + 2), p_t = (1, 1, e) / (e + 2), so KL = (e - 1) / (e + 2);
    # token 1: teacher = student, KL = 0. CE at T = 1: log(e^2 + 2) - 2 and log(e + 2) - 1
    kl0 = (e - 1) / (e + 2)
    ce_hand = (math.log(e ** 2 + 2) - 2 + math.log(e + 2) - 1) / 2
    for loss, terms in (plain(s, eye, y, spec), fused_loss(s, eye, y, spec)):
        assert terms["kd"].item() == pytest.approx(4 * kl0 / 2, rel=1e-6)
        assert terms["ce"].item() == pytest.approx(ce_hand, rel=1e-6)
        assert loss.item() == pytest.approx(0.6 * ce_hand + 0.4 * 4 * kl0 / 2, rel=1e-6)


@pytest.mark.parametrize("block", [None, 3])
@pytest.mark.parametrize("kd", [False, True])
def test_fused_equals_plain_under_bf16_autocast(kd, block, monkeypatch):
    if block:  # blocks of 3 rows go through a float32 copy and back into the bf16 logits one by one
        monkeypatch.setattr(losses, "CPU_BLOCK_BYTES", block * 4 * V)
    h, w, th, tw, y = inputs(1)
    spec = kd_spec(th, tw, 0.4 if kd else None, 2.0, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = grads(lambda h, w: fused_loss(h, w, y, spec), h, w)
        bf16 = grads(lambda h, w: plain(h, w, y, spec), h, w)
    exact = grads(lambda h, w: plain(h, w, y, spec), h, w)  # float32
    assert fused[2].dtype == torch.float32 and fused[3].dtype == torch.float32  # the parameters' dtype
    flat = lambda r: [r[0], *r[1].values(), r[2], r[3]]
    for a, b, c in zip(flat(fused), flat(bf16), flat(exact)):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)
        # no worse than the plain bf16 path against float32 (the chunks accumulate in float32); in norm: the
        # largest of a few hundred rounding errors is a coin flip between the two (0.7-1.7x over 6 seeds, the
        # norms 0.9-1.15x)
        assert (a - c).norm() <= 1.25 * (b - c).norm() + 1e-6


@pytest.mark.parametrize("kd_alpha", [None, 0.4])
def test_fused_loss_as_torch_compile_traces_it_equals_plain(kd_alpha, monkeypatch):
    """The branches that run under torch.compile (and on GPUs), run eagerly: fresh tensors instead of the CPU's
    scratch buffers, softmax into a copy, the one-hot subtracted pointwise, the whole chunk as one block."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not losses.cpu_eager(torch.device("cpu"))
    h, w, th, tw, y = inputs(2)
    spec = kd_spec(th, tw, kd_alpha, 2.0, 10)
    assert_same(grads(lambda h, w: fused_loss(h, w, y, spec), h, w), grads(lambda h, w: plain(h, w, y, spec), h, w),
                rtol=1e-5, atol=1e-6)


def test_bf16_weights_and_logits():
    """A model cast to bf16 (no autocast): the fused loss hands back bf16 gradients; the plain loss of bf16 logits
    computes in float32; under autocast the fused matmuls run in autocast's dtype."""
    h, w, th, tw, y = inputs(3)
    h, w = h.bfloat16(), w.bfloat16()
    spec = kd_spec(th.bfloat16(), tw.bfloat16(), 0.4, 2.0, 10)
    fused = grads(lambda h, w: fused_loss(h, w, y, spec), h, w)
    assert fused[2].dtype == fused[3].dtype == torch.bfloat16
    logits = h @ w.t()
    _, ce, _ = definition(logits.double(), torch.eye(V, dtype=torch.float64), y, th.bfloat16(), tw.bfloat16(), 0.4, 2.0)
    _, terms = plain_loss(logits, y, spec)
    assert terms["ce"].item() == pytest.approx(ce.item(), rel=1e-6)  # bf16 arithmetic would be off by ~1e-3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert losses.compute_dtype("cpu", torch.float32) == torch.bfloat16
    assert losses.compute_dtype("cpu", torch.float32) == torch.float32


@pytest.mark.parametrize("kd", [False, True])
def test_gpt_forward_fused_equals_plain(kd):
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=96, dropout=0.0))
    idx = torch.randint(96, (3, 16))
    y = torch.randint(96, (3, 16))
    y[1, 4:9] = -1
    spec = LossSpec()
    if kd:
        teacher = GPT(GPTConfig(n_layer=3, n_head=2, n_embd=48, block_size=16, vocab_size=96)).eval()
        with torch.no_grad():
            spec = LossSpec(teacher_hidden=teacher.final_hidden(idx), teacher_weight=teacher.lm_head.weight,
                            kd_alpha=0.4, kd_temperature=2.0)

    def run(**kwargs):
        model.zero_grad()
        out = model(idx, y, **kwargs)
        out[1].backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters()}

    (logits, nanogpt), g_nanogpt = run()  # nanoGPT's contract
    assert logits.shape == (3, 16, 96)
    (logits, plain_value, plain_terms), g_plain = run(loss_spec=LossSpec(fused=False, **{
        k: getattr(spec, k) for k in ("teacher_hidden", "teacher_weight", "kd_alpha", "kd_temperature")}))
    assert logits.shape == (3, 16, 96)  # the plain path has the full logits
    (none, fused_value, fused_terms), g_fused = run(loss_spec=spec)
    assert none is None and list(fused_terms) == list(plain_terms) == (["ce", "kd"] if kd else ["ce"])
    torch.testing.assert_close(fused_value, plain_value)
    for k in plain_terms:
        torch.testing.assert_close(fused_terms[k], plain_terms[k])
    torch.testing.assert_close(plain_terms["ce"], nanogpt.detach())
    if not kd:
        torch.testing.assert_close(plain_value, nanogpt)
    for n, p in model.named_parameters():
        torch.testing.assert_close(g_fused[n], g_plain[n], rtol=1e-4, atol=1e-6)
        if not kd:
            torch.testing.assert_close(g_plain[n], g_nanogpt[n], rtol=1e-4, atol=1e-6)


def test_a_term_without_a_fused_port_is_refused_and_runs_plain(monkeypatch):
    z_loss = losses.Term(lambda logits, targets, spec: logits.logsumexp(-1) ** 2, lambda spec: 1e-4)
    monkeypatch.setitem(losses.TERMS, "z", z_loss)
    h, w, _, _, y = inputs()
    with pytest.raises(SystemExit, match="loss term 'z' has no fused port .* --fused_loss=False"):
        fused_loss(h, w, y, LossSpec())
    loss, terms = plain(h, w, y, LossSpec(fused=False))
    assert list(terms) == ["ce", "z"] and loss.item() == pytest.approx((terms["ce"] + 1e-4 * terms["z"]).item())
    z_by_hand = torch.stack([(h[i] @ w.t()).exp().sum().log() ** 2 for i in range(N) if y[i] != -1]).mean()
    assert terms["z"].item() == pytest.approx(z_by_hand.item(), rel=1e-5)
