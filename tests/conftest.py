import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# tiktoken's own download of the GPT-2 BPE files, where the machine keeps one beside the repo; only the test that
# compares the repo's tokenizer (gpt2_bpe/) with tiktoken.get_encoding("gpt2") reads it, and skips without it offline
TIKTOKEN_CACHE = REPO.parent / "shared" / "tiktoken_cache"
# one thread: on small shared VMs a second OpenMP thread made these tiny models 3x slower, not faster
os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_script(*args, cwd=REPO, check=True, timeout=600, env=None):
    """Run one of the project's scripts the way a user would; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def shakespeare_root(tmp_path_factory):
    """data_root holding the built-in Shakespeare corpus, prepared once per test session."""
    root = tmp_path_factory.mktemp("data")
    run_script("prepare_shakespeare.py", f"--data_root={root}")
    return root
