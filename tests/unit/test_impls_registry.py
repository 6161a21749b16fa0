"""Registry: every listed name resolves (cached), bad names fail in one line, bug configs derive."""

from __future__ import annotations

import pytest

from sledfuzz.emu.impls.api import Implementation, Jit, Patcher
from sledfuzz.emu.impls.registry import ImplementationError, available, derives_from, resolve

REQUIRED = {
    "v6.3", "v6.6", "v6.8", "v6.11", "v6.12", "v6.16", "next-47c9214dcbea", "v6.19",
    "ftrace=v6.6,tramp=v6.3", "v6.19-pre-7112cd26e606", "v6.19-pre-1732ebc4a261", "v6.19-pre-10541b374aa0",
    "v6.19-pre-9f1e16fb1fc9", "v6.19-pre-8f3e00af8e52", "v6.19-pre-fd2e08128944", "v6.19-pre-2f1b0d3d7331",
    "v6.6-pre-8547649981e6",
}


def test_available_lists_the_required_names() -> None:
    names = {n for n, _ in available()}
    assert names >= REQUIRED
    assert all(desc and "\n" not in desc for _, desc in available())


@pytest.mark.parametrize("name", [n for n, _ in available()])
def test_every_name_resolves_and_is_cached(name: str) -> None:
    impl = resolve(name)
    assert isinstance(impl, Implementation)
    assert impl.name == name and impl.caps.name == name
    assert isinstance(impl.jit, Jit) and isinstance(impl.patcher, Patcher)
    assert resolve(name) is impl
    assert resolve(derives_from(name)) is not None


@pytest.mark.parametrize("bad", ["v6.7", "", "ftrace=v6.6", "ftrace=v6.6,tramp=v9", "v6.3-pre-8f3e00af8e52",
                                 "v6.19-pre-0123456789ab", "no_such_module_xyz:factory", "os:no_such_attr"])
def test_bad_names_raise_one_line(bad: str) -> None:
    with pytest.raises(ImplementationError) as exc:
        resolve(bad)
    assert "\n" not in str(exc.value) and str(exc.value)


def test_close_match_is_suggested() -> None:
    with pytest.raises(ImplementationError, match=r"did you mean 'v6\.19'"):
        resolve("v6.91")


@pytest.mark.parametrize(
    ("name", "clean", "commit", "invariant"),
    [
        ("v6.19-pre-7112cd26e606", "v6.19", "7112cd26e606", "I-RETURN-VALUE"),
        ("v6.19-pre-1732ebc4a261", "v6.19", "1732ebc4a261", "I-RETURN-TARGET"),
        ("v6.19-pre-10541b374aa0", "v6.19", "10541b374aa0", "I-PROG-PROTOCOL"),
        ("v6.19-pre-9f1e16fb1fc9", "v6.19", "9f1e16fb1fc9", "I-SIZE"),
        ("v6.19-pre-8f3e00af8e52", "v6.19", "8f3e00af8e52", "I-NO-RECURSION"),
        ("v6.19-pre-fd2e08128944", "v6.19", "fd2e08128944", "I-RETURN-VALUE"),
        ("v6.19-pre-2f1b0d3d7331", "v6.19", "2f1b0d3d7331", "I-RETURN-VALUE"),
        ("v6.6-pre-8547649981e6", "v6.6", "8547649981e6", "I-TORN"),
        ("ftrace=v6.6,tramp=v6.3", "ftrace=v6.6,tramp=v6.19", "25ad10658dc1", "I-BODY-RUNS"),
    ],
)
def test_bug_configuration_declares_one_more_bug(name: str, clean: str, commit: str, invariant: str) -> None:
    assert derives_from(name) == clean
    bug, base = resolve(name).caps, resolve(clean).caps
    assert {b.commit for b in bug.known_bugs} - {b.commit for b in base.known_bugs} >= {commit}
    assert invariant in bug.known_invariants
    assert bug.sleds_for("kernel_function") == base.sleds_for("kernel_function")


def test_clean_configurations_declare_no_bugs() -> None:
    for name in ("v6.12", "v6.19", "ftrace=v6.6,tramp=v6.19"):
        assert resolve(name).caps.known_bugs == ()


def test_capabilities_by_era() -> None:
    assert not resolve("v6.3").caps.kernel_direct_calls
    assert not resolve("v6.6").caps.kernel_direct_calls
    assert resolve("v6.8").caps.kernel_direct_calls
    assert resolve("ftrace=v6.6,tramp=v6.3").caps.kernel_direct_calls
    assert resolve("v6.8").caps.max_arg_slots == 8 and resolve("v6.11").caps.max_arg_slots == 24
    assert resolve("v6.3").caps.ret_convention == "raw"
    assert resolve("v6.11").caps.ret_convention == "sext32"
    assert resolve("v6.12").caps.ret_convention == "btf"
    keys = {s.key for s in resolve("v6.16").caps.sleds_for("kernel_function")}
    assert keys == {"8,4/c", "4,2/w"}
    assert all(s.call_ops for s in resolve("v6.16").caps.sleds_for("kernel_function"))
    assert {s.key for s in resolve("v6.6").caps.sleds_for("kernel_function")} == {"4,0/c", "2,0/w"}
    assert [s.key for s in resolve("v6.3").caps.sleds_for("bpf_prog")] == ["4,0/w"]
    assert [s.key for s in resolve("v6.6").caps.sleds_for("bpf_prog")] == ["2,0/w"]
    assert [s.scheme for s in resolve("v6.19").caps.sleds_for("struct_ops")] == ["direct"]
