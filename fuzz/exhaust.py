"""Exhaustive small-scope mode: every configuration shape up to the bounds, values drawn per shape.

Random search samples; this enumerates. A shape (``fuzz.shape.Shape``) fixes the target, the
sled layout, the argument sizes (every slot count 0..2N, with and without 16-byte structs, plus
the 13-argument refusal), the ordered link kinds (every sequence of up to K links), the
enter-result pattern (all run, all with a start time, all skipped, start-then-skip) and the flag
variant (every set the core generates, plus ORIG_STACK and SHARE_IPMODIFY; the unspecified raw
sets only under ``--strict-flags``). One case per shape is built with values drawn from a
random stream seeded by (seed, shape index), so a run is reproducible and no shape is skipped.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sledfuzz.fuzz import interrupt, workers
from sledfuzz.fuzz.campaign import Counts, dir_name, judge_case, resolve
from sledfuzz.fuzz.corpus import Entry, atomic_write_text
from sledfuzz.fuzz.shape import (
    BPF_PROG_MAX_SLOTS,
    ENTER_PATTERNS,
    STRUCT_OPS_MAX_SLOTS,
    UNSPECIFIED_FLAGS,
    EnterPattern,
    FlagVariant,
    RandomDraw,
    Shape,
    build_case,
    flag_variants,
    link_kinds,
)
from sledfuzz.model.caps import Capabilities, TargetKind

STRUCT_OPS_RET_SIZES = (8, 4, 2, 1, 0)
CHUNK = 256


def arg_shapes(max_args: int) -> list[tuple[tuple[int, bool], ...]]:
    """Every slot count 0..2*max_args: all-scalar when it fits, and with one and with as many
    16-byte structs as possible; plus max_args+1 scalars (the -ENOTSUPP refusal) when 12."""
    out: dict[tuple[tuple[int, bool], ...], None] = {}
    scalar: tuple[int, bool] = (8, False)
    struct: tuple[int, bool] = (16, True)
    for nslots in range(0, 2 * max_args + 1):
        if nslots <= max_args:
            out[(scalar,) * nslots] = None
        for nstructs in sorted({1, nslots // 2}):
            if nstructs < 1 or 2 * nstructs > nslots:
                continue
            nscalar = nslots - 2 * nstructs
            if nscalar + nstructs <= max_args:
                # the struct in the middle, so that it straddles register/stack slots when it can
                half = nscalar // 2
                out[(scalar,) * half + (struct,) * nstructs + (scalar,) * (nscalar - half)] = None
    if max_args >= 12:
        out[(scalar,) * 13] = None
    return list(out)


def _sled_keys(caps: Capabilities, target: TargetKind) -> list[str]:
    keys = [s.key for s in caps.sleds_for(target)]
    if not keys and target == "struct_ops":
        keys = ["4,0/c"]  # called directly: no sled, the key is not used
    return keys


def enumerate_shapes(caps: Capabilities, *, max_links: int = 3, max_args: int = 12,
                     strict_flags: bool = False) -> list[Shape]:
    shapes: list[Shape] = []
    args_list = arg_shapes(max_args)
    for target in sorted(caps.targets):
        for sled in _sled_keys(caps, target):
            for args in args_list:
                nslots = sum((size + 7) // 8 for size, _ in args)
                if target == "bpf_prog" and nslots > BPF_PROG_MAX_SLOTS:
                    continue  # a BPF program takes at most five arguments (R1-R5)
                if target == "struct_ops" and nslots > STRUCT_OPS_MAX_SLOTS:
                    continue  # no struct_ops member has stack arguments (SEMANTICS 3.3)
                if target == "struct_ops":
                    for enter in ("run", "stats", "skip"):
                        for ret_size in STRUCT_OPS_RET_SIZES:
                            shapes.append(Shape(target, sled, args, ("fentry",), enter, "derived", ret_size))
                    continue
                for k in range(0, max_links + 1):
                    for kinds in itertools.product(link_kinds(caps, target), repeat=k):
                        enters: tuple[EnterPattern, ...] = ENTER_PATTERNS if k >= 2 else (
                            ("run", "stats", "skip") if k == 1 else ("run",))
                        variants: list[FlagVariant | int] = [  # only a link can ask for the ip
                            v for v in flag_variants(target) if k or not v.startswith("ip_arg")]
                        if strict_flags:
                            variants += list(UNSPECIFIED_FLAGS)
                        for enter in enters:
                            for flags in variants:
                                shapes.append(Shape(target, sled, args, kinds, enter, flags))
    return shapes


@dataclass
class ExhaustResult:
    impl: str
    shapes: int
    seconds: float
    out_dir: str
    counts: Counts = field(default_factory=Counts)
    violating: list[tuple[str, frozenset[str], str, bool]] = field(default_factory=list)
    interrupted: bool = False
    shapes_done: int = 0  # shapes judged (all of them unless interrupted)
    errors: list[str] = field(default_factory=list)  # workers that failed (a tool error)

    @property
    def harness_faults(self) -> int:
        """Failures a fresh engine did not reproduce (fuzz.fresh; written to harness-faults/)."""
        return self.counts.harness_faults


_STATE: dict[str, Any] = {}


def _init(impl_name: str, strict: bool, seed: int, out_dir: str, caps_shapes: list[Shape]) -> None:
    _STATE.update(impl=resolve(impl_name), name=impl_name, strict=strict, seed=seed, out=out_dir, shapes=caps_shapes)


def _chunk(bounds: tuple[int, int]) -> tuple[dict[str, int], list[tuple[int, list[str], str]], int]:
    """Judge the shapes in ``bounds``; stops early (returning what it has) when asked to stop.
    A failure a fresh engine does not reproduce is a harness fault (fuzz.fresh), not a shape file."""
    from sledfuzz.fuzz.fresh import confirm, write_harness_fault

    impl = _STATE["impl"]
    counts = Counts()
    bad: list[tuple[int, list[str], str]] = []
    done = 0
    for idx in range(*bounds):
        if interrupt.requested():
            break
        shape: Shape = _STATE["shapes"][idx]
        case = build_case(RandomDraw((_STATE["seed"] << 32) ^ idx), impl.caps, shape)
        try:
            j = judge_case(case, impl, _STATE["strict"])
            confirmed, again = confirm(case, impl, j, _STATE["strict"]) if j.status == "fail" else (True, j)
        except interrupt.Interrupted:
            break
        counts.add(j.status)
        done += 1
        if j.status == "fail":
            if not confirmed:  # the reused engine disagrees with a fresh one: not a finding
                counts.harness_faults += 1
                write_harness_fault(_STATE["out"], case, _STATE["name"], j, again,
                                    {"found_by": f"sledfuzz exhaust, seed {_STATE['seed']}, shape {idx}"})
                continue
            path = Path(_STATE["out"]) / f"exhaust-{dir_name(_STATE['name'])}" / f"shape-{idx:06d}.json"
            entry = Entry(case, {_STATE["name"]: j.verdict},
                          {"found_by": f"sledfuzz exhaust, seed {_STATE['seed']}, shape {idx}", "shape": shape.describe()})
            path = _write_shape(path, entry)
            bad.append((idx, sorted(j.invariants), str(path)))
    return counts.__dict__, bad, done


Progress = Callable[[ExhaustResult], None]


def run_exhaust(impl_name: str, shapes: list[Shape], *, jobs: int, seed: int = 0, strict_flags: bool = False,
                out_dir: str = "sledfuzz-out", on_progress: Progress | None = None) -> ExhaustResult:
    """Judge one case per shape on ``jobs`` processes; violating shapes are written as found.

    On SIGINT/SIGTERM the workers stop between shapes; the summary says how many shapes ran."""
    start = time.monotonic()
    impl = resolve(impl_name)
    known = impl.caps.known_invariants
    res = ExhaustResult(impl_name, len(shapes), 0.0, out_dir)
    bounds = [(i, min(i + CHUNK, len(shapes))) for i in range(0, len(shapes), CHUNK)]

    def on_result(_: int, payload: tuple[dict[str, int], list[tuple[int, list[str], str]], int]) -> None:
        counts, bad, done = payload
        res.counts.merge(Counts(**counts))
        res.shapes_done += done
        for idx, invs, path in bad:
            res.violating.append((shapes[idx].describe(), frozenset(invs), path, set(invs) <= known))

    def tick() -> None:
        res.seconds = time.monotonic() - start
        if on_progress is not None:
            on_progress(res)

    with interrupt.deferred():
        outcome = workers.run_tasks(_chunk, bounds, jobs=max(1, jobs), init=_init,
                                    initargs=(impl_name, strict_flags, seed, out_dir, shapes),
                                    on_result=on_result, on_tick=tick)
    res.interrupted = outcome.interrupted
    res.errors = sorted(set(outcome.errors.values()) - {"interrupted"})
    res.violating.sort(key=lambda v: v[2])
    res.seconds = time.monotonic() - start
    summary = {
        "impl": impl_name, "shapes": res.shapes, "shapes_judged": res.shapes_done,
        "seconds": round(res.seconds, 2), "counts": res.counts.__dict__,
        "violating": [{"shape": s, "invariants": sorted(i), "case": p, "known": k} for s, i, p, k in res.violating],
        "interrupted": res.interrupted,
        **({"errors": res.errors} if res.errors else {}),
    }
    atomic_write_text(Path(out_dir) / f"exhaust-{dir_name(impl_name)}.json", json.dumps(summary, indent=2) + "\n")
    return res


def _write_shape(path: Path, entry: Entry) -> Path:
    """A violating shape's case, stamped with the tool version, under a name no other run's case
    holds (runs sharing ``--out``)."""
    from sledfuzz.fuzz.corpus import with_tool_version, write_finding

    return write_finding(path, Entry(entry.case, entry.expect, with_tool_version(entry.provenance)))
