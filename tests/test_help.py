"""--help and -h on every script: its docstring, then every config key with its default and its comment, exit 0."""
import ast
import dataclasses
import importlib
import runpy
import sys

import re

import pytest

from conftest import REPO, run_script

SCRIPTS = sorted(p.name for p in REPO.glob("*.py") if re.search(r"^if __name__ == .__main__.:", p.read_text(), re.M))


def help_text(monkeypatch, capsys, script, flag="--help"):
    monkeypatch.setattr(sys, "argv", [script, flag])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(REPO / script), run_name="__main__")
    assert e.value.code in (0, None), e.value
    return capsys.readouterr().out


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_shows_docstring_and_every_key(script, monkeypatch, capsys):
    out = help_text(monkeypatch, capsys, script)
    doc = ast.get_docstring(ast.parse((REPO / script).read_text()), clean=False).strip("\n")
    assert out.startswith(doc + "\n")
    module = importlib.import_module(script[:-3])
    settings = getattr(module, re.search(r"configure\((\w+),", (REPO / script).read_text())[1])  # the script's dataclass
    lines = out[len(doc):].splitlines()
    for field in dataclasses.fields(settings):
        assert sum(line.startswith(f"  --{field.name}={field.default!r}") for line in lines) == 1, field.name


@pytest.mark.parametrize("script,line", [
    ("train.py", "--batch_size=12 micro-batch size per rank"),
    ("train.py", "--n_layer=12"),  # no comment on train.py's line, and not inherit.py's comment for its own n_layer
    ("grow.py", "--tolerance=0.0 stop when val loss <= reference_val_loss + tolerance"),
    ("grow.py", "--grad_clip=1.0 0 disables clipping"),  # a train.py key: its comment comes from train.py
    ("grow.py", "--out_dir='out/grow'"),  # grow's own default, not train.py's
    ("prepare_openwebtext.py", "--test_size=0.0005 fraction of documents for val"),
    ("sample.py", "--top_k=200 keep the top_k most likely tokens at each step; 0 keeps all"),
    ("export_hf.py", "--overwrite=False replace an existing out_dir"),
])
def test_help_comments(script, line, monkeypatch, capsys):
    out = help_text(monkeypatch, capsys, script, "-h")
    assert line in [" ".join(row.split()) for row in out.splitlines()]


def test_help_as_a_command():
    proc = run_script("train.py", "config/shakespeare_ref.py", "-h")
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == "Train a GPT. One process on CPU or one GPU:"
    assert "--eval_iters=200" in proc.stdout and proc.stderr == ""
