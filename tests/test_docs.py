"""The docs are a site a user reads, and stay true: `mkdocs build --strict` passes (no broken link), the README
stays short, and every `reid-export` command shown in README.md and docs/*.md names a real command and only
options that command has, parsed by the real command line."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from reid_export.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_LIMIT = 12_000  # characters (issue 18)

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```|~~~)(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                   re.M | re.S)
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}  # ```text blocks (printed output) are not commands
INLINE = re.compile(r"(?<!`)`((?:\S*/)?reid-export [^`\n]+)`(?!`)")
PROGRAMS = ("reid-export", "reid_export.cli")  # `torchrun ... -m reid_export.cli train ...` counts too
SEPARATORS = {"&&", "||", "|", ";", ">", ">>"}
NUMBER = re.compile(r"^-\d")


def _cli_commands() -> dict[tuple[str, ...], object]:  # up here: a parametrize below calls it
    """Every leaf command of the CLI by its path: ("bench",), ("index", "build"), ..."""
    out = {}

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            out[path] = command

    walk(typer.main.get_command(app), ())
    return out


def test_the_site_builds_with_no_broken_link(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]' (the dev extra has it)")
    pytest.importorskip("material", reason="mkdocs-material is not installed: pip install -e '.[docs]'")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    for page in ("index.html", "getting-started/index.html", "commands/index.html", "benchmarks/index.html"):
        assert (site / page).is_file(), page


def test_the_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text) <= README_LIMIT, f"README.md has {len(text)} characters; move detail into docs/"
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert any(t.startswith("docs/img/") for t in local), "the README shows one screenshot from docs/img/"
    assert [t for t in local if not (ROOT / t).exists()] == []


def test_ci_runs_the_readme_test_command_exactly():
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv") and "pytest" in line]
    assert len(commands) == 1, commands
    assert commands[0] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_extractor_finds_the_commands_of_every_page():
    shown = _shown_commands()
    pages = {where.partition(":")[0] for where, _ in shown}
    assert {"README.md", "docs/commands.md", "docs/getting-started.md"} <= pages
    assert len(shown) >= 40
    assert any(argv[:2] == ["index", "build"] for _, argv in shown)


def test_every_command_shown_in_the_docs_exists_with_the_options_it_uses():
    problems = _problems(_shown_commands())
    assert problems == [], "\n".join(problems)


def test_a_stale_command_or_option_in_the_docs_is_caught():
    problems = _problems([("a.md:1", ["bench", "--data", "D", "--no-such-option", "1"]), ("a.md:2", ["trian", "--data", "D"]),
                          ("a.md:3", ["onnx", "m.pt", "--precision"]), ("a.md:4", ["index", "build", "--data", "D"])])
    assert len(problems) == 3
    assert "a.md:1" in problems[0] and "--no-such-option" in problems[0]
    assert "a.md:2" in problems[1] and "is not a command" in problems[1]
    assert "a.md:3" in problems[2] and "--precision" in problems[2]


@pytest.mark.parametrize("path", [(), *sorted(_cli_commands())], ids=lambda path: " ".join(path) or "reid-export")
def test_each_command_help_runs(path):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_every_command_is_shown_somewhere_in_the_docs():
    shown = {tuple(argv) for _, argv in _shown_commands()}
    missing = [p for p in _cli_commands() if not any(s[:len(p)] == p for s in shown)]
    assert missing == [], f"no page shows {', '.join(' '.join(p) for p in missing)}: add it to docs/commands.md"


def test_the_architecture_page_names_every_package_and_top_level_module():
    page = (DOCS / "architecture.md").read_text()
    package = ROOT / "reid_export"
    names = [p.name + "/" for p in package.iterdir() if (p / "__init__.py").is_file()]
    names += [p.name for p in package.glob("*.py") if p.name != "__init__.py"]
    missing = sorted(n for n in names if n not in page)
    assert missing == [], f"docs/architecture.md does not name {missing}: add them to its Layout"


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _shown_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after the program name) of every command line shown: in the shell code blocks and the inline
    code spans of README.md and docs/*.md. Brackets of optional groups are dropped; `a|b` values stay as they are."""
    found = []
    for path in _doc_files():
        text = path.read_text()
        name = path.relative_to(ROOT)
        for block in FENCE.finditer(text):
            if block["lang"] not in SHELL_BLOCKS:
                continue
            first_line = text.count("\n", 0, block.start("body")) + 1
            for offset, line in _logical_lines(block["body"]):
                found += [(f"{name}:{first_line + offset}", argv) for argv in _commands_in(line, comments=True)]
        for span in INLINE.finditer(text):
            line = text.count("\n", 0, span.start()) + 1
            found += [(f"{name}:{line}", argv) for argv in _commands_in(span[1], comments=False)]
    return found


def _problems(shown: list[tuple[str, list[str]]]) -> list[str]:
    """What is wrong with each shown command: not a command, an option its command lacks, or not parsing."""
    commands = _cli_commands()
    problems = []
    for where, argv in shown:
        path = next((p for p in sorted(commands, key=len, reverse=True) if tuple(argv[:len(p)]) == p), None)
        if path is None and argv[:1] in ([], ["--help"]):
            continue  # `reid-export --help`: test_each_command_help_runs runs it
        if path is None:
            problems.append(f"{where}: `reid-export {' '.join(argv[:2])}` is not a command "
                            f"(commands: {', '.join(' '.join(p) for p in sorted(commands))})")
            continue
        command = commands[path]
        params = {name: param for param in command.params for name in (*param.opts, *param.secondary_opts)}
        args = argv[len(path):]
        unknown = [a.partition("=")[0] for a in args if a.startswith("-") and a != "-" and not NUMBER.match(a)
                   and a.partition("=")[0] not in params and a != "--help"]
        if unknown:
            problems.append(f"{where}: `reid-export {' '.join(path)}` has no option {', '.join(unknown)}")
            continue
        valueless = [a for a, after in zip(args, [*args[1:], None]) if a in params and _takes_value(params[a])
                     and (after is None or after in params)]
        if valueless:
            problems.append(f"{where}: `reid-export {' '.join(path)}`: {', '.join(valueless)} needs a value")
            continue
        try:  # the real parser, without running anything: flags, counts of arguments
            command.make_context(" ".join(path), list(args), resilient_parsing=True)
        except Exception as e:  # click's usage errors
            problems.append(f"{where}: `reid-export {' '.join(argv)}` does not parse: {e}")
    return problems


def _takes_value(param) -> bool:
    return param.param_type_name == "option" and not param.is_flag and not param.count


def _logical_lines(body: str) -> list[tuple[int, str]]:
    """(line offset, text) of a block's shell lines, continuation lines (ending with a backslash) joined onto
    the line they continue; a joined command is reported at its first line."""
    out, parts, start = [], [], 0
    for i, line in enumerate(body.split("\n")):
        if not parts:
            start = i
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        out.append((start, " ".join([*parts, line])))
        parts = []
    if parts:
        out.append((start, " ".join(parts)))
    return out


def _commands_in(line: str, *, comments: bool) -> list[list[str]]:
    """The argv (after the program) of each `reid-export ...` command in one shell line."""
    try:
        tokens = shlex.split(line, comments=comments)
    except ValueError:  # an unbalanced quote in prose-like text: fall back to whitespace
        tokens = line.split()
    commands, current = [], None
    for token in tokens:
        if token in SEPARATORS or token.endswith(";"):
            if current is not None and token.endswith(";") and token != ";":
                current.append(token[:-1])
            if current is not None:
                commands.append(current)
            current = None
            continue
        if current is None:
            if token.rsplit("/", 1)[-1] in PROGRAMS:
                current = []
            continue
        token = token.strip("[]")
        if token and token not in ("...", "…"):
            current.append(token)
    if current is not None:
        commands.append(current)
    return commands
