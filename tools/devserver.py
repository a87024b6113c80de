"""`make dev`: the API on http://127.0.0.1:8000 with an embedded AWS emulator.

Starts moto on a loopback port (DynamoDB, S3, SES), creates the local stage's tables and
bucket, restores data saved in ``.local-data/`` (wipe it with ``make clean-data``), prints
magic-link mails to the console, and serves the Chalice app. Ctrl-C (or SIGTERM) stops everything.

``--dynamodb-endpoint URL`` (or ``SPIKES_DYNAMODB_ENDPOINT_URL``) keeps the tables in an external
DynamoDB instead (DynamoDB Local, for the concurrency tests): the tables are created there, named
with ``SPIKES_TABLE_PREFIX`` when set, S3 and SES stay on the embedded moto, and nothing is saved
to the data directory.

The server is threaded (one thread per connection) and safe for concurrent requests: Chalice's
``app.current_request`` is made thread-local the way ``chalice local`` does it, and the embedded
emulator answers one request at a time (moto is not atomic across threads; DynamoDB is).
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

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


WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def serialized_emulator():
    """moto's server, answering one request at a time.

    moto's backends are not thread-safe: two concurrent conditional writes or transactions can
    both succeed (a magic link spent twice, a quota overshot) and concurrent scans can fail.
    DynamoDB is atomic there; serializing the emulator makes the local stage behave the same.
    (Relies on ThreadedMotoServer's internals; moto is pinned in requirements-dev.txt.)
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class SerializedMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            lock = threading.Lock()

            def one_at_a_time(environ, start_response):
                with lock:
                    result = app(environ, start_response)
                    try:
                        return [b"".join(result)]
                    finally:
                        if hasattr(result, "close"):
                            result.close()

            self._server = make_server(self._ip_address, self._port, one_at_a_time, True,
                                       request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return SerializedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)


def handler_class(local_data=None):
    """Chalice's request handler without the Nagle delay; marks the data dirty after writes."""
    from chalice.local import ChaliceRequestHandler

    class RequestHandler(ChaliceRequestHandler):
        # Stock chalice local pays ~44 ms per keep-alive request to Nagle's algorithm.
        disable_nagle_algorithm = True

        def _generic_handle(self):
            super()._generic_handle()
            if local_data is not None and self.command in WRITE_METHODS:
                local_data.mark_dirty()  # a threading.Event: safe from every request thread

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--data-dir", default=os.environ.get("SPIKES_DATA_DIR", str(ROOT / ".local-data")))
    parser.add_argument("--no-persist", action="store_true", help="keep data in memory only")
    parser.add_argument("--dynamodb-endpoint", default=os.environ.get("SPIKES_DYNAMODB_ENDPOINT_URL") or None,
                        help="keep the tables in this DynamoDB (e.g. DynamoDB Local); implies --no-persist")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding to {args.host}: the local server has no production hardening", flush=True)

    _fake_aws_environment()
    import boto3

    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    data_dir = Path(args.data_dir)
    emulator = serialized_emulator()
    emulator.start()
    emulator_host, emulator_port = emulator.get_host_and_port()
    endpoint = f"http://{emulator_host}:{emulator_port}"
    os.environ.update({"SPIKES_AWS_ENDPOINT_URL": endpoint, "SPIKES_STAGE": "local", "SPIKES_MAIL_MODE": "console",
                       "SPIKES_TOKEN": _admin_token(data_dir)})
    if args.dynamodb_endpoint:
        os.environ["SPIKES_DYNAMODB_ENDPOINT_URL"] = args.dynamodb_endpoint
    else:
        os.environ.pop("SPIKES_DYNAMODB_ENDPOINT_URL", None)
    os.environ.setdefault("SPIKES_STRIPE_API_BASE", "")

    sys.path.insert(0, str(ROOT))
    from chalicelib import deps
    from chalicelib.store.setup import create_bucket, create_tables
    from chalicelib.store.tables import TABLES, table_name

    deps.reset()
    settings = deps.settings()
    dynamodb = boto3.client("dynamodb", endpoint_url=settings.dynamodb_endpoint_url or endpoint,
                            region_name=settings.region)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=settings.region)
    create_tables(settings, dynamodb)
    create_bucket(settings, s3)

    local_data = None
    if not args.no_persist and not args.dynamodb_endpoint:
        from tools.localdata import LocalData
        local_data = LocalData(data_dir, dynamodb, s3, [table_name(settings, t) for t in TABLES], settings.bucket_name)
        restored = local_data.restore()
        if restored:
            print(f"Restored local data from {data_dir}: {restored}", flush=True)
        local_data.start()

    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes
    from chalice.local import CustomLocalChalice, LocalChalice, LocalDevServer

    RequestHandler, Server = handler_class(local_data), server_class()

    config = CLIFactory(project_dir=str(ROOT)).create_config_obj(chalice_stage_name="local")
    app_obj = config.chalice_app
    validate_routes(app_obj.routes)
    # What chalice.local.create_local_server does: make app.current_request thread-local, or
    # concurrent requests would read each other's request.
    if not isinstance(app_obj, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app_obj.__class__)
        app_obj.__class__ = CustomLocalChalice
    server = LocalDevServer(app_obj, config, args.host, args.port, handler_cls=RequestHandler, server_cls=Server)
    bound_host, bound_port = server.server.server_address[:2]
    stopping = threading.Event()

    def stop(*_):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    tables_at = f"DynamoDB at {args.dynamodb_endpoint}, " if args.dynamodb_endpoint else ""
    print(f"Spikes API on http://{bound_host}:{bound_port}  ({tables_at}AWS emulator at {endpoint})", flush=True)
    print(f"Admin token (?token=): {os.environ['SPIKES_TOKEN']}", flush=True)
    print("Magic-link e-mails are printed here. Ctrl-C stops.", flush=True)
    # LocalDevServer.serve_forever prints this too, unflushed; print it here so pipes see it now.
    print(f"Serving on http://{bound_host}:{bound_port}", flush=True)
    try:
        server.server.serve_forever()
    finally:
        if local_data is not None:
            local_data.stop()
            print(f"Saved local data to {data_dir}", flush=True)
        server.server.server_close()
        emulator.stop()
        print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
