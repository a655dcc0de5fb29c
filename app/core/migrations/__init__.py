"""Alembic migrations of the project database; run through app.core.schema."""
