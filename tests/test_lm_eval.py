"""Zero-shot evaluation with lm-eval (EleutherAI's harness) of export_hf.py folders, offline, on a local multiple-choice
task built from the Shakespeare val works: lm-eval's accuracy must be the one model.py's own log-likelihoods give."""
import json

import datasets
import numpy as np
import torch
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

import export_hf
from data import gpt2_encoding
from test_export import make_checkpoint

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
    jsonl = folder / "shakespeare_continuation.jsonl"
    jsonl.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "shakespeare_continuation.yaml").write_text(TASK_YAML.format(jsonl=jsonl))
    return docs


def model_py_accuracy(model, docs):
    """acc as lm-eval defines it, from model.py: the choice whose continuation (" " + choice) has the highest
    summed log-probability after the context."""
    enc = gpt2_encoding()
    correct = 0
    for doc in docs:
        ctx = enc.encode_ordinary(doc["context"])
        scores = []
        for choice in doc["choices"]:
            whole = enc.encode_ordinary(doc["context"] + " " + choice)
            assert whole[:len(ctx)] == ctx
            idx = torch.tensor([whole])
            with torch.no_grad():
                logits, _ = model(idx[:, :-1], targets=idx[:, 1:])
            logprobs = torch.log_softmax(logits[0].double(), dim=-1)[len(ctx) - 1:]
            scores.append(logprobs.gather(1, idx[0, len(ctx):, None]).sum().item())
        correct += int(np.argmax(scores) == doc["label"])
    return correct / len(docs)


def test_lm_eval_scores_exported_models_offline(shakespeare_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    docs = write_task(tmp_path, np.fromfile(shakespeare_root / "shakespeare" / "val.bin", dtype=np.uint16))
    tasks = TaskManager(include_path=str(tmp_path), include_defaults=False)
    accuracies = []
    for seed in (0, 1):
        model = make_checkpoint(tmp_path / f"model{seed}.pt", seed=seed, block_size=64)
        export_hf.export(str(tmp_path / f"model{seed}.pt"), str(tmp_path / f"hf{seed}"))
        out = simple_evaluate(model="hf", model_args=f"pretrained={tmp_path / f'hf{seed}'},dtype=float32", device="cpu",
                              tasks=["shakespeare_continuation"], task_manager=tasks, batch_size=8, bootstrap_iters=0)
        result = out["results"]["shakespeare_continuation"]
        assert result["acc,none"] == model_py_accuracy(model, docs)
        assert 0 <= result["acc_norm,none"] <= 1
        accuracies.append(result["acc,none"])
    assert accuracies[0] != accuracies[1]  # another model, another score
