"""Inputs a user (or an attacker's file) can hand the CLI: help text, hostile files, output
directories. Every malformed input is one line on stderr with exit 2, quickly, never a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from fuzz.cli import build_parser


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _shown(default: object) -> str:
    return f"{default:g}" if isinstance(default, float) else str(default)


def test_every_option_has_help_naming_its_default() -> None:
    checked = 0
    for parser in _parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
                continue
            where = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{where}: no help text"
            text = formatter._expand_help(action)
            checked += 1
            if action.required or not action.option_strings:
                continue  # a required option or a positional has no default to state
            assert "default" in text, f"{where}: the help does not say what happens by default: {text!r}"
            if action.default not in (None, False):
                assert _shown(action.default) in text, f"{where}: default {action.default!r} not in {text!r}"
    assert checked > 30  # every subcommand's options were walked
