"""Command-line words argparse alone would misread.

`clapdesk search -vocal` is the README's exclusion syntax, but argparse takes any word that
starts with "-" for an option (and "-kick" for `-k ick`). The words are sorted out here, before
argparse sees them, by what the search verb's own options are.
"""

from __future__ import annotations

import argparse


def query_words(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Let `clapdesk search -vocal kick` through: after `search`, a word that starts with "-"
    and is none of search's options is a query word. A leading space keeps argparse from
    reading it as an option; cmd_search strips it again. `--` works as well, as usual."""
    verb_at = _verb_position(argv)
    if verb_at is None or argv[verb_at] != "search":
        return argv
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = sub.choices["search"]._actions
    options = {o for a in actions for o in a.option_strings}
    valued = {o for a in actions for o in a.option_strings if a.nargs != 0}
    out, rest, i = argv[:verb_at + 1], argv[verb_at + 1:], 0
    while i < len(rest):
        word = rest[i]
        option = word.split("=", 1)[0]
        if word == "--":
            out.extend(rest[i:])
            break
        if option in options:
            out.append(word)
            if option in valued and "=" not in word and i + 1 < len(rest):
                out.append(rest[i + 1])
                i += 1
        elif any(word.startswith(o) and word[len(o):].isdigit() for o in valued if len(o) == 2):
            out.append(word)  # -k5
        elif word.startswith("-") and not _number(word):
            out.append(" " + word)
        else:
            out.append(word)
        i += 1
    return out


def _verb_position(argv: list[str]) -> int | None:
    i = 0
    while i < len(argv):
        if argv[i] in ("--library", "--model", "--device", "--precision"):
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return i
    return None


def _number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
