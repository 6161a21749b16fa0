"""sledfuzz.emu.bodygen: the compiled body returns what the mini-language says, ABI intact (run on unicorn)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sledfuzz.emu.bodygen import body_frame_size, compile_body
from sledfuzz.emu.engine import Engine, MemWrite, get_engine
from sledfuzz.emu.rv64.disasm import disassemble
from sledfuzz.model.case import Body, Store

M64 = (1 << 64) - 1
CODE = 0xFFFFFFFF80200000
HELPER = 0xFFFFFFFF80600000
DATA = 0xFFFFFFFF80800000
STACK = 0xFFFFFFFF80A00000
SP0 = STACK + 0x3000
RET = 0xFFFFFFFF80100010

# x-numbers: ra=1 sp=2 gp=3 tp=4 t0-t2=5-7 s0=8 s1=9 a0-a7=10-17 s2-s11=18-27 t3-t6=28-31
CALLEE_SAVED = (8, 9, *range(18, 28), 3, 4)
CALLER_SAVED = (*range(10, 18), 5, 6, 7, 28, 29, 30, 31)

_ENGINE: list[Engine] = []
_HELPER_CALLS: list[int] = []


def _scramble(eng: Engine) -> int:
    """The helper: clobbers every caller-saved register, returns garbage in a0."""
    _HELPER_CALLS.append(eng.reg(2))
    eng.set_regs([(r, 0x1234_5678_0000_0000 + r) for r in CALLER_SAVED])
    return 0xBAD0_BAD0


def _engine() -> Engine:
    if not _ENGINE:
        eng = get_engine()
        for base, size in ((CODE, 0x10000), (DATA, 0x1000), (STACK, 0x4000), (RET & ~0xFFF, 0x1000)):
            eng.map(base, size)
        eng.add_host_call(HELPER, _scramble)
        _ENGINE.append(eng)
    return _ENGINE[0]


def _run(body: Body, values: tuple[int, ...]) -> tuple[Engine, tuple[MemWrite, ...], str]:
    nr = len(values)
    code = compile_body(body, nr, CODE, HELPER)
    eng = _engine()
    eng.write(CODE, code + bytes(0x1000 - len(code) % 0x1000))
    eng.write(DATA, bytes(0x1000))
    eng.write(STACK, bytes(0x4000))
    for i, v in enumerate(values[8:]):
        eng.write_u64(SP0 + 8 * i, v)
    regs = [(r, 0x5AFE_0000_0000_0000 + n) for n, r in enumerate(CALLEE_SAVED)]
    regs += [(10 + i, v) for i, v in enumerate(values[:8])]
    regs += [(1, RET), (2, SP0)]
    eng.set_regs(regs)
    _HELPER_CALLS.clear()
    res = eng.run(CODE, RET, 10_000, ((STACK, SP0),))
    return eng, res.writes, res.stop


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
    eng, writes, stop = _run(body, values)
    reg = eng.reg
    assert stop == "sentinel"
    assert len(_HELPER_CALLS) == int(body.calls_helper)
    assert all(sp % 16 == 0 for sp in _HELPER_CALLS)
    assert reg(10) == _expected(body, values)
    assert reg(15) == body.a5
    assert reg(2) == SP0
    for n, r in enumerate(CALLEE_SAVED):
        assert reg(r) == 0x5AFE_0000_0000_0000 + n, f"x{r}"
    outside = [(w.addr, w.size, w.value) for w in writes]
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
