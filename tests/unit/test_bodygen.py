"""emu.bodygen: the compiled body returns what the mini-language says, ABI intact (run on unicorn)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from unicorn import UC_ARCH_RISCV, UC_HOOK_MEM_WRITE, UC_MODE_RISCV64, Uc
from unicorn.riscv_const import UC_RISCV_REG_PC, UC_RISCV_REG_X0

from emu.bodygen import body_frame_size, compile_body
from emu.rv64.disasm import disassemble
from model.case import Body, Store

M64 = (1 << 64) - 1
CODE = 0xFFFFFFFF80200000
HELPER = 0xFFFFFFFF80600000
DATA = 0xFFFFFFFF80800000
STACK = 0xFFFFFFFF80A00000
SP0 = STACK + 0x3000
RET = 0xFFFFFFFF80100010
SENTINEL_CODE = bytes.fromhex("73001000")  # ebreak, never executed: the run stops at RET

# x-numbers: ra=1 sp=2 gp=3 tp=4 t0-t2=5-7 s0=8 s1=9 a0-a7=10-17 s2-s11=18-27 t3-t6=28-31
CALLEE_SAVED = (8, 9, *range(18, 28), 3, 4)
CALLER_SAVED = (*range(10, 18), 5, 6, 7, 28, 29, 30, 31)


def _helper_code() -> bytes:
    """A helper that scrambles every caller-saved register with lui, then returns (hand-encoded)."""
    out = bytearray()
    for n, reg in enumerate(CALLER_SAVED):
        out += (((0x12345 + 0x1111 * n) & 0xFFFFF) << 12 | reg << 7 | 0x37).to_bytes(4, "little")  # lui
    out += (0x00008067).to_bytes(4, "little")  # ret
    return bytes(out)


def _run(body: Body, values: tuple[int, ...]) -> tuple[Any, list[tuple[int, int, int]]]:
    nr = len(values)
    code = compile_body(body, nr, CODE, HELPER)
    uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV64)
    for base, size in ((CODE, 0x10000), (HELPER, 0x1000), (DATA, 0x1000), (STACK, 0x4000), (RET & ~0xFFF, 0x1000)):
        uc.mem_map(base, size)
    uc.mem_write(CODE, code)
    uc.mem_write(HELPER, _helper_code())
    uc.mem_write(RET, SENTINEL_CODE)
    for i, v in enumerate(values[8:]):
        uc.mem_write(SP0 + 8 * i, v.to_bytes(8, "little"))
    for n, reg in enumerate(CALLEE_SAVED):
        uc.reg_write(UC_RISCV_REG_X0 + reg, 0x5AFE_0000_0000_0000 + n)
    for i, v in enumerate(values[:8]):
        uc.reg_write(UC_RISCV_REG_X0 + 10 + i, v)
    uc.reg_write(UC_RISCV_REG_X0 + 1, RET)
    uc.reg_write(UC_RISCV_REG_X0 + 2, SP0)
    writes: list[tuple[int, int, int]] = []

    def on_write(_uc: Any, _access: int, addr: int, size: int, value: int, _data: Any) -> None:
        writes.append((addr, size, value & M64))

    uc.hook_add(UC_HOOK_MEM_WRITE, on_write)
    uc.emu_start(CODE, RET, count=10_000)
    return uc, writes


def _expected(body: Body, values: tuple[int, ...]) -> int:
    acc = body.k
    for c, v in zip(body.coeffs, values, strict=False):
        acc = (acc + c * v) % (1 << 64)
    if body.ret32:
        low = acc & 0xFFFFFFFF
        acc = (low - (1 << 32) if low >= 1 << 31 else low) % (1 << 64)
    return acc


@st.composite
def bodies(draw: st.DrawFn) -> tuple[Body, tuple[int, ...]]:
    nr = draw(st.integers(0, 14))
    u64 = st.integers(0, M64)
    values = list(draw(st.lists(u64, min_size=nr, max_size=nr)))
    coeffs = tuple(draw(st.lists(st.sampled_from([0, 1, -1, 2, -2048, 2047]) | st.integers(-2048, 2047), max_size=nr)))
    store = None
    if nr and draw(st.booleans()):
        slot = draw(st.integers(0, nr - 1))
        values[slot] = DATA + 8 * draw(st.integers(0, 511))
        store = Store(slot=slot, value=draw(u64))
    body = Body(
        k=draw(u64),
        coeffs=coeffs,
        ret32=draw(st.booleans()),
        store=store,
        calls_helper=draw(st.booleans()),
        uses_saved=draw(st.integers(0, 11)),
        frame_pointer=draw(st.booleans()),
        compressed=draw(st.booleans()),
        a5=draw(u64),
    )
    return body, tuple(values)


@settings(max_examples=300, deadline=None)
@given(bodies())
def test_body_returns_the_models_value_and_keeps_the_abi(bv: tuple[Body, tuple[int, ...]]) -> None:
    body, values = bv
    uc, writes = _run(body, values)
    reg = lambda n: uc.reg_read(UC_RISCV_REG_X0 + n)  # noqa: E731
    assert uc.reg_read(UC_RISCV_REG_PC) == RET
    assert reg(10) == _expected(body, values)
    assert reg(15) == body.a5
    assert reg(2) == SP0
    for n, r in enumerate(CALLEE_SAVED):
        assert reg(r) == 0x5AFE_0000_0000_0000 + n, f"x{r}"
    outside = [w for w in writes if not SP0 - 0x200 <= w[0] < SP0]
    if body.store is None:
        assert outside == []
    else:
        assert outside == [(values[body.store.slot], 8, body.store.value)]


def test_frameless_leaf_has_no_prologue() -> None:
    body = Body(k=5, frame_pointer=False, compressed=True)
    assert body_frame_size(body) == 0
    code = compile_body(body, 0, CODE, HELPER)
    texts = [i.text for i in disassemble(code, CODE)]
    assert not any("sp" in t for t in texts), texts


def test_compressed_body_uses_rvc_and_uncompressed_does_not() -> None:
    body = Body(k=1, coeffs=(1, 3), uses_saved=2, calls_helper=True)
    small = compile_body(body, 2, CODE, HELPER)
    wide = compile_body(Body(k=1, coeffs=(1, 3), uses_saved=2, calls_helper=True, compressed=False), 2, CODE, HELPER)
    assert any(i.size == 2 for i in disassemble(small, CODE))
    assert all(i.size == 4 for i in disassemble(wide, CODE))
    assert len(small) < len(wide)


def test_helper_far_away_is_called_through_a_register() -> None:
    far = CODE + (1 << 33)
    code = compile_body(Body(calls_helper=True, compressed=False), 0, CODE, far)
    texts = [i.text for i in disassemble(code, CODE)]
    assert any(t.startswith("jalr") and "t1" in t for t in texts), texts
