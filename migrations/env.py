"""Alembic environment: runs migrations on the connection the caller passes in."""

from alembic import context

from pathwatch.server.models import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
