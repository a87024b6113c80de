"""What the local server says when what it needs is taken or unusable: a data folder it cannot
write, its port taken while it started, DynamoDB Local's port held by another program. Each used
to end in a traceback, or worse. (Damaged saved data: tests/e2e/test_local_server.py.)"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.live import FAKE_AWS, ROOT, free_port
from tools import devserver, dynamodb_local


def test_a_data_folder_it_cannot_write_is_named_with_what_to_do(tmp_path):
    """A read-only folder, another user's, or a path through a file: an OSError traceback about
    server.lock."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    data_dir = blocker / "data"  # mkdir fails here whoever runs the test (root too)
    with pytest.raises(SystemExit) as refused:
        devserver.main(["--data-dir", str(data_dir), "--port", str(free_port())])
    message = str(refused.value.code)
    assert message.startswith(f"Cannot write to the data folder {data_dir}: Not a directory."), message
    assert "make dev DATA_DIR=<folder>" in message


def test_the_saved_data_message_names_the_folder_and_the_wipe():
    default = devserver.saved_data_unreadable(Path(".local-data"), ValueError("bad"))
    assert "Cannot read the local data saved in .local-data (ValueError: bad)" in default
    assert "mv .local-data .local-data.broken" in default and default.endswith("make clean-data.")
    other = devserver.saved_data_unreadable(Path("/tmp/x"), ValueError("bad"))
    assert other.endswith("make clean-data DATA_DIR=/tmp/x.")


@pytest.fixture
def java():
    reason = dynamodb_local.unavailable_reason()
    if reason is not None:
        pytest.skip(f"DynamoDB Local cannot run: {reason}")


def test_dynamodb_local_refuses_a_port_another_program_holds(java):
    """Its ready check is a connection: another program on the port passed it while the Java
    exited on the taken port, and the local server sent its requests to that program."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        engine = dynamodb_local.DynamoDBLocal(port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match=f"port {engine.port} is taken by another program"):
            engine.start()
        assert engine.process is None


def test_a_port_it_picked_and_another_program_took_since_is_swapped_before_the_first_start(java):
    engine = dynamodb_local.DynamoDBLocal()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", engine.port))
        taken.listen(1)
        engine.start(timeout=60)
        try:
            assert engine.port != taken.getsockname()[1]
            client = boto3.client("dynamodb", endpoint_url=engine.endpoint, region_name="us-east-1",
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
            assert "TableNames" in client.list_tables()
        finally:
            engine.stop()


def _clean_environment() -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("SPIKES_", "AWS_"))}, **FAKE_AWS}


def test_a_port_taken_while_it_started_is_said_as_a_port_taken_before(tmp_path):
    """Two servers started at once on one port (two folders) both pass the check made before
    anything starts; the second then died on its bind with a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        starting = ("import sys; from tools import devserver; devserver.check_port_free = lambda host, port: None; "
                    "sys.exit(devserver.main(sys.argv[1:]))")
        result = subprocess.run([sys.executable, "-c", starting, "--port", str(port), "--data-dir", str(tmp_path),
                                 "--engine", "moto", "--no-persist"], cwd=ROOT, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=120, env=_clean_environment())
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert f"Cannot listen on 127.0.0.1:{port}: Address already in use." in result.stderr
    assert result.stdout.rstrip().endswith("Stopped."), result.stdout


def test_ctrl_c_while_it_starts_stops_what_started_without_a_traceback(tmp_path):
    """Ctrl-C before the server is up (DynamoDB Local starting, data being restored) printed a
    KeyboardInterrupt traceback through the start-up code; what had started was stopped all the
    same. Here the start is held at its first table request: the endpoint accepts and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.settimeout(60)
        starting = subprocess.Popen(
            [sys.executable, "-m", "tools.devserver", "--port", str(free_port()), "--data-dir", str(tmp_path),
             "--dynamodb-endpoint", f"http://127.0.0.1:{silent.getsockname()[1]}"],
            cwd=ROOT, env=_clean_environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            request, _ = silent.accept()  # the first table request: the server is inside its start
            with request:
                starting.send_signal(signal.SIGINT)
                out, err = starting.communicate(timeout=60)
        finally:
            if starting.poll() is None:
                starting.kill()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert starting.returncode == 130
    assert out.rstrip().endswith("Stopped."), out


def test_saved_data_whose_upgrade_fails_is_not_called_damaged(tmp_path):
    """The upgrade steps run after the saved data is read back; a failure there (the engine gone,
    a full disk) was reported as damaged data, with a wipe suggested for data that was fine."""
    data_dir = tmp_path / "data"
    (data_dir / "s3").mkdir(parents=True)  # saved data of the embedded emulator: nothing to restore
    start = ("import sys\n"
             "from chalicelib.store import setup\n"
             "def engine_gone(*args, **kwargs):\n"
             "    raise ConnectionError('the engine stopped answering')\n"
             "setup.upgrade_items = engine_gone\n"
             "from tools import devserver\n"
             "sys.exit(devserver.main(sys.argv[1:]))\n")
    env = {**os.environ, **FAKE_AWS}
    env.pop("SPIKES_TOKEN", None)
    ended = subprocess.run([sys.executable, "-c", start, "--engine", "moto", "--data-dir", str(data_dir),
                            "--port", str(free_port())], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert ended.returncode != 0
    assert ("The local data saved in " + str(data_dir) + " was read, but upgrading it for this version failed "
            "(ConnectionError: the engine stopped answering).") in ended.stderr, ended.stderr
    assert "Nothing was deleted" in ended.stderr and "clean-data" not in ended.stderr
    assert (data_dir / "s3").is_dir()
