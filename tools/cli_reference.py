"""Write docs/pages/reference/cli.md, the command-line reference, from the commands' own argparse parsers.

    python tools/cli_reference.py            # rewrite the page
    python tools/cli_reference.py --check    # exit 1 if the page is not what the parsers give now

One section per command: its usage line and description, then a table per argument group of each flag, its
default and its help text. The flags' defaults are read from their help text ("(default: ...)", which is where
tfbert's parsers state them, per task where they differ), else from the parser. tests/test_docs.py fails when the
committed page is stale. Building a parser starts nothing: a command without a `build_parser()` is asked for
`--help` with `tfbert.cli.run_cli` replaced by a stub that only hands back the parser.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "pages" / "reference" / "cli.md"
# The commands in the order of the page: the module run with `python -m`, and where its parser comes from.
COMMANDS = ["tfbert.train", "tfbert.distill", "tfbert.predict", "tfbert.evaluate", "tfbert.embed", "tfbert.tune", "tfbert.pretrain",
            "tfbert.convert", "tfbert.encoders.registry"]
USAGE_WIDTH = 100  # fixed, so the page does not depend on the terminal that generated it


class _Captured(Exception):
    def __init__(self, parser):
        super().__init__("parser captured")
        self.parser = parser


def parser_of(module_name: str) -> argparse.ArgumentParser:
    """The command's parser: `build_parser()` where the module has one, else the parser its `main` hands to
    `tfbert.cli.run_cli` (asked with --help, so that nothing would run even if the stub were not reached)."""
    module = importlib.import_module(module_name)
    if hasattr(module, "build_parser"):
        return module.build_parser()
    import tfbert.cli

    def capture(parser, run, argv=None, errors=()):
        raise _Captured(parser)

    real, tfbert.cli.run_cli = tfbert.cli.run_cli, capture
    try:
        module.main(["--help"])
    except _Captured as got:
        return got.parser
    except SystemExit:
        pass
    finally:
        tfbert.cli.run_cli = real
    raise RuntimeError(f"{module_name}: no build_parser(), and main() did not build its parser through "
                       "tfbert.cli.run_cli; teach tools/cli_reference.py where its parser is")


def _expanded_help(action: argparse.Action, prog: str) -> str:
    """The help text as --help prints it (argparse's %(default)s, %(choices)s, ... filled in), on one line."""
    params = {k: v for k, v in {**vars(action), "prog": prog}.items() if v is not argparse.SUPPRESS}
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    text = (action.help or "") % params if action.help else ""
    return " ".join(text.split())


def _split_default(text: str) -> tuple[str, str | None]:
    """('help without its trailing parenthesis', 'default') when the help ends in "(default: X)" or
    "(default here: X)"; else (text, None)."""
    text = text.rstrip()
    if not text.endswith(")"):
        return text, None
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            break
    tail = re.fullmatch(r"\(default( here)?: (.*)\)", text[i:], flags=re.S)
    if not tail:
        return text, None
    return text[:i].rstrip(), tail.group(2) + (" (here)" if tail.group(1) else "")


def _default(action: argparse.Action, stated: str | None) -> str:
    if stated is not None:
        return stated
    if action.required:
        return "required"
    if isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction)) and (
            not action.default or action.default is argparse.SUPPRESS):
        return "off"
    if action.default is None or action.default is argparse.SUPPRESS:
        return ""
    return str(action.default)


def _plain(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([|*_`\[\]])", r"\\\1", text)


def _cell(text: str) -> str:
    """Markdown for a table cell: `code spans` kept, everything else escaped (|, *, _, `, [, ], <, >, \\). A code
    span holding a | is escaped as plain text: GitHub and MkDocs read an escaped pipe in a code span differently."""
    parts = re.split(r"(`[^`|]*`)", text)
    return "".join(part if i % 2 else _plain(part) for i, part in enumerate(parts))


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def render_command(module_name: str) -> str:
    parser = parser_of(module_name)
    invocation = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    lines = [f"## `python -m {module_name}`", "", "```text", _usage(parser)]
    description = (parser.description or "").strip("\n")
    if description:
        lines += ["", description.rstrip()]
    lines += ["```", ""]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        lines += [f"**{group.title}**", "", "| flag | default | help |", "| --- | --- | --- |"]
        for action in actions:
            text, stated = _split_default(_expanded_help(action, parser.prog))
            if action.required and text.endswith("(required)"):
                text = text[: -len("(required)")].rstrip()
            flag = invocation._format_action_invocation(action)
            lines.append(f"| `{flag}` | {_cell(_default(action, stated))} | {_cell(text)} |")
        lines.append("")
    return "\n".join(lines)


def render() -> str:
    """The whole page, as tools/cli_reference.py writes it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    head = [
        "<!-- Generated by tools/cli_reference.py from the commands' parsers. Do not edit: change the parser's help "
        "text, then run `python tools/cli_reference.py`. -->",
        "",
        "# Command line",
        "",
        "Every command, as its parser defines it (the same text as `--help`). A default given per task "
        "(\"ner: 12\") is the task's own, used when the flag is not given; a value given always wins. "
        "[Training options](training.md) explains the training flags at more length.",
        "",
        "Commands: " + ", ".join(f"`python -m {m}`" for m in COMMANDS) + ".",
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(render_command(m) for m in COMMANDS).rstrip("\n") + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write (or --check) docs/pages/reference/cli.md from the parsers.")
    ap.add_argument("--check", action="store_true", help="exit 1 when the page is stale; write nothing")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    text = render()
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run `python tools/cli_reference.py`", file=sys.stderr)
            return 1
        print(f"{PAGE.relative_to(ROOT)} is up to date")
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
