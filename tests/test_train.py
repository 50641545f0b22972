"""train.py end to end on the real Shakespeare corpus with tiny models: exact resume after SIGKILL, DDP vs one
process, init_from sources, eval_only, and one-line errors."""
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import nullcontext

import pytest
import torch

import attention_probe
import losses
from checkpoint import model_from_checkpoint, save_checkpoint
from configurator import configure
from conftest import REPO, run_script
from data import open_tokens
from model import GPT, GPTConfig
from train import PROBE_METRICS, Setup, TrainConfig, estimate_loss, get_lr, train

TINY = ["--dataset=shakespeare", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
        "--gradient_accumulation_steps=2", "--eval_iters=2", "--log_interval=1", "--warmup_iters=2",
        "--learning_rate=1e-3", "--lr_decay_iters=12", "--min_lr=1e-4", "--compile=False", "--device=cpu"]


def tiny(root, out_dir, *extra):
    return ["train.py", *TINY, f"--data_root={root}", f"--out_dir={out_dir}", *extra]


def metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def final_state(out_dir):
    """ckpt.pt; a sharded (FSDP) checkpoint's with the optimizer state of its shards (keyed by name, not index)."""
    ckpt = torch.load(os.path.join(out_dir, "ckpt.pt"), weights_only=True)
    if "sharded" in ckpt:
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
        dcp_to_torch_save(os.path.join(out_dir, ckpt["sharded"]), os.path.join(out_dir, "shards.pt"))
        ckpt["optimizer"] = torch.load(os.path.join(out_dir, "shards.pt"), weights_only=True)["optimizer"]
    return ckpt


def write_teacher(path, vocab_size=50304, block_size=64):
    """A tiny random KD teacher of another depth and width than TINY's student (3 x 48 against 2 x 32)."""
    torch.manual_seed(7)
    model = GPT(GPTConfig(n_layer=3, n_head=2, n_embd=48, block_size=block_size, vocab_size=vocab_size))
    save_checkpoint({"model": model.state_dict(), "model_args": model.config.__dict__}, path)
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return write_teacher(tmp_path_factory.mktemp("teacher") / "teacher.pt")


def tiny_lr(it):
    """TINY's schedule written out (PAPER.md §3: linear warmup, cosine decay to min_lr): 1e-3 after 2 warmup steps,
    cosine to 1e-4 at step 12."""
    if it < 2:
        return 1e-3 * (it + 1) / 3
    return 1e-4 + 0.9e-3 * (1 + math.cos(math.pi * (min(it, 12) - 2) / 10)) / 2


def test_lr_schedule_warms_up_then_decays_by_cosine_to_min_lr():
    cfg = configure(TrainConfig, TINY)
    assert [get_lr(it, cfg) for it in range(15)] == pytest.approx([tiny_lr(it) for it in range(15)], rel=1e-12)
    # the landmarks, apart from any formula: peak after warmup, half way down at mid-decay, min_lr from the end on
    assert (get_lr(2, cfg), get_lr(7, cfg), get_lr(12, cfg), get_lr(100, cfg)) == pytest.approx((1e-3, 5.5e-4, 1e-4, 1e-4))
    assert get_lr(0, cfg) < get_lr(1, cfg) < get_lr(2, cfg)
    assert get_lr(5, configure(TrainConfig, [*TINY, "--decay_lr=False"])) == 1e-3
    assert get_lr(3, configure(TrainConfig, [*TINY, "--lr_decay_iters=3"])) == pytest.approx(1e-4)  # a one-step decay


def kill_all(pid):
    """SIGKILL a process and every process under it: torchrun starts its workers in sessions of their own, so
    neither killing it nor its process group stops them."""
    pids = [pid]
    for p in pids:  # grows as it goes: breadth first
        with open(f"/proc/{p}/task/{p}/children") as f:
            pids += map(int, f.read().split())
    for p in pids:
        os.kill(p, signal.SIGKILL)


def interrupt_and_resume(root, tmp_path, args, launch=()):
    """train.py with args run through into tmp_path/full, and into tmp_path/killed SIGKILLed soon after its step-6
    checkpoint lands, then resumed there; asserts the two end alike bit for bit (weights, AdamW state, logged
    steps and losses) and returns their metrics (full, resumed) and the resumed checkpoint. launch: what runs
    train.py (torchrun's arguments), all of whose processes the kill hits."""
    run_script(*launch, *tiny(root, tmp_path / "full", *args))

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *launch, *tiny(root, killed, *args)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "ckpt.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # kill soon after the step-6 checkpoint lands
        if ckpt.exists() and torch.load(ckpt, weights_only=True)["iter_num"] >= 6:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    kill_all(proc.pid)
    proc.wait()
    interrupted_at = torch.load(ckpt, weights_only=True)["iter_num"]
    assert 6 <= interrupted_at < 12

    run_script(*launch, *tiny(root, killed, *args, "--init_from=resume"))
    full, resumed = final_state(tmp_path / "full"), final_state(killed)
    assert full["iter_num"] == resumed["iter_num"] == 12
    for k, v in full["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    for k, v in full["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg"], resumed["optimizer"]["state"][k]["exp_avg"])
    # the resumed run rewrote the metrics from the checkpoint on, so the log reads like one run
    assert [m["iter"] for m in metrics(killed)] == [m["iter"] for m in metrics(tmp_path / "full")]
    assert [m.get("loss") for m in metrics(killed)] == [m.get("loss") for m in metrics(tmp_path / "full")]
    return metrics(tmp_path / "full"), metrics(killed), resumed


@pytest.mark.parametrize("mode", ["plain", "kd", "probe"])
def test_kill_and_resume_is_bit_identical(shakespeare_root, tmp_path, teacher, mode):
    # dropout > 0 so the resumed run must also restore the dropout RNG, not only the data order; with kd, a killed
    # distillation run resumes exactly too (the teacher is reloaded from its source, not from the checkpoint); with
    # probes every 2 steps, probing changes nothing of the training and the resumed run logs the same probes
    args = ["--max_iters=12", "--eval_interval=3", "--dropout=0.1"] + {
        "plain": [], "kd": [f"--teacher={teacher}", "--kd_temperature=2.0"], "probe": ["--probe_interval=2"]}[mode]
    full, killed, resumed = interrupt_and_resume(shakespeare_root, tmp_path, args)
    if mode == "plain":  # every step ran at TINY's schedule, and the optimizer, not only the log, had that rate
        assert [(m["iter"], m["lr"]) for m in full if "loss" in m] == [(i + 1, pytest.approx(tiny_lr(i), rel=1e-12))
                                                                      for i in range(12)]
        assert [g["lr"] for g in resumed["optimizer"]["param_groups"]] == [pytest.approx(tiny_lr(11), rel=1e-12)] * 2
    if mode == "kd":
        assert [m.get("kd") for m in killed] == [m.get("kd") for m in full]
        assert not any("teacher" in k for k in resumed["model"]) and resumed["config"]["teacher"] == str(teacher)
    if mode == "probe":
        probes = [(m["iter"], m["probe"]) for m in killed if "probe" in m]
        assert [i for i, _ in probes] == [0, 2, 4, 6, 8, 10, 12]
        assert probes == [(m["iter"], m["probe"]) for m in full if "probe" in m]


def test_kd_run_logs_both_terms_and_kd_alpha_zero_is_plain_training(shakespeare_root, tmp_path, teacher):
    args = ["--max_iters=3", "--eval_interval=3"]
    run_script(*tiny(shakespeare_root, tmp_path / "plain", *args))
    zero = run_script(*tiny(shakespeare_root, tmp_path / "zero", *args, f"--teacher={teacher}", "--kd_alpha=0.0")).stdout
    run_script(*tiny(shakespeare_root, tmp_path / "kd", *args, f"--teacher={teacher}", "--kd_temperature=2.0"))
    plain, kd_zero = final_state(tmp_path / "plain"), final_state(tmp_path / "zero")
    for k, v in plain["model"].items():  # kd_alpha = 0: the same training, bit for bit, although kd is computed
        assert torch.equal(v, kd_zero["model"][k]), k
    assert [m.get("loss") for m in metrics(tmp_path / "plain")] == [m.get("loss") for m in metrics(tmp_path / "zero")]
    assert [m.get("val_loss") for m in metrics(tmp_path / "plain")] == [m.get("val_loss") for m in metrics(tmp_path / "zero")]
    assert "kd " in zero and "ce" not in metrics(tmp_path / "plain")[1]
    steps = [m for m in metrics(tmp_path / "kd") if "loss" in m]
    assert len(steps) == 3
    for m in steps:  # the logged loss is 0.6 CE + 0.4 KD, and a random teacher is far from the student
        assert m["loss"] == pytest.approx(0.6 * m["ce"] + 0.4 * m["kd"], rel=1e-5) and m["kd"] > 0.01
    assert all(m["ce"] == pytest.approx(m["loss"]) for m in metrics(tmp_path / "zero") if "loss" in m)
    # val loss stays plain CE: the same weights would give the same val loss with or without a teacher
    kd_val = metrics(tmp_path / "kd")[-1]["val_loss"]
    out = run_script(*tiny(shakespeare_root, tmp_path / "eval", f"--init_from={tmp_path / 'kd' / 'ckpt.pt'}", "--eval_only=True")).stdout
    assert float(out.split("val loss ")[1].split()[0]) == pytest.approx(kd_val, abs=1e-4)


class FixedLosses(torch.nn.Module):
    """Stands in for a model: every batch's loss is 1 + k * 2**-23 for its k-th call (float32 exact; times a batch's
    window count, not exact in float32), so only float64 sums give the weighted mean exactly."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, X, Y):
        self.calls.append(len(X))
        return None, torch.tensor(1 + len(self.calls) * 2 ** -23, dtype=torch.float32)


def test_estimate_loss_is_the_mean_over_every_window_of_each_split(tmp_path):
    # 7 windows in batches of 3 (a short last batch), two splits, against the per-window loss written out in float64;
    # a rank's share of the windows; the sums all-reduced in a (one-process, gloo) group; float64 sums
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=32, dropout=0.0))
    with torch.no_grad():
        model.lm_head.weight.mul_(40)  # losses that differ from window to window
    data = torch.randint(0, 32, (200,), generator=torch.Generator().manual_seed(1)).numpy().astype("uint16")
    splits = {"val": (data, [0, 17, 40, 63, 90, 121, 150]), "train": (data, [5, 9, 77, 101, 130, 160, 170])}

    def by_hand(windows):
        per_window = []
        for start in windows:
            x = torch.from_numpy(data[start:start + 8].astype("int64"))[None]
            y = torch.from_numpy(data[start + 1:start + 9].astype("int64"))
            with torch.no_grad():
                logits = model(x, x)[0][0].double()  # targets given: logits at every position
            per_window.append(torch.nn.functional.cross_entropy(logits, y).item())
        return sum(per_window) / len(per_window), per_window

    setup = lambda rank=0, world_size=1, ddp=False: Setup(ddp, rank, world_size, "cpu", "cpu", torch.float32, nullcontext())
    model.train()
    out = estimate_loss(model, splits, 3, 8, setup())
    assert model.training  # handed back in training mode
    expected = {split: by_hand(windows) for split, (_, windows) in splits.items()}
    assert out == pytest.approx({split: mean for split, (mean, _) in expected.items()}, abs=1e-6)
    assert max(expected["val"][1]) - min(expected["val"][1]) > 0.5  # a mean of the wrong windows would show
    # rank 1 of 2 (without DDP, so its own sums): windows 1, 3, 5, and a batch of none that counts nothing
    assert estimate_loss(model, {"val": splits["val"]}, 3, 8, setup(1, 2))["val"] == pytest.approx(
        by_hand(splits["val"][1][1::2])[0], abs=1e-6)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1)
    try:
        assert estimate_loss(model, splits, 3, 8, setup(ddp=True)) == out
    finally:
        torch.distributed.destroy_process_group()
    fixed = FixedLosses()
    mean = estimate_loss(fixed, {"val": splits["val"]}, 3, 8, setup())["val"]
    assert fixed.calls == [3, 3, 1]
    assert mean == (3 * (1 + 2 ** -23) + 3 * (1 + 2 * 2 ** -23) + (1 + 3 * 2 ** -23)) / 7


def test_kd_on_the_plain_path_logs_what_the_fused_path_does(shakespeare_root, tmp_path, teacher, monkeypatch, capsys):
    # fused_loss=False: full logits and losses.plain_loss, KD included
    args = ["--max_iters=2", "--eval_interval=2", "--dtype=float32", f"--teacher={teacher}", "--kd_temperature=2.0"]
    train(configure(TrainConfig, tiny(shakespeare_root, tmp_path / "fused", *args)[1:]))
    monkeypatch.setattr(losses, "FusedLinearCrossEntropy", None)  # the plain run must not reach the fused port
    train(configure(TrainConfig, tiny(shakespeare_root, tmp_path / "plain", *args, "--fused_loss=False")[1:]))
    fused, plain = ([m for m in metrics(tmp_path / run) if "loss" in m] for run in ("fused", "plain"))
    assert len(fused) == len(plain) == 2 and "kd " in capsys.readouterr().out
    for f, p in zip(fused, plain):
        assert p["kd"] > 0.01 and p["loss"] == pytest.approx(0.6 * p["ce"] + 0.4 * p["kd"], rel=1e-5)
        for key in ("loss", "ce", "kd"):
            assert p[key] == pytest.approx(f[key], abs=1e-5), key


def test_a_loss_term_registered_from_outside_trains_and_is_logged(shakespeare_root, tmp_path, monkeypatch, capsys):
    # a new term is one entry in losses.TERMS: here PaLM's z-loss, 1e-4 log^2 Z, which has no fused port
    z_loss = losses.Term(lambda logits, targets, spec: logits.logsumexp(-1) ** 2, lambda spec: 1e-4)
    monkeypatch.setitem(losses.TERMS, "z", z_loss)
    args = tiny(shakespeare_root, tmp_path / "z", "--max_iters=2", "--eval_interval=2", "--fused_loss=False")[1:]
    train(configure(TrainConfig, args))
    steps = [m for m in metrics(tmp_path / "z") if "loss" in m]
    assert len(steps) == 2 and "kd" not in steps[0]
    for m in steps:  # log Z of 50304 near-uniform logits is about 10.8
        assert m["z"] > 100 and m["loss"] == pytest.approx(m["ce"] + 1e-4 * m["z"], rel=1e-6)
    assert re.search(r"iter 2: loss [\d.]+ \(ce [\d.]+, z [\d.]+\)", capsys.readouterr().out)


def test_teacher_with_another_vocabulary_or_shorter_context_is_one_line_error(shakespeare_root, tmp_path):
    for name, kwargs, message in (("vocab", dict(vocab_size=128), "vocab_size 128"), ("block", dict(block_size=16), "block_size 16")):
        bad = write_teacher(tmp_path / f"{name}.pt", **kwargs)
        out_dir = tmp_path / f"run_{name}"
        proc = run_script(*tiny(shakespeare_root, out_dir, "--max_iters=1", f"--teacher={bad}"), check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and message in lines[0] and "teacher" in lines[0], proc.stderr
        assert not out_dir.exists()


def ddp_matches_one_process(root, tmp_path, args):
    """train.py with args in one process (tmp_path/single) and under torchrun with 2 gloo ranks (tmp_path/ddp), the
    same global batch; asserts their 4 logged step losses and final val loss agree and returns their metrics."""
    run_script(*tiny(root, tmp_path / "single", *args))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *tiny(root, tmp_path / "ddp", *args)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    single, ddp = metrics(tmp_path / "single"), metrics(tmp_path / "ddp")
    train_single = [m["loss"] for m in single if "loss" in m]
    train_ddp = [m["loss"] for m in ddp if "loss" in m]
    assert len(train_single) == len(train_ddp) == 4
    assert train_single == pytest.approx(train_ddp, abs=1e-5)
    assert single[-1]["val_loss"] == pytest.approx(ddp[-1]["val_loss"], abs=1e-5)
    assert train_single[0] != train_single[-1]  # it really trained
    return single, ddp


@pytest.mark.parametrize("kd", [False, True])
def test_ddp_gloo_matches_one_process(shakespeare_root, tmp_path, teacher, kd):
    # every step logged by the timed rule (log_seconds ~ 0), not by log_interval: under DDP the ranks must agree on it
    args = ["--max_iters=4", "--eval_interval=4", "--dtype=float32", "--log_interval=100", "--log_seconds=1e-9"]
    args += [f"--teacher={teacher}"] if kd else []
    single, ddp = ddp_matches_one_process(shakespeare_root, tmp_path, args)
    if kd:
        assert [m["kd"] for m in single if "kd" in m] == pytest.approx([m["kd"] for m in ddp if "kd" in m], abs=1e-5)


def test_eval_only_uses_the_same_fixed_windows(shakespeare_root, tmp_path):
    run_script(*tiny(shakespeare_root, tmp_path / "run", "--max_iters=3", "--eval_interval=3"))
    final_val = metrics(tmp_path / "run")[-1]["val_loss"]
    ckpt = tmp_path / "run" / "ckpt.pt"
    out = run_script(*tiny(shakespeare_root, tmp_path / "eval", f"--init_from={ckpt}", "--eval_only=True")).stdout
    reported = float(out.split("val loss ")[1].split()[0])
    assert reported == pytest.approx(final_val, abs=1e-4)
    assert not (tmp_path / "eval").exists()  # eval_only writes nothing


def test_init_from_hf_dir_and_checkpoint(shakespeare_root, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel
    hf_dir = tmp_path / "hf"
    GPT2LMHeadModel(GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=2)).save_pretrained(hf_dir)
    out = run_script(*tiny(shakespeare_root, tmp_path / "from_hf", f"--init_from={hf_dir}", "--max_iters=2",
                           "--eval_interval=2", "--n_layer=5")).stdout
    assert "ignored" in out  # the model shape comes from the HF dir, and the user is told
    ckpt = final_state(tmp_path / "from_hf")
    assert ckpt["model_args"]["n_layer"] == 2 and ckpt["model_args"]["block_size"] == 32  # cropped to block_size
    # a checkpoint path starts a fresh run (iter 0, fresh optimizer) from those weights; inherit_layers keeps only
    # the first block (Inheritune in one command), and the provenance travels into the trained checkpoint
    source = tmp_path / "from_hf" / "ckpt.pt"
    run_script(*tiny(shakespeare_root, tmp_path / "from_ckpt", f"--init_from={source}", "--inherit_layers=1",
                     "--max_iters=1", "--eval_interval=1", "--learning_rate=1e-9", "--warmup_iters=0", "--decay_lr=False"))
    trained = final_state(tmp_path / "from_ckpt")
    assert trained["iter_num"] == 1 and trained["model_args"]["n_layer"] == 1
    assert trained["inherit"]["layers"] == [0]
    src = final_state(tmp_path / "from_hf")["model"]
    w = "transformer.h.0.mlp.c_fc.weight"
    assert torch.allclose(trained["model"][w], src[w], atol=1e-6)  # lr 1e-9: still the inherited block


def test_nan_loss_stops_and_keeps_last_good_checkpoint(shakespeare_root, tmp_path):
    out_dir = tmp_path / "run"
    run_script(*tiny(shakespeare_root, out_dir, "--max_iters=2", "--eval_interval=2"))
    good = final_state(out_dir)
    proc = run_script(*tiny(shakespeare_root, out_dir, "--init_from=resume", "--max_iters=6", "--eval_interval=2",
                            "--learning_rate=1e30", "--decay_lr=False", "--grad_clip=0.0"), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error:") and "nan" in proc.stderr.lower()
    after = final_state(out_dir)
    assert after["iter_num"] == 2
    assert all(torch.equal(v, after["model"][k]) for k, v in good["model"].items())


@pytest.mark.parametrize("extra, message", [
    (["--n_layers=3"], "did you mean 'n_layer'"),
    (["--batch_size=2.5"], "must be int"),
    (["--dataset=nonexistent"], "prepare"),
    (["--init_from=resume"], "not found"),
    (["--n_embd=33"], "divisible"),
    (["--gradient_accumulation_steps=0"], "at least 1"),
    (["--dropout=1.5"], "dropout must be in [0, 1)"),
    (["--dtype=float8"], "dtype"),
    (["--block_size=10000000"], "has 1,430,058 tokens, fewer than block_size + 1 = 10,000,001"),  # before a 1.3 GB wpe is built
    (["--kd_alpha=1.5"], "kd_alpha must be in [0, 1]"),
    (["--dist_timeout=0"], "dist_timeout must be a positive number of minutes"),
    (["--teacher=gpt3"], "model source 'gpt3' not found"),
    (["config/does_not_exist.py"], "not found"),
    (["--sink_layers=2"], "sink_layers: layer 2 is out of range: the model has 2 layers"),
    (["--sink_layers=1", "--sink_eps=1"], "sink_eps must be in (0, 1)"),
    (["--sink_layers=1", "--sink_margin=0.5"], "sink_margin must be >= 1"),
    (["--sink_layers=1", "--sink_marker=0"], "sink_marker must be positive"),
    (["--sink_layers=1", "--position=rope"], "a RoPE model has none"),
])
def test_bad_input_is_one_line_error_and_writes_nothing(shakespeare_root, tmp_path, extra, message):
    out_dir = tmp_path / "run"
    proc = run_script(*tiny(shakespeare_root, out_dir, "--max_iters=1", *extra), check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert not out_dir.exists()


def test_incompatible_or_corrupt_checkpoint_is_one_line_error(shakespeare_root, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    wrong = tmp_path / "wrong.pt"  # weights that do not fit the model_args stored beside them
    torch.save({"model": {"transformer.wte.weight": torch.zeros(3, 3)}, "model_args": {"n_layer": 1, "n_embd": 8,
                "n_head": 2, "block_size": 8, "vocab_size": 3}}, wrong)
    for path, message in ((corrupt, "could not read checkpoint"), (wrong, "does not match its model_args")):
        out_dir = tmp_path / f"run_{path.stem}"
        proc = run_script(*tiny(shakespeare_root, out_dir, f"--init_from={path}", "--max_iters=1"), check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and message in lines[0], proc.stderr
        assert not out_dir.exists()


def test_timed_log_lines_with_elapsed_and_eta(shakespeare_root, tmp_path):
    """Besides every log_interval steps, train.py logs once log_seconds of wall time have passed (here: at once, so
    after every step); log_seconds=0 leaves log_interval alone. Every line says the elapsed time and an ETA."""
    timed = run_script(*tiny(shakespeare_root, tmp_path / "timed", "--max_iters=5", "--eval_interval=100",
                             "--log_interval=100", "--log_seconds=1e-9")).stdout
    iters = [line for line in timed.splitlines() if line.startswith("iter ")]
    assert [int(line.split()[1].rstrip(":")) for line in iters] == [1, 2, 3, 4, 5]
    assert all(re.search(r", elapsed \d+s, ETA \d+s$", line) for line in iters), iters
    assert [m["iter"] for m in metrics(tmp_path / "timed") if "loss" in m] == [1, 2, 3, 4, 5]
    evals = [line for line in timed.splitlines() if line.startswith("step ")]
    assert re.search(r", elapsed \d+s$", evals[0])  # before the first step: nothing to estimate from yet
    assert re.search(r", elapsed \d+s, ETA \d+s$", evals[-1])
    untimed = run_script(*tiny(shakespeare_root, tmp_path / "untimed", "--max_iters=5", "--eval_interval=100",
                               "--log_interval=100", "--log_seconds=0")).stdout
    assert [line.split(":")[0] for line in untimed.splitlines() if line.startswith("iter ")] == ["iter 5"]


def test_resume_with_other_weight_decay_groups_is_one_line_error(shakespeare_root, tmp_path):
    run_script(*tiny(shakespeare_root, tmp_path / "run", "--max_iters=2", "--eval_interval=2"))
    before = (tmp_path / "run" / "ckpt.pt").read_bytes()
    proc = run_script(*tiny(shakespeare_root, tmp_path / "run", "--init_from=resume", "--max_iters=4",
                            "--decay_embeddings=False"), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "resume it with --decay_embeddings=True" in lines[0], proc.stderr
    assert (tmp_path / "run" / "ckpt.pt").read_bytes() == before


def test_dropout_applies_on_resume(shakespeare_root, tmp_path):
    run_script(*tiny(shakespeare_root, tmp_path / "a", "--max_iters=2", "--eval_interval=2"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    run_script(*tiny(shakespeare_root, tmp_path / "a", "--init_from=resume", "--max_iters=4", "--eval_interval=2"))
    run_script(*tiny(shakespeare_root, tmp_path / "b", "--init_from=resume", "--max_iters=4", "--eval_interval=2",
                     "--dropout=0.5"))
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert (a["model_args"]["dropout"], b["model_args"]["dropout"]) == (0.0, 0.5)
    assert a["iter_num"] == b["iter_num"] == 4
    assert not torch.equal(a["model"]["transformer.h.0.mlp.c_fc.weight"], b["model"]["transformer.h.0.mlp.c_fc.weight"])


@pytest.mark.parametrize("config, layers", [
    ("config/kd_gpt2m_16_random.py", None),
    ("config/kd_gpt2m_16_distil.py", list(range(0, 24, 2)) + [18, 19, 20, 21]),
    ("config/kd_gpt2m_16_inherit.py", list(range(16))),
    ("config/inherit_gpt2m_16_50k.py", list(range(16))),
])
def test_kd_paper_configs_at_mini_scale(shakespeare_root, tmp_path, config, layers):
    # the paper's KD rows end to end, with a tiny 24-layer model standing in for the trained GPT-2 medium reference
    torch.manual_seed(3)
    reference = GPT(GPTConfig(n_layer=24, n_head=2, n_embd=32, block_size=64, vocab_size=50304))
    ref_path = tmp_path / "gpt2m_24.pt"
    save_checkpoint({"model": reference.state_dict(), "model_args": reference.config.__dict__}, ref_path)
    cfg = configure(TrainConfig, [config])
    assert cfg.max_iters == cfg.lr_decay_iters == 50000 and cfg.n_layer in (16, 24)
    kd = "kd_" in config
    assert cfg.teacher == ("out/gpt2m_24/ckpt.pt" if kd else "") and cfg.kd_alpha == 0.4 and cfg.kd_temperature == 1.0
    sources = [f"--teacher={ref_path}"] if kd else []
    if layers is not None:
        sources.append(f"--init_from={ref_path}")
    out_dir = tmp_path / "run"
    run_script("train.py", config, *TINY, "--n_layer=16", f"--data_root={shakespeare_root}", f"--out_dir={out_dir}",
               "--max_iters=2", "--eval_interval=2", "--eval_windows=4", "--wandb_log=False", *sources)
    ckpt = final_state(out_dir)
    assert ckpt["iter_num"] == 2 and ckpt["model_args"]["n_layer"] == 16
    assert (ckpt["inherit"] or {}).get("layers") == layers
    steps = [m for m in metrics(out_dir) if "loss" in m]
    assert len(steps) == 2 and all(("kd" in m) == kd for m in steps)


def test_probe_interval_logs_every_layer_and_plots(shakespeare_root, tmp_path):
    out_dir = tmp_path / "run"
    proc = run_script(*tiny(shakespeare_root, out_dir, "--max_iters=5", "--eval_interval=5", "--probe_interval=2"))
    out = proc.stdout
    assert "probe:" not in proc.stderr  # no progress bar in the training log: each probe prints one line
    probes = [m for m in metrics(out_dir) if "probe" in m]
    assert [m["iter"] for m in probes] == [0, 2, 4]  # 5 is no multiple of 2
    for m in probes:
        assert set(m["probe"]) == {"max_rank", "avg_mass", "block_influence", "attention_sink"} and m["probe_s"] > 0
        assert all(len(values) == 2 for values in m["probe"].values())  # TINY's 2 layers
        assert all(1 <= v <= 32 for v in m["probe"]["max_rank"] + m["probe"]["avg_mass"])  # windows cut to block_size 32
        assert all(0 < v < 2 for v in m["probe"]["block_influence"]) and all(0 <= v <= 1 for v in m["probe"]["attention_sink"])
    assert probes[0]["probe"] != probes[-1]["probe"]  # the model trained in between
    assert "step 2: probe MaxRank " in out
    assert (out_dir / "probe_history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results_val = [m["val_loss"] for m in metrics(out_dir) if "val_loss" in m]
    plain = tmp_path / "plain"
    run_script(*tiny(shakespeare_root, plain, "--max_iters=5", "--eval_interval=5"))
    assert results_val == [m["val_loss"] for m in metrics(plain) if "val_loss" in m]  # the same training
    assert torch.equal(final_state(out_dir)["model"]["lm_head.weight"], final_state(plain)["model"]["lm_head.weight"])


def test_selection_by_probe_and_a_zero_step_run(shakespeare_root, tmp_path):
    # the reference's context (128) holds the probe's 100-token windows; the student trains on TINY's 32
    reference = write_teacher(tmp_path / "ref.pt", block_size=128)
    args = [f"--init_from={reference}", "--inherit_layers=2", "--inherit_select=shortgpt", "--eval_interval=2"]
    run_script(*tiny(shakespeare_root, tmp_path / "zero", *args, "--max_iters=0"))  # the pruned model, evaluated as built
    run_script(*tiny(shakespeare_root, tmp_path / "run", *args, "--max_iters=2"))
    zero, trained = final_state(tmp_path / "zero"), final_state(tmp_path / "run")
    p = trained["inherit"]
    bi = p["selection"]["scores"]["block_influence"]["per_layer"]
    assert p["selection"]["method"] == "shortgpt" and len(bi) == 3 and p["selection"]["probe"]["seq_len"] == 100
    assert p["layers"] == sorted(sorted(range(3), key=lambda l: -bi[l])[:2])  # the two blocks of highest BI
    assert zero["iter_num"] == 0 and zero["inherit"] == p  # the same selection: the probe is deterministic
    assert [m["iter"] for m in metrics(tmp_path / "zero")] == [0] and "val_loss" in metrics(tmp_path / "zero")[0]
    source = torch.load(reference, weights_only=True)["model"]
    for i, s in enumerate(p["layers"]):  # as built, before any step
        assert torch.equal(zero["model"][f"transformer.h.{i}.attn.c_attn.weight"], source[f"transformer.h.{s}.attn.c_attn.weight"])
    import results
    assert results.describe_init(trained).endswith("(3L), chosen by shortgpt")
    row = results.load_run(str(tmp_path / "zero"))
    assert row["steps"] == 0 and row["val_loss"] == metrics(tmp_path / "zero")[0]["val_loss"]


def test_probe_interval_measures_the_fixed_val_windows(shakespeare_root, tmp_path):
    """The step-0 probe of a zero-step run is the model of its checkpoint probed on the val split, not the train split."""
    run_script(*tiny(shakespeare_root, tmp_path / "zero", "--max_iters=0", "--probe_interval=1"))
    logged = [m["probe"] for m in metrics(tmp_path / "zero") if "probe" in m]
    assert len(logged) == 1
    model = model_from_checkpoint(final_state(tmp_path / "zero"))
    settings = attention_probe.fitted_settings(32)
    measured = {split: attention_probe.Measurements(model, open_tokens(shakespeare_root / "shakespeare", split), settings,
                                                    "cpu", progress=False).metrics(PROBE_METRICS)
                for split in ("val", "train")}
    for name, values in logged[0].items():
        assert values == pytest.approx(measured["val"][name]["per_layer"], rel=1e-9, abs=1e-12), name
    assert logged[0]["block_influence"] != pytest.approx(measured["train"]["block_influence"]["per_layer"], rel=1e-6)


@pytest.mark.parametrize("scale_by_layer, eps, margin, marker", [(False, 0.01, 2, 4), (True, 0.001, 20, 300)])
def test_sink_layers_start_with_every_query_on_the_first_token(scale_by_layer, eps, margin, marker):
    """sink_layers: at init each query row of those layers puts >= 1 - sink_eps of its attention on the window's first
    token, so they are lazy by the paper's measure (MaxRank 1, AvgMass 1); the other layers attend broadly."""
    import numpy as np
    import attention_probe
    from train import build_model
    shape = ["--n_layer=4", "--n_head=2", "--n_embd=32", "--block_size=128", "--bias=False",
             f"--scale_attn_by_inverse_layer_idx={scale_by_layer}"]
    cfg = configure(TrainConfig, [*shape, "--sink_layers=1,3", f"--sink_eps={eps}", f"--sink_margin={margin}",
                                     f"--sink_marker={marker}"])
    torch.manual_seed(0)
    model = build_model(cfg, 96, "cpu")[0].eval()
    tokens = np.random.default_rng(0).integers(0, 96, 20000, dtype=np.uint16)
    settings = attention_probe.fitted_settings(cfg.block_size)
    measured = attention_probe.Measurements(model, tokens, settings, "cpu", progress=False).metrics(["max_rank", "avg_mass"])
    first = attention_probe.first_token_attention(model, tokens, num_seqs=20, seq_len=128)  # mean over queries, per head
    x = torch.from_numpy(tokens[:8 * 128].astype(np.int64)).view(8, 128)
    with torch.no_grad():
        least = {layer: att[..., 0].min().item() for layer, att in model.attention_maps(x)}  # the worst query row
    for layer in range(4):
        sink = layer in (1, 3)
        assert (least[layer] >= 1 - eps) == sink, (layer, least)
        assert (measured["max_rank"]["per_layer"][layer] == 1) == sink and (measured["avg_mass"]["per_layer"][layer] == 1) == sink
        assert bool((first[layer] >= 1 - eps).all()) == sink and (first[layer] < 0.2).all() != sink
    # ordinary weights, not a mask: against the plain init of the same seed, only the embeddings' two set-aside
    # dimensions and one query and one key weight per head of the sink layers differ
    torch.manual_seed(0)
    plain = build_model(configure(TrainConfig, shape), 96, "cpu")[0].state_dict()
    changed = {k: (v != plain[k]).nonzero().tolist() for k, v in model.state_dict().items() if not torch.equal(v, plain[k])}
    assert set(changed) == {"transformer.wte.weight", "lm_head.weight", "transformer.wpe.weight",
                            "transformer.h.1.attn.c_attn.weight", "transformer.h.3.attn.c_attn.weight"}
    assert {j for _, j in changed["transformer.wte.weight"]} == {j for _, j in changed["transformer.wpe.weight"]} == {30, 31}
    assert changed["transformer.h.1.attn.c_attn.weight"] == [[0, 30], [16, 30], [32, 31], [48, 31]]  # q heads' row 0, k heads' row 0
    import results
    assert (results.describe_init({"inherit": None, "config": dataclasses.asdict(cfg)})
            == f"scratch, sink-collapsed layers 1,3 (eps {eps:g}, margin {margin:g}, marker {marker:g})")
