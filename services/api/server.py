"""Builds the API process: context, token store, metrics, and the read routers on the read model."""

from __future__ import annotations

from fastapi import FastAPI

from consumers.db import make_engine
from services.api.app import create_app
from services.api.reads import ReadModel, read_router
from services.api.status import status_router
from services.api.supervision import Supervision, supervision_router
from services.api.tokens import TokenStore
from services.common.context import build_context
from services.common.metrics import Metrics
from services.common.settings import Settings


def build_app(settings: Settings) -> FastAPI:
    ctx = build_context(settings)
    assert settings.tokens_file is not None
    engine = make_engine(settings.database_url)
    figures = Supervision(ReadModel(engine), ctx.circle, ctx.clock)
    routers = [read_router(engine, ctx.circle), supervision_router(figures), status_router(figures)]
    return create_app(ctx, TokenStore(settings.tokens_file), Metrics(), routers=routers)
