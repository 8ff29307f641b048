"""The ``congvan`` command: one parser assembled from the command groups, and ``main``.

Each group is a module that registers its own subcommands: serving (serve, worker,
scheduler, migrate, demo), directory (agencies, authorities, tokens), peers, documents,
explain (explain, stuck), keys,
audit, evidence (export and verify a bundle), verify (with verdict, how a verdict is
shown), timers, escalations (with time-rules), notify (notification routes and dead
letters) and graph.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib.metadata
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

import pydantic
import pydantic_settings
import sqlalchemy.exc

from congvan.states.errors import (
    AlreadyExists,
    CongvanError,
    DatabaseNotReady,
    DatabaseUnavailable,
    InvalidEncoding,
    InvalidInput,
    Unavailable,
)
from congvan.storage.database import USABLE_URLS, disk_trouble, duplicate_key

from ..settings import ENV_PREFIX, Settings, variable, variables_named
from . import (
    audit,
    directory,
    documents,
    escalations,
    evidence,
    explain,
    graph,
    keys,
    notify,
    peers,
    serving,
    timers,
    verify,
)
from .runtime import settings_from

GROUPS = (
    serving,
    directory,
    peers,
    documents,
    explain,
    keys,
    audit,
    evidence,
    verify,
    timers,
    escalations,
    notify,
    graph,
)


_COMMAND_PARSER = "_command_parser"  # the parser of the command a line names, while parsing


class _Parser(argparse.ArgumentParser):
    """argparse, with no option taken for a longer one it begins (``--secret`` read as
    ``--secret-file``, the secret then printed as a file name not found), and words it
    does not know told by their option names only: a value typed after a mistaken option
    may be a secret. Sub-commands' parsers are of this class too (``add_subparsers``), and
    each takes the installation's options as well, so that ``congvan demo --data-dir D``
    is ``congvan --data-dir D demo``: given after the command, they override."""

    def __init__(self, *args: Any, root: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Commands)
        # A sub-command's parser sets them only when they are given (SUPPRESS): left out,
        # what was given before the command stands.
        default = None if root else argparse.SUPPRESS
        self.add_argument(
            "--data-dir",
            default=default,
            help="where the embedded database lives (default: $CONGVAN_DATA_DIR, else "
            "$XDG_DATA_HOME/congvan or ~/.local/share/congvan)",
        )
        self.add_argument("--database-url", default=default, help="overrides CONGVAN_DATABASE_URL")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        """A usage mistake, said as every other error is (``error [invalid_input]: …``),
        after the usage of the command it was made in, with the command meant when a
        name was mistyped; exit 2, as argparse does. An option this command does not know
        is told before a command or value missing after it (``congvan --bogus``)."""
        if message.startswith("the following arguments are required"):
            words = list(getattr(self, "_words", ()))
            words = words[: words.index("--")] if "--" in words else words  # then values
            unknown = [
                word.split("=", 1)[0]
                for word in words
                if word.startswith("-")
                and word != "-"
                and word.split("=", 1)[0] not in self._option_string_actions
            ]
            if unknown:
                message = f"unrecognized arguments: {', '.join(unknown)}"
                message += _option_meant(self, unknown)
        self.print_usage(sys.stderr)
        self.exit(2, f"error [invalid_input]: {self.prog}: {message}{_meant(message)}\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        known, extras = self.parse_known_args(args, namespace)
        # the command the words were typed for: its usage, not the top level's
        parser = getattr(known, _COMMAND_PARSER, self)
        if hasattr(known, _COMMAND_PARSER):
            delattr(known, _COMMAND_PARSER)
        if extras:
            # options by their names; other words only counted: one may be a secret
            options = [word.split("=", 1)[0] for word in extras if word.startswith("-")]
            words = len(extras) - len(options)
            said = [*options, *([f"{words} other word(s), not shown"] if words else [])]
            parser.error(
                f"unrecognized arguments: {', '.join(said)}{_option_meant(parser, options)}"
            )
        return known


def _option_meant(parser: argparse.ArgumentParser, typed: list[str]) -> str:
    """ "; did you mean '--start'?" for the first option typed that is close to one the
    command takes (``--strat``); else nothing."""
    known = [o for o in parser._option_string_actions if o.startswith("--")]
    for option in typed:
        close = difflib.get_close_matches(option, known, n=1)
        if close:
            return f"; did you mean {close[0]!r}?"
    return ""


def _meant(message: str) -> str:
    """ "; did you mean 'migrate'?" for argparse's "invalid choice: 'migrat' (choose from
    …)", when one of the choices is close; else nothing."""
    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if found is None:
        return ""
    choices = re.findall(r"'([^']*)'", found.group(2))
    close = difflib.get_close_matches(found.group(1), choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Sub-commands whose ``--help`` opens with what the command does: the line the list
    of commands gives it, unless the command says more."""

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        said = kwargs.get("help")
        if said and not kwargs.get("description"):
            kwargs["description"] = f"{said[:1].upper()}{said[1:].rstrip('.')}."
        return super().add_parser(name, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        super().__call__(parser, namespace, values, option_string)
        # the innermost command's parser is set first (in its own namespace, copied here)
        if not hasattr(namespace, _COMMAND_PARSER):
            setattr(namespace, _COMMAND_PARSER, self._name_parser_map[values[0]])


def _help_asked(argv: Sequence[str]) -> list[str]:
    """``congvan help [COMMAND …]`` as ``congvan [COMMAND …] --help``, as git reads it."""
    words = list(argv)
    if words[:1] == ["help"]:
        return [*words[1:], "--help"]
    return words


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="congvan",
        description="Workflow engine for official electronic documents between state agencies.",
        root=True,
    )
    parser.add_argument("--version", action="version", version=f"congvan {_installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parser(sub)
    return parser


def _installed_version() -> str:
    """The version of the package installed (its metadata), or ``unknown`` run from a
    checkout that was never installed."""
    try:
        return importlib.metadata.version("congvan")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _check_arguments(args: argparse.Namespace) -> None:
    """Every argument is UTF-8 text, as the API asks of its input.

    Python hands undecodable bytes of the command line on as lone surrogates, which
    the database would refuse halfway through a command.
    """
    for name, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                option = name.replace("_", "-")
                raise InvalidEncoding(
                    f"The argument {option} is not UTF-8 text.", field=option, location="argument"
                ) from exc


def _check_environment() -> None:
    """Every ``CONGVAN_*`` variable is UTF-8 text (Python hands undecodable bytes on as
    lone surrogates, which no file name, URL or passphrase can be). Its value is never
    said: it may be a secret."""
    for name, value in os.environ.items():
        if not name.startswith("CONGVAN_"):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEncoding(
                f"The environment variable {name} is not UTF-8 text.",
                field=name,
                location="environment",
            ) from exc
        _warn_if_unknown(name)


# CONGVAN_* variables that are read but are not settings: the PKCS#12 password of
# ``keys import`` and the benchmarks' own.
_NOT_SETTINGS = frozenset(
    {"CONGVAN_P12_PASSWORD", "CONGVAN_BENCH_PG_URL", "CONGVAN_BENCH_SPY_KEEP"}
)


# Words an operator may use for what a setting names otherwise.
_SAID_OTHERWISE = (
    ("PASSWORD", "PASSPHRASE"),
    ("PASSWD", "PASSPHRASE"),
    ("PWD", "PASSPHRASE"),
    ("DB_", "DATABASE_"),
    ("FOLDER", "DIR"),
    ("DIRECTORY", "DIR"),
)


def _warn_if_unknown(name: str) -> None:
    """A ``CONGVAN_*`` variable no setting reads is said once on stderr, with the setting it
    was likely meant for: a misspelt ``CONGVAN_DATABSE_URL`` would otherwise run on the
    embedded SQLite file without a word."""
    field = name.removeprefix(ENV_PREFIX).lower()
    if field in Settings.model_fields or name in _NOT_SETTINGS:
        return
    known = [variable(f) for f in Settings.model_fields]
    # Spelt as it was, or with a word people use for another (a key's "password" is its
    # passphrase here): the closest setting to any of them.
    spellings = [name, *(name.replace(a, b) for a, b in _SAID_OTHERWISE if a in name)]
    scored = [
        (difflib.SequenceMatcher(None, spelt, setting).ratio(), setting)
        for spelt in spellings
        for setting in known
    ]
    best = max(scored, default=(0.0, ""))
    close = [best[1]] if best[0] >= 0.8 else []
    hint = f"; did you mean {close[0]}?" if close else ""
    print(f"warning: {name} is not a setting congvan reads, it is ignored{hint}", file=sys.stderr)


def _flush_stdout() -> None:
    """Write out what the command printed: a full disk under it is said now, in one coded
    line, not as a traceback at exit; what could not be written then goes nowhere."""
    try:
        sys.stdout.flush()
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program stands, so that it ends as Ctrl-C ends it: what
    was committed stays, what was under way rolls back, temporary folders are removed
    (the default action ends the process where it stands, leaving them)."""


def _terminated(_signal: int, _frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    # (signals reach the main thread only; serve, worker and scheduler stop cleanly on
    # SIGTERM in their own way, set while they run)
    on_main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminated) if on_main else None
    try:
        return _main(argv)
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)


def _main(argv: Sequence[str] | None) -> int:
    _printable_anywhere()
    try:
        args = build_parser().parse_args(_help_asked(sys.argv[1:] if argv is None else argv))
        _check_arguments(args)
        _check_environment()
        settings = settings_from(args)
        code: int = args.func(args, settings)
        _flush_stdout()
        return code
    except KeyboardInterrupt as exc:
        # Ctrl-C: what was committed stays, what was under way rolled back with it.
        if isinstance(exc, Terminated):
            print("terminated", file=sys.stderr)
            return 143  # 128 + SIGTERM, as a shell reports it
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``congvan graph | head``): nothing more to say to it. As
        # Python's documentation advises, later writes (at exit) go nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:
        error = exc if isinstance(exc, CongvanError) else _operator_error(exc)
        if error is None:
            raise  # our bug: the traceback is what to report
        print(f"error [{error.code}]: {error.message}", file=sys.stderr)
        if error.details:
            print(json.dumps(error.details, ensure_ascii=False), file=sys.stderr)
        return 2


def _printable_anywhere() -> None:
    """Output to a terminal or file whose encoding cannot hold Vietnamese (cp1252 on
    Windows, a Latin-1 locale) shows what it cannot as escapes (\\u1ea1), never a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _setting_named(ours: bool, loc: tuple[int | str, ...]) -> str:
    """A setting as the operator writes it: ``CONGVAN_WEBHOOK_TIMEOUT_SECONDS``, an item of
    a list after it (``CONGVAN_NOTIFY_PRIVATE_NETWORKS[1]``)."""
    if not loc:
        return "settings"
    first, rest = str(loc[0]), "".join(f"[{part}]" for part in loc[1:])
    return (variable(first) if ours and first in Settings.model_fields else first) + rest


def _operator_error(exc: Exception) -> CongvanError | None:
    """What went wrong outside the program, as the operator can mend it: a setting, the
    database, a file. None for anything else."""
    if isinstance(exc, pydantic.ValidationError):
        ours = exc.title == Settings.__name__
        problems, named = [], []
        for e in exc.errors():
            text = e["msg"].removeprefix("Value error, ")
            text = variables_named(text) if ours else text
            if e["loc"]:
                named.append(_setting_named(ours, e["loc"]))
                problems.append(f"{named[-1]}: {text}")
            else:  # several settings judged together: the message names them
                named += re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]+", text)
                problems.append(text)
        return InvalidInput(
            "A setting is not valid (CONGVAN_* environment or option): " + "; ".join(problems),
            location="settings",
            settings=list(dict.fromkeys(named)),
        )
    if isinstance(exc, pydantic_settings.SettingsError):
        # A value pydantic-settings could not even decode (not JSON where a list or an
        # object is read): named by its variable, as every other setting's problem is.
        found = re.search(r'field "([a-z0-9_]+)"', str(exc))
        if found is None or found[1] not in Settings.model_fields:
            return InvalidInput(f"A setting is not valid: {exc}", location="settings")
        name = variable(found[1])
        return InvalidInput(
            f"A setting is not valid (CONGVAN_* environment or option): {name}: not JSON, "
            'which this setting is written in (a list, as ["2027-04-30"], or an object)',
            location="settings",
            settings=[name],
        )
    # alembic is loaded by the commands that migrate or check the schema only; an error of
    # its own comes from one of them.
    alembic_errors = sys.modules.get("alembic.util.exc")
    if alembic_errors is not None and isinstance(exc, alembic_errors.CommandError):
        return DatabaseNotReady(
            f"The database is at a revision this version does not know: {exc}",
        )
    if isinstance(exc, sqlalchemy.exc.ArgumentError | sqlalchemy.exc.NoSuchModuleError):
        # Not the URL itself: it may hold a password.
        return InvalidInput(
            f"The database URL is not one congvan can use: {USABLE_URLS}.", field="database_url"
        )
    if isinstance(exc, sqlalchemy.exc.IntegrityError) and duplicate_key(exc):
        # Another command (or the server) added the same row between our look and our
        # insert: nothing of this one was kept, as the API answers it.
        return AlreadyExists(
            "This would duplicate a record another change added meanwhile; nothing was "
            "kept: run it again to see where things stand."
        )
    if isinstance(exc, sqlalchemy.exc.DBAPIError | ModuleNotFoundError):
        first = str(exc).split("\n")[0]
        trouble = disk_trouble(exc)
        if trouble == "disk_full":  # the transaction rolled back whole
            return Unavailable(
                "The disk under the database is full: what this command was writing when "
                "it filled was not kept; free some space and run it again.",
                errno="ENOSPC",
            )
        if trouble == "disk_io":
            # SQLITE_IOERR: a write the disk refused, most often because it filled up
            return Unavailable(
                "SQLite could not write to the database's disk (disk I/O error): it is "
                "probably full, or failing. What this command was writing was not kept; "
                "check the free space (df) and the system log, then run it again.",
                errno="EIO",
            )
        if "unable to open database file" in first:
            return DatabaseUnavailable(
                "SQLite cannot open the database file: its folder must exist and be "
                "writable by this user (SQLite writes its -wal and -shm files beside the "
                "database, even to read it)."
            )
        return DatabaseUnavailable(f"The database cannot be used: {first}")
    if (
        isinstance(exc, FileExistsError | NotADirectoryError)
        and exc.filename is not None
        and not os.path.isdir(exc.filename)
    ):
        # A folder named where a file is (--data-dir, CONGVAN_TRUST_DIR)
        return InvalidInput(
            f"{str(exc.filename)[:300]} is a file (or lies under one), not a folder.",
            field="path",
            location="file",
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return InvalidInput(
            f"{exc.strerror or exc}: {str(exc.filename)[:300]}", field="path", location="file"
        )
    if isinstance(exc, OSError) and exc.errno is not None:
        # A write the system refused with no file named: a full disk, a quota, an I/O
        # error. Nothing was kept of it (files are written whole or not at all).
        return Unavailable(
            f"Reading or writing failed: {exc.strerror or exc}; nothing was kept of it.",
            errno=errno.errorcode.get(exc.errno, str(exc.errno)),
        )
    return None
