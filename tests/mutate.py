"""Mutation testing of one module against its fast tests, with mutmut 3: one small bug at a time (an operator, a
constant, an argument dropped) is put into the module's functions, the tests that call the function run, and a
mutant that no test fails on survives. Not part of CI (tens of minutes on 2 cores); docs/testing.md says how to read
and kill survivors.

    pip install mutmut==3.8.1
    python tests/mutate.py losses       # one of TARGETS; --list shows them
    python tests/mutate.py windows --workdir=/tmp/mutate-windows
    python tests/mutate.py metrics --only 'attention_probe.x_probe__*'   # some of its functions; --max_children=N

It copies the repository (tracked and untracked, not ignored, files) into --workdir, writes mutmut's setup.cfg there,
runs mutmut on the target's functions with the target's tests, and prints every survivor's diff and the counts.
mutmut 3 leaves decorated functions alone, so in that copy (never in the source) the target module's decorated
functions that the run mutates are written undecorated, each followed by `name = (decorator)(name)` (undecorate).
mutmut maps tests to functions by running them once in-process: a function only a subprocess reaches (train.py run
as a script) counts as untested, so each target's tests call its functions in the pytest process.
"""
import argparse
import ast
import fnmatch
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name -> (module, mutmut's names of the functions to mutate (fnmatch), pytest arguments: the fast in-process tests
# that check them; every mutant reruns the selected tests that call its function, so slow tests make slow targets)
TARGETS = {
    "losses": ("losses.py", ["losses.*"], ["tests/test_losses.py"]),
    "schedule": ("train.py", ["train.x_get_lr__*", "train.x_estimate_loss__*"],
                 ["tests/test_train.py", "-k", "lr_schedule or plain_path or estimate_loss"]),
    "windows": ("data.py", [f"data.x_{f}__*" for f in ("check_fits", "check_window_start", "window_starts",
                                                       "fixed_windows", "get_batch")],
                ["tests/test_windows.py", "tests/test_data.py", "-k", "window_starts or text_dataset or readers"]),
    "inherit": ("inherit.py", [f"inherit.x_{f}__*" for f in (
        "parse_layers", "target_depth", "target_width", "narrowed_fields", "stacked_rows", "leading_slice",
        "target_model_args", "first_blocks", "blocks_before_first_lazy", "keep_highest", "least_influential_dropped",
        "closest_run_dropped", "deepest_but_last_dropped", "least_needed_dropped", "choose_blocks", "select_blocks",
        "copy_blocks", "parse_place", "place_blocks", "keep_parts", "keep_first_heads")],
                ["tests/test_inherit.py", "-k", "not cli and not dataset and not impossible and not bad_selections",
                 # narrowing a GQA / SwiGLU / head_dim source (n_kv_head, mlp_hidden, stacked rows)
                 "tests/test_llama.py::test_half_width_of_a_gqa_swiglu_model_slices_q_k_v_gate_and_up_each",
                 "tests/test_llama.py::test_narrowing_that_breaks_a_group_a_hidden_unit_or_a_rotary_pair_is_one_line_error",
                 "tests/test_llama3_qwen3.py::test_half_width_of_qwen3_keeps_head_dim",
                 # an untied RoPE source: its own lm_head group, no wpe
                 "tests/test_llama.py::test_inherit_copies_an_untied_gqa_llama",
                 # keep_parts on a model run through transformers (its own tensor groups and tying)
                 "tests/test_hf_train.py::test_stacked_blocks_and_block_parts",
                 "tests/test_hf_train.py::test_gemma4_block_parts",
                 "tests/test_hf_train.py::test_half_width_or_placed_blocks_of_a_transformers_model_is_one_line_error"]),
    "metrics": ("attention_probe.py", [f"attention_probe.x_{f}__*" for f in (
        "_leading_count", "_gram_eigenvalues", "attention_rank", "attention_ranks", "attention_mass", "sink_mass",
        "head_statistics", "probe", "residual_geometry", "first_token_attention", "ablation", "max_rank",
        "head_mean_rank", "avg_mass", "block_influence", "angular_distance", "head_count", "attention_sink",
        "head_collapse", "sink_collapse", "ablation_metric", "attention_ablation", "mlp_ablation", "tau_sweep",
        "suggest_inherit_depth")],
                ["tests/test_probe.py", "tests/test_probe_hf.py", "-k", "not cli and not sources and not bad_inputs"]),
    "attention": ("model.py", ["model.xǁCausalSelfAttentionǁ*", "model.x_rotate__*", "model.x_rope_frequencies__*",
                               "model.xǁRMSNormǁ*", "model.xǁGPTǁrope_tables__*", "model.xǁGPTǁattention_maps__*"],
                  ["tests/test_model.py", "tests/test_llama3_qwen3.py",
                   "tests/test_llama.py::test_load_matches_transformers",  # Qwen2's q/k/v biases, GQA
                   "tests/test_llama.py::test_attention_maps_of_a_gqa_model_are_softmax_qk_per_query_head", "-k",  # RoPE maps
                   "written_out or attention_maps or sdpa or autocast or cast or logits or dropout or load_matches"]),
}


def copy_repo(workdir):
    """The files git knows of (and untracked ones it does not ignore), as they are in the working tree."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, workdir / name)


def picks(globs, module, function, cls=None):
    """Whether one of the mutmut globs (TARGETS', --only's) picks a mutant of the function, or method of cls: the
    glob is matched against the function's mutant names, 'inherit.x_keep_parts__mutmut_13' among them."""
    name = f"{Path(module).stem}.{f'xǁ{cls}ǁ' if cls else 'x_'}{function}__mutmut_"
    return any(fnmatch.fnmatchcase(name + "1", g) or (g.startswith(name) and g[len(name):].isdigit()) for g in globs)


def undecorate(source, wanted=lambda function, cls: True):
    """source with every decorated top-level function, and method of a top-level class, that wanted(name, class
    name or None) picks written undecorated, its decorators applied right after its last line, innermost first:

        @a(1)                      def f(x):
        @b                   ->        return x
        def f(x):                  f = (a(1))((b)(f))
            return x

    so whatever they register, they register in the same order, and f is the same object. (Only a decorator
    expression runs after the def now, not before it; one that names the function itself, as @f.setter does, is
    left as it is, and so are a lone @staticmethod or @classmethod, which mutmut reads itself.) Every other line
    stays byte for byte."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    found = [(node, None) for node in tree.body]
    found += [(node, cls.name) for cls in tree.body if isinstance(cls, ast.ClassDef) for node in cls.body]
    edits = []
    for node, cls in found:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.decorator_list:
            continue
        decorators = node.decorator_list
        if len(decorators) == 1 and isinstance(decorators[0], ast.Name) and decorators[0].id in ("staticmethod",
                                                                                                 "classmethod"):
            continue
        if any(isinstance(n, ast.Name) and n.id == node.name for d in decorators for n in ast.walk(d)):
            continue
        if not wanted(node.name, cls):
            continue
        applied = node.name
        for d in reversed(decorators):
            applied = f"({ast.get_source_segment(source, d)})({applied})"
        indent = lines[node.lineno - 1][:node.col_offset]
        edits.append((decorators[0].lineno - 1, node.lineno - 1, node.end_lineno, f"{indent}{node.name} = {applied}\n"))
    for first, def_line, end, applied in sorted(edits, reverse=True):
        if not lines[end - 1].endswith("\n"):
            lines[end - 1] += "\n"
        lines.insert(end, applied)
        del lines[first:def_line]
    return "".join(lines)


def undecorate_target(workdir, module, functions):
    """undecorate the copy of module in workdir where a decorated function matches one of the mutmut globs
    `functions`; the names of those functions."""
    names = []

    def wanted(function, cls):
        if picks(functions, module, function, cls):
            names.append(f"{cls}.{function}" if cls else function)
            return True
        return False

    path = workdir / module
    source = undecorate(path.read_text(), wanted)
    if workdir != REPO:
        path.write_text(source)
    return names


def setup_cfg(workdir, module, tests):
    """mutmut's settings: the module mutated, every other top-level file and folder copied beside it, the tests."""
    others = sorted(p for p in os.listdir(workdir) if p not in (module, "tests") and not p.startswith("."))
    lines = ["[mutmut]", f"source_paths={module}", "also_copy=", *(f"    {p}" for p in others),
             "pytest_add_cli_args_test_selection=", *(f"    {a}" for a in tests),
             "process_isolation=forkserver"]  # torch is not fork-safe once the suite has run in the parent
    return "\n".join(lines) + "\n"


def mutmut(workdir, *args):
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=workdir, capture_output=True, text=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", choices=sorted(TARGETS))
    parser.add_argument("--workdir", help="scratch copy of the repo (default /tmp/mutate-TARGET); emptied first")
    parser.add_argument("--list", action="store_true", help="list the targets: module, functions and tests")
    parser.add_argument("--report", action="store_true", help="print the survivors of the last run in --workdir again")
    parser.add_argument("--only", nargs="+", metavar="GLOB",
                        help="mutate only these of the target's functions (mutmut names, fnmatch), e.g. when time is short")
    parser.add_argument("--max_children", type=int, default=1,
                        help="mutants tested at once, each in its own process (default 1: a shared 2-core machine)")
    args = parser.parse_args()
    if args.list or args.target is None:
        for name, (module, functions, tests) in TARGETS.items():
            print(f"{name}: {module} {' '.join(functions)}\n    tests: {' '.join(tests)}")
            undecorated = undecorate_target(REPO, module, functions)  # reads the module, writes nothing
            if undecorated:
                print(f"    undecorated in the copy: {' '.join(undecorated)}")
        return
    if importlib.util.find_spec("mutmut") is None:
        sys.exit("error: mutmut is not installed; pip install mutmut==3.8.1")
    module, functions, tests = TARGETS[args.target]
    if args.only:
        functions = args.only
    workdir = Path(args.workdir or f"/tmp/mutate-{args.target}")
    if not args.report:
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        copy_repo(workdir)
        (workdir / "setup.cfg").write_text(setup_cfg(workdir, module, tests))
        undecorated = undecorate_target(workdir, module, functions)
        if undecorated:
            print(f"undecorated in the copy of {module}: {' '.join(undecorated)}", flush=True)
        print(f"mutating {module} ({' '.join(functions)}) against {' '.join(tests)} in {workdir}", flush=True)
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children), *functions],
                       cwd=workdir)
    elif not (workdir / "mutants").is_dir():
        sys.exit(f"error: {workdir} holds no mutmut run; run python tests/mutate.py {args.target} first")

    statuses = {}
    for line in mutmut(workdir, "results", "--all", "true").stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if any(fnmatch.fnmatchcase(name, f) for f in functions):
            statuses[name] = status
    survivors = sorted(n for n, s in statuses.items() if s == "survived")
    for name in survivors:
        diff = [l for l in mutmut(workdir, "show", name).stdout.splitlines()
                if l[:1] in "+-" and not l.startswith(("+++", "---"))]
        print(f"\n{name}\n" + "\n".join(diff))
    counts = {s: sum(v == s for v in statuses.values()) for s in sorted(set(statuses.values()))}
    print(f"\n{args.target}: {len(statuses)} mutants, " + ", ".join(f"{n} {s}" for s, n in counts.items()))


if __name__ == "__main__":
    main()
