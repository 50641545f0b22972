"""Windows that start at a document (window_start='document'): data.window_starts, the character datasets of
documents that carry an end-of-text id, prepare_fortunes.py, and train.py and attention_probe.py reading only such
windows (training batches, eval windows, probe windows)."""
import hashlib
import json
import os
import pickle

import numpy as np
import pytest
import torch

import attention_probe
import train
from conftest import run_script
from configurator import configure
from data import EOT_TEXT, fixed_windows, get_batch, load_meta, open_tokens, window_starts, write_char_dataset

FORTUNES = {  # two fortune files in strfile's format, 41 fortunes, each line of text its own fortune
    "wisdom": "\n%\n".join(f"Wisdom number {i}: look before you leap,\nand then leap anyway." for i in range(23)) + "\n%\n",
    "zippy": "\n%\n".join(f"Are we having FUN yet, number {i}?" for i in range(18)) + "\n",
}


@pytest.fixture(scope="module")
def fortunes_root(tmp_path_factory):
    """data_root/fortunes_char prepared by prepare_fortunes.py from a folder laid out as Debian's (an index and a link
    beside each file, a subfolder), which must all be skipped."""
    src = tmp_path_factory.mktemp("fortunes")
    for name, text in FORTUNES.items():
        (src / name).write_text(text)
        (src / f"{name}.dat").write_bytes(b"\x00\x00\x00\x02binary index")
        os.symlink(src / name, src / f"{name}.u8")
    (src / "off").mkdir()
    (src / "off" / "rude").write_text("not read\n%\n")
    root = tmp_path_factory.mktemp("data")
    run_script("prepare_fortunes.py", f"--fortune_dir={src}", f"--data_root={root}")
    return src, root


def fortunes_in_order():
    return [doc for text in (FORTUNES["wisdom"], FORTUNES["zippy"]) for doc in text.split("\n%\n") if doc.strip("\n")]


def decode(root, split):
    meta = load_meta(root / "fortunes_char")
    return "".join(meta["itos"][i] for i in open_tokens(root / "fortunes_char", split))


def test_prepare_fortunes_writes_every_fortune_once_with_an_eot_after_each(fortunes_root):
    _, root = fortunes_root
    docs = [d.strip("\n") for d in fortunes_in_order()]
    assert len(docs) == 41
    meta = load_meta(root / "fortunes_char")
    assert meta["eot_token"] == meta["vocab_size"] - 1 and meta["itos"][meta["eot_token"]] == EOT_TEXT
    assert decode(root, "val") == "".join(d + EOT_TEXT for d in docs[::20])  # fortunes 0, 20, 40
    assert decode(root, "train") == "".join(d + EOT_TEXT for i, d in enumerate(docs) if i % 20)
    assert "not read" not in decode(root, "train") + decode(root, "val")


def test_prepare_fortunes_gpt2_and_missing_files_give_one_line_errors(fortunes_root, tmp_path):
    src, _ = fortunes_root
    run_script("prepare_fortunes.py", f"--fortune_dir={src}", f"--data_root={tmp_path}", "--tokenizer=gpt2")
    meta = json.loads((tmp_path / "fortunes" / "meta.json").read_text())
    assert (meta["train_documents"], meta["val_documents"]) == (38, 3)
    tokens = open_tokens(tmp_path / "fortunes", "val")
    assert (tokens == meta["eot_token"]).sum() == 3 and tokens[-1] == meta["eot_token"]
    for args, message in [([f"--fortune_dir={tmp_path / 'none'}"], "apt-get install fortunes"),
                          ([f"--fortune_dir={src}", "--tokenizer=bpe"], "tokenizer must be 'char' or 'gpt2'")]:
        proc = run_script("prepare_fortunes.py", *args, f"--data_root={tmp_path / 'out'}", check=False)
        assert proc.returncode != 0 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()


def test_window_starts_are_the_eot_positions_with_a_window_after_them(tmp_path):
    eot = 9
    tokens = np.array([1, 2, eot, 3, 4, 5, eot, 6, 7, eot, 8, eot], dtype=np.uint16)
    meta = {"eot_token": eot}
    assert window_starts(tokens, meta, "anywhere", 3) is None
    assert window_starts(tokens, meta, "document", 3).tolist() == [2, 6]  # 9 and 11 have fewer than 3 + 1 tokens left
    assert window_starts(tokens, meta, "document", 1).tolist() == [2, 6, 9]
    offsets = fixed_windows(len(tokens), 3, 50, starts=window_starts(tokens, meta, "document", 3))
    assert set(offsets.tolist()) == {2, 6}
    assert (offsets == fixed_windows(len(tokens), 3, 50, starts=np.array([2, 6]))).all()  # fixed: same every call
    # 'anywhere' keeps the windows every earlier run was evaluated on
    assert (fixed_windows(1000, 10, 5) == np.random.default_rng(1337).integers(0, 990, size=5, dtype=np.int64)).all()
    for meta_, start, block, message in [({"eot_token": None}, "document", 3, "^error: window_start='document' needs "
                                          "documents, but the split has no end-of-text token \\(meta eot_token\\); prepare "
                                          "the dataset from documents or use window_start='anywhere'$"),
                                         (meta, "document", 20, "^error: the split has no end-of-text token followed by "
                                          "block_size=20 tokens, so no window can start at a document; use a smaller "
                                          "block_size or window_start='anywhere'$"),
                                         (meta, "documents", 3, "window_start must be one of anywhere, document")]:
        with pytest.raises(SystemExit, match=message):
            window_starts(tokens, meta_, start, block)


def test_window_starts_scan_a_split_larger_than_one_chunk(tmp_path):
    """The EOT scan reads the memmap 2^24 tokens at a time: ids found in each chunk are offsets into the whole split,
    the first token counts, and the offsets are int64."""
    eot, n = 7, (1 << 24) + 100
    tokens = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.uint16, shape=(n,))
    positions = [0, 5, (1 << 24) - 1, 1 << 24, (1 << 24) + 3, n - 4]
    tokens[positions] = eot
    starts = window_starts(tokens, {"eot_token": eot}, "document", 8)
    assert starts.dtype == np.int64 and starts.tolist() == positions[:-1]  # the last one has no 8 + 1 tokens after it


def test_a_text_dataset_keeps_its_format_without_an_eot(tmp_path):
    write_char_dataset(tmp_path / "plain", {"train": "abcab", "val": "ba"}, source="test")
    with open(tmp_path / "plain" / "meta.pkl", "rb") as f:
        meta = pickle.load(f)
    assert "eot_token" not in meta and meta["vocab_size"] == 3 and meta["itos"] == {0: "a", 1: "b", 2: "c"}
    assert open_tokens(tmp_path / "plain", "train").tolist() == [0, 1, 2, 0, 1]


def recording(calls):
    def get_batch_recorded(tokens, offsets, block_size, device):
        x, y = get_batch(tokens, offsets, block_size, device)
        calls.append(x[:, 0].tolist())
        return x, y
    return get_batch_recorded


def test_train_and_its_probe_read_only_windows_that_start_at_a_document(fortunes_root, tmp_path, monkeypatch):
    _, root = fortunes_root
    eot = load_meta(root / "fortunes_char")["eot_token"]
    batches, probed = [], []
    monkeypatch.setattr(train, "get_batch", recording(batches))
    monkeypatch.setattr(attention_probe, "get_batch", recording(probed))
    cfg = configure(train.TrainConfig, [
        "--dataset=fortunes_char", f"--data_root={root}", "--window_start=document", "--n_layer=2", "--n_head=2",
        "--n_embd=16", "--block_size=16", "--batch_size=4", "--gradient_accumulation_steps=1", "--max_iters=3",
        "--eval_interval=3", "--eval_windows=6", "--probe_interval=3", "--compile=False", "--device=cpu",
        f"--out_dir={tmp_path / 'run'}"])
    train.train(cfg)
    assert len(batches) == 2 * 2 * 2 + 3  # two evals of 6 windows (train, val) in batches of 4, then 3 steps
    assert all(first == eot for batch in batches for first in batch)
    assert probed and all(first == eot for batch in probed for first in batch)
    assert len({tuple(b) for b in batches}) > 1
    val = open_tokens(root / "fortunes_char", "val")
    windows = fixed_windows(len(val), 16, 6, starts=window_starts(val, {"eot_token": eot}, "document", 16))
    ckpt = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    assert ckpt["eval_set"]["offsets_sha1"] == hashlib.sha1(windows.tobytes()).hexdigest()[:12]


def test_probe_window_start_document(fortunes_root, tmp_path, monkeypatch):
    _, root = fortunes_root
    run = tmp_path / "run"
    run_script("train.py", "--dataset=fortunes_char", f"--data_root={root}", "--n_layer=2", "--n_head=2", "--n_embd=16",
               "--block_size=32", "--batch_size=4", "--gradient_accumulation_steps=1", "--max_iters=0",
               "--compile=False", "--device=cpu", f"--out_dir={run}")
    eot = load_meta(root / "fortunes_char")["eot_token"]
    for start in ("anywhere", "document"):
        out, probed = tmp_path / f"probe_{start}", []
        monkeypatch.setattr(attention_probe, "get_batch", recording(probed))
        attention_probe.run(configure(attention_probe.ProbeConfig, [
            f"--source={run}", "--dataset=fortunes_char", f"--data_root={root}", f"--window_start={start}",
            "--num_seqs=8", "--seq_len=16", "--sink_seqs=8", "--sink_seq_len=16", f"--out_dir={out}", "--dtype=float32"]))
        result = json.loads((out / "probe.json").read_text())
        assert result["settings"]["window_start"] == start
        # every window of every measurement (ranks, residual stream, sinks) begins at a document, or not all do
        firsts = [first for batch in probed for first in batch]
        assert len(firsts) == 3 * 8 and all(first == eot for first in firsts) == (start == "document")
    proc = run_script("attention_probe.py", f"--source={run}", "--dataset=fortunes_char", f"--data_root={root}",
                      "--window_start=docs", f"--out_dir={tmp_path / 'bad'}", check=False)
    assert proc.returncode != 0 and "window_start must be one of" in proc.stderr


def test_sample_starts_a_document_model_from_its_eot(fortunes_root, tmp_path):
    """An empty prompt samples after the end-of-text id, as it does after GPT-2's <|endoftext|>; a character dataset
    without one has nothing to start from."""
    _, root = fortunes_root
    run = tmp_path / "run"
    run_script("train.py", "--dataset=fortunes_char", f"--data_root={root}", "--n_layer=1", "--n_head=2", "--n_embd=16",
               "--block_size=16", "--batch_size=4", "--gradient_accumulation_steps=1", "--max_iters=0",
               "--compile=False", "--device=cpu", f"--out_dir={run}")
    proc = run_script("sample.py", f"--out_dir={run}", "--start=", "--num_samples=1", "--max_new_tokens=40",
                      "--device=cpu")
    assert proc.stdout.startswith(EOT_TEXT) and len(proc.stdout.split("\n---")[0]) > len(EOT_TEXT)  # the prompt, then samples
