"""grow.py: two rounds of Algorithm 1 on the real corpus, killed mid-round and resumed, under torchrun, and errors."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from checkpoint import model_from_checkpoint, save_checkpoint
from conftest import REPO, run_script
from model import GPT, GPTConfig

TRAIN = ["--dataset=shakespeare", "--block_size=32", "--batch_size=4", "--gradient_accumulation_steps=2",
         "--eval_iters=2", "--log_interval=1", "--warmup_iters=1", "--learning_rate=1e-3", "--max_iters=6",
         "--eval_interval=2", "--lr_decay_iters=6", "--compile=False", "--device=cpu", "--dtype=float32"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A 4-layer reference checkpoint; an unreachable reference_val_loss makes grow run every round (2 -> 4)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=50304, n_layer=4, n_head=2, n_embd=32, bias=False))
    path = tmp_path_factory.mktemp("ref") / "ckpt.pt"
    save_checkpoint({"model": model.state_dict(), "model_args": vars(model.config), "iter_num": 0,
                     "best_val_loss": 1e9, "config": {}}, path)
    return path


def grow_args(root, reference, out_dir, *extra):
    return ["grow.py", *TRAIN, f"--data_root={root}", f"--reference={reference}", f"--out_dir={out_dir}",
            "--reference_val_loss=0.5", *extra]


def window_loss(checkpoint, root, split, count, block_size):
    """The mean next-token cross-entropy of a checkpoint's model on the first `count` fixed windows of a split
    (anywhere: numpy's default_rng(1337) offsets, data.fixed_windows' definition), float64."""
    model = model_from_checkpoint(torch.load(checkpoint, weights_only=True)).eval()
    tokens = np.fromfile(root / "shakespeare" / f"{split}.bin", dtype=np.uint16).astype(np.int64)
    offsets = np.random.default_rng(1337).integers(0, len(tokens) - block_size, size=count)
    x = torch.from_numpy(np.stack([tokens[o:o + block_size] for o in offsets]))
    y = torch.from_numpy(np.stack([tokens[o + 1:o + 1 + block_size] for o in offsets]))
    with torch.no_grad():
        logits, _ = model(x, y)
    return torch.nn.functional.cross_entropy(logits.double().flatten(0, 1), y.flatten()).item()


def load_json(path):
    with open(path) as f:
        return json.load(f)


def test_grow_two_rounds_kill_and_resume(shakespeare_root, reference, tmp_path):
    full = tmp_path / "full"
    run_script(*grow_args(shakespeare_root, reference, full))
    state = load_json(full / "grow.json")
    assert [r["n_layer"] for r in state["rounds"]] == [2, 4]
    assert all(r["steps"] == 6 and r["tokens"] == 6 * 2 * 4 * 32 for r in state["rounds"])
    assert state["reference_val_loss"] == 0.5 and "stopped at max_layers=4" in state["result"]
    assert (full / "grow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 4 |" in (full / "grow.md").read_text()
    # paper mode: round 4 starts again from the reference, so its first two blocks equal the reference's, not round 2's
    ref_sd = torch.load(reference, weights_only=True)["model"]
    init4 = torch.load(full / "round_4" / "init.pt", weights_only=True)["model"]
    assert torch.equal(init4["transformer.h.1.attn.c_attn.weight"], ref_sd["transformer.h.1.attn.c_attn.weight"])

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *grow_args(shakespeare_root, reference, killed)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "round_4" / "ckpt.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not ckpt.exists():
        time.sleep(0.05)
    assert proc.poll() is None, "grow finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [r["n_layer"] for r in load_json(killed / "grow.json")["rounds"]] == [2]

    out = run_script(*grow_args(shakespeare_root, reference, killed)).stdout
    assert "round 2 layers: finished earlier" in out
    resumed = load_json(killed / "grow.json")
    assert [r["n_layer"] for r in resumed["rounds"]] == [2, 4]
    for a, b in zip(state["rounds"], resumed["rounds"]):
        assert a["val_loss"] == b["val_loss"]  # exact resume: the same numbers as the uninterrupted run
    final_full = torch.load(full / "round_4" / "ckpt.pt", weights_only=True)["model"]
    final_resumed = torch.load(ckpt, weights_only=True)["model"]
    assert all(torch.equal(v, final_resumed[k]) for k, v in final_full.items())


def test_continue_mode_keeps_trained_blocks(shakespeare_root, reference, tmp_path):
    out_dir = tmp_path / "continue"
    run_script(*grow_args(shakespeare_root, reference, out_dir, "--grow_mode=continue", "--max_iters=2",
                          "--eval_interval=2", "--lr_decay_iters=2"))
    trained2 = torch.load(out_dir / "round_2" / "ckpt.pt", weights_only=True)["model"]
    init4 = torch.load(out_dir / "round_4" / "init.pt", weights_only=True)["model"]
    ref_sd = torch.load(reference, weights_only=True)["model"]
    for key in ("transformer.h.1.mlp.c_fc.weight", "transformer.wte.weight", "transformer.ln_f.weight"):
        assert torch.equal(init4[key], trained2[key]), key
    assert torch.equal(init4["transformer.h.3.mlp.c_fc.weight"], ref_sd["transformer.h.3.mlp.c_fc.weight"])
    assert not torch.equal(init4["transformer.h.1.mlp.c_fc.weight"], ref_sd["transformer.h.1.mlp.c_fc.weight"])


def block(state, i):
    prefix = f"transformer.h.{i}."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.parametrize("mode", ["paper", "continue"])
def test_deepest_new_blocks_come_from_the_reference_tail(shakespeare_root, reference, tmp_path, mode):
    # 1 -> 2 -> 3 of the 4 reference blocks; the added blocks are its deepest (v4's Algorithm 1), not the next ones
    out_dir = tmp_path / mode
    run_script(*grow_args(shakespeare_root, reference, out_dir, "--new_blocks=deepest", f"--grow_mode={mode}",
                          "--start_layers=1", "--step_layers=1", "--max_layers=3", "--max_iters=1", "--eval_interval=1",
                          "--lr_decay_iters=1"))
    ref_sd = torch.load(reference, weights_only=True)["model"]
    # paper mode rebuilds every round from the reference: block 0, then the last depth - 1 reference blocks;
    # continue mode keeps the trained blocks and appends the reference's last block
    expected = {1: [0], 2: [0, 3], 3: [0, 2, 3]} if mode == "paper" else {1: [0], 2: ["trained", 3], 3: ["trained", "trained", 3]}
    for depth, layers in expected.items():
        init = torch.load(out_dir / f"round_{depth}" / "init.pt", weights_only=True)
        assert init["inherit"]["new_blocks"] == "deepest" and init["inherit"]["grow_mode"] == mode
        if mode == "paper":
            assert init["inherit"]["layers"] == layers
        previous = depth > 1 and torch.load(out_dir / f"round_{depth - 1}" / "ckpt.pt", weights_only=True)["model"]
        for i, s in enumerate(layers):
            target, source = block(init["model"], i), block(previous, i) if s == "trained" else block(ref_sd, s)
            assert target.keys() == source.keys() and all(torch.equal(target[k], source[k]) for k in target), (depth, i, s)
    continued = "" if mode == "paper" else ", continued from round_2"
    assert f"| inherited blocks 0,2-3 of {reference.parent.name} (4L){continued} |" in (out_dir / "grow.md").read_text()
    assert load_json(out_dir / "grow.json")["settings"]["new_blocks"] == "deepest"


def test_last_step_is_capped_at_max_layers(shakespeare_root, reference, tmp_path):
    # 1 -> 3 -> 5 would overshoot the 4-layer reference; the last round is at max_layers = 4 instead
    out_dir = tmp_path / "capped"
    run_script(*grow_args(shakespeare_root, reference, out_dir, "--start_layers=1", "--step_layers=2", "--max_iters=1",
                          "--eval_interval=1", "--lr_decay_iters=1"))
    state = load_json(out_dir / "grow.json")
    assert [r["n_layer"] for r in state["rounds"]] == [1, 3, 4] and "stopped at max_layers=4" in state["result"]


def test_grow_under_torchrun_matches_one_process(shakespeare_root, reference, tmp_path):
    extra = ["--max_iters=2", "--eval_interval=2", "--lr_decay_iters=2"]
    run_script(*grow_args(shakespeare_root, reference, tmp_path / "one", *extra))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           *grow_args(shakespeare_root, reference, tmp_path / "ddp", *extra)],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, ddp = load_json(tmp_path / "one" / "grow.json"), load_json(tmp_path / "ddp" / "grow.json")
    assert [r["n_layer"] for r in ddp["rounds"]] == [2, 4]
    assert [r["val_loss"] for r in ddp["rounds"]] == pytest.approx([r["val_loss"] for r in one["rounds"]], abs=1e-5)


def test_measures_reference_loss_and_stops_when_reached(shakespeare_root, reference, tmp_path):
    # no reference_val_loss: grow measures the (random) reference; a 2-layer model trained 6 steps beats it
    out_dir = tmp_path / "auto"
    args = [a for a in grow_args(shakespeare_root, reference, out_dir) if not a.startswith("--reference_val_loss")]
    # a finished run to compare against: grow.md and grow.png show it beside the rounds
    baseline = tmp_path / "baseline"
    run_script("train.py", *TRAIN, f"--data_root={shakespeare_root}", f"--out_dir={baseline}", "--n_layer=2",
               "--n_head=2", "--n_embd=32", "--max_iters=2", "--eval_interval=2")
    out = run_script(*args, f"--compare_runs={baseline}").stdout
    state = load_json(out_dir / "grow.json")
    # the reference's mean loss on the val split's fixed windows (TRAIN's 2 x 4 of 32 tokens, seed 1337), by hand
    expected = {split: window_loss(reference, shakespeare_root, split, count=8, block_size=32) for split in ("val", "train")}
    assert state["reference_val_loss"] == pytest.approx(expected["val"], abs=1e-5)
    assert abs(expected["val"] - expected["train"]) > 1e-3  # so the train split's windows would fail the line above
    assert [r["n_layer"] for r in state["rounds"]] == [2] and state["rounds"][0]["reached_target"]
    assert "reached the reference with 2 layers" in out
    report = (out_dir / "grow.md").read_text()
    baseline_val = [json.loads(line) for line in open(baseline / "metrics.jsonl")][-1]["val_loss"]
    row = next(line for line in report.splitlines() if line.startswith(f"| {baseline} |"))  # results.py's table
    assert row.startswith(f"| {baseline} | 2 | 2 x 32 |") and "| scratch |" in row and f"| {baseline_val:.4f} |" in row
    assert "| Inheritune round, 2 layers | 2 | 2 x 32 |" in report and "inherited blocks 0-1 of " in report


def test_every_round_selects_its_blocks_by_probe(shakespeare_root, tmp_path):
    # a reference whose context holds the probe's 100-token windows; rounds of 2 and 4 of its 4 blocks by angular distance
    torch.manual_seed(1)
    model = GPT(GPTConfig(block_size=128, vocab_size=50304, n_layer=4, n_head=2, n_embd=32, bias=False))
    reference = tmp_path / "ref.pt"
    save_checkpoint({"model": model.state_dict(), "model_args": vars(model.config), "iter_num": 0,
                     "best_val_loss": 1e9, "config": {}}, reference)
    out_dir = tmp_path / "angular"
    out = run_script(*grow_args(shakespeare_root, reference, out_dir, "--inherit_select=angular", "--max_iters=1",
                                "--eval_interval=1", "--lr_decay_iters=1")).stdout
    assert "chosen by angular" in out
    round2 = torch.load(out_dir / "round_2" / "init.pt", weights_only=True)["inherit"]
    d = round2["selection"]["scores"]["angular_distance"]["matrix"]
    start = min(range(3), key=lambda l: (d[l][l + 2], -l))
    assert round2["layers"] == [l for l in range(4) if not start <= l < start + 2]
    assert torch.load(out_dir / "round_4" / "init.pt", weights_only=True)["inherit"]["layers"] == [0, 1, 2, 3]
    assert ", chosen by angular |" in (out_dir / "grow.md").read_text()
    assert load_json(out_dir / "grow.json")["settings"]["inherit_select"] == "angular"


@pytest.mark.parametrize("extra, message", [
    (["--grow_mode=stack"], "grow_mode"),
    (["--max_layers=8"], "deeper than the reference"),
    (["--start_layers=0"], "start_layers"),
    (["--step_layer=2"], "did you mean 'step_layers'"),
    (["--inherit_layers=2"], "sets each round's depth itself"),
    (["--inherit_place=0-1"], "drop inherit_layers and inherit_place"),
    (["--new_blocks=last"], "new_blocks must be 'next' or 'deepest'"),
    (["--new_blocks=deepest", "--inherit_select=shortgpt"], "leaves inherit_select='shortgpt' nothing to pick"),
    (["--inherit_block_parts=attn,foo"], "unknown block part 'foo'"),
    (["--inherit_select=lazy_cut"], "inherit_select='lazy_cut' sets the depth itself, which grow.py steps"),
    (["--inherit_select=shortgpt", "--grow_mode=continue"], "needs inherit_select='first'"),
    (["--inherit_select=longgpt"], "not a selection strategy"),
])
def test_bad_input_is_one_line_error(shakespeare_root, reference, tmp_path, extra, message):
    out_dir = tmp_path / "bad"
    proc = run_script(*grow_args(shakespeare_root, reference, out_dir, *extra), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert not out_dir.exists()


def test_rerun_with_other_settings_is_refused_unless_allowed(shakespeare_root, reference, tmp_path):
    out_dir = tmp_path / "rerun"
    short = ["--max_iters=1", "--eval_interval=1", "--lr_decay_iters=1"]

    def grow_run(*extra, check=True):
        args = [a for a in grow_args(shakespeare_root, reference, out_dir, *short) if not a.startswith("--reference_val_loss")]
        return run_script(*args, *extra, check=check)

    grow_run("--reference_val_loss=1e9")  # reached at once: one round
    assert [r["n_layer"] for r in load_json(out_dir / "grow.json")["rounds"]] == [2]
    before = {p.name: p.read_bytes() for p in out_dir.iterdir() if p.is_file()}
    for extra, named in [(["--reference_val_loss=0.0"], "reference_val_loss 1000000000.0 -> 0.0"),
                         (["--reference_val_loss=1e9", "--tolerance=0.5"], "tolerance 0.0 -> 0.5"),
                         (["--reference_val_loss=1e9", "--max_layers=3", "--learning_rate=2e-3"],
                          "learning_rate 0.001 -> 0.002, max_layers None -> 3")]:
        proc = grow_run(*extra, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and named in lines[0], proc.stderr
        assert "start fresh with another --out_dir" in lines[0] and "--allow_changes=True" in lines[0]
    assert {p.name: p.read_bytes() for p in out_dir.iterdir() if p.is_file()} == before

    # where files go, how often it logs, which device: not settings of a round
    out = grow_run("--reference_val_loss=1e9", "--log_interval=5", "--log_seconds=0", f"--data_root={shakespeare_root}/.").stdout
    assert "round 2 layers: finished earlier" in out

    out = grow_run("--reference_val_loss=0.0", "--tolerance=0.25", "--allow_changes=True").stdout
    assert "settings changed" in out and "round 2 layers: finished earlier" in out
    state = load_json(out_dir / "grow.json")
    assert [r["n_layer"] for r in state["rounds"]] == [2, 4] and not any(r["reached_target"] for r in state["rounds"])
    assert (state["reference_val_loss"], state["tolerance"], state["settings"]["tolerance"]) == (0.0, 0.25, 0.25)
    assert "Reference val loss: 0.0000 (target: <= 0.2500)" in (out_dir / "grow.md").read_text()


@pytest.mark.parametrize("present", ["metrics.jsonl", "ckpt.pt"])
def test_compare_run_missing_a_file_is_one_line_error_before_round_1(shakespeare_root, tmp_path, present):
    # the report reads each compare_runs entry's metrics and checkpoint; either missing stops grow before it trains
    run = tmp_path / "half_run"
    run.mkdir()
    (run / present).write_text("")
    proc = run_script(*grow_args(shakespeare_root, tmp_path / "no_reference.pt", tmp_path / "grow"), f"--compare_runs={run}",
                      check=False)
    missing = {"metrics.jsonl": "ckpt.pt", "ckpt.pt": "metrics.jsonl"}[present]
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: {run}/{missing} not found; compare_runs takes out_dirs of finished train.py runs"
    assert not (tmp_path / "grow").exists()
