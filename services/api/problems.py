"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.convert import Json, JsonObject
from topics.language import EN, ZH, negotiate

PROBLEM = "application/problem+json"


class Problem(Exception):
    """An error answer. `extra` fields go into the body (`reason`, `field`, ...); `headers` into the
    response (Retry-After with 429 and 503)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Json,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.type, self.extra = status, title, detail, type_, extra
        self.headers = dict(headers or {})


class ProblemJSON(JSONResponse):
    """problem+json, ASCII-escaped: a detail that quotes the caller's input (a lone surrogate
    included) always renders."""

    media_type = PROBLEM

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def problem_response(
    status: int,
    title: str,
    detail: str,
    instance: str,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extra: Json,
) -> JSONResponse:
    body: JsonObject = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return ProblemJSON(body, status_code=status, headers=headers)


async def on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    headers = {**exc.headers, **({"WWW-Authenticate": "Bearer"} if exc.status == 401 else {})}
    return problem_response(exc.status, exc.title, exc.detail, request.url.path, exc.type, headers, **exc.extra)


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem_response(exc.status_code, str(exc.detail), str(exc.detail), request.url.path)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
    return problem_response(
        422,
        "Invalid request",
        "; ".join(f"{e['field']}: {e['message']}" for e in errors),
        request.url.path,
        errors=errors,
    )


#: problem titles in Chinese, for a caller whose Accept-Language prefers zh (detail stays as written:
#: it quotes the input and names the field); a test checks every title the API raises is here
TITLES_ZH: dict[str, str] = {
    "Audit trail unavailable": "审计记录暂不可用",
    "Broker unavailable": "消息代理暂不可用",
    "Forbidden": "无权操作",
    "Invalid ID number": "身份证号码无效",
    "Invalid event": "事件无效",
    "Invalid purpose": "查询目的无效",
    "Invalid request": "请求无效",
    "Invalid subject id": "主体标识无效",
    "Not listed": "未列入名单",
    "Payload too large": "请求体过大",
    "Purpose required": "须说明查询目的",
    "Read model unavailable": "查询库暂不可用",
    "Schema registry unavailable": "模式注册中心暂不可用",
    "Service unavailable": "服务暂不可用",
    "Too many requests": "请求过于频繁",
    "Unauthorized": "未认证",
    "Unknown city": "未知城市",
    "Unknown event type": "未知事件类型",
    "Unknown project": "未知项目",
    "Unknown subject": "未知主体",
    # Starlette's own (a route or method that does not exist)
    "Not Found": "未找到",
    "Method Not Allowed": "不允许的请求方法",
}


class ProblemLanguage:
    """Gives problem+json answers their title in the caller's language (Accept-Language: zh-CN or
    en; English by default, as machines read these), with Content-Language. Other answers pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = dict(scope["headers"]).get(b"accept-language", b"").decode("latin-1")
        lang = negotiate(wanted, EN)
        start: Message | None = None
        chunks: list[bytes] = []

        async def translating(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                types = [v for k, v in message.get("headers", []) if k.lower() == b"content-type"]
                if not types or not types[0].startswith(PROBLEM.encode()):
                    await send(message)
                    return
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            problem = json.loads(body)
            if lang == ZH and isinstance(problem, dict) and problem.get("title") in TITLES_ZH:
                problem["title"] = TITLES_ZH[problem["title"]]
            body = json.dumps(problem, ensure_ascii=True, separators=(",", ":")).encode("ascii")
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length",)]
            headers += [(b"content-length", str(len(body)).encode()), (b"content-language", lang.encode())]
            headers += [(b"vary", b"Accept-Language")]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, translating)
