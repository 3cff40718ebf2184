"""Running a Typer app with the toolbox's exit-code contract.

0 success; 2 bad usage, configuration or input (one line on stderr, no traceback);
1 an unexpected failure (a one-line summary; `--debug` shows the traceback);
130 interrupted with Ctrl-C.

Logs go to stderr through `logging` (`<tool>: message`; when stderr is not a terminal,
as in batch jobs and pipes, each line starts with the local time). `--quiet` (or the
environment variable `NET2BRAIN_QUIET=1` / `FOVEX_QUIET=1`, named after the tool) keeps
warnings and errors only and switches progress output off. Every invocation's command
line is recorded for the provenance of its outputs (`net2brain_fovex.io.provenance`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence

import typer

from net2brain_fovex.errors import ToolboxError, described
from net2brain_fovex.io import provenance

_FALSE = ("", "0", "false", "no", "off")


class _State:
    debug = False
    quiet = False
    prog_name = ""  # the running tool (net2brain, fovex): names its environment variables
    interrupted = False  # Ctrl-C came during this run (see `_interrupts`)


state = _State()


def quiet_variable(prog_name: str) -> str:
    """The environment variable that makes a tool quiet: `NET2BRAIN_QUIET`, `FOVEX_QUIET`."""
    return f"{prog_name.upper().replace('-', '_')}_QUIET"


def set_quiet(quiet: bool) -> None:
    """Warnings and errors only, no progress output (or back to info logs)."""
    state.quiet = quiet
    logging.getLogger().setLevel(logging.WARNING if quiet else logging.INFO)


def global_options(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an unexpected error."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q",
        help="Only warnings and errors on stderr, no progress (also: NET2BRAIN_QUIET=1 / FOVEX_QUIET=1).",
    ),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Options that come before the command name."""
    state.debug = debug
    if quiet:
        set_quiet(True)
    if version:
        from net2brain_fovex import __version__

        typer.echo(f"{ctx.info_name} {__version__}")
        raise typer.Exit()


# Typer's completion options (`--install-completion`, `--show-completion`), one line each in --help
_COMPLETION_HELP = {"install_completion": "Install tab completion for this shell.",
                    "show_completion": "Print the completion script."}


def make_app(name: str, help: str) -> typer.Typer:
    """A Typer app with the toolbox's global options (--debug, --version), Typer's shell
    completion, and no pretty tracebacks (errors are handled by `run`)."""
    app = typer.Typer(name=name, help=help, no_args_is_help=True, pretty_exceptions_enable=False)
    app.callback(invoke_without_command=True)(global_options)
    return app


@contextlib.contextmanager
def _warnings_as_log_lines(prog_name: str) -> Iterator[None]:
    """The core's warnings (NaN where a correlation is undefined, ...) as one log line
    each, `prog: warning: ...`, instead of Python's two lines with file and source."""
    logger = logging.getLogger(prog_name)
    original = warnings.showwarning
    warnings.showwarning = lambda message, category, *rest, **kw: logger.warning("warning: %s", message)
    try:
        yield
    finally:
        warnings.showwarning = original


def _on_sigint(signum, frame) -> None:
    state.interrupted = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual, and is remembered: Python swallows one
    raised inside a finaliser or weakref callback ("Exception ignored in ..."), so that
    one is kept silent, raised again at the next progress update
    (`cli_common.progress`), and the run exits 130 even if it got to its end. A SIGINT
    that is ignored (a background job of a script) stays ignored."""
    import signal

    state.interrupted = False
    previous_hook = sys.unraisablehook

    def unraisable(info) -> None:
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
            state.interrupted = True
            return
        previous_hook(info)

    previous = None
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            previous = signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def run(app: typer.Typer, prog_name: str, argv: Sequence[str] | None = None) -> int:
    """Run `app` on `argv` (default: sys.argv[1:]) and return the exit code."""
    state.debug = False
    state.prog_name = prog_name
    configure_logging(prog_name)
    set_quiet(os.environ.get(quiet_variable(prog_name), "").strip().lower() not in _FALSE)
    command = typer.main.get_command(app)
    for param in command.params:
        param.help = _COMPLETION_HELP.get(param.name, param.help)
    # Typer has vendored click in recent releases: find its exception base without importing it.
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command_line = provenance.format_command_line(prog_name, args)
        with provenance.invocation(command_line), _warnings_as_log_lines(prog_name), _interrupts():
            result = command.main(args=args, prog_name=prog_name, standalone_mode=False)
        interrupted, state.interrupted = state.interrupted, False
        if result == 130 or interrupted:  # recent Typer turns Ctrl-C into a returned 130; our commands never do
            print(f"{prog_name}: interrupted", file=sys.stderr)
            return 130
        return result if isinstance(result, int) else 0
    except typer.Exit as done:
        return done.exit_code
    except click_exception as error:  # usage errors: bad flags, missing options
        if type(error).__name__ == "NoArgsIsHelpError":  # a bare command name: its help
            error.show(file=sys.stderr)
        else:
            print(f"{prog_name}: error: {_usage_message(error, prog_name, args)}", file=sys.stderr)
        return error.exit_code
    except (KeyboardInterrupt, typer.Abort):
        state.interrupted = False
        print(f"{prog_name}: interrupted", file=sys.stderr)
        return 130
    except ToolboxError as error:
        print(f"{prog_name}: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the one place that turns crashes into exit 1
        if state.debug:
            traceback.print_exc()
        print(
            f"{prog_name}: unexpected error: {described(error)} "
            f"(rerun with `{prog_name} --debug ...` for the traceback and report it)",
            file=sys.stderr,
        )
        return 1


def _usage_message(error: Exception, prog_name: str, args: Sequence[str] = ()) -> str:
    """A usage error (unknown flag, invalid choice, missing argument) as one line, with
    the value received (when the message lacks it) and where to look up the valid usage."""
    message = " ".join(error.format_message().split()).replace(": Value error, ", ": ").rstrip(".")
    flags = getattr(getattr(error, "param", None), "opts", None) or []
    given = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in flags]
    if given and repr(given[-1]) not in message:
        message += f" (got {given[-1]!r})"
    ctx = getattr(error, "ctx", None)
    command = ctx.command_path if ctx is not None else prog_name
    return f"{message}; see `{command} --help`"


def configure_logging(prog_name: str) -> None:
    """Log records to stderr as `prog: message`, with the time in front when stderr is
    not a terminal (batch logs)."""
    terminal = _isatty(sys.stderr)
    layout = f"{prog_name}: %(message)s" if terminal else f"%(asctime)s {prog_name}: %(message)s"
    logging.basicConfig(level=logging.INFO, format=layout, datefmt="%Y-%m-%d %H:%M:%S", stream=sys.stderr, force=True)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
