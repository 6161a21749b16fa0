"""Which findings are new: the signature of a minimised case, and what earlier nights saw.

A finding is keyed by (implementation, invariant, signature). The signature hashes the case's
structure (target, sled, flags, links and their kinds/enter/ip use, argument shapes, body shape,
return type, layout) and leaves out the plain values a minimiser may stop at different points of
(argument values, program return values, cookies, the body's constants). A key is known when the
corpus holds an entry failing that way, when the state file of earlier nights lists it, or when
the shared database (``--hypothesis-db``) does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sledfuzz.fuzz.corpus import atomic_write_text, entry_files, load_entry
from sledfuzz.model.case import Case, CaseError

STATE_SCHEMA = 1


def signature(case: Case) -> str:
    """12 hex digits naming the minimised case's structure (see the module docstring)."""
    fn = case.function
    body = fn.body
    shape: dict[str, Any] = {
        "target": case.target,
        "sled": case.sled,
        "flags": case.flags,
        "teardown": case.teardown,
        "links": [[lk.kind, min(lk.enter, 2), lk.wants_ip] for lk in case.links],
        "args": [[a.size, a.is_struct, a.signed] for a in fn.args],
        "ret": [fn.ret_size, fn.ret_signed],
        "body": [len(body.coeffs), body.ret32, body.store is not None and body.store.slot, body.calls_helper,
                 body.uses_saved, body.frame_pointer, body.compressed],
        "layout": case.to_dict().get("layout"),
    }
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, order=True)
class FindingKey:
    impl: str
    invariant: str
    signature: str

    def text(self) -> str:
        return f"{self.impl}|{self.invariant}|{self.signature}"

    @staticmethod
    def from_text(text: str) -> FindingKey | None:
        parts = text.split("|")
        return FindingKey(*parts) if len(parts) == 3 and all(parts) else None


def corpus_keys(paths: Iterable[Path]) -> set[FindingKey]:
    """Keys of every failing verdict the corpus expects (unreadable entries are the replay's business)."""
    out: set[FindingKey] = set()
    for path in entry_files([str(p) for p in paths if p.exists()]):
        try:
            entry = load_entry(path)
        except (OSError, CaseError, UnicodeDecodeError):
            continue
        sig = signature(entry.case)
        for impl, verdict in entry.expect.items():
            if verdict.status == "fail":
                out.update(FindingKey(impl, inv, sig) for inv in verdict.invariants)
    return out


class NightState:
    """The state file of earlier nights: every finding key seen, when first, and its case file.

    Saved atomically after each new key, so an interrupted night still counts what it found.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[str, dict[str, str]] = {}
        if path.exists():
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("schema") == STATE_SCHEMA and isinstance(data.get("seen"), dict):
                    self.seen = {str(k): dict(v) for k, v in data["seen"].items() if isinstance(v, dict)}

    def keys(self) -> set[FindingKey]:
        return {k for k in (FindingKey.from_text(t) for t in self.seen) if k is not None}

    def add(self, key: FindingKey, case_path: str) -> None:
        if key.text() in self.seen:
            return
        self.seen[key.text()] = {"first_seen": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "case": case_path}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"schema": STATE_SCHEMA, "seen": self.seen}, indent=1, sort_keys=True)
                          + "\n")
