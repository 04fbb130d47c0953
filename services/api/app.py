"""The FastAPI application: ingestion for city systems, read endpoints, health and metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from services.api.problems import Problem, on_http_error, on_problem, on_validation_error, problem_response
from services.api.readiness import BrokerProbe
from services.api.tokens import TokenStore
from services.common import kafka_auth
from services.common.context import Context
from services.common.errors import PublishError, Rejected
from services.common.metrics import Metrics
from services.common.validation import MAX_PAYLOAD_BYTES
from topics.catalog import EVENT_TYPES, INPUT_TYPES
from topics.publisher import HealingProducer, Publisher, publisher_config

EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "One event of the given type as JSON (see schemas/avro). `meta` may be omitted: "
                    "event_id, "
                    "published_at and source_city are filled in, and source_city is fixed by the bearer token.",
                }
            }
        },
    }
}


class Ingestion:
    """Per-city publishers sharing one producer; the token decides the city. The producer is
    replaced when kafka-python leaves it stuck (see topics/publisher.py, HealingProducer)."""

    def __init__(self, ctx: Context, tokens: TokenStore, producer: KafkaProducer | None, metrics: Metrics) -> None:
        self.ctx = ctx
        self.tokens = tokens
        self._producer = HealingProducer({}, producer) if producer is not None else None
        self._publishers: dict[str, Publisher] = {}
        self.probe = BrokerProbe(ctx.settings.bootstrap, auth=kafka_auth.client_config(ctx.settings))
        self.counter = Counter(
            "tongcheng_http_ingest",
            "Events posted to the HTTP ingestion endpoint, by outcome.",
            ["event_type", "outcome"],
            registry=metrics.registry,
        )

    def publisher(self, city: str) -> Publisher:
        if self._producer is None:  # its KafkaProducer is made at the first send
            self._producer = HealingProducer(publisher_config(self.ctx.settings, "tongcheng-api"))
        if city not in self._publishers:
            self._publishers[city] = Publisher(self.ctx, city, "http-ingest", producer=self._producer)
        return self._publishers[city]

    def close(self, timeout: float = 10.0) -> None:
        self.probe.close()
        if self._producer is not None:
            self._producer.close(timeout)


def _authenticate(tokens: TokenStore, authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Problem(401, "Unauthorized", "a city bearer token is required: Authorization: Bearer <token>")
    city = tokens.city_of(authorization.split(" ", 1)[1].strip())
    if city is None:
        raise Problem(401, "Unauthorized", "the bearer token is not known")
    return city


def create_app(
    ctx: Context,
    tokens: TokenStore,
    metrics: Metrics | None = None,
    producer: KafkaProducer | None = None,
    routers: list[Any] | None = None,
) -> FastAPI:
    metrics = metrics or Metrics()
    ingestion = Ingestion(ctx, tokens, producer, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ingestion.close()

    app = FastAPI(
        title="Tongcheng", version="1", description=f"The event bus of the {ctx.circle.name}.", lifespan=lifespan
    )
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.state.ingestion = ingestion
    app.state.metrics = metrics
    for router in routers or []:
        app.include_router(router)

    @app.post(
        "/v1/events/{event_type}",
        status_code=202,
        openapi_extra=EVENT_BODY,
        summary="Publish one event as the token's city",
    )
    async def ingest(event_type: str, request: Request, authorization: str | None = Header(None)) -> dict[str, str]:
        city = _authenticate(tokens, authorization)
        if event_type not in INPUT_TYPES:
            raise Problem(
                404,
                "Unknown event type",
                f"{event_type!r} is not an input event type; use one of " + ", ".join(INPUT_TYPES),
            )
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
            raise Problem(
                413, "Payload too large", f"the limit is {MAX_PAYLOAD_BYTES} bytes", reason="payload_too_large"
            )
        raw = await request.body()
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise Problem(
                413, "Payload too large", f"the limit is {MAX_PAYLOAD_BYTES} bytes", reason="payload_too_large"
            )
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Problem(422, "Invalid event", f"body is not JSON: {exc}", reason="schema_invalid") from exc
        claimed = (
            body.get("meta", {}).get("source_city")
            if isinstance(body, dict) and isinstance(body.get("meta"), dict)
            else None
        )
        if claimed is not None and claimed != city:
            ingestion.counter.labels(event_type, "forbidden").inc()
            raise Problem(
                403,
                "Forbidden",
                f"this token publishes as city {city}, not {claimed}",
                reason="source_city_mismatch",
                field="meta.source_city",
            )
        publisher = ingestion.publisher(city)
        try:
            prepared = await run_in_threadpool(publisher.prepare, event_type, body)
        except Rejected as exc:
            ingestion.counter.labels(event_type, "rejected").inc()
            raise Problem(422, "Invalid event", exc.detail, reason=exc.reason.value, field=exc.field) from exc
        ready, why = await run_in_threadpool(ingestion.probe.state)
        if not ready:  # refused before it is queued, so the 503 means "not sent"
            ingestion.counter.labels(event_type, "broker_error").inc()
            raise Problem(503, "Broker unavailable", f"the event was not sent: {why}")
        try:
            # a send may wait (at most 5 s) for the topic's metadata, so not on the event loop; the
            # producer gives a record up after 15 s, so the wait ends with its own verdict
            future = await run_in_threadpool(publisher.send_prepared, prepared)
            await run_in_threadpool(future.get, 30)
        except (KafkaError, PublishError) as exc:
            ingestion.counter.labels(event_type, "broker_error").inc()
            raise Problem(503, "Broker unavailable", f"the event was not acknowledged: {exc}") from exc
        ingestion.counter.labels(event_type, "accepted").inc()
        return {"event_id": prepared.event_id, "topic": prepared.topic}

    @app.get("/healthz", summary="Health")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "circle": ctx.circle.code,
            "topics": ctx.topics.prefix,
            "event_types": sorted(EVENT_TYPES),
        }

    @app.get(
        "/readyz",
        summary="Readiness: 200 while the broker answers, 503 problem+json while it does not",
        responses={503: {"description": "the broker does not answer"}},
    )
    async def readyz(request: Request) -> Any:
        ready, why = await run_in_threadpool(ingestion.probe.state)
        if not ready:
            return problem_response(503, "Broker unavailable", why, request.url.path)
        return {"status": "ready", "broker": ctx.settings.bootstrap}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
