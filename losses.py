"""The training loss: lm_head + cross-entropy (+ knowledge distillation) fused and chunked over the tokens.

The plain path (logits = lm_head(x); F.cross_entropy(logits, targets)) materialises the (tokens x vocab) logits,
an fp32 copy under autocast, the log-softmax and their gradients: with GPT-2's 50304-token vocabulary that is most
of a small model's step time and memory. Here each chunk of tokens computes its logits, the loss and at once the
gradients wrt its hidden states and the (accumulated) lm_head weight, before the next chunk reuses its buffers:
only one chunk's logits exist at a time, and backward merely scales the stored gradients. On a CPU without bf16
units this saves memory (44-60% of a step's peak in the README's runs), not time: the three vocabulary-sized
matmuls are the same as the plain path's.

Knowledge distillation uses the same chunks: the teacher's logits for the chunk come from its final hidden states
and its lm_head weight (no gradient), and the loss is
    (1 - kd_alpha) * CE + kd_alpha * T^2 * KL(softmax(t / T) || softmax(s / T)),
with CE and the KD term (T^2 * KL) each averaged over the tokens whose target is not ignore_index (-1).
"""
import torch

CHUNK_TOKENS = 2048  # tokens per chunk: 2048 x 50304 float32 logits = 412 MB (chosen by timing 256-3072, README)
IGNORE_INDEX = -1


_scratch = {}


def scratch(name, rows, cols, dtype, device):
    """A (rows, cols) scratch tensor reused across chunks and calls on CPU. Allocating a fresh chunk-sized tensor
    (hundreds of MB) page-faults all of it in again: 0.5-2 s per 400 MB chunk on the 2-vCPU EPYC of the README,
    against 0.07 s to fill a reused one. CUDA's caching allocator reuses memory already, and torch.compile traces
    plain allocations, so both get fresh tensors."""
    if device.type != "cpu" or torch.compiler.is_compiling():
        return torch.empty(rows, cols, dtype=dtype, device=device)
    buf = _scratch.get((name, dtype))
    if buf is None or buf.numel() < rows * cols:
        buf = _scratch[(name, dtype)] = torch.empty(rows * cols, dtype=dtype, device=device)
    return buf[:rows * cols].view(rows, cols)


def log_softmax_(x, tmp):
    """x <- log_softmax(x, dim=-1) in place, tmp a buffer of x's shape (no chunk-sized allocation)."""
    x.sub_(x.amax(dim=-1, keepdim=True))
    return x.sub_(torch.exp(x, out=tmp).sum(dim=-1, keepdim=True).log_())


def compute_dtype(device_type, dtype):
    """The dtype autocast would run a matmul in: its own dtype when enabled, else the tensors'."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else dtype


class FusedLinearCrossEntropy(torch.autograd.Function):
    """loss, ce, kd = FusedLinearCrossEntropy.apply(h, weight, targets, teacher_h, teacher_weight, kd_alpha, T, chunk)

    h (N, C) hidden states, weight (V, C) lm_head weight, targets (N,) with -1 = ignored; teacher_h (N, C_t) and
    teacher_weight (V, C_t) or None. Returns three scalars: the loss (differentiable wrt h and weight), and the
    CE and KD terms (float32, no gradient; kd is 0 without a teacher). Matmuls run in the autocast dtype if autocast
    is on; logsumexp, softmax and the sums run in float32, one chunk at a time."""

    @staticmethod
    def forward(ctx, h, weight, targets, teacher_h, teacher_weight, kd_alpha, temperature, chunk_tokens):
        device_type = h.device.type
        dtype = compute_dtype(device_type, h.dtype)
        with torch.autocast(device_type, enabled=False):
            w = weight.to(dtype)
            tw = None if teacher_h is None else teacher_weight.to(dtype)
            valid = targets != IGNORE_INDEX
            n_valid = valid.sum()
            inv_n = 1.0 / n_valid.to(torch.float32)  # nan when every target is ignored, as F.cross_entropy
            ce_scale = inv_n * (1.0 - kd_alpha) if teacher_h is not None else inv_n
            kd_scale = inv_n * kd_alpha * temperature  # d(T^2 KL)/d(student logits) = T (p_s - p_t)
            grad_h = torch.empty_like(h)
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device)
            ce_sum = torch.zeros((), dtype=torch.float32, device=h.device)
            kd_sum = torch.zeros((), dtype=torch.float32, device=h.device)
            for start in range(0, h.size(0), chunk_tokens):
                end = min(start + chunk_tokens, h.size(0))
                hc, yc, vc = h[start:end].to(dtype), targets[start:end], valid[start:end]
                rows = end - start
                logits = scratch("logits", rows, w.size(0), torch.float32, h.device)  # float32 for the softmax
                if dtype == torch.float32:
                    torch.mm(hc, w.t(), out=logits)
                else:
                    low = scratch("low", rows, w.size(0), dtype, h.device)  # the matmul's output, later the gradient's
                    logits.copy_(torch.mm(hc, w.t(), out=low))
                picked = logits.gather(1, yc.clamp(min=0).unsqueeze(1))
                if teacher_h is not None:  # in place in three reused buffers: teacher, student, scratch
                    teacher = scratch("teacher", rows, w.size(0), torch.float32, h.device)
                    student = scratch("student", rows, w.size(0), torch.float32, h.device)
                    tmp = scratch("tmp", rows, w.size(0), torch.float32, h.device)
                    with torch.no_grad():
                        t_hc = teacher_h[start:end].to(dtype)
                        if dtype == torch.float32:
                            torch.mm(t_hc, tw.t(), out=teacher)
                        else:
                            teacher.copy_(torch.mm(t_hc, tw.t(), out=low))
                    log_softmax_(teacher.div_(temperature), tmp)
                    log_softmax_(torch.div(logits, temperature, out=student), tmp)
                    kl = torch.sub(teacher, student, out=tmp).mul_(teacher.exp_())  # p_t (log p_t - log p_s)
                    kd_sum += (kl.sum(-1) * vc).sum() * temperature ** 2
                    kd_grad = student.exp_().sub_(teacher).mul_(vc.unsqueeze(1) * kd_scale)  # KD part of dloss/dlogits
                # softmax in place, in as few passes over the chunk as possible: exp(l - max) / sum
                row_max = logits.amax(dim=-1, keepdim=True)
                exp = logits.sub_(row_max).exp_()
                row_sum = exp.sum(dim=-1, keepdim=True)
                lse = row_max + row_sum.log()
                ce_sum += ((lse - picked).squeeze(1) * vc).sum()
                grad = exp.mul_(vc.unsqueeze(1) * ce_scale / row_sum)  # CE part of dloss/dlogits, less the target's 1
                if teacher_h is not None:
                    grad = kd_grad.add_(grad)
                grad.scatter_add_(1, yc.clamp(min=0).unsqueeze(1), -(vc.unsqueeze(1) * ce_scale).to(grad.dtype))
                if dtype == torch.float32:
                    torch.mm(grad, w, out=grad_h[start:end])
                    grad_w.addmm_(grad.t(), hc)
                else:
                    grad = low.copy_(grad)
                    grad_h[start:end] = grad @ w
                    grad_w += torch.mm(grad.t(), hc, out=scratch("grad_w", *w.shape, dtype, h.device))  # summed in float32
            ce = ce_sum * inv_n
            kd = kd_sum * inv_n
            loss = (1.0 - kd_alpha) * ce + kd_alpha * kd if teacher_h is not None else ce.clone()
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype))
        ctx.mark_non_differentiable(ce, kd)
        return loss, ce, kd

    @staticmethod
    def backward(ctx, grad_loss, grad_ce, grad_kd):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_loss, grad_w * grad_loss, None, None, None, None, None, None


def fused_linear_cross_entropy(h, weight, targets, teacher_h=None, teacher_weight=None, kd_alpha=0.0,
                               temperature=1.0, chunk_tokens=CHUNK_TOKENS):
    """(loss, ce, kd) of lm_head + cross-entropy (+ KD) over the flattened tokens; see FusedLinearCrossEntropy."""
    h, targets = h.reshape(-1, h.size(-1)), targets.reshape(-1)
    if teacher_h is not None:
        teacher_h = teacher_h.reshape(-1, teacher_h.size(-1))
    return FusedLinearCrossEntropy.apply(h, weight, targets, teacher_h, teacher_weight, float(kd_alpha),
                                         float(temperature), int(chunk_tokens))
