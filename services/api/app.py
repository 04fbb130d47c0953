"""The FastAPI application: ingestion for city systems, read endpoints, health and metrics.

Every operation needs a bearer token with a scope (services/api/auth.py), but the public ones: the
status page, /healthz, /readyz, /metrics and the API's own documents (/openapi.json, /docs and the
topics' /asyncapi.json), which show no subject. No
input gets a 5xx answer: bad input is a 4xx problem+json naming the field, and a broker, registry or
database that cannot be reached is 503 with Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.convert import JsonObject
from schemas.errors import PublishError, Rejected, Unavailable
from schemas.jsonschema import JsonSchemas
from schemas.registry import RegistryError
from services.api.auth import Auth, Caller, RateLimiter
from services.api.bodies import ANY_JSON, OBJECT
from services.api.privacy import Audit
from services.api.problems import (
    Problem,
    ProblemLanguage,
    on_http_error,
    on_problem,
    on_validation_error,
    problem_response,
)
from services.api.readiness import BrokerProbe
from services.api.tokens import PublicToken, TokenStore
from topics import kafka_auth
from topics.catalog import EVENT_TYPES, INPUT_TYPES
from topics.context import Context
from topics.metrics import Metrics
from topics.publisher import HealingProducer, Prepared, Publisher, publisher_config
from topics.validation import MAX_PAYLOAD_BYTES, loads_event

log = logging.getLogger(__name__)
#: what a 503 asks the caller to wait before trying again
RETRY_AFTER = "5"
#: the OpenAPI fragment of an operation without a token
PUBLIC: JsonObject = {"security": []}


class Accepted(TypedDict):
    """The answer to a published event: its id and the topic it went to."""

    event_id: str
    topic: str


class TokenList(TypedDict):
    items: list[PublicToken]


class Health(TypedDict):
    status: str
    circle: str
    topics: str
    event_types: list[str]


class Ready(TypedDict):
    status: str
    broker: str


def unavailable(title: str, detail: str) -> Problem:
    return Problem(503, title, detail, headers={"Retry-After": RETRY_AFTER})


async def on_fault(request: Request, exc: Exception) -> Response:
    """A fault below the API (the broker, the registry) is a 503, never a 500."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        503, "Service unavailable", str(exc)[:300], request.url.path, headers={"Retry-After": RETRY_AFTER}
    )


class BodyLimit:
    """Refuses a request body over `limit` bytes with 413, by its Content-Length or, for a chunked
    body, as soon as the bytes read pass the limit (nothing larger is ever held in memory)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_PAYLOAD_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise Problem(
                        413, "Payload too large", f"the limit is {self.limit} bytes", reason="payload_too_large"
                    )
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413, "Payload too large", f"the limit is {self.limit} bytes", scope["path"], reason="payload_too_large"
        )
        await response(scope, receive, send)


class Ingestion:
    """Per-city publishers sharing one producer; the token decides the city. The producer is
    replaced when kafka-python leaves it stuck (see topics/publisher.py, HealingProducer)."""

    def __init__(self, ctx: Context, producer: KafkaProducer | None, metrics: Metrics) -> None:
        self.ctx = ctx
        self._producer = HealingProducer({}, producer) if producer is not None else None
        self._publishers: dict[str, Publisher] = {}
        self.probe = BrokerProbe(ctx.settings.bootstrap, auth=kafka_auth.client_config(ctx.settings))
        self.counter = Counter(
            "tongcheng_http_ingest",
            "Events posted to the HTTP ingestion endpoint, by outcome.",
            ["event_type", "outcome"],
            registry=metrics.registry,
        )

    def producer(self) -> HealingProducer:
        if self._producer is None:  # its KafkaProducer is made at the first send
            self._producer = HealingProducer(publisher_config(self.ctx.settings, "tongcheng-api"))
        return self._producer

    def publisher(self, city: str) -> Publisher:
        if city not in self._publishers:
            self._publishers[city] = Publisher(self.ctx, city, "http-ingest", producer=self.producer())
        return self._publishers[city]

    def close(self, timeout: float = 10.0) -> None:
        self.probe.close()
        if self._producer is not None:
            self._producer.close(timeout)

    async def ingest(self, event_type: str, request: Request, caller: Caller) -> Accepted:
        city = caller.city
        try:
            body = loads_event(await request.body())
        except Rejected as exc:
            self.counter.labels(event_type, "rejected").inc()
            raise Problem(422, "Invalid event", exc.detail, reason=exc.reason.value, field=exc.field) from exc
        claimed = body.get("meta") if isinstance(body, dict) else None
        claimed = claimed.get("source_city") if isinstance(claimed, dict) else None
        if claimed is not None and claimed != city:
            self.counter.labels(event_type, "forbidden").inc()
            raise Problem(
                403,
                "Forbidden",
                f"this token publishes as city {city}, not {str(claimed)[:40]!r}",
                reason="source_city_mismatch",
                field="meta.source_city",
            )
        publisher = self.publisher(city)
        try:
            prepared: Prepared = await run_in_threadpool(publisher.prepare, event_type, body)
        except Rejected as exc:
            self.counter.labels(event_type, "rejected").inc()
            raise Problem(422, "Invalid event", exc.detail, reason=exc.reason.value, field=exc.field) from exc
        except (Unavailable, RegistryError) as exc:
            self.counter.labels(event_type, "registry_error").inc()
            raise unavailable("Schema registry unavailable", f"the event was not sent: {exc}") from exc
        ready, why = await run_in_threadpool(self.probe.state)
        if not ready:  # refused before it is queued, so the 503 means "not sent"
            self.counter.labels(event_type, "broker_error").inc()
            raise unavailable("Broker unavailable", f"the event was not sent: {why}")
        try:
            # a send may wait (at most 5 s) for the topic's metadata, so not on the event loop; the
            # producer gives a record up after 15 s, so the wait ends with its own verdict
            future = await run_in_threadpool(publisher.send_prepared, prepared)
            await run_in_threadpool(future.get, 30)
        except (KafkaError, PublishError) as exc:
            self.counter.labels(event_type, "broker_error").inc()
            raise unavailable("Broker unavailable", f"the event was not acknowledged: {exc}") from exc
        self.counter.labels(event_type, "accepted").inc()
        return {"event_id": prepared.event_id, "topic": prepared.topic}


def _event_body(schemas: JsonSchemas, event_type: str) -> JsonObject:
    schema = schemas.event(EVENT_TYPES[event_type].schema)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


ACCEPTED = {
    "type": "object",
    "properties": {"event_id": {"type": "string", "format": "uuid"}, "topic": {"type": "string"}},
    "required": ["event_id", "topic"],
}


def _add_ingest_route(app: FastAPI, ingestion: Ingestion, auth: Auth, schemas: JsonSchemas, event_type: str) -> None:
    async def ingest(request: Request, caller: Caller = Depends(auth.require("publish"))) -> Accepted:
        return await ingestion.ingest(event_type, request, caller)

    app.add_api_route(
        f"/v1/events/{event_type}",
        ingest,
        methods=["POST"],
        status_code=202,
        response_model=dict[str, str],
        openapi_extra=_event_body(schemas, event_type),
        summary=f"Publish one {event_type} event as the token's city",
        operation_id=f"publish_{event_type.replace('.', '_')}",
        responses={
            202: {"description": "Acknowledged by the broker", "content": {"application/json": {"schema": ACCEPTED}}},
            401: {"description": "No valid token"},
            403: {"description": "The token lacks the publish scope, or names another city"},
            413: {"description": "Body over 1 MiB"},
            422: {"description": "The event is refused; `reason` and `field` say why"},
            429: {"description": "Over the token's rate limit"},
            503: {"description": "The broker or the registry cannot be reached; the event was not sent"},
        },
    )


def create_app(
    ctx: Context,
    tokens: TokenStore,
    metrics: Metrics | None = None,
    producer: KafkaProducer | None = None,
    engine: Engine | None = None,
    limiter: RateLimiter | None = None,
) -> FastAPI:
    """The API. With `engine` (the SQL read model), the read endpoints and the status page too."""
    metrics = metrics or Metrics()
    ingestion = Ingestion(ctx, producer, metrics)
    auth = Auth(tokens, limiter)

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
    for fault in (Unavailable, RegistryError, KafkaError):
        app.add_exception_handler(fault, on_fault)
    app.add_middleware(BodyLimit)
    app.add_middleware(ProblemLanguage)  # outermost: the 413s of BodyLimit are translated too
    app.state.ingestion = ingestion
    app.state.metrics = metrics
    app.state.auth = auth

    schemas = JsonSchemas(ctx.schemas, ctx.circle.codes)
    for event_type in INPUT_TYPES:
        _add_ingest_route(app, ingestion, auth, schemas, event_type)

    @app.post("/v1/events/{event_type}", include_in_schema=False)
    async def unknown_type(event_type: str, caller: Caller = Depends(auth.require("publish"))) -> None:
        raise Problem(
            404,
            "Unknown event type",
            f"{event_type[:60]!r} is not an input event type; use one of " + ", ".join(INPUT_TYPES),
        )

    if engine is not None:
        from services.api.reads import ReadModel, read_router
        from services.api.status import status_router
        from services.api.supervision import Supervision, supervision_router

        figures = Supervision(ReadModel(engine), ctx.circle, ctx.clock)
        audit = Audit(ctx, ingestion.producer)
        for router in (
            read_router(engine, ctx, auth, audit),
            supervision_router(figures, auth),
            status_router(figures),
        ):
            app.include_router(router)

    @app.get("/v1/tokens", summary="The API's tokens (never their secrets)", response_model=OBJECT)
    async def list_tokens(caller: Caller = Depends(auth.require("admin"))) -> TokenList:
        now = auth.now()
        return {"items": [t.public(now) for t in tokens.tokens()]}

    @app.get("/healthz", summary="Health", openapi_extra=PUBLIC, response_model=OBJECT)
    async def healthz() -> Health:
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
        openapi_extra=PUBLIC,
        response_model=ANY_JSON,
    )
    async def readyz(request: Request) -> Response | Ready:
        ready, why = await run_in_threadpool(ingestion.probe.state)
        if not ready:
            return problem_response(
                503, "Broker unavailable", why, request.url.path, headers={"Retry-After": RETRY_AFTER}
            )
        return {"status": "ready", "broker": ctx.settings.bootstrap}

    @app.get("/asyncapi.json", include_in_schema=False, response_model=OBJECT)
    async def asyncapi() -> JsonObject:
        """The AsyncAPI 3.0 document of the topics (topics/asyncapi.py): public, like /openapi.json."""
        from topics.asyncapi import document

        if not hasattr(app.state, "asyncapi"):
            app.state.asyncapi = document(ctx)
        return dict(app.state.asyncapi)

    @app.get("/metrics", summary="Prometheus metrics (aggregates only)", response_class=Response, openapi_extra=PUBLIC)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
