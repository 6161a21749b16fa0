"""Greedy, structure-aware case minimisation (a smaller case with the same violation).

Hypothesis shrinks what it generated itself; a case from a file, an atheris crash or another
engine has no choice sequence, so we shrink on the case's own structure. The loop keeps one
invariant: the current case always satisfies ``keep`` (same violated invariant on the
implementation, and — when asked — still passing on the configuration it derives from). Each
pass proposes strictly "smaller" candidates (fewer links, fewer arguments, default fields,
smaller numbers) and adopts the first that keeps the property, until a full round changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from functools import partial
from typing import NamedTuple

from sledfuzz.model.case import Arg, Body, Case, CaseError, Function, Layout, Link

Keep = Callable[[Case], bool]


def _later(fn: Callable[..., Case], *args: object) -> Callable[[], Case]:
    """Bind loop values now, build the candidate only if it is tried."""
    return partial(fn, *args)


def _try(make: Callable[[], Case]) -> Case | None:
    try:
        return make()
    except (CaseError, ValueError, TypeError):
        return None


def _smaller_ints(v: int) -> Iterator[int]:
    """Candidates below ``v`` in shrink order: 0, 1, then clearing high bits and halving."""
    if v == 0:
        return
    yield 0
    if v > 1:
        yield 1
    bits = v.bit_length()
    for keep_bits in (8, 12, 16, 32):
        if bits > keep_bits:
            yield v & ((1 << keep_bits) - 1)
    if v > 2:
        yield v >> 1
    if v > 1:
        yield v - 1


def _without_arg(case: Case, index: int) -> Case:
    fn = case.function
    start = sum(a.slots for a in fn.args[:index])
    width = fn.args[index].slots
    values = fn.values[:start] + fn.values[start + width:]
    args = fn.args[:index] + fn.args[index + 1:]
    nslots = sum(a.slots for a in args)
    body = fn.body
    coeffs = tuple(c for i, c in enumerate(body.coeffs) if not start <= i < start + width)[:nslots]
    store = body.store
    if store is not None:
        if start <= store.slot < start + width:
            store = None
        elif store.slot >= start + width:
            store = replace(store, slot=store.slot - width)
    body = replace(body, coeffs=coeffs, store=store)
    return replace(case, function=replace(fn, args=args, values=values, body=body))


def _as_scalar(case: Case, index: int) -> Case:
    """Replace argument ``index`` by a plain 8-byte scalar taking its first slot's value."""
    fn = case.function
    start = sum(a.slots for a in fn.args[:index])
    args = (*fn.args[:index], Arg(8), *fn.args[index + 1:])
    if fn.args[index].slots == 1:
        return replace(case, function=replace(fn, args=args))
    values = fn.values[: start + 1] + fn.values[start + 2:]  # drop the struct's second slot
    body = fn.body
    coeffs = tuple(c for i, c in enumerate(body.coeffs) if i != start + 1)
    store = body.store
    if store is not None:
        if store.slot == start + 1:
            store = None
        elif store.slot > start + 1:
            store = replace(store, slot=store.slot - 1)
    return replace(case, function=replace(fn, args=args, values=values, body=replace(body, coeffs=coeffs, store=store)))


def candidates(case: Case) -> Iterator[Callable[[], Case]]:
    """Smaller variants of ``case``, most aggressive first."""
    fn = case.function
    # links: drop one (struct_ops keeps its single fentry)
    if case.target != "struct_ops":
        n = len(case.links)
        if n > 1:
            yield lambda: replace(case, links=case.links[: n // 2])
            yield lambda: replace(case, links=case.links[n // 2:])
        for i in range(n):
            yield _later(lambda i: replace(case, links=case.links[:i] + case.links[i + 1:]), i)
    if case.flags is not None:
        yield lambda: replace(case, flags=None)
    if case.teardown:
        yield lambda: replace(case, teardown=False)
    # arguments: drop the last ones first, then structs become scalars
    n = len(fn.args)
    if n > 1:
        yield lambda: _without_arg_range(case, n // 2, n)
    for i in reversed(range(n)):
        yield _later(lambda i: _without_arg(case, i), i)
    for i, a in enumerate(fn.args):
        if a != Arg(8):
            yield _later(lambda i: _as_scalar(case, i), i)
        if a.signed:
            yield _later(lambda i, a: replace(case, function=replace(
                fn, args=(*fn.args[:i], replace(a, signed=False), *fn.args[i + 1:]))), i, a)
    # the body, field by field towards the default
    default_body = Body()
    if fn.body != replace(default_body, coeffs=fn.body.coeffs):
        for f in fields(Body):
            if f.name == "coeffs":
                continue
            if getattr(fn.body, f.name) != getattr(default_body, f.name):
                yield _later(lambda name: replace(case, function=replace(
                    fn, body=replace(fn.body, **{name: getattr(default_body, name)}))), f.name)
    if fn.body.coeffs:
        yield lambda: replace(case, function=replace(fn, body=replace(fn.body, coeffs=())))
        for i, c in enumerate(fn.body.coeffs):
            if c not in (0, 1):
                yield _later(lambda i: replace(case, function=replace(fn, body=replace(
                    fn.body, coeffs=(*fn.body.coeffs[:i], 1, *fn.body.coeffs[i + 1:])))), i)
    if fn.ret_signed:
        yield lambda: replace(case, function=replace(fn, ret_signed=False))
    if fn.ret_size != 8 and case.target != "struct_ops":
        yield lambda: replace(case, function=replace(fn, ret_size=8))
    # layout: all default, then field by field
    default_layout = Layout()
    if case.layout != default_layout:
        yield lambda: replace(case, layout=default_layout)
        for f in fields(Layout):
            if getattr(case.layout, f.name) != getattr(default_layout, f.name):
                yield _later(lambda name: replace(case, layout=replace(
                    case.layout, **{name: getattr(default_layout, name)})), f.name)
    # a session program becomes a plain fexit, then a plain fentry program (one phase, no cookie)
    for i, link in enumerate(case.links):
        if link.kind == "fsession":
            for kind in ("fexit", "fentry"):
                yield _later(lambda i, kind: _set_link(case, i, kind=kind, session_cookie=False), i, kind)
    # links, field by field towards Link(kind)
    for i, link in enumerate(case.links):
        plain = Link(kind=link.kind)
        for f in fields(Link):
            default = getattr(plain, f.name)
            if f.name != "kind" and getattr(link, f.name) != default:
                yield _later(lambda i, name, v: _set_link(case, i, **{name: v}), i, f.name, default)
    if case.seed:
        yield lambda: replace(case, seed=0)
    # numbers: smaller values
    for i, v in enumerate(fn.values):
        if fn.body.store is not None and fn.body.store.slot == i:
            continue
        for w in _smaller_ints(v):
            yield _later(lambda i, w: replace(case, function=replace(
                fn, values=(*fn.values[:i], w, *fn.values[i + 1:]))), i, w)
    for i, link in enumerate(case.links):
        for name in ("r0", "cookie", "enter"):
            for w in _smaller_ints(getattr(link, name)):
                if name == "enter" and w == 0 and link.enter != 0:
                    continue  # enter 0 changes what runs, not just a number
                yield _later(lambda i, name, w: _set_link(case, i, **{name: w}), i, name, w)
    for name in ("k", "a5"):
        for w in _smaller_ints(getattr(fn.body, name)):
            yield _later(lambda name, w: replace(case, function=replace(fn, body=replace(fn.body, **{name: w}))), name, w)


def _without_arg_range(case: Case, lo: int, hi: int) -> Case:
    out = case
    for i in reversed(range(lo, hi)):
        out = _without_arg(out, i)
    return out


def _set_link(case: Case, index: int, **changes: object) -> Case:
    link = replace(case.links[index], **changes)  # type: ignore[arg-type]
    return replace(case, links=(*case.links[:index], link, *case.links[index + 1:]))


class Size(NamedTuple):
    """A rough measure that every adopted candidate decreases (compared as a tuple, in this order)."""

    links: int
    args: int
    slots: int
    body_fields: int  #: body fields away from their default
    value_bits: int  #: bits of the argument values, link return values and cookies


def size(case: Case) -> Size:
    """The case's ``Size``."""
    fn = case.function
    return Size(
        links=len(case.links),
        args=len(fn.args),
        slots=fn.nr_slots,
        body_fields=sum(1 for f in fields(Body) if getattr(fn.body, f.name) != getattr(Body(), f.name)),
        value_bits=sum(v.bit_length() for v in fn.values)
        + sum(lk.r0.bit_length() + lk.cookie.bit_length() for lk in case.links),
    )


def size_change(before: Size, after: Size) -> str:
    """``links 2 -> 1, args 5 -> 0, ...``: each measure by name, unchanged ones as a single number."""
    return ", ".join(f"{name.replace('_', ' ')} {b} -> {a}" if a != b else f"{name.replace('_', ' ')} {b}"
                     for name, b, a in zip(before._fields, before, after, strict=True))


def minimize(case: Case, keep: Keep, *, max_checks: int = 2000, deadline: float | None = None,
             prepare: Callable[[Case], Case | None] | None = None) -> Case:
    """The smallest case ``keep`` still accepts that greedy passes reach from ``case``.

    ``prepare`` completes or rejects each candidate before it is judged (a compiled function's
    case is measured again: its body's meaning depends on the argument values)."""
    import time

    checks = 0
    current = case
    changed = True
    while changed:
        changed = False
        for make in candidates(current):
            if checks >= max_checks or (deadline is not None and time.monotonic() > deadline):
                return current
            cand = _try(make)
            if cand is not None and prepare is not None:
                cand = prepare(cand)
            if cand is None or cand == current:
                continue
            checks += 1
            if keep(cand):
                current = cand
                changed = True
                break
    return current


__all__ = ["Function", "Keep", "Size", "candidates", "minimize", "size", "size_change"]
