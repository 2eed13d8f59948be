"""The heap encoder: references, aliasing, cycles, bounds, and never running
the program's own code."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from blocktrace.snapshot import HeapEncoder


def encode(*values: object, **kw: Any) -> tuple[list[Any], dict[str, Any]]:
    enc = HeapEncoder(**kw)
    refs = [enc.value(v) for v in values]
    heap = msgspec.json.decode(msgspec.json.encode(enc.heap()))
    return refs, heap


def test_scalars_stay_native_json() -> None:
    refs, heap = encode(None, True, 3, 2.5, "text", 2**80)
    assert refs == [None, True, 3, 2.5, "text", 2**80]
    assert heap == {}


def test_non_finite_floats_are_tagged_as_in_python_tutor() -> None:
    refs, _ = encode(float("inf"), float("-inf"), float("nan"))
    assert refs == [["SPECIAL_FLOAT", "inf"], ["SPECIAL_FLOAT", "-inf"], ["SPECIAL_FLOAT", "nan"]]


def test_aliasing_and_cycles_are_references() -> None:
    a: list[Any] = [1, "x"]
    a.append(a)
    d = {"k": a, "t": (a, None)}
    refs, heap = encode(a, d, a)
    assert refs[0] == refs[2] == ["REF", 1]
    assert heap["1"] == {"type": "list", "category": "list",
                         "members": [[0, 1], [1, "x"], [2, ["REF", 1]]]}
    dict_obj = heap[str(refs[1][1])]
    assert dict_obj["category"] == "dict"
    assert dict_obj["members"][0] == ["k", ["REF", 1]]
    tuple_ref = dict_obj["members"][1][1]
    assert heap[str(tuple_ref[1])] == {"type": "tuple", "category": "tuple",
                                       "members": [[0, ["REF", 1]], [1, None]]}


def test_ids_are_small_and_stable_across_steps() -> None:
    enc = HeapEncoder()
    x, y = [1], {"a": 2}
    first = [enc.value(x), enc.value(y)]
    enc.heap()
    second = [enc.value(y), enc.value(x)]
    assert first == [["REF", 1], ["REF", 2]]
    assert second == [["REF", 2], ["REF", 1]]


def test_containers_are_bounded() -> None:
    refs, heap = encode(list(range(1000)), max_members=10)
    obj = heap["1"]
    assert [m[0] for m in obj["members"]] == list(range(10))
    assert obj["truncated"] == 990
    refs, heap = encode("x" * 5000, max_str=100)
    assert refs[0] == "x" * 100 + "…"


def test_objects_classes_and_functions() -> None:
    class Base:
        pass

    class Node(Base):
        def __init__(self, value: int) -> None:
            self.value = value
            self.next: Node | None = None

    def f(a: int, b: int = 1, *args: int, c: int, **kw: int) -> None:
        pass

    n = Node(1)
    n.next = n
    _, heap = encode(n, Node, f)
    node = heap["1"]
    assert node == {"type": "test_objects_classes_and_functions.<locals>.Node",
                    "category": "object", "members": [["value", 1], ["next", ["REF", 1]]]}
    cls = heap["2"]
    assert cls["category"] == "class"
    assert cls["name"] == "Node(test_objects_classes_and_functions.<locals>.Base)"
    assert [m[0] for m in cls["members"]] == ["__init__"]
    func = heap["3"]
    assert func["category"] == "function"
    assert func["name"].endswith("f(a, b, *args, c, **kw)")


def test_slots_are_members() -> None:
    class P:
        __slots__ = ("x", "y")

        def __init__(self) -> None:
            self.x = 1

    _, heap = encode(P())
    assert heap["1"]["members"] == [["x", 1]]


def test_never_runs_the_programs_code() -> None:
    calls: list[str] = []

    class Meta(type):
        def __getattribute__(cls, name: str) -> Any:
            calls.append("meta " + name)
            return super().__getattribute__(name)

    class Sneaky(list[int], metaclass=Meta):
        def __iter__(self) -> Any:
            calls.append("iter")
            raise RuntimeError

        def __len__(self) -> int:
            calls.append("len")
            return 0

        def __repr__(self) -> str:
            calls.append("repr")
            return "?"

    class Shady:
        @property
        def __dict__(self) -> Any:  # type: ignore[override]
            calls.append("dict")
            return {}

        def __getattr__(self, name: str) -> Any:
            calls.append("getattr " + name)
            return 1

        def __eq__(self, other: object) -> bool:
            calls.append("eq")
            return False

        def __hash__(self) -> int:
            calls.append("hash")
            return 0

    s = Sneaky([1, 2])
    shady = Shady()
    in_dict, in_set = {shady: 1}, {shady}
    calls.clear()
    _, heap = encode(s, shady, in_dict, in_set, Sneaky)
    assert calls == []
    assert heap["5"]["category"] == "class"
    assert heap["1"]["members"] == [[0, 1], [1, 2]]
    assert heap["1"]["category"] == "list"
    assert heap["2"]["category"] == "other"


# -- property: the encoding is faithful ----------------------------------------

_scalars = (
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False) | st.text(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=4),
    max_leaves=25,
)


def _rebuild(value: Any, heap: dict[str, Any], memo: dict[int, Any]) -> Any:
    if type(value) is not list:
        return value
    tag, arg = value
    if tag == "SPECIAL_FLOAT":
        return float(arg)
    assert tag == "REF"
    if arg in memo:
        return memo[arg]
    obj = heap[str(arg)]
    members = obj.get("members", [])  # omitted when empty
    out: Any
    if obj["category"] == "list":
        out = memo[arg] = []
        out.extend(_rebuild(v, heap, memo) for _, v in members)
        assert [k for k, _ in members] == list(range(len(members)))
    elif obj["category"] == "tuple":
        out = memo[arg] = tuple(_rebuild(v, heap, memo) for _, v in members)
    else:
        assert obj["category"] == "dict"
        out = memo[arg] = {_rebuild(k, heap, memo): _rebuild(v, heap, memo) for k, v in members}
    return out


@given(_values)
def test_encoding_rebuilds_the_value_and_its_sharing(value: Any) -> None:
    shared = [value, value, [value]]
    refs, heap = encode(shared)
    rebuilt = _rebuild(refs[0], heap, {})
    assert rebuilt == shared
    if isinstance(value, list | tuple | dict):
        # the same object everywhere it appears, not three copies
        assert rebuilt[0] is rebuilt[1] is rebuilt[2][0]
