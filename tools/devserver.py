"""`make dev`: the API on http://127.0.0.1:8000, on Amazon's DynamoDB Local.

Starts DynamoDB Local (a Java process; tables kept in ``.local-data/dynamodb-local/``) and moto
on a loopback port for S3 and SES, creates the local stage's tables and bucket, restores the
share files saved in ``.local-data/s3/`` (wipe everything with ``make clean-data``), prints
magic-link mails to the console, and serves the Chalice app. Ctrl-C (or SIGTERM) stops everything.

Without Java or the DynamoDB Local jar (``make dev`` installs both when it can), or with
``--engine moto``, the tables live on the embedded moto emulator instead, announced as a fallback
at start: moto answers one request at a time and slows down as data grows. Its tables are saved
to ``.local-data/dynamodb/*.jsonl`` after writes; DynamoDB Local imports those once when it
starts on a data folder that has no database yet.

``--dynamodb-endpoint URL`` (or ``SPIKES_DYNAMODB_ENDPOINT_URL``) keeps the tables in an already
running DynamoDB (the shared DynamoDB Local of the test session): the tables are created there,
named with ``SPIKES_TABLE_PREFIX`` when set, and nothing is saved to the data directory.

The server is threaded (one thread per connection) and safe for concurrent requests: Chalice's
``app.current_request`` is made thread-local the way ``chalice local`` does it.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent


def _fake_aws_environment() -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_PROFILE", None)


def _admin_token(data_dir: Path) -> str:
    if os.environ.get("SPIKES_TOKEN"):
        return os.environ["SPIKES_TOKEN"]
    path = data_dir / "admin-token"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


# DynamoDB operations (X-Amz-Target) that change nothing: the saver's own scans must not wake it.
READ_OPERATIONS = {"Scan", "Query", "GetItem", "BatchGetItem", "TransactGetItems", "DescribeTable", "ListTables",
                   "DescribeTimeToLive"}


def _may_write(environ) -> bool:
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
        return False
    target = environ.get("HTTP_X_AMZ_TARGET") or ""
    return target.rsplit(".", 1)[-1] not in READ_OPERATIONS


def local_emulator(serialize: bool, on_write: Optional[Callable[[], None]] = None):
    """moto's server on a loopback port (S3 and SES; DynamoDB too in the fallback).

    ``serialize``: answer one request at a time. moto's backends are not thread-safe: two
    concurrent conditional writes or transactions can both succeed (a magic link spent twice, a
    quota overshot) and concurrent scans can fail. When moto holds the tables (the fallback),
    serializing it makes the local stage atomic the way DynamoDB is. With DynamoDB Local holding
    the tables, moto only stores share files and mails, and nothing waits on a lock.
    ``on_write``: called after every request that may change state (not GET/HEAD), so the runner
    knows when to save. (Relies on ThreadedMotoServer's internals; moto is pinned in
    requirements-dev.txt.)
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class LocalMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            lock = threading.Lock() if serialize else contextlib.nullcontext()

            def wsgi(environ, start_response):
                with lock:
                    result = app(environ, start_response)
                    try:
                        return [b"".join(result)]
                    finally:
                        if hasattr(result, "close"):
                            result.close()
                        if on_write is not None and _may_write(environ):
                            on_write()

            self._server = make_server(self._ip_address, self._port, wsgi, True,
                                       request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return LocalMotoServer(ip_address="127.0.0.1", port=0, verbose=False)


def handler_class():
    """Chalice's request handler without the Nagle delay, answering a path no route matches as
    the deployed API does."""
    import json

    from chalice.local import ChaliceRequestHandler, ForbiddenError

    from infra.stack import GATEWAY_RESPONSES
    from tools.request_log import masked_request_line

    class RequestHandler(ChaliceRequestHandler):
        # Stock chalice local pays ~44 ms per keep-alive request to Nagle's algorithm.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            # Stock chalice local reports every caller as 127.0.0.1, so every per-address limit
            # would be one shared bucket; API Gateway gives each caller's own address.
            self.local_gateway.event_converter.LOCAL_SOURCE_IP = self.client_address[0]

        def log_request(self, code="-", size="-") -> None:
            # The request line as sent carries sign-in tokens, codes and share passwords.
            self.log_message('"%s" %s %s', masked_request_line(self.requestline), str(code), str(size))

        def _send_http_response_with_body(self, code, headers, body) -> None:
            if self.command != "HEAD":
                super()._send_http_response_with_body(code, headers, body)
                return
            # Stock chalice local writes a HEAD answer's body, which the client takes for the
            # start of the next answer on its keep-alive connection. Like API Gateway: the
            # length of the body the app returned (the GET's: chalicelib/api/serving.py), no body.
            data = body if isinstance(body, bytes) else body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            self._send_headers(headers)

        def _send_error_response(self, error) -> None:
            # A path deeper than the app's catch-all routes matches none: chalice local answers API
            # Gateway's bare 403 {"message": "Missing Authentication Token"}, which the deploy maps
            # to the contract's envelope (infra/stack.py). Answer what the deployed API answers.
            if not (isinstance(error, ForbiddenError)
                    and error.headers.get("x-amzn-ErrorType") == "UnauthorizedException"):
                super()._send_error_response(error)
                return
            status, code, message = GATEWAY_RESPONSES["MISSING_AUTHENTICATION_TOKEN"]
            request_id = error.headers.get("x-amzn-RequestId", "")
            body = json.dumps({"error": message, "code": code, "request_id": request_id}).encode()
            self._send_http_response(status, {"Content-Type": "application/json", "X-Request-Id": request_id,
                                              "Access-Control-Allow-Origin": "*"}, body)

    return RequestHandler


def server_class():
    from chalice.local import ThreadedHTTPServer

    class Server(ThreadedHTTPServer):
        # One daemon thread per connection (ThreadingMixIn); a deep accept queue so that a burst
        # of clients connecting at once (the concurrency tests: 200 threads) is not dropped.
        request_queue_size = 1024
        daemon_threads = True
        block_on_close = False  # an idle keep-alive connection must not hold up the shutdown

    return Server


ENGINES = ("auto", "dynamodb-local", "moto")


def choose_engine(requested: str) -> Tuple[str, Optional[str]]:
    """The engine that will hold the tables, and why the fallback was taken (or None)."""
    from tools import dynamodb_local
    if requested == "moto":
        return "moto", "asked for (--engine moto)"
    reason = dynamodb_local.unavailable_reason()
    if reason is None:
        return "dynamodb-local", None
    if requested == "dynamodb-local":
        raise SystemExit(f"DynamoDB Local cannot run: {reason}")
    return "moto", reason


FALLBACK_BANNER = """\
*** DynamoDB Local is not available: {reason}.
*** Falling back to the embedded moto emulator. It is an emulator for tests, not an engine: it
*** answers one request at a time, and posts and listings slow down as data grows (hundreds of
*** milliseconds at a few thousand spikes). Install Java and run `make dev` again for DynamoDB Local."""


class DataDirLock:
    """One local server per data folder: a second one would start a second DynamoDB Local on the
    same SQLite file and save over the first one's share files. The lock is the kernel's
    (``flock``): it goes with the processes that hold it however they end, and DynamoDB Local
    inherits it, so a Java that outlives its server (killed with SIGKILL, where no setpriv ties the
    two: tools/dynamodb_local.die_with_parent) still holds the folder until it stops.
    The file names the holders, for the message."""

    def __init__(self, data_dir: Path):
        import fcntl
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.handle = open(data_dir / "server.lock", "a+")
        except OSError as exc:
            raise SystemExit(f"Cannot write to the data folder {data_dir}: {exc.strerror}. The local server keeps its "
                             f"tables and share files there: make it writable, or give it another folder: "
                             f"make dev DATA_DIR=<folder>") from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holders = ", ".join(self.handle.read().split("\n")[:2]).strip(", ") or "pid ?"
            self.handle.close()
            from tools.data_dir_in_use import how_to_stop
            raise SystemExit(f"Another local server ({holders}) is using {data_dir}: {how_to_stop(holders)}, or "
                             f"give this one a folder of its own: make dev DATA_DIR=<folder> PORT=<port>")
        self._write(f"pid {os.getpid()}")

    def _write(self, text: str) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(text + "\n")
        self.handle.flush()

    def add_engine(self, pid: int) -> None:
        self._write(f"pid {os.getpid()}\nits DynamoDB Local pid {pid}")

    @property
    def fd(self) -> int:
        return self.handle.fileno()

    def close(self) -> None:
        self.handle.close()


def saved_data_unreadable(data_dir: Path, exc: Exception) -> str:
    """A corrupt SQLite file or manifest surfaced as a traceback about DescribeTable or JSON."""
    wipe = "make clean-data" + ("" if data_dir == Path(".local-data") else f" DATA_DIR={data_dir}")
    return (f"Cannot read the local data saved in {data_dir} ({type(exc).__name__}: {exc}).\n"
            f"It is damaged, or was written by something this version cannot read. Keep it aside and start "
            f"afresh with mv {data_dir} {data_dir}.broken, or delete it with {wipe}.")


def saved_data_not_upgraded(data_dir: Path, exc: Exception) -> str:
    """The saved data was read back, and bringing it up to this version failed part way (the engine
    stopped answering, the disk filled): each step resumes where it stopped, so nothing is to be
    deleted, unlike saved data that cannot be read (``saved_data_unreadable``)."""
    return (f"The local data saved in {data_dir} was read, but upgrading it for this version failed "
            f"({type(exc).__name__}: {exc}).\nNothing was deleted, and the upgrade resumes where it stopped: "
            f"start the server again (make dev).")


def check_port_free(host: str, port: int) -> None:
    """Fail before anything starts, with what to do, rather than with a traceback once the
    engines are up. SO_REUSEADDR as the server will bind: a closed server's TIME_WAIT is fine."""
    import socket
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SystemExit(cannot_listen(host, port, exc)) from None


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    return (f"Cannot listen on {host}:{port}: {exc.strerror}. Is a local server already running there? "
            f"Another port: make dev PORT=<port>")


# DynamoDB Local dying under a running server (the OOM killer, a stray `kill`) would otherwise
# leave every request answering 503 until someone notices. It is started again on the same port
# and files (requests in between get 503 with Retry-After); if it keeps dying, the server stops.
ENGINE_RESTARTS = 3
ENGINE_RESTART_WINDOW_SECONDS = 300.0


def watch_engine(engine, lock: Optional["DataDirLock"], stopping: threading.Event, give_up: Callable[[], None],
                 poll_seconds: float = 1.0) -> None:
    restarts: List[float] = []
    while not stopping.wait(poll_seconds):
        process = engine.process
        code = process.poll() if process is not None else None
        # Ctrl-C reaches the Java in the terminal's process group too: give the server's own
        # handler a moment to say it is stopping before calling that a crash.
        if code is None or stopping.wait(min(0.5, poll_seconds * 10)):
            continue
        now = time.monotonic()
        restarts = [at for at in restarts if now - at < ENGINE_RESTART_WINDOW_SECONDS] + [now]
        if len(restarts) > ENGINE_RESTARTS:
            print(f"*** DynamoDB Local exited with code {code} again ({ENGINE_RESTARTS} restarts in "
                  f"{ENGINE_RESTART_WINDOW_SECONDS:.0f} s); stopping. The data stays where it is.", flush=True)
            give_up()
            return
        print(f"*** DynamoDB Local (pid {process.pid}) exited with code {code}; starting it again on the same data",
              flush=True)
        try:
            engine.start()
        except Exception as exc:  # noqa: BLE001 - whatever it was, say it and stop
            print(f"*** DynamoDB Local could not be started again ({exc}); stopping.", flush=True)
            give_up()
            return
        if lock is not None:
            lock.add_engine(engine.pid)
        print(f"*** DynamoDB Local is back (pid {engine.pid})", flush=True)


# What EventBridge runs in AWS (chalicelib/api/jobs.py), run here through the same code, each
# at its own interval: the webhook deliveries and the background exports every few seconds (so a
# webhook pointed at a local receiver sees its events arrive, and POST /exports is done soon), the
# other jobs every minute (finishing share deletions,
# expiring unfinished uploads, the period's quota reset and grace sweep, the usage report).
LOCAL_JOBS = ("quota_reset", "share_deletions", "usage_report")
SCHEDULED_EVENT = {"version": "0", "id": "local", "detail-type": "Scheduled Event", "source": "aws.events",
                   "account": "000000000000", "region": "us-east-1", "time": "", "resources": [], "detail": {}}


def scheduled_passes() -> List[Tuple[str, Callable[[], float], Callable[[], dict]]]:
    """(name, seconds between passes, one pass returning its summary) of each local loop."""
    from chalicelib import deps
    from chalicelib.api import jobs
    from chalicelib.services import webhook_delivery

    def deliveries() -> dict:
        return vars(webhook_delivery.run_due(deps.settings(), mailer=deps.mailer(), max_batches=4))

    def job(name: str) -> Callable[[], dict]:
        return lambda: getattr(jobs, name)(SCHEDULED_EVENT, None)
    return [("webhook deliveries", lambda: deps.settings().webhook_local_interval_seconds, deliveries),
            ("background exports", lambda: deps.settings().webhook_local_interval_seconds, job("exports")),
            *((name, lambda: deps.settings().local_jobs_interval_seconds, job(name)) for name in LOCAL_JOBS)]


def run_periodically(stopping: threading.Event, name: str, interval: Callable[[], float],
                     one_pass: Callable[[], dict], local_data=None) -> None:
    """``one_pass`` every ``interval()`` seconds until ``stopping``; a pass that changed
    something is printed (and the data marked for saving), a failing one too."""
    while not stopping.wait(max(0.2, interval())):
        try:
            summary = one_pass()
        except Exception as exc:  # noqa: BLE001 - keep the loop alive; the next pass retries
            print(f"{name}: {type(exc).__name__}: {exc}", flush=True)
            continue
        if _did_something(summary):
            print(f"{name}: {summary}", flush=True)
            if local_data is not None:
                local_data.mark_dirty()


# Counts of what a pass looked at, not of what it changed.
LOOKED_AT = {"pages", "users", "pending"}


def _did_something(result) -> bool:
    """A pass's summary counts a change (attempted, finished, removed, expired, archived, sent...)."""
    if isinstance(result, dict):
        return any(_did_something(value) for key, value in result.items() if key not in LOOKED_AT)
    if isinstance(result, list):
        return any(_did_something(value) for value in result)
    return isinstance(result, int) and not isinstance(result, bool) and result > 0


def main(argv=None, extend_app: Optional[Callable[[object], None]] = None) -> int:
    """``extend_app(app)``: add routes before serving (bench/server.py's bench-only route)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--data-dir", default=str(ROOT / ".local-data"))
    parser.add_argument("--no-persist", action="store_true", help="keep data in memory only")
    parser.add_argument("--engine", choices=ENGINES, default=os.environ.get("SPIKES_LOCAL_ENGINE") or "auto",
                        help="what holds the tables: DynamoDB Local (auto: when Java and the jar are there) "
                             "or the embedded moto emulator")
    parser.add_argument("--dynamodb-endpoint", default=os.environ.get("SPIKES_DYNAMODB_ENDPOINT_URL") or None,
                        help="keep the tables in this running DynamoDB instead; implies --no-persist for them")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding to {args.host}: the local server has no production hardening", flush=True)

    data_dir = Path(args.data_dir)
    persist = not args.no_persist
    check_port_free(args.host, args.port)
    with contextlib.ExitStack() as running:  # whatever started is stopped, however the start ends
        lock = DataDirLock(data_dir) if persist and not args.dynamodb_endpoint else None
        if lock is not None:
            running.callback(lock.close)
        return _run(args, data_dir, persist, lock, running, extend_app)


def _run(args, data_dir: Path, persist: bool, lock: Optional[DataDirLock], running: contextlib.ExitStack,
         extend_app: Optional[Callable[[object], None]]) -> int:
    _fake_aws_environment()
    import boto3

    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    engine_name, fallback_reason = ("external", None) if args.dynamodb_endpoint else choose_engine(args.engine)
    if engine_name == "moto" and args.engine == "auto":
        print(FALLBACK_BANNER.format(reason=fallback_reason), flush=True)

    # Saves S3 objects (and, on moto, the tables) after writes; created below, marked from here.
    dirty = threading.Event()
    emulator = local_emulator(serialize=engine_name == "moto", on_write=dirty.set)
    emulator.start()
    running.callback(print, "Stopped.", flush=True)  # callbacks run last-registered first: this one last
    running.callback(emulator.stop)
    emulator_host, emulator_port = emulator.get_host_and_port()
    endpoint = f"http://{emulator_host}:{emulator_port}"

    dynamodb_local = None
    db_path = data_dir / "dynamodb-local"
    db_existed = (db_path / "shared-local-instance.db").exists()
    had_saved_data = db_existed or (data_dir / "dynamodb").is_dir() or (data_dir / "s3").is_dir()
    dynamodb_endpoint = args.dynamodb_endpoint
    if engine_name == "dynamodb-local":
        from tools.dynamodb_local import DynamoDBLocal
        dynamodb_local = DynamoDBLocal(db_path if persist else None, inherit_fds=[lock.fd] if lock else [])
        running.callback(dynamodb_local.stop)  # a no-op when it did not start
        dynamodb_local.start()
        if lock is not None:
            lock.add_engine(dynamodb_local.pid)
        dynamodb_endpoint = dynamodb_local.endpoint

    os.environ.update({"SPIKES_AWS_ENDPOINT_URL": endpoint, "SPIKES_STAGE": "local", "SPIKES_MAIL_MODE": "console",
                       "SPIKES_TOKEN": _admin_token(data_dir)})
    if dynamodb_endpoint:
        os.environ["SPIKES_DYNAMODB_ENDPOINT_URL"] = dynamodb_endpoint
    else:
        os.environ.pop("SPIKES_DYNAMODB_ENDPOINT_URL", None)
    os.environ.setdefault("SPIKES_STRIPE_API_BASE", "")
    # Links are never built from request headers: tell the app where it is reachable.
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    os.environ.setdefault("SPIKES_PUBLIC_BASE_URL", f"http://{shown_host}:{args.port}")

    sys.path.insert(0, str(ROOT))
    from chalicelib import deps
    from chalicelib.store.setup import create_bucket, create_schema, upgrade_items
    from chalicelib.store.tables import TABLES, table_name

    deps.reset()
    settings = deps.settings()
    dynamodb = boto3.client("dynamodb", endpoint_url=settings.dynamodb_endpoint_url or endpoint,
                            region_name=settings.region)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=settings.region)
    table_names = [table_name(settings, t) for t in TABLES]
    local_data = None
    if persist and engine_name != "external":
        from tools.localdata import LocalData
        # DynamoDB Local keeps its own tables on disk; moto keeps nothing, so its tables are saved too.
        saved_tables = table_names if engine_name == "moto" else []
        local_data = LocalData(data_dir, dynamodb, s3, saved_tables, settings.bucket_name, dirty)
    try:
        create_schema(settings, dynamodb)
        create_bucket(settings, s3)
        if local_data is not None:
            restored = local_data.restore()
            if engine_name == "dynamodb-local":
                if db_existed:
                    restored = {**local_data.item_counts(table_names), **restored}
                else:
                    # Data saved by the moto fallback (or an older version): moved in once.
                    imported = LocalData(data_dir, dynamodb, s3, table_names, settings.bucket_name).restore_tables()
                    if imported:
                        print(f"Imported tables saved by the embedded emulator into DynamoDB Local: {imported}",
                              flush=True)
                        restored = {**imported, **restored}
            if restored:
                print(f"Restored local data from {data_dir}: {restored}", flush=True)
    except Exception as exc:  # noqa: BLE001 - on saved data: say which folder and what to do
        if local_data is None or not had_saved_data:
            raise
        raise SystemExit(saved_data_unreadable(data_dir, exc)) from None
    try:
        # After the restore: saved items of an older version are upgraded too (each step, once
        # marked done, looks only at items received since, and restored ones are older).
        upgrade_items(settings, saved_data=local_data is not None)
    except Exception as exc:  # noqa: BLE001 - the data was read: a failed upgrade is no reason to wipe it
        if local_data is None or not had_saved_data:
            raise
        raise SystemExit(saved_data_not_upgraded(data_dir, exc)) from None
    if local_data is not None:
        local_data.start()
        running.callback(lambda: print(f"Saved local data to {data_dir}", flush=True))
        running.callback(local_data.stop)

    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes
    from chalice.local import CustomLocalChalice, LocalChalice, LocalDevServer

    RequestHandler, Server = handler_class(), server_class()

    config = CLIFactory(project_dir=str(ROOT)).create_config_obj(chalice_stage_name="local")
    app_obj = config.chalice_app
    if extend_app is not None:
        extend_app(app_obj)
    validate_routes(app_obj.routes)
    # What chalice.local.create_local_server does: make app.current_request thread-local, or
    # concurrent requests would read each other's request.
    if not isinstance(app_obj, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app_obj.__class__)
        app_obj.__class__ = CustomLocalChalice
    try:
        server = LocalDevServer(app_obj, config, args.host, args.port, handler_cls=RequestHandler, server_cls=Server)
    except OSError as exc:  # taken since check_port_free: another server started beside this one
        raise SystemExit(cannot_listen(args.host, args.port, exc)) from None
    running.callback(server.server.server_close)
    bound_host, bound_port = server.server.server_address[:2]
    stopping = threading.Event()

    def stop(*_):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    for name, interval, one_pass in scheduled_passes():
        threading.Thread(target=run_periodically, args=(stopping, name, interval, one_pass, local_data), name=name,
                         daemon=True).start()
    exit_code = 0
    if dynamodb_local is not None:
        def give_up() -> None:
            nonlocal exit_code
            exit_code = 1
            stop()
        watchdog = threading.Thread(target=watch_engine, args=(dynamodb_local, lock, stopping, give_up),
                                    name="engine-watchdog", daemon=True)
        watchdog.start()
        # On the way out: no restart may race the engine's own stop (registered earlier, so it runs after).
        running.callback(watchdog.join, 10)
        running.callback(stopping.set)

    if engine_name == "dynamodb-local":
        where = f"in {db_path}" if persist else "in memory"
        if persist and dynamodb_local.without_fsync is None:
            where += "; every write fsynced (slow: apt-get install libeatmydata1)"
        tables_at = f"DynamoDB Local at {dynamodb_endpoint} (pid {dynamodb_local.pid}, tables {where}), "
    elif engine_name == "external":
        tables_at = f"DynamoDB at {dynamodb_endpoint}, "
    else:
        tables_at = "tables on the embedded emulator (fallback), "
    print(f"Spikes API on http://{bound_host}:{bound_port}  ({tables_at}AWS emulator at {endpoint})", flush=True)
    # Where a newcomer goes next (the API's own address answers JSON only): the links the app builds.
    links = os.environ["SPIKES_PUBLIC_BASE_URL"].rstrip("/")
    print(f"Dashboard: {links}/dashboard   API reference: {links}/docs", flush=True)
    print(f"Admin token (?token=): {os.environ['SPIKES_TOKEN']}", flush=True)
    print("Magic-link e-mails are printed here. Ctrl-C stops.", flush=True)
    # LocalDevServer.serve_forever prints this too, unflushed; print it here so pipes see it now.
    print(f"Serving on http://{bound_host}:{bound_port}", flush=True)
    server.server.serve_forever()
    return exit_code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before the server is up: main's exit stack stopped what started
        sys.exit(130)
