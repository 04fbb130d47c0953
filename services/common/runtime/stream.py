"""The frame of every faust processor: its app, its `Processor`, and batch handlers on topics."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

import faust

from schemas.errors import Unavailable
from services.common.runtime.app import make_app
from services.common.runtime.delivery import Abandoned
from services.common.runtime.outcomes import E, Handle, OnBatch
from services.common.runtime.service import Processor
from services.common.runtime.transport import install_batch_handlers
from topics.catalog import OWNER
from topics.context import Context
from topics.metrics import Metrics

log = logging.getLogger("tongcheng")


class StreamService:
    """The frame of every faust processor: its app, its `Processor`, and batch handlers on topics."""

    SERVICE = ""

    def __init__(self, ctx: Context, metrics: Metrics, app: faust.App | None = None) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.app = app or make_app(ctx, self.SERVICE)
        self.proc = Processor(ctx, self.app, self.SERVICE, metrics)
        #: the batch handlers the transport's consumer calls, by topic (see transport.batch_handlers)
        self.handlers = install_batch_handlers(self.app)

    def partitions(self, event_type: str) -> int:
        return self.ctx.topics.spec(self.ctx.topics.topic(event_type)).partitions

    def agent(self, event_type: str, on_batch: OnBatch) -> None:
        """`on_batch` gets the records of `event_type`'s topic, a fetch at a time (at most the
        consumer's `broker_max_poll_records`), and applies them; the frame sends their effects.

        An input type is read raw only by its owner (topics/catalog.py OWNER), which judges it;
        every other service reads its accepted stream.
        """
        owner = OWNER.get(event_type, self.SERVICE)
        topic = self.ctx.topics.topic(event_type) if owner == self.SERVICE else self.ctx.topics.accepted(event_type)
        self.proc.progress(topic, self.partitions(event_type))
        # the subscription stays faust's: every topic of the app's conductor is subscribed
        self.app.topics.add(self.app.topic(topic, key_type=bytes, value_type=bytes))
        self.handlers[topic] = functools.partial(self.proc.on_fetched, on_batch)

    def timer(self, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        """`work` every `seconds`, run `exclusive`ly with the batches."""
        guarded = self.proc.exclusive(work)

        @functools.wraps(work)
        async def tick() -> None:
            try:
                await guarded()
            except Abandoned as exc:  # the worker is stopping; the next worker's timer does it again
                log.warning("%s", exc)
            except Unavailable as exc:
                log.warning("%s: %s; the timer runs again at its next tick", self.SERVICE, exc)

        self.app.timer(seconds, name=f"{self.SERVICE}.{work.__name__}")(tick)

    def each_event(self, event_type: str, handle: Handle[E]) -> OnBatch:
        """A batch handler that applies `handle` to each record, decoded as `event_type`'s Struct."""
        return functools.partial(self.proc.each, event_type=event_type, handle=handle)
