"""Which language a reader gets: zh-CN or en, from an HTTP Accept-Language header or a locale name.

The status page, problem+json titles and the city inbox speak both; their texts live beside them.
"""

from __future__ import annotations

ZH = "zh-CN"
EN = "en"
LANGUAGES = (ZH, EN)


def _tag(tag: str) -> str | None:
    tag = tag.strip().lower().replace("_", "-")
    if tag.startswith("zh"):
        return ZH
    if tag.startswith("en"):
        return EN
    return None


def negotiate(accept_language: str | None, default: str) -> str:
    """The best of zh-CN and en for an Accept-Language header (RFC 9110, q-values honoured); `default`
    when the header is absent or names neither. `*` takes the default."""
    best, best_q = default, -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        language = default if tag.strip() == "*" else _tag(tag)
        if language is None or q <= 0:
            continue
        if q > best_q:  # the first of equal weights wins
            best, best_q = language, q
    return best


def from_locale(name: str | None, default: str = EN) -> str:
    """A locale name such as `zh_CN.UTF-8` or `en_US.UTF-8` (LANG), or a tag such as `zh-CN`."""
    if not name or name in ("C", "POSIX") or name.startswith("C."):
        return default
    return _tag(name.split(".")[0]) or default
