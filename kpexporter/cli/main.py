"""The ``kpexporter`` command: the parser, the dispatch to each command, the exit codes.

Each command validates all of its arguments before it starts anything: bad usage or
configuration prints one line naming the argument or field and exits 64; a closed stdout
(``check | head -1``) exits quietly; nothing ever shows a user a traceback. The serve and
check flags come from the config schema (``kpexporter.config.schema.SETTINGS``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from kpexporter import __version__
from kpexporter.cli.errors import EX_SOFTWARE, EX_USAGE, UsageError
from kpexporter.config.schema import ENV_PREFIX, SETTINGS, Config, ConfigError, build_config
from kpexporter.config.table import shown_default
from kpexporter.logs import setup_logging

EX_PIPE = 128 + signal.SIGPIPE  # what a shell reports for a filter whose reader went away


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 64 (EX_USAGE)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EX_USAGE, f"{self.prog}: {message} (see --help)\n")


def _add_setting_flags(p: argparse.ArgumentParser, command: str) -> None:
    """The flags of every schema setting that ``command`` takes, in two groups."""
    source = p.add_argument_group(
        "kube-proxy source (also settable in the config file and as "
        f"{ENV_PREFIX}<NAME> environment variables)")
    source.add_argument("--config", metavar="FILE", help="YAML config file (keys as the long "
                        "options with _ for -, e.g. healthz_url:); flags > environment > file")
    service = p.add_argument_group("service") if command == "serve" else source
    for key, k in SETTINGS.items():
        s = k.setting
        if s.flag is None or command not in s.commands:
            continue
        group = service if s.commands == ("serve",) else source
        help_text = f"{s.help} (default {shown_default(k)})"
        if s.flag_const is not None:
            group.add_argument(s.flag, dest=key, action="store_const", const=s.flag_const,
                               help=help_text)
        else:
            group.add_argument(s.flag, dest=key, metavar=s.metavar, choices=s.choices,
                               action="append" if s.repeatable else "store", help=help_text)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kpexporter", description="kube-proxy health-and-SLO exporter for "
                "Prometheus: polls kube-proxy's /healthz and /metrics, derives staleness, "
                "clock skew and Prometheus-exact latency quantiles, and serves them.")
    p.add_argument("--version", action="version", version=f"kpexporter {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve = sub.add_parser("serve", help="poll kube-proxy every --interval and serve /metrics",
                           description="Poll kube-proxy every --interval and serve /metrics, "
                           "/healthz, /readyz, /api/v1/targets and / on --listen.")
    _add_setting_flags(serve, "serve")
    check = sub.add_parser(
        "check", help="poll once, print the verdict, exit 0/1/2",
        description="Poll each endpoint once and print what serve would expose. Exit codes: "
        "0 healthy; 1 kube-proxy reachable but unhealthy (503, or a queued change pending "
        "longer than --pending-threshold); 2 unreachable or unparseable; 64 bad usage.")
    _add_setting_flags(check, "check")
    check.add_argument("--output", "-o", choices=("text", "json", "prometheus"),
                       default="text", help="text for a person (default), json for scripts, "
                       "prometheus for the exact /metrics page")
    from kpexporter.cli.demo import add_demo_arguments
    from kpexporter.simulator import add_arguments as add_sim_arguments
    sim = sub.add_parser("simulate", help="run a realistic fake kube-proxy",
                         description="A fake kube-proxy serving /healthz and /metrics in a "
                         "chosen Kubernetes version's exact format and a chosen scenario.",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sim_arguments(sim)
    demo = sub.add_parser("demo", help="simulator + exporter on free local ports",
                          description="Start the simulated kube-proxy and the exporter on "
                          "free local ports, print their URLs, run until Ctrl-C.")
    add_demo_arguments(demo)
    from kpexporter.cli.rules import add_rules_parser
    add_rules_parser(sub)
    from kpexporter.cli.dashboards import add_dashboards_parser
    add_dashboards_parser(sub)
    return p


def make_config(args: argparse.Namespace) -> Config:
    """The config a parsed ``serve`` or ``check`` command line asks for (file read once)."""
    flags = {key: getattr(args, key) for key in SETTINGS if hasattr(args, key)}
    path = Path(args.config) if getattr(args, "config", None) else None
    return build_config(path, os.environ, flags)


Prepared = tuple[Coroutine[Any, Any, Any], Callable[[], asyncio.AbstractEventLoop] | None]
"""The coroutine a command runs, and the event loop to run it on (None: asyncio's own)."""


def _prepare(args: argparse.Namespace) -> Prepared:
    """Validate everything up front; return the coroutine to run and its loop.

    Raises ConfigError, UsageError or ValueError (bad usage) before anything has started."""
    if args.command == "simulate":
        from kpexporter.simulator import options_from_args, run_forever
        opts = options_from_args(args)
        setup_logging()
        return run_forever(opts), None
    if args.command == "demo":
        from kpexporter.cli.demo import prepare_demo
        from kpexporter.cli.serve import loop_factory
        return prepare_demo(args), loop_factory("auto", tls=False)  # serve's, without TLS
    if args.command == "rules":
        from kpexporter.cli.rules import prepare_rules
        return prepare_rules(args), None
    if args.command == "dashboards":
        from kpexporter.cli.dashboards import prepare_dashboards
        return prepare_dashboards(args), None
    cfg = make_config(args)
    if args.command == "check":
        from kpexporter.cli.check import _check
        # check's output already says what went wrong; log only errors unless asked.
        level = cfg.log_level if args.log_level else "error"
        setup_logging(cfg.log_format, level)  # type: ignore[arg-type]
        return _check(cfg, args.output), None
    from kpexporter.cli.serve import prepare_serve
    setup_logging(cfg.log_format, cfg.log_level)  # type: ignore[arg-type]
    return prepare_serve(cfg)


def _silence_stdout() -> None:
    """The reader of stdout went away: drop what is still buffered, and let the exit-time
    flush write to /dev/null instead of printing an error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EX_USAGE
    try:
        coro, loop_factory = _prepare(args)
    except (ConfigError, UsageError, ValueError) as e:  # WebConfigError is a ValueError
        print(f"kpexporter: {e}", file=sys.stderr)
        return EX_USAGE
    from kpexporter.simulator import BindError
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(coro)
    except KeyboardInterrupt:
        return 0
    except (BindError, UsageError) as e:  # a port taken between validation and binding
        print(f"kpexporter: {e}", file=sys.stderr)
        return EX_USAGE
    except BrokenPipeError:
        raise
    except Exception as e:  # a bug: one line, not a traceback
        print(f"kpexporter: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EX_SOFTWARE
    sys.stdout.flush()
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        _silence_stdout()
        return EX_PIPE
    except SystemExit:  # --help, --version, usage errors: their output may meet a closed pipe
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
        raise
