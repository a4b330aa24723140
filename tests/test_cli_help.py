"""Every command documents itself: walked from the parser, so a new command without help fails."""

from __future__ import annotations

import argparse

from tunehouse.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def test_every_command_has_a_description_and_every_option_a_help():
    commands = dict(_commands(build_parser()))
    assert {("run",), ("resume",), ("export",), ("catalog", "compact"), ("jobs", "status")} <= set(commands)
    for path, parser in commands.items():
        name = " ".join(path)
        assert parser.description and len(parser.description.split()) >= 3, f"{name}: no description"
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"


def test_every_command_is_listed_with_a_summary_in_the_top_level_help():
    parser = build_parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {c.dest: c.help for c in top._choices_actions}
    assert set(summaries) == set(top.choices)
    assert all(summaries.values())
