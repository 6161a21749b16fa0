"""The run: one case on one implementation, built, executed and observed (DESIGN §1, §7).

``Scenario.run`` asks the core stage (refusals before any JIT runs), sizes and emits the image
(cached per JIT object), patches the sled with the implementation's own patcher (or BPF poke),
lays out the memory image (``memory_map``) into the engine (``address_space``), sets the
parent's registers, runs to the sentinel with the host calls recording (``host_calls``), and
collects the ``Observation`` with the poke and torn-state experiments (``experiments``).

Per worker there is one ``Scenario`` per engine (``scenario_for``): host calls are registered
once and nothing else survives a case (see ``address_space``; every CPU register is reset, the
body observer sits only at this case's body, the caches are per implementation object). Findings
are re-judged on a fresh engine before they are reported (``run_case(fresh=True)``, fuzz.fresh).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sledfuzz.emu.engine import Engine, RunResult, get_engine
from sledfuzz.emu.impls.api import ArgModel, FuncModel, Image, Implementation, LinkReq, Refused, TrampRequest
from sledfuzz.emu.rv64.regs import reg_number
from sledfuzz.emu.scenario.address_space import AddressSpace
from sledfuzz.emu.scenario.experiments import Experiments
from sledfuzz.emu.scenario.host_calls import HostCalls, RunState, foreign_entries
from sledfuzz.emu.scenario.memory_map import (
    CANARY_BYTES,
    N_CANARIES,
    ROLE_PROG0,
    ROLE_PROG_ENTER,
    ROLE_PROG_EXIT,
    ROLE_TRAMP_ENTER,
    ROLE_TRAMP_EXIT,
    SCRAMBLE_TABLE,
    LayoutError,
    Region,
    call_ops_regions,
    host_addr,
    memory_image,
    parent_state,
    scramble_row,
)
from sledfuzz.emu.scenario.owned_cache import OwnedCache
from sledfuzz.model.caps import STRUCT_OPS_SLED, Capabilities, SledLayout
from sledfuzz.model.case import MASK64, Case
from sledfuzz.model.contract import E2BIG, ENOTSUPP, PARENT_RET_OFFSET
from sledfuzz.model.core_stage import CoreRefusal, core_stage
from sledfuzz.model.observation import FINAL_REGS, Observation, PokeCheck, Trap, Write

DEFAULT_BUDGET = 20_000
_FINAL_X = tuple(reg_number(n) for n in FINAL_REGS)


@dataclass(frozen=True)
class _Built:
    """The case-independent part of a run that depends only on (impl, request, layout): cached."""

    sized: int | Refused
    image: Image | Refused | None


class Scenario:
    """One engine with its host calls, mappings and caches; runs cases one after another.

    Not thread-safe; make one per worker (``scenario_for`` keeps one per engine).
    """

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine: Engine = engine if engine is not None else get_engine()
        self.memory = AddressSpace(self.engine)
        self.experiments = Experiments()
        self.hosts = HostCalls(self.engine, lambda run: self.experiments.teardown(self.engine, self.memory, run))
        self._built: OwnedCache[_Built] = OwnedCache()
        self.timing: dict[str, float] = {"jit": 0.0, "setup": 0.0, "run": 0.0, "collect": 0.0}

    def reset(self) -> None:
        """Start over from an empty address space (after a run that ended in an exception)."""
        self.memory.reset()

    # ---- building ----------------------------------------------------------------------------

    def request(self, case: Case, grouped_order: tuple[int, ...], flags: int) -> TrampRequest:
        """The TrampRequest for a case: links in core order, host calls in the hosts region."""
        lay = case.layout
        fn = case.function
        model = FuncModel(
            args=tuple(ArgModel(a.size, a.is_struct, a.signed) for a in fn.args),
            ret_size=fn.ret_size,
            ret_signed=fn.ret_signed,
        )
        links = tuple(
            LinkReq(case.links[i].kind, lay.prog_addr(i), host_addr(lay, ROLE_PROG0 + i), case.links[i].cookie,
                    case.links[i].session_cookie)
            for i in grouped_order
        )
        return TrampRequest(
            model=model,
            links=links,
            flags=flags,
            func_addr=lay.func,
            im=lay.im,
            prog_enter=host_addr(lay, ROLE_PROG_ENTER),
            prog_exit=host_addr(lay, ROLE_PROG_EXIT),
            tramp_enter=host_addr(lay, ROLE_TRAMP_ENTER),
            tramp_exit=host_addr(lay, ROLE_TRAMP_EXIT),
        )

    def _jit(self, impl: Implementation, req: TrampRequest, image_addr: int, page: int) -> _Built:
        key = (req, image_addr, page)
        hit = self._built.get(impl.jit, key)
        if hit is not None:
            return hit
        sized = impl.jit.size(req)
        image: Image | Refused | None = None
        if not isinstance(sized, Refused) and sized <= page:
            image = impl.jit.emit(req, image_addr, sized)
        built = _Built(sized, image)
        self._built.put(impl.jit, key, built)
        return built

    # ---- the run -------------------------------------------------------------------------------

    def run(self, case: Case, impl: Implementation, budget: int = DEFAULT_BUDGET) -> Observation:
        """Build the memory image for (case, impl), run it, and report what happened."""
        t0 = time.perf_counter()
        lay = case.layout
        parent_ret = (lay.parent + PARENT_RET_OFFSET) & MASK64
        core = core_stage(case)
        if isinstance(core, CoreRefusal):
            return Observation(refused=core.errno, refused_reason=core.reason, parent_ret=parent_ret)
        caps = impl.caps
        sled = _sled_of(caps, case)
        if not case.links and case.target != "struct_ops":
            # Nothing attached: the core unregisters an empty trampoline, so the sled stays as
            # ftrace (or the BPF JIT) left it and the function simply runs.
            return self._run_image(case, impl, sled, None, None, budget, t0)
        if case.target == "kernel_function" and not caps.kernel_direct_calls:
            # No trampoline attaches, but ftrace still patches this sled (to ftrace_caller): its
            # in-flight states are judged all the same (I-TORN).
            torn = self.experiments.torn_states(case, impl, sled, lay.ftrace_caller)
            return Observation(refused=ENOTSUPP, refused_reason="register_fentry: no ftrace direct calls",
                               parent_ret=parent_ret, torn=torn)
        req = self.request(case, core.order, core.flags)
        built = self._jit(impl, req, lay.image, caps.page_size)
        t1 = time.perf_counter()
        self.timing["jit"] += t1 - t0
        if isinstance(built.sized, Refused):
            return Observation(refused=built.sized.errno, refused_reason=built.sized.reason, parent_ret=parent_ret)
        sized = built.sized
        if sized > caps.page_size:
            return Observation(refused=E2BIG, refused_reason=f"sized {sized} bytes > page {caps.page_size}",
                               sized_len=sized, parent_ret=parent_ret)
        image = built.image
        assert image is not None
        if isinstance(image, Refused):
            return Observation(refused=image.errno, refused_reason=image.reason, sized_len=sized, parent_ret=parent_ret)
        return self._run_image(case, impl, sled, image, sized, budget, t1)

    def _run_image(self, case: Case, impl: Implementation, sled: SledLayout, image: Image | None,
                   sized: int | None, budget: int, t1: float) -> Observation:
        """Lay out parent, sled (patched to ``image``, or as initialised when ``image`` is None:
        nothing attached), body, image and hosts; run; collect the Observation."""
        lay = case.layout
        parent_ret = (lay.parent + PARENT_RET_OFFSET) & MASK64
        body_addr = (lay.func + sled.entry_bytes) & MASK64 if case.target != "struct_ops" else 0
        extra: list[Region] = []
        post_init = b""
        patched = b""
        if image is None:
            post_init = patched = impl.patcher.init_sled(sled, lay.func, lay.ftrace_caller)
        elif case.target == "kernel_function":
            post_init = impl.patcher.init_sled(sled, lay.func, lay.ftrace_caller)
            patched = impl.patcher.patch(sled, lay.func, image.addr, lay.ftrace_caller)
            if sled.call_ops:
                patched, extra = call_ops_regions(lay, patched, image.addr)
        elif case.target == "bpf_prog":
            post_init = impl.patcher.init_sled(sled, lay.func, lay.ftrace_caller)
            res = self.experiments.bpf_poke(impl, lay.func, post_init, "nop", "call", 0, image.addr)
            if res.rc:
                return Observation(refused=res.rc, refused_reason=f"bpf_arch_text_poke NOP->CALL: errno {res.rc}",
                                   sized_len=sized, emitted_len=image.used_len, parent_ret=parent_ret,
                                   image_addr=image.addr)
            patched = res.site
        mem = memory_image(case, sled, patched, (image.addr, image.code) if image is not None else None, body_addr,
                           extra)
        self.memory.lay(mem.regions, mem.volatile)
        scramble, regs = parent_state(case, mem.entry_sp)
        self.engine.write(SCRAMBLE_TABLE, scramble)
        self.engine.reset_cpu()
        self.engine.set_regs(regs)
        self.hosts.observe_body(body_addr or None)
        self.engine.watch(mem.function)
        run = RunState(case, impl, image, scramble_row(case.seed))
        self.hosts.run = run
        t2 = time.perf_counter()
        self.timing["setup"] += t2 - t1
        try:
            res_run: RunResult = self.engine.run(mem.start, parent_ret, budget, ((lay.stack, mem.entry_sp),))
        finally:
            self.hosts.run = None
        t3 = time.perf_counter()
        self.timing["run"] += t3 - t2

        writes = tuple(Write(w.addr, w.size, w.value, w.pc) for w in res_run.writes)
        self.memory.after_run(writes, mem.volatile)
        foreign = self._foreign_entries(res_run.crossings, lay.func, body_addr, mem.function) if mem.function else ()
        trap: Trap | None = None
        final: tuple[int, ...] | None = None
        return_pc: int | None = None
        if res_run.stop == "sentinel":
            return_pc = res_run.pc
            final = tuple(self.engine.regs(_FINAL_X))
        else:
            trap = Trap(res_run.stop, res_run.pc, res_run.fault_addr, res_run.detail)
        canaries_ok = self.engine.read(mem.canary_at, 8 * N_CANARIES) == CANARY_BYTES
        pokes: tuple[PokeCheck, ...] = ()
        if image is not None:
            pokes = tuple(run.teardown_pokes) + self.experiments.poke_checks(case, impl, sled, image.addr, post_init,
                                                                              patched)
            torn = self.experiments.torn_states(case, impl, sled, image.addr)
        else:
            torn = self.experiments.torn_states(case, impl, sled, lay.ftrace_caller)
        obs = Observation(
            refused=None,
            sized_len=sized,
            emitted_len=image.used_len if image is not None else None,
            events=tuple(run.events),
            body_entries=tuple(run.entries),
            foreign_entries=foreign,
            final=final,
            return_pc=return_pc,
            trap=trap,
            writes=writes,
            steps=res_run.steps,
            budget=budget,
            entry_sp=mem.entry_sp,
            canaries_ok=canaries_ok,
            pokes=pokes,
            torn=torn,
            parent_ret=parent_ret,
            body_addr=body_addr,
            image_addr=image.addr if image is not None else None,
            ip_after_call=image.ip_after_call if image is not None else None,
            ip_epilogue=image.ip_epilogue if image is not None else None,
        )
        self.timing["collect"] += time.perf_counter() - t3
        return obs

    def _foreign_entries(self, crossings: tuple[tuple[int, int, int], ...], func: int, body_addr: int,
                         function: tuple[int, int]) -> tuple[int, ...]:
        """``host_calls.foreign_entries`` on this engine (I-SLED-CONSISTENT)."""
        return foreign_entries(self.engine, crossings, func, body_addr, function)


def _sled_of(caps: Capabilities, case: Case) -> SledLayout:
    sled = caps.sled_for(case.target, case.sled)
    if sled is not None:
        return sled
    if case.target == "struct_ops":
        return STRUCT_OPS_SLED
    raise LayoutError(f"{caps.name} declares no {case.target} sled {case.sled} (an invalid case for it)")


_SCENARIOS: dict[int, tuple[Engine, Scenario]] = {}


def scenario_for(engine: Engine | None = None) -> Scenario:
    """The worker's Scenario for ``engine`` (None: the process-wide default engine)."""
    key = 0 if engine is None else id(engine)
    hit = _SCENARIOS.get(key)
    if hit is None:
        sc = Scenario(engine)
        _SCENARIOS[key] = (sc.engine, sc)
        return sc
    return hit[1]


def run_case(case: Case, impl: Implementation, *, engine: Engine | None = None,
             budget: int = DEFAULT_BUDGET, fresh: bool = False) -> Observation:
    """Run ``case`` on ``impl`` and return what happened (see the package docstring).

    ``fresh``: on a new engine with no history (not the worker's, and not kept afterwards): what
    a finding is re-judged on before it is reported (fuzz.fresh)."""
    if fresh:
        return Scenario(get_engine()).run(case, impl, budget)
    return scenario_for(engine).run(case, impl, budget)
