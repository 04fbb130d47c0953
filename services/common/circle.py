"""The circle's roster, borders and rivers, loaded from one data file (DESIGN.md section 1)."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class CircleFileError(ValueError):
    """The circle data file is malformed or inconsistent."""


@dataclass(frozen=True)
class City:
    code: str
    name: str
    name_zh: str
    province: str
    parent: str | None = None


@dataclass(frozen=True)
class Circle:
    code: str
    name: str
    cities: dict[str, City]
    borders: dict[str, frozenset[str]]
    downstream_edges: dict[str, frozenset[str]]

    def is_member(self, code: str) -> bool:
        return code in self.cities

    def province_of(self, code: str) -> str:
        return self.cities[code].province

    def neighbours(self, code: str) -> frozenset[str]:
        return self.borders.get(code, frozenset())

    def downstream(self, code: str) -> list[str]:
        """Every city reached by following the water downstream from `code`, transitively."""
        seen: list[str] = []
        queue = deque(sorted(self.downstream_edges.get(code, ())))
        while queue:
            city = queue.popleft()
            if city in seen or city == code:
                continue
            seen.append(city)
            queue.extend(sorted(self.downstream_edges.get(city, ())))
        return seen

    @property
    def codes(self) -> list[str]:
        return list(self.cities)


def load_circle(path: Path | str | None = None, circle: str = "njmc") -> Circle:
    """Read and check a circle file; raise CircleFileError naming the bad entry."""
    file = Path(path) if path else DATA_DIR / f"{circle}.circle.json"
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CircleFileError(f"{file}: cannot read circle file: {exc}") from exc
    try:
        cities = {
            c["code"]: City(c["code"], c["name"], c.get("name_zh", c["name"]), c["province"], c.get("parent"))
            for c in raw["cities"]
        }
        borders: dict[str, set[str]] = {code: set() for code in cities}
        for i, pair in enumerate(raw.get("borders", [])):
            a, b = pair
            for code in (a, b):
                if code not in cities:
                    raise CircleFileError(f"{file}: borders[{i}] names {code}, which is not a member city")
            borders[a].add(b)
            borders[b].add(a)
        flows: dict[str, set[str]] = {code: set() for code in cities}
        for river in raw.get("rivers", []):
            for j, (up, down) in enumerate(river["flows"]):
                for code in (up, down):
                    if code not in cities:
                        raise CircleFileError(
                            f"{file}: river {river['name']!r} flows[{j}] names {code}, which is not a member city"
                        )
                flows[up].add(down)
        return Circle(
            code=raw["circle"],
            name=raw["name"],
            cities=cities,
            borders={k: frozenset(v) for k, v in borders.items()},
            downstream_edges={k: frozenset(v) for k, v in flows.items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CircleFileError):
            raise
        raise CircleFileError(f"{file}: malformed circle file: {exc!r}") from exc
