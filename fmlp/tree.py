"""Tree algebra over fmlp's records: ndarrays are leaves, tuples and attrs records are nodes.

A field of an attrs record whose metadata has ``static=True`` is configuration, not a
parameter: ``tree_map`` carries it over unchanged and ``tree_leaves`` skips it.
``tree_flatten_with_paths`` names every leaf and static field by its path from the root,
and ``tree_unflatten_with_paths`` rebuilds a tree from such names (checkpoints of a
whole ``TrainState`` are written and read with them).

Every function here walks a tree the same way: an ndarray is a leaf, and ``_children``
is the one place that knows the other nodes. It returns a node's children (a tuple's
items, a record's array fields in declaration order) with the node's ``_Shape``, which
names the children, lists the static fields and rebuilds the node from new children.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs
import numpy as np

from fmlp.types import Array

T = TypeVar("T")

STATIC: Final = {"static": True}
"""Field metadata that marks a static (non-array) field: ``attrs.field(metadata=STATIC)``."""


def static_field(**kwargs: Any) -> Any:
    """An attrs field that tree functions leave alone (an activation name, a count)."""
    return attrs.field(metadata=STATIC, **kwargs)


def _not_a_tree(node: object) -> TypeError:
    return TypeError(
        f"not a tree: {type(node).__name__}; fmlp trees are ndarrays, tuples and attrs records"
    )


# ------------------------------------------------------------------ the one walk


class _Shape:
    """How one kind of node is taken apart and put back together."""

    __slots__ = ()

    def entries(self, node: object, children: Sequence[object]) -> list[tuple[str, object, bool]]:
        """Every ``(name, value, is_static)`` of ``node`` in order: its children and,
        for a record, its static fields where they are declared."""
        raise NotImplementedError

    def differs(self, node: object, n_children: int, other: object) -> TypeError | None:
        """The error when ``other`` is not a node of ``node``'s shape, else None."""
        raise NotImplementedError

    def rebuild(
        self, node: object, children: Sequence[object], statics: Mapping[str, object] | None
    ) -> object:
        """``node`` with new ``children`` (and, for a record, the static fields in
        ``statics`` when it is given; else ``node``'s own)."""
        raise NotImplementedError

    def text(self, parts: Sequence[tuple[str, str]]) -> str:
        """The node as ``tree_structure`` writes it, from each entry's name and text."""
        raise NotImplementedError


class _Tuple(_Shape):
    """A tuple: its items are its children, named by their indices."""

    __slots__ = ()

    def entries(self, node: object, children: Sequence[object]) -> list[tuple[str, object, bool]]:
        return [(str(i), child, False) for i, child in enumerate(children)]

    def differs(self, node: object, n_children: int, other: object) -> TypeError | None:
        if not isinstance(other, tuple) or len(other) != n_children:
            return TypeError(
                f"tree structures differ: a tuple of {n_children} versus {other!r:.60}"
            )
        return None

    def rebuild(
        self, node: object, children: Sequence[object], statics: Mapping[str, object] | None
    ) -> object:
        return tuple(children)

    def text(self, parts: Sequence[tuple[str, str]]) -> str:
        items = [t for _, t in parts]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


class _Record(_Shape):
    """An attrs record: its non-static fields are its children, named by the fields.
    Rebuilt as ``attrs.evolve`` does (the constructor runs, so its checks run), with the
    field lists looked up once per class: tree functions run on every training step."""

    __slots__ = ("arrays", "cls", "fields", "get", "keep")

    def __init__(self, cls: type) -> None:
        fields = attrs.fields(cls)
        self.cls = cls
        self.fields: tuple[tuple[str, bool], ...] = tuple(
            (f.name, bool(f.metadata.get("static", False))) for f in fields
        )
        self.arrays: tuple[str, ...] = tuple(name for name, static in self.fields if not static)
        getter = operator.attrgetter(*self.arrays) if self.arrays else None
        self.get: Callable[[object], tuple[object, ...]] = (
            (lambda node: ())
            if getter is None
            else (lambda node: (getter(node),))
            if len(self.arrays) == 1
            else getter
        )
        # the init arguments attrs.evolve fills in from the instance: all but the children
        self.keep: tuple[tuple[str, str], ...] = tuple(
            (f.name, f.alias) for f in fields if f.init and f.alias not in self.arrays
        )

    def entries(self, node: object, children: Sequence[object]) -> list[tuple[str, object, bool]]:
        arrays = iter(children)
        return [
            (name, getattr(node, name) if static else next(arrays), static)
            for name, static in self.fields
        ]

    def differs(self, node: object, n_children: int, other: object) -> TypeError | None:
        if type(other) is not self.cls:
            return TypeError(
                f"tree structures differ: {self.cls.__name__} versus {type(other).__name__}"
            )
        return None

    def rebuild(
        self, node: object, children: Sequence[object], statics: Mapping[str, object] | None
    ) -> object:
        changes = dict(zip(self.arrays, children))
        if statics is not None:
            changes.update(statics)
        for name, alias in self.keep:
            if alias not in changes:
                changes[alias] = getattr(node, name)
        return self.cls(**changes)

    def text(self, parts: Sequence[tuple[str, str]]) -> str:
        return f"{self.cls.__name__}({', '.join(f'{n}={t}' for n, t in parts)})"


_TUPLE: Final = _Tuple()
_RECORDS: dict[type, _Record] = {}


def _children(node: object) -> tuple[Sequence[object], _Shape]:
    """The children of a node that is not a leaf, and its shape; TypeError for anything
    that is neither a tuple nor an attrs record. The callers test for leaves first."""
    if isinstance(node, tuple):
        return node, _TUPLE
    record = _RECORDS.get(type(node))
    if record is None:
        if not attrs.has(type(node)):
            raise _not_a_tree(node)
        record = _RECORDS[type(node)] = _Record(type(node))
    return record.get(node), record


# ------------------------------------------------------------------ maps and reductions


def tree_map(f: Callable[..., Array], tree: T, *rest: T) -> T:
    """Apply ``f`` leaf-wise over ``tree`` and the trees in ``rest``, which share its structure.

    Returns a new tree of the same structure; static fields come from ``tree``.
    """
    return _map(f, tree, rest)  # type: ignore[return-value]  # the structure of ``tree``, rebuilt


def _map(f: Callable[..., Array], tree: object, rest: tuple[object, ...]) -> object:
    if isinstance(tree, np.ndarray):
        for r in rest:
            if not isinstance(r, np.ndarray):
                raise TypeError(f"tree structures differ: ndarray versus {type(r).__name__}")
        return f(tree, *rest)
    children, shape = _children(tree)
    if not rest:
        return shape.rebuild(tree, [_map(f, child, ()) for child in children], None)
    for r in rest:
        error = shape.differs(tree, len(children), r)
        if error is not None:
            raise error
    others = [_children(r)[0] for r in rest]
    return shape.rebuild(
        tree, [_map(f, items[0], items[1:]) for items in zip(children, *others)], None
    )


def tree_leaves(tree: object) -> list[Array]:
    """The ndarray leaves of ``tree`` in a fixed order (fields in declaration order)."""
    out: list[Array] = []
    _collect(tree, out)
    return out


def _collect(tree: object, out: list[Array]) -> None:
    if isinstance(tree, np.ndarray):
        out.append(tree)
        return
    for child in _children(tree)[0]:
        _collect(child, out)


def tree_vdot(a: T, b: T) -> float:
    """The inner product sum_i <a_i, b_i> over matching leaves, accumulated in float64."""
    la, lb = tree_leaves(a), tree_leaves(b)
    if len(la) != len(lb):
        raise TypeError(f"tree structures differ: {len(la)} versus {len(lb)} leaves")
    return float(sum(np.vdot(x.astype(np.float64), y.astype(np.float64)) for x, y in zip(la, lb)))


def tree_allclose(a: T, b: T, *, rtol: float = 1e-7, atol: float = 0.0) -> bool:
    """True when both trees have the same structure and shapes and all leaves are close."""
    try:
        la, lb = tree_leaves(a), tree_leaves(b)
    except TypeError:
        return False
    if len(la) != len(lb) or type(a) is not type(b):
        return False
    return all(
        x.shape == y.shape and bool(np.allclose(x, y, rtol=rtol, atol=atol)) for x, y in zip(la, lb)
    )


def tree_add(a: T, b: T) -> T:
    """Leaf-wise a + b."""
    return tree_map(np.add, a, b)


def tree_sub(a: T, b: T) -> T:
    """Leaf-wise a - b."""
    return tree_map(np.subtract, a, b)


def tree_scale(scalar: float, tree: T) -> T:
    """Leaf-wise scalar * tree, keeping each leaf's dtype."""
    return tree_map(lambda x: x * x.dtype.type(scalar), tree)


def tree_zeros_like(tree: T) -> T:
    """A tree of zeros with the structure, shapes and dtypes of ``tree``."""
    return tree_map(np.zeros_like, tree)


def tree_copy(tree: T) -> T:
    """A deep copy of every leaf (for code that will donate the copy's buffers)."""
    return tree_map(np.array, tree)


def tree_stack(trees: list[T]) -> T:
    """Stack a non-empty list of same-structured trees along a new leading axis."""
    if not trees:
        raise ValueError("tree_stack needs at least one tree")
    return tree_map(lambda *xs: np.stack(xs), trees[0], *trees[1:])


# ------------------------------------------------------------------ flattening with paths


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _flatten(
    tree: object,
    path: str,
    leaves: list[tuple[str, Array]],
    statics: list[tuple[str, object]],
) -> None:
    if isinstance(tree, np.ndarray):
        leaves.append((path, tree))
        return
    children, shape = _children(tree)
    for name, value, static in shape.entries(tree, children):
        if static:
            statics.append((_join(path, name), value))
        else:
            _flatten(value, _join(path, name), leaves, statics)


def tree_flatten_with_paths(
    tree: object,
) -> tuple[list[tuple[str, Array]], list[tuple[str, object]]]:
    """The leaves and the static fields of ``tree``, each as ``(path, value)`` pairs.

    A path joins, from the root, the field names and tuple indices with dots, e.g.
    ``params.layers.0.w`` or ``opt_state.1.count``; the leaves come in ``tree_leaves``'s
    order. ``tree_unflatten_with_paths`` is the inverse.
    """
    leaves: list[tuple[str, Array]] = []
    statics: list[tuple[str, object]] = []
    _flatten(tree, "", leaves, statics)
    return leaves, statics


def tree_unflatten_with_paths(
    like: T, leaves: Mapping[str, Array], statics: Mapping[str, object]
) -> T:
    """A tree of ``like``'s structure whose leaves and static fields are the values at
    their paths in ``leaves`` and ``statics`` (every path of ``like`` must be there; a
    missing one is a KeyError naming it). Records are rebuilt through their
    constructors, so their checks run."""

    def build(node: object, path: str) -> object:
        if isinstance(node, np.ndarray):
            return leaves[path]
        children, shape = _children(node)
        new: list[object] = []
        own: dict[str, object] = {}
        for name, value, static in shape.entries(node, children):
            if static:
                own[name] = statics[_join(path, name)]
            else:
                new.append(build(value, _join(path, name)))
        return shape.rebuild(node, new, own)

    return build(like, "")  # type: ignore[return-value]  # the structure of ``like``, rebuilt


def tree_structure(tree: object) -> str:
    """The shape of ``tree`` as text, without its values: record types with their fields,
    tuples with their lengths, ``*`` for a leaf and ``#`` for a static field, e.g.
    ``TraceState(trace=MLP(layers=(Dense(w=*, b=*),), activation=#))``."""
    if isinstance(tree, np.ndarray):
        return "*"
    children, shape = _children(tree)
    return shape.text(
        [
            (name, "#" if static else tree_structure(value))
            for name, value, static in shape.entries(tree, children)
        ]
    )
