"""Tree algebra over fmlp's records: ndarrays are leaves, tuples and attrs records are nodes.

A field of an attrs record whose metadata has ``static=True`` is configuration, not a
parameter: ``tree_map`` carries it over unchanged and ``tree_leaves`` skips it.
``tree_flatten_with_paths`` names every leaf and static field by its path from the root,
and ``tree_unflatten_with_paths`` rebuilds a tree from such names (checkpoints of a
whole ``TrainState`` are written and read with them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import attrs
import numpy as np
from numpy.typing import NDArray

T = TypeVar("T")

STATIC: Final = {"static": True}
"""Field metadata that marks a static (non-array) field: ``attrs.field(metadata=STATIC)``."""


def static_field(**kwargs: Any) -> Any:
    """An attrs field that tree functions leave alone (an activation name, a count)."""
    return attrs.field(metadata=STATIC, **kwargs)


def _is_static(field: attrs.Attribute[Any]) -> bool:
    return bool(field.metadata.get("static", False))


@functools.cache
def _array_fields(cls: Any) -> tuple[str, ...]:
    """The names of a record class's non-static fields, in declaration order (looked up
    once per class: tree functions run on every training step)."""
    return tuple(f.name for f in attrs.fields(cls) if not _is_static(f))


def _children(node: Any) -> list[Any]:
    if isinstance(node, np.ndarray):
        raise AssertionError("leaves have no children")
    if isinstance(node, tuple):
        return list(node)
    cls: Any = type(node)
    if attrs.has(cls):
        return [getattr(node, name) for name in _array_fields(cls)]
    raise TypeError(
        f"not a tree: {type(node).__name__}; fmlp trees are ndarrays, tuples and attrs records"
    )


def tree_map(f: Callable[..., NDArray[Any]], tree: T, *rest: T) -> T:
    """Apply ``f`` leaf-wise over ``tree`` and the trees in ``rest``, which share its structure.

    Returns a new tree of the same structure; static fields come from ``tree``.
    """
    if isinstance(tree, np.ndarray):
        for r in rest:
            if not isinstance(r, np.ndarray):
                raise TypeError(f"tree structures differ: ndarray versus {type(r).__name__}")
        return f(tree, *rest)  # type: ignore[return-value]  # T is an ndarray here
    if isinstance(tree, tuple):
        for r in rest:
            if not isinstance(r, tuple) or len(r) != len(tree):
                raise TypeError(f"tree structures differ: a tuple of {len(tree)} versus {r!r:.60}")
        return tuple(  # type: ignore[return-value]  # T is a tuple here
            tree_map(f, *items) for items in zip(tree, *rest)
        )
    cls: Any = type(tree)
    if attrs.has(cls):
        for r in rest:
            if type(r) is not type(tree):
                raise TypeError(
                    f"tree structures differ: {type(tree).__name__} versus {type(r).__name__}"
                )
        changes = {
            name: tree_map(f, getattr(tree, name), *(getattr(r, name) for r in rest))
            for name in _array_fields(cls)
        }
        return attrs.evolve(tree, **changes)  # type: ignore[misc]  # T is an attrs instance here
    raise TypeError(
        f"not a tree: {type(tree).__name__}; fmlp trees are ndarrays, tuples and attrs records"
    )


def tree_leaves(tree: Any) -> list[NDArray[Any]]:
    """The ndarray leaves of ``tree`` in a fixed order (fields in declaration order)."""
    out: list[NDArray[Any]] = []
    _collect(tree, out)
    return out


def _collect(tree: Any, out: list[NDArray[Any]]) -> None:
    if isinstance(tree, np.ndarray):
        out.append(tree)
        return
    for child in _children(tree):
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
    tree: Any, path: str, leaves: list[tuple[str, NDArray[Any]]], statics: list[tuple[str, Any]]
) -> None:
    if isinstance(tree, np.ndarray):
        leaves.append((path, tree))
        return
    if isinstance(tree, tuple):
        for i, child in enumerate(tree):
            _flatten(child, _join(path, str(i)), leaves, statics)
        return
    if attrs.has(type(tree)):
        for fld in attrs.fields(type(tree)):
            value = getattr(tree, fld.name)
            if _is_static(fld):
                statics.append((_join(path, fld.name), value))
            else:
                _flatten(value, _join(path, fld.name), leaves, statics)
        return
    raise TypeError(
        f"not a tree: {type(tree).__name__}; fmlp trees are ndarrays, tuples and attrs records"
    )


def tree_flatten_with_paths(
    tree: Any,
) -> tuple[list[tuple[str, NDArray[Any]]], list[tuple[str, Any]]]:
    """The leaves and the static fields of ``tree``, each as ``(path, value)`` pairs.

    A path joins, from the root, the field names and tuple indices with dots, e.g.
    ``params.layers.0.w`` or ``opt_state.1.count``; the leaves come in ``tree_leaves``'s
    order. ``tree_unflatten_with_paths`` is the inverse.
    """
    leaves: list[tuple[str, NDArray[Any]]] = []
    statics: list[tuple[str, Any]] = []
    _flatten(tree, "", leaves, statics)
    return leaves, statics


def tree_unflatten_with_paths(
    like: T, leaves: Mapping[str, NDArray[Any]], statics: Mapping[str, Any]
) -> T:
    """A tree of ``like``'s structure whose leaves and static fields are the values at
    their paths in ``leaves`` and ``statics`` (every path of ``like`` must be there; a
    missing one is a KeyError naming it). Records are rebuilt through their
    constructors, so their checks run."""

    def build(node: Any, path: str) -> Any:
        if isinstance(node, np.ndarray):
            return leaves[path]
        if isinstance(node, tuple):
            return tuple(build(child, _join(path, str(i))) for i, child in enumerate(node))
        if attrs.has(type(node)):
            return attrs.evolve(
                node,
                **{
                    fld.name: statics[_join(path, fld.name)]
                    if _is_static(fld)
                    else build(getattr(node, fld.name), _join(path, fld.name))
                    for fld in attrs.fields(type(node))
                },
            )
        raise TypeError(
            f"not a tree: {type(node).__name__}; fmlp trees are ndarrays, tuples and attrs records"
        )

    result: T = build(like, "")
    return result


def tree_structure(tree: Any) -> str:
    """The shape of ``tree`` as text, without its values: record types with their fields,
    tuples with their lengths, ``*`` for a leaf and ``#`` for a static field, e.g.
    ``TraceState(trace=MLP(layers=(Dense(w=*, b=*),), activation=#))``."""
    if isinstance(tree, np.ndarray):
        return "*"
    if isinstance(tree, tuple):
        items = [tree_structure(child) for child in tree]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    cls = type(tree)
    if attrs.has(cls):
        fields = ", ".join(
            f"{fld.name}=#"
            if _is_static(fld)
            else f"{fld.name}={tree_structure(getattr(tree, fld.name))}"
            for fld in attrs.fields(cls)
        )
        return f"{cls.__name__}({fields})"
    raise TypeError(
        f"not a tree: {type(tree).__name__}; fmlp trees are ndarrays, tuples and attrs records"
    )
