"""Builds the API process: context, token store, metrics, and the read endpoints on the read model."""

from __future__ import annotations

from fastapi import FastAPI

from services.api.app import create_app
from services.api.tokens import TokenStore
from services.readmodel.db import make_engine
from topics.context import build_context
from topics.metrics import Metrics
from topics.settings import Settings


def build_app(settings: Settings) -> FastAPI:
    ctx = build_context(settings)
    assert settings.tokens_file is not None
    engine = make_engine(settings.database_url)
    return create_app(ctx, TokenStore(settings.tokens_file), Metrics(), engine=engine)
