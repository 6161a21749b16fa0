"""One request compared between an era and the real kernel JIT of a tree, byte for byte: the
comparison the v6.12 and v7.x identity tests share (size or refusal, the image at the sized length
and 24 bytes too small, optionally the per-program skips and their detach poke, the BPF prologue
NOP->CALL poke, the ftrace patch words). A difference fails with a side-by-side disassembly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from sledfuzz.emu.impls.api import Image, Implementation, Refused, TrampRequest
from sledfuzz.emu.rv64.disasm import disassemble
from sledfuzz.emu.scenario import scenario_for
from sledfuzz.model.caps import SledLayout
from sledfuzz.model.case import Case
from sledfuzz.model.core_stage import CoreRefusal, core_stage

Result = int | Image | Refused


def side_by_side(left: bytes, right: bytes, addr: int, titles: tuple[str, str] = ("v6.12", "kernel")) -> str:
    """Two disassembly columns; ``!`` marks rows whose raw bytes differ."""
    a, b = disassemble(left, addr), disassemble(right, addr)
    width = 52
    rows = [f"  {titles[0]:<{width}} | {titles[1]}"]
    for i in range(max(len(a), len(b))):
        la = f"{a[i].addr & 0xFFFF:04x} {a[i].raw.hex():<8} {a[i].text}" if i < len(a) else ""
        lb = f"{b[i].addr & 0xFFFF:04x} {b[i].raw.hex():<8} {b[i].text}" if i < len(b) else ""
        mark = "!" if i >= len(a) or i >= len(b) or a[i].raw != b[i].raw or a[i].addr != b[i].addr else " "
        rows.append(f"{mark} {la:<{width}} | {lb}")
    return "\n".join(rows)


def describe(x: Result) -> str:
    if isinstance(x, Refused):
        return f"Refused(errno={x.errno}, {x.reason!r})"
    if isinstance(x, Image):
        return (f"Image(used_len={x.used_len}, len={len(x.code)}, ip_after_call={x.ip_after_call and hex(x.ip_after_call)}, "
                f"ip_epilogue={x.ip_epilogue and hex(x.ip_epilogue)})")
    return str(x)


def key(x: Result) -> object:
    if isinstance(x, Refused):
        return ("refused", x.errno)
    if isinstance(x, Image):
        return ("image", x.code, x.used_len, x.ip_after_call, x.ip_epilogue)
    return ("size", x)


def key_with_skips(x: Result) -> object:
    """``key`` plus the per-program skips (link kind, nop, target) the 7.x JIT reports."""
    return (key(x), x.skips) if isinstance(x, Image) else key(x)


def compare(case: Case, era: Implementation, ker: Implementation, stats: Counter[str], *, skips: bool,
            counted_as: str = "requests", on_request: Callable[[TrampRequest], None] | None = None) -> None:
    """Compare what ``era`` and ``ker`` make of ``case``'s request; counts go to ``stats``
    (``counted_as`` for the request itself). ``skips``: also the skips and their detach poke."""
    core = core_stage(case)
    if isinstance(core, CoreRefusal):
        stats["core_refused"] += 1
        return
    req = scenario_for().request(case, core.order, core.flags)
    image = case.layout.image
    stats[counted_as] += 1
    stats[case.target] += 1
    if on_request is not None:
        on_request(req)

    def fail(what: str, e: Result, k: Result) -> str:
        msg = [f"{what}: {era.name} and {ker.description} differ", f"  era:    {describe(e)}",
               f"  kernel: {describe(k)}", f"  request: {req}", f"  case: {case.to_dict()}"]
        if isinstance(e, Image) and isinstance(k, Image):
            if skips:
                msg.append(f"  skips: era {e.skips}, kernel {k.skips}")
            n = max(e.used_len, k.used_len)
            msg.append(side_by_side(e.code[:n], k.code[:n], image, (era.name, "kernel")))
        return "\n".join(msg)

    image_key = key_with_skips if skips else key
    se, sk = era.jit.size(req), ker.jit.size(req)
    assert key(se) == key(sk), fail("size", se, sk)
    if isinstance(se, Refused):
        stats[f"refused errno {se.errno}"] += 1
        return
    assert isinstance(sk, int)
    for size, what in ((se, "emit"), (se - 24, "emit into a too-small image")):
        if size < 16:
            continue
        ee, ek = era.jit.emit(req, image, size), ker.jit.emit(req, image, size)
        assert image_key(ee) == image_key(ek), fail(what, ee, ek)
        if what == "emit":
            stats["images" if isinstance(ee, Image) else f"emit refused errno {ee.errno}"] += 1
            if skips and isinstance(ee, Image) and ee.skips:
                _, nop, target = ee.skips[0]
                site = ee.code[nop - image:nop - image + 8]
                pe = era.jit.tramp_skip(nop, site, target)  # type: ignore[attr-defined]
                pk = ker.jit.tramp_skip(nop, site, target)  # type: ignore[attr-defined]
                assert pe == pk, f"arch_bpf_trampoline_skip at {nop:#x} to {target:#x}: era {pe}, kernel {pk}"
                stats["skip pokes"] += 1
    lay = case.layout
    if case.target == "bpf_prog":
        nops = bytes.fromhex("1300000013000000")
        pe = era.jit.text_poke(lay.func, nops, "nop", "call", 0, image)
        pk = ker.jit.text_poke(lay.func, nops, "nop", "call", 0, image)
        assert pe == pk, f"bpf_arch_text_poke NOP->CALL at {lay.func:#x} to {image:#x}: {era.name} {pe}, kernel {pk}"
        stats["pokes"] += 1
    elif case.target == "kernel_function":
        sled = era.caps.sled_for("kernel_function", case.sled)
        assert isinstance(sled, SledLayout)
        pe_b = era.patcher.patch(sled, lay.func, image, lay.ftrace_caller)
        pk_b = ker.patcher.patch(sled, lay.func, image, lay.ftrace_caller)
        assert pe_b == pk_b, f"ftrace patch {sled.key} at {lay.func:#x} to {image:#x}:\n" + side_by_side(
            pe_b, pk_b, lay.func - sled.pre_bytes, (era.name, "kernel"))
        stats["ftrace patches"] += 1
