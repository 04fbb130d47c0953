"""The read model: its SQL tables and projections (`tables.py`), the batched SQL sink (`sql.py`), the
engines and Alembic migrations (`db.py`, `migrations/`), and the worker that keeps it current
(`app.py`); the HTTP API reads its tables."""
