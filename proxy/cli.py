"""Command line: run, check, demo, preview. `sys.exit` happens here and nowhere else."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from typing import Mapping, Sequence

from . import __version__
from .config.loader import ConfigError
from .ops.platforms import run_problems
from .config.source import Source
from .config.summary import describe
from .core.settings import Settings, UnixAddress
from .ops.reload import load
from .ops.tuning import raise_open_files, tune_malloc
from .ops.workers import MAX_WORKERS, Supervisor, worker_link


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        sys.exit(2)
    gc.enable()  # off for the imports of `python -m proxy` (__main__.py); `run` turns it off again while it starts
    try:
        status = args.func(args)
    except KeyboardInterrupt:  # Ctrl+C before the server's own handling is in place (loading, say)
        status = 130
    sys.exit(status)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="errorproxy", description="A reverse proxy that turns upstream errors into one actionable shape.")
    parser.add_argument("--version", action="version", version=f"errorproxy {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run the proxy")
    run.add_argument("--config", help="YAML config file (default: $ERRORPROXY_CONFIG, else the embedded config)")
    run.add_argument("--upstream", help="upstream URL for the embedded config (default: $ERRORPROXY_UPSTREAM)")
    run.add_argument("--listen", help="HOST:PORT or unix:/PATH to listen on (default: $ERRORPROXY_LISTEN, else the config's)")
    run.add_argument("--workers", help="worker processes sharing the port, Linux only (default: $ERRORPROXY_WORKERS, else 1)")
    run.set_defaults(func=_run)

    check = commands.add_parser("check", help="validate a config file and summarize it")
    check.add_argument("--config", help="YAML config file (default: $ERRORPROXY_CONFIG)")
    check.add_argument("--upstream", help="check the embedded config with this upstream URL")
    check.set_defaults(func=_check)

    demo = commands.add_parser("demo", help="run a demo legacy service with the proxy in front of it")
    demo.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT for the proxy (default 127.0.0.1:8080)")
    demo.add_argument("--upstream-listen", default="127.0.0.1:9000", help="HOST:PORT for the demo service (default 127.0.0.1:9000)")
    demo.set_defaults(func=_demo)

    preview = commands.add_parser("preview", help="print an error page as the proxy would send it, or write them all")
    preview.add_argument("status", nargs="?", metavar="STATUS", help="an error status, 400 to 599")
    preview.add_argument("--accept", help="the request's Accept header (default: none, so problem+json)")
    preview.add_argument("--path", default="/", help="the request path: the problem's instance and, with --config, the route")
    preview.add_argument("--config", help="YAML config file for brand, templates and formats (default: built-in brand)")
    preview.add_argument("--headers", action="store_true", help="print the status line and headers before the body")
    preview.add_argument("--all", action="store_true", help="write every status in every format, and index.html, to --out")
    preview.add_argument("--out", help="directory for --all")
    preview.set_defaults(func=_preview)
    return parser


def _source(args: argparse.Namespace) -> Source:
    """How this command finds its settings; kept whole, as a reload reads them again the same way."""
    return Source(dict(os.environ), config=getattr(args, "config", None),
                  upstream=getattr(args, "upstream", None), listen=getattr(args, "listen", None))


def _settings(source: Source) -> tuple[Settings, list[str]] | None:
    """Valid settings whose templates all render, and warnings; or None after printing every problem."""
    try:
        return load(source)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return None
    except Exception as exc:  # noqa: BLE001 - the loader reports bad input as ConfigError; this is its failure
        where = source.config or (None if source.upstream else source.env.get("ERRORPROXY_CONFIG")) or "<embedded>"
        print(f"{where}: cannot be loaded: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        return None


def _run(args: argparse.Namespace) -> int:
    # Start-up allocates a great deal and frees little: no collection until it is over
    # (ops.tuning.tune_gc collects once, freezes what start-up made, and turns collection back on).
    gc.disable()
    source = _source(args)
    loaded = _settings(source)
    if loaded is None:
        return 1
    settings, warnings = loaded
    try:
        workers = _workers(args)
        _log_level(os.environ)
        _loop_name(os.environ)
    except ValueError as exc:
        print(f"errorproxy run: {exc}", file=sys.stderr)
        return 2
    targets = [url for upstream in settings.upstreams.values() for url in upstream.targets]
    unsupported = run_problems(settings.listen, targets, workers=workers)
    for problem in unsupported:
        print(f"errorproxy run: {problem}", file=sys.stderr)
    if unsupported:
        return 2
    link = worker_link(os.environ)
    _setup_logging(worker=link is not None)
    if link is None:  # workers would repeat them
        for warning in warnings:
            logging.getLogger("errorproxy").warning("%s: %s", settings.source, warning)
    if link is None and workers > 1:
        if isinstance(settings.listen, UnixAddress):
            print(f"errorproxy run: --workers {workers} needs a TCP listen address; "
                  f"{settings.listen} is served by one process", file=sys.stderr)
            return 2
        gc.enable()  # the supervisor never reaches tune_gc
        try:
            return Supervisor(source, settings, workers).run()
        except OSError as exc:
            where = getattr(exc, "address", settings.listen)
            print(f"errorproxy run: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    from .http.handler import Proxy
    from .ops.server import serve

    tune_malloc()
    raise_open_files()
    try:
        _run_loop(serve(Proxy(settings), reload_from=source, ready=link.ready if link else None,
                        reuse_port=link is not None))
    except OSError as exc:
        # asyncio's text repeats the address: "error while attempting to bind on address (...): address already in use"
        reason = (exc.strerror or str(exc)).rpartition("): ")[2]
        where = getattr(exc, "address", settings.listen)  # admin.AdminListenError names the admin address
        print(f"errorproxy run: cannot listen on {where}: {reason}", file=sys.stderr)
        return 1
    return 0


def _log_level(env: Mapping[str, str]) -> str:
    """ERRORPROXY_LOG_LEVEL: DEBUG, INFO (unset or empty), WARNING or ERROR.

    >>> _log_level({"ERRORPROXY_LOG_LEVEL": "debug"}), _log_level({"ERRORPROXY_LOG_LEVEL": ""})
    ('DEBUG', 'INFO')
    >>> _log_level({"ERRORPROXY_LOG_LEVEL": "LOUD"})
    Traceback (most recent call last):
    ValueError: ERRORPROXY_LOG_LEVEL: 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR
    """
    return _one_of(env, "ERRORPROXY_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")


def _loop_name(env: Mapping[str, str]) -> str:
    """ERRORPROXY_LOOP: uvloop (unset or empty) or asyncio.

    >>> _loop_name({}), _loop_name({"ERRORPROXY_LOOP": "AsyncIO"})
    ('uvloop', 'asyncio')
    >>> _loop_name({"ERRORPROXY_LOOP": "bogus"})
    Traceback (most recent call last):
    ValueError: ERRORPROXY_LOOP: 'bogus' is not one of uvloop, asyncio
    """
    return _one_of(env, "ERRORPROXY_LOOP", ("uvloop", "asyncio"), "uvloop")


def _one_of(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    """The variable `name` as the one of `choices` it spells in any case; `default` when unset or empty."""
    value = env.get(name, "").strip()
    if not value:
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")


def _workers(args: argparse.Namespace) -> int:
    """`--workers`, else ERRORPROXY_WORKERS, else 1."""
    value = args.workers if args.workers is not None else os.environ.get("ERRORPROXY_WORKERS") or "1"
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers: {value!r} is not a number from 1 to {MAX_WORKERS}")
    return workers


def _check(args: argparse.Namespace) -> int:
    loaded = _settings(_source(args))
    if loaded is None:
        return 1
    settings, warnings = loaded
    for warning in warnings:
        print(f"{settings.source}: warning: {warning}", file=sys.stderr)
    try:
        print(describe(settings), flush=True)
    except BrokenPipeError:  # `errorproxy check | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit does not fail again
    return 0


def _demo(args: argparse.Namespace) -> int:
    _setup_logging()
    from .tools.demo import run_demo

    try:
        _run_loop(run_demo(args.listen, args.upstream_listen))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"errorproxy demo: {exc.source}: {problem}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"errorproxy demo: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _preview(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config.loader import load
    from .tools.preview import PreviewError, headers_text, parse_status, preview, write_all

    try:
        if args.all == (args.status is not None):
            raise PreviewError("give either STATUS or --all --out DIR")
        if args.all != (args.out is not None):
            raise PreviewError("--all and --out DIR go together")
        status = None if args.all else parse_status(args.status)
    except PreviewError as exc:
        print(f"errorproxy preview: {exc}", file=sys.stderr)
        return 2
    settings = None
    if args.config is not None:
        try:
            settings = load(args.config)
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"{exc.source}: {problem}", file=sys.stderr)
            return 1
    if status is None:
        try:
            written = write_all(Path(args.out), path=args.path, settings=settings)
        except OSError as exc:
            print(f"errorproxy preview: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {len(written)} files; open {written[-1]}")
        return 0
    response = preview(status, accept=args.accept, path=args.path, settings=settings)
    if args.headers:
        sys.stdout.write(headers_text(response) + "\n")
        sys.stdout.flush()
    sys.stdout.buffer.write(response.body)
    if sys.stdout.isatty() and not response.body.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")  # keep the prompt off the last line; a pipe gets the bytes as sent
    sys.stdout.buffer.flush()
    return 0


def _setup_logging(worker: bool = False) -> None:
    # A worker's lines carry its pid: several processes share one stderr.
    name = "%(name)s[%(process)d]" if worker else "%(name)s"
    logging.basicConfig(
        level=_log_level(os.environ),
        format=f"%(asctime)s %(levelname)s {name}: %(message)s",
        stream=sys.stderr,
    )
    from .observe.accesslog import configure

    configure(sys.stderr)  # access lines bare, one JSON object a line, whatever the log level


def _run_loop(coro) -> None:
    """uvloop where installed, unless ERRORPROXY_LOOP=asyncio asks for asyncio's own loop."""
    if _loop_name(os.environ) != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    asyncio.run(coro)
