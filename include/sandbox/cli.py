"""``python -m include.sandbox``: generate, tick, drift, bad files, and run the sandbox HTTP server."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from include import config

HOST = "127.0.0.1"  # loopback only: the sandbox serves fake PII behind a shared dev token


def pid_path() -> Path:
    return config.sandbox_dir() / "server.pid"


def log_path() -> Path:
    return config.sandbox_dir() / "server.log"


def running_pid() -> int | None:
    """The pid of this checkout's background server (``start``), when it runs."""
    try:
        pid = int(pid_path().read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def _port_of_running() -> int | None:
    try:
        return int(pid_path().read_text().split()[1])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _health(port: int) -> dict | None:
    try:
        response = httpx.get(f"http://{HOST}:{port}/health", timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else {"status": f"HTTP {response.status_code}"}


def _port_taken(port: int) -> bool:
    """Another process listens on ``port`` (bound the way uvicorn binds: SO_REUSEADDR, so a port
    in TIME_WAIT after our own restart counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def _print_counts(counts: dict) -> None:
    width = max(map(len, counts), default=0)
    for name, value in counts.items():
        print(f"  {name:<{width}}  {value:>10,}" if isinstance(value, int) else f"  {name:<{width}}  {value}")


def cmd_generate(args: argparse.Namespace) -> int:
    from include.sandbox.generator import generate  # noqa: PLC0415 - keep `serve` start-up light

    started = time.monotonic()
    counts = generate(args.customers, args.seed, as_of=args.as_of, progress=sys.stderr.isatty())
    print(f"Generated {args.customers:,} customers (seed {args.seed}) in {time.monotonic() - started:.1f}s:")
    _print_counts(counts)
    print(f"Apps DB: {config.sandbox_dir() / 'apps.sqlite'}; ERP: {config.redact_url(config.erp_url())}")
    print(f"Files: {config.landing_dir() / 'marketing'}; ground truth: {config.ground_truth_dir()}")
    return 0


def cmd_tick(args: argparse.Namespace) -> int:
    from include.sandbox.tick import tick  # noqa: PLC0415

    counts = tick(args.step, seed=args.seed)
    print(f"Tick {args.step}: edited {counts.pop('edited_system')}")
    _print_counts(counts)
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from include.sandbox import drift  # noqa: PLC0415

    try:
        current = drift.read_drift()
        for spec in args.add_field:
            current = drift.add_field(spec)
        for spec in args.drop_field:
            current = drift.drop_field(spec)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not current:
        print("No schema drift: every entity serves its registry fields")
    for table, d in sorted(current.items()):
        print(
            f"{table}: added {', '.join(d.added) or '-'}; dropped {', '.join(d.dropped) or '-'}"
            " (served from the next request on)"
        )
    return 0


def cmd_bad_files(args: argparse.Namespace) -> int:
    from include.sandbox.bad_files import expectations_json, write_bad_files  # noqa: PLC0415

    expectations = write_bad_files(args.into)
    width = max(map(len, expectations))
    print(f"Wrote {len(expectations)} files into {args.into}:")
    for name, e in expectations.items():
        issue = f"  [{e.file_issue}]" if e.file_issue else ""
        print(f"  {name:<{width}}  rows {e.rows:>3}  good {e.good:>3}  bad {e.bad:>3}{issue}")
    if args.expectations:
        args.expectations.write_text(expectations_json(expectations) + "\n", encoding="utf-8")
        print(f"Expectations: {args.expectations}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415

    from include.sandbox.server import create_app  # noqa: PLC0415

    try:
        app = create_app()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    pid = running_pid()
    if pid:
        port = _port_of_running() or args.port
        print(f"Sandbox already running (pid {pid}) on http://{HOST}:{port}")
        return 0
    if not os.environ.get("C360_SANDBOX_TOKEN"):
        print("error: C360_SANDBOX_TOKEN is not set; export a token first", file=sys.stderr)
        return 2
    if _port_taken(args.port):
        # Without this check the new server fails to bind while /health is answered by whatever
        # holds the port (often another checkout's sandbox, with another token and other data),
        # and "started" would be reported for a server that is not ours.
        print(
            f"error: port {args.port} is in use by another process (another checkout's sandbox?); "
            "stop it, or choose another port with C360_SANDBOX_PORT",
            file=sys.stderr,
        )
        return 1
    config.sandbox_dir().mkdir(parents=True, exist_ok=True)
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(config.PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    }
    with open(log_path(), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "include.sandbox", "serve", "--port", str(args.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=config.PROJECT_ROOT,
            env=env,
            start_new_session=True,
        )
    pid_path().write_text(f"{proc.pid} {args.port}\n")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pid_path().unlink(missing_ok=True)
            print(f"error: the server exited with code {proc.returncode}; see {log_path()}", file=sys.stderr)
            return 1
        if _health(args.port):
            print(
                f"Sandbox started (pid {proc.pid}) on http://{HOST}:{args.port} "
                f"(docs: /docs, log: {log_path()})"
            )
            return 0
        time.sleep(0.2)
    print(f"error: no answer from /health within 30s; see {log_path()}", file=sys.stderr)
    return 1


def cmd_stop(args: argparse.Namespace) -> int:
    pid = running_pid()
    if not pid:
        pid_path().unlink(missing_ok=True)
        print("Sandbox is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    pid_path().unlink(missing_ok=True)
    print(f"Sandbox stopped (pid {pid})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    pid = running_pid()
    if not pid:
        print("Sandbox is not running")
        return 1
    port = _port_of_running() or args.port
    health = _health(port)
    print(
        f"Sandbox running (pid {pid}) on http://{HOST}:{port}: "
        f"{health['status'] if health else 'not answering'}"
    )
    if health and "tables" in health:
        _print_counts(health["tables"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("generate", help="reset all sandbox stores and fill them deterministically")
    p.add_argument("--customers", type=int, default=1000, help="true customers (1k..1M)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--as-of", default=None, help="end of the generated history (ISO date; default today 00:00 UTC)"
    )
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("tick", help="advance time one step: new customers, edits in one system, new facts")
    p.add_argument("--step", type=int, required=True)
    p.add_argument("--seed", type=int, default=None, help="default: the seed of the last generate")
    p.set_defaults(func=cmd_tick)
    p = sub.add_parser(
        "drift",
        help="change what the API serves for an entity: add or drop a field (no option: show the drift)",
    )
    p.add_argument(
        "--add-field",
        action="append",
        default=[],
        metavar="SYSTEM.ENTITY.FIELD",
        help="e.g. oa.customer_archive.wechat_id",
    )
    p.add_argument(
        "--drop-field",
        action="append",
        default=[],
        metavar="SYSTEM.ENTITY.FIELD",
        help="e.g. oa.customer_archive.legal_rep",
    )
    p.set_defaults(func=cmd_drift)
    p = sub.add_parser("bad-files", help="write the quarantine corpus of bad marketing files into a folder")
    p.add_argument(
        "--into", type=Path, required=True, help="folder to write the files into (created if missing)"
    )
    p.add_argument("--expectations", type=Path, default=None, help="also write the expectations as JSON here")
    p.set_defaults(func=cmd_bad_files)
    for name, func, text in (
        ("serve", cmd_serve, "run the HTTP server in the foreground (127.0.0.1)"),
        ("start", cmd_start, "run the HTTP server in the background and wait until it answers"),
        ("stop", cmd_stop, "stop the background server"),
        ("status", cmd_status, "is the background server running?"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--port", type=int, default=config.sandbox_port())
        p.set_defaults(func=func)
        if name == "serve":
            # a container (docker-compose.yaml) must listen beyond its own loopback; locally keep 127.0.0.1
            p.add_argument("--host", default=HOST, help=f"interface to listen on (default {HOST})")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RuntimeError as exc:  # configuration problems carry their own hint
        print(f"error: {exc}", file=sys.stderr)
        return 2
