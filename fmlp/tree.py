"""Tree algebra over fmlp's records: ndarrays are leaves, tuples and attrs records are nodes.

A field of an attrs record whose metadata has ``static=True`` is configuration, not a
parameter: ``tree_map`` carries it over unchanged and ``tree_leaves`` skips it.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _children(node: Any) -> list[Any]:
    if isinstance(node, np.ndarray):
        raise AssertionError("leaves have no children")
    if isinstance(node, tuple):
        return list(node)
    if attrs.has(type(node)):
        return [getattr(node, f.name) for f in attrs.fields(type(node)) if not _is_static(f)]
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
            fld.name: tree_map(f, getattr(tree, fld.name), *(getattr(r, fld.name) for r in rest))
            for fld in attrs.fields(cls)
            if not _is_static(fld)
        }
        return attrs.evolve(tree, **changes)  # type: ignore[misc]  # T is an attrs instance here
    raise TypeError(
        f"not a tree: {type(tree).__name__}; fmlp trees are ndarrays, tuples and attrs records"
    )


def tree_leaves(tree: Any) -> list[NDArray[Any]]:
    """The ndarray leaves of ``tree`` in a fixed order (fields in declaration order)."""
    if isinstance(tree, np.ndarray):
        return [tree]
    out: list[NDArray[Any]] = []
    for child in _children(tree):
        out.extend(tree_leaves(child))
    return out


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
