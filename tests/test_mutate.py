"""tests/mutate.py's undecorate(): mutmut 3 skips decorated functions, so the mutation runs' copy of a module has them
written undecorated, each decorator applied after the function; the module must register and behave the same."""
import ast
import types
from pathlib import Path

import pytest

import mutate

REPO = Path(__file__).resolve().parents[1]

SOURCE = '''\
import functools
REGISTRY = []


def register(name, *tags):
    def add(f):
        REGISTRY.append((name, tags, f.__name__))
        return f
    return add


def twice(f):
    @functools.wraps(f)
    def wrapped(*args):
        return 2 * f(*args)
    return wrapped


@register('outer')  # a comment after the decorator
@twice
@register('inner',
          'multi-line')
def add(a, b):
    return a + b


def plain(x):
    return x - 1


@twice
def last_line_is_a_comprehension(xs):
    return [x
            for x in xs]
@twice
def next_to_the_last(): return 3


class Box:
    def __init__(self, v):
        self._v = v

    @twice
    def get(self):
        return self._v

    @staticmethod
    def one():
        return 1

    @property
    def v(self):
        return self._v

    @v.setter
    def v(self, value):
        self._v = value


@register('not wanted')
def skipped():
    return 0'''

EXPECTED = '''\
import functools
REGISTRY = []


def register(name, *tags):
    def add(f):
        REGISTRY.append((name, tags, f.__name__))
        return f
    return add


def twice(f):
    @functools.wraps(f)
    def wrapped(*args):
        return 2 * f(*args)
    return wrapped


def add(a, b):
    return a + b
add = (register('outer'))((twice)((register('inner',
          'multi-line'))(add)))


def plain(x):
    return x - 1


def last_line_is_a_comprehension(xs):
    return [x
            for x in xs]
last_line_is_a_comprehension = (twice)(last_line_is_a_comprehension)
def next_to_the_last(): return 3
next_to_the_last = (twice)(next_to_the_last)


class Box:
    def __init__(self, v):
        self._v = v

    def get(self):
        return self._v
    get = (twice)(get)

    @staticmethod
    def one():
        return 1

    def v(self):
        return self._v
    v = (property)(v)

    @v.setter
    def v(self, value):
        self._v = value


@register('not wanted')
def skipped():
    return 0'''


def run(source):
    namespace = {}
    exec(compile(source, "<source>", "exec"), namespace)
    box = namespace["Box"](5)
    calls = (namespace["add"](2, 3), namespace["last_line_is_a_comprehension"]([1]),
             namespace["next_to_the_last"](), box.get(), box.one(), box.v)
    box.v = 7
    return namespace["REGISTRY"], calls, box.v


def test_undecorate_applies_decorators_after_the_function_innermost_first():
    out = mutate.undecorate(SOURCE, lambda function, cls: function != "skipped")
    assert out == EXPECTED  # every other line byte for byte, the setter and the lone staticmethod left to mutmut
    assert mutate.undecorate("@d\ndef f(): pass", lambda function, cls: True) == "def f(): pass\nf = (d)(f)\n"
    assert run(out) == run(SOURCE) == ([("inner", ("multi-line",), "add"), ("outer", (), "add"),
                                        ("not wanted", (), "skipped")], (10, [1, 1], 6, 10, 1, 5), 7)


def test_picks_functions_by_glob_or_by_the_name_of_one_mutant():
    # a survivor's name reruns it alone (--only), so its decorated function must be undecorated for it too
    for globs in (["inherit.x_keep_parts__*"], ["inherit.x_keep_parts__mutmut_13"], ["inherit.x_k*"]):
        assert mutate.picks(globs, "inherit.py", "keep_parts")
    for globs in (["inherit.x_keep_parts__mutmut_13"], ["inherit.x_keep__*"], ["losses.x_keep_first_heads__*"]):
        assert not mutate.picks(globs, "inherit.py", "keep_first_heads")
    assert mutate.picks(["model.xǁGPTǁattention_maps__mutmut_4"], "model.py", "attention_maps", "GPT")
    assert not mutate.picks(["model.xǁGPTǁattention_maps__mutmut_4"], "model.py", "attention_maps")


@pytest.mark.parametrize("module, registries", [("inherit.py", ("WARM_STARTS", "SELECTIONS")),
                                                ("attention_probe.py", ("METRICS",))])
def test_undecorated_target_registers_the_same_functions_in_the_same_order(module, registries):
    """The targets' modules, undecorated as mutate.py's copy is, run as a module of their own: the same registry
    entries in the same order, no decorated function of the target's globs left."""
    name, globs = Path(module).stem, next(functions for m, functions, _ in mutate.TARGETS.values() if m == module)
    source = (REPO / module).read_text()
    undecorated = []

    def wanted(function, cls):
        picked = mutate.picks(globs, module, function, cls)
        undecorated.append(function) if picked else None
        return picked

    out = mutate.undecorate(source, wanted)
    copy = types.ModuleType(f"{name}_undecorated")
    exec(compile(out, module, "exec"), copy.__dict__)
    original = __import__(name)
    for registry in registries:
        ours, theirs = getattr(copy, registry), getattr(original, registry)
        assert list(ours) == list(theirs)
        for key in ours:  # the same fields; a function the same code, the one of that name in the copy
            for field in ours[key].__dataclass_fields__:
                mine, real = getattr(ours[key], field), getattr(theirs[key], field)
                if callable(mine):
                    assert (mine.__name__, mine.__code__.co_code) == (real.__name__, real.__code__.co_code)
                    assert mine.__name__ == "<lambda>" or mine is getattr(copy, mine.__name__)
                else:
                    assert mine == real, (registry, key, field)
    for node in ast.parse(out).body:
        if isinstance(node, ast.FunctionDef) and node.name in undecorated:
            assert not node.decorator_list
    assert len(undecorated) >= (10 if name == "inherit" else 13)
