"""Database engine, connection pool for ingest writes, and migrations."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import psycopg.types.json
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def sqlalchemy_url(url: str) -> str:
    """Accept postgresql:// URLs as users write them; use the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str) -> str:
    """The same URL for psycopg itself (no SQLAlchemy driver suffix)."""
    return sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


def use_fast_json() -> None:
    """Let psycopg read json/jsonb columns with orjson (the stdlib parser is the slow part
    of loading spans)."""
    psycopg.types.json.set_json_loads(orjson.loads)


def create_db_engine(url: str, *, pool_size: int = 8) -> Engine:
    use_fast_json()
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=4,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args={"connect_timeout": 5},
    )


def alembic_config() -> Config:
    from pathwatch import migrations

    folder = Path(migrations.__file__).resolve().parent
    config = Config(str(folder / "alembic.ini"))
    config.set_main_option("script_location", str(folder))
    config.set_main_option("version_locations", str(folder / "versions"))
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations; an advisory lock keeps concurrent starts in line."""
    config = alembic_config()
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(61800001)"))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    logger.info("database migrations applied")


def downgrade_database(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
