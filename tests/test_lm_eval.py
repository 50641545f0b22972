"""Zero-shot evaluation with lm-eval (EleutherAI's harness) of export_hf.py folders, offline, on a local multiple-choice
task built from the Shakespeare val works: lm-eval's per-choice log-likelihoods and accuracy must be the ones model.py
gives, for GPT-2 exports and for an inherited Llama exported with its source's tokenizer (BOS and all)."""
import json

import datasets
import numpy as np
import pytest
import torch
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

import export_hf
import inherit
from checkpoint import load_model
from data import gpt2_encoding
from test_export import make_checkpoint
from test_tokenizers import write_model_dir

TASK = "shakespeare_continuation"
TASK_YAML = """task: shakespeare_continuation
dataset_path: json
dataset_kwargs:
  data_files:
    test: {jsonl}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def write_task(folder, val_tokens, n_docs=40, seed=0):
    """n_docs items: 12 words of Hamlet / Twelfth Night / Henry V, then the true next 3 words among 3 others."""
    words = gpt2_encoding().decode(val_tokens.tolist()).split()
    rng = np.random.default_rng(seed)
    docs = []
    for start in rng.integers(0, len(words) - 15, n_docs):
        true = " ".join(words[start + 12:start + 15])
        others = [" ".join(words[j:j + 3]) for j in rng.integers(0, len(words) - 3, 3)]
        label = int(rng.integers(0, 4))
        docs.append({"context": " ".join(words[start:start + 12]), "choices": others[:label] + [true] + others[label:],
                     "label": label})
    jsonl = folder / f"{TASK}.jsonl"
    jsonl.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / f"{TASK}.yaml").write_text(TASK_YAML.format(jsonl=jsonl))
    return docs


def model_py_loglikelihoods(model, docs, encode):
    """Per doc, per choice, the summed log-probability model.py gives the continuation (" " + choice) after the
    context, as lm-eval defines it: the tokens of encode(context + " " + choice) past those of encode(context)."""
    scores = []
    for doc in docs:
        ctx = encode(doc["context"])
        scores.append([])
        for choice in doc["choices"]:
            whole = encode(doc["context"] + " " + choice)
            assert whole[:len(ctx)] == ctx
            idx = torch.tensor([whole])
            with torch.no_grad():
                logits, _ = model(idx[:, :-1], targets=idx[:, 1:])
            logprobs = torch.log_softmax(logits[0].double(), dim=-1)[len(ctx) - 1:]
            scores[-1].append(logprobs.gather(1, idx[0, len(ctx):, None]).sum().item())
    return np.array(scores)


def accuracy(scores, docs):
    return float(np.mean([np.argmax(s) == doc["label"] for s, doc in zip(scores, docs)]))


def check_lm_eval(folder, tasks, model, docs, encode):
    """Run lm-eval on the HF folder; its per-choice log-likelihoods must be model.py's (to 1e-3) and its acc the one
    they give. Returns (model.py's log-likelihoods, lm-eval's results)."""
    out = simple_evaluate(model="hf", model_args=f"pretrained={folder},dtype=float32", device="cpu", tasks=[TASK],
                          task_manager=tasks, batch_size=8, bootstrap_iters=0, log_samples=True)
    expected = model_py_loglikelihoods(model, docs, encode)
    samples = sorted(out["samples"][TASK], key=lambda s: s["doc_id"])
    np.testing.assert_allclose([[resp[0][0] for resp in s["resps"]] for s in samples], expected, atol=1e-3)
    result = out["results"][TASK]
    assert result["acc,none"] == accuracy(expected, docs)
    return expected, result


@pytest.fixture
def offline_task(shakespeare_root, tmp_path, monkeypatch):
    """(docs, TaskManager) of the local task, with lm-eval and datasets kept off the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    docs = write_task(tmp_path, np.fromfile(shakespeare_root / "shakespeare" / "val.bin", dtype=np.uint16))
    return docs, TaskManager(include_path=str(tmp_path), include_defaults=False)


def test_lm_eval_scores_exported_models_offline(offline_task, tmp_path):
    docs, tasks = offline_task
    accuracies = []
    for seed in (0, 1):
        model = make_checkpoint(tmp_path / f"model{seed}.pt", seed=seed, block_size=64)
        export_hf.export(str(tmp_path / f"model{seed}.pt"), str(tmp_path / f"hf{seed}"))
        _, result = check_lm_eval(tmp_path / f"hf{seed}", tasks, model, docs, gpt2_encoding().encode_ordinary)
        assert 0 <= result["acc_norm,none"] <= 1
        accuracies.append(result["acc,none"])
    assert accuracies[0] != accuracies[1]  # another model, another score


def test_lm_eval_scores_an_inherited_llama_export_with_its_tokenizer(offline_task, shakespeare_root, tmp_path):
    from tokenizers import Tokenizer
    docs, tasks = offline_task
    train_tokens = np.fromfile(shakespeare_root / "shakespeare" / "train.bin", dtype=np.uint16)[:60_000]
    source = tmp_path / "llama"
    source.mkdir()
    write_model_dir(source, gpt2_encoding().decode(train_tokens.tolist()), "llama", vocab_size=512, hidden_size=64,
                    intermediate_size=160, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                    max_position_embeddings=128)
    inherit.main([f"--source={source}", "--inherit_layers=2", f"--out={tmp_path / 'inherited.pt'}"])
    export_hf.export(str(tmp_path / "inherited.pt"), str(tmp_path / "export"))
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert (config["architectures"], config["num_hidden_layers"]) == (["LlamaForCausalLM"], 2)
    assert (tmp_path / "export" / "tokenizer.json").read_text() == (source / "tokenizer.json").read_text()
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))

    def encode(text):
        ids = tokenizer.encode(text).ids
        assert ids[0] == 1  # <s>, which lm-eval's HF model adds through the tokenizer too
        return ids

    loglikelihoods = []
    for folder, checkpoint in ((tmp_path / "export", tmp_path / "inherited.pt"), (source, source)):
        model, _ = load_model(str(checkpoint))
        loglikelihoods.append(check_lm_eval(folder, tasks, model, docs, encode)[0])
    assert np.abs(loglikelihoods[0] - loglikelihoods[1]).max() > 1  # two layers of four score differently
