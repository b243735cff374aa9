"""An S3-compatible server on loopback for the copies' tests: moto in server
mode (requirements-dev.txt), its own process on a free port, its state in
memory. No registry here holds a MinIO image; moto speaks the same S3 API
boto3 speaks to any other service (path-style addressing, SigV4)."""

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time

import boto3

BIN = os.path.dirname(sys.executable)
REGION = "us-east-1"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def s3_server():
    """Yields {"endpoint_url", "region", "access_key", "secret_key"} of a fresh
    server; the credentials are random, as a real service's would be."""
    port = free_port()
    log = open(os.path.join("/tmp", f"edms-moto-{port}.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [os.path.join(BIN, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start; see {log.name}")
            time.sleep(0.1)
        yield {
            "endpoint_url": f"http://127.0.0.1:{port}",
            "region": REGION,
            "access_key": "AKIA" + secrets.token_hex(8).upper(),
            "secret_key": secrets.token_urlsafe(30),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def client(server):
    return boto3.client(
        "s3",
        endpoint_url=server["endpoint_url"],
        region_name=server["region"],
        aws_access_key_id=server["access_key"],
        aws_secret_access_key=server["secret_key"],
    )
