"""Constraints shared by the structured-output tests: 20 JSON Schemas (nested objects, arrays, enums, required
fields, bounded numbers, patterned strings) and regex/choice cases. Strings are bounded by patterns: a random
model over a byte vocabulary would rarely close a free string, and xgrammar 0.2.9 lets a length-bounded free
string hold stray UTF-8 continuation bytes (decoded as U+FFFD, so the text can exceed ``maxLength``)."""

from __future__ import annotations

NAME = {"type": "string", "pattern": "^[A-Za-z ]{1,8}$", "maxLength": 8}
ZIP = {"type": "string", "pattern": "^[0-9]{5}$"}
ID = {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}
AGE = {"type": "integer", "minimum": 0, "maximum": 130}
SCORE = {"type": "number", "minimum": -1, "maximum": 1}
COLOR = {"enum": ["red", "green", "blue"]}


def obj(required: bool = True, **props: dict) -> dict:
    schema: dict = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(props)
    return schema


def arr(items: dict, lo: int = 0, hi: int = 3) -> dict:
    return {"type": "array", "items": items, "minItems": lo, "maxItems": hi}


SCHEMAS: list[dict] = [
    obj(name=NAME, age=AGE),
    obj(id=ID, color=COLOR),
    obj(user=obj(name=NAME, zip=ZIP), active={"type": "boolean"}),
    obj(tags=arr(COLOR, 1, 3)),
    obj(points=arr(obj(x=AGE, y=AGE), 0, 2)),
    obj(score=SCORE, label={"enum": ["low", "high", None]}),
    obj(a=obj(b=obj(c=obj(d=AGE)))),
    obj(required=False, name=NAME, age=AGE) | {"required": ["name"]},
    obj(matrix=arr(arr(AGE, 1, 2), 1, 2)),
    obj(status={"const": "ok"}, count={"type": "integer", "minimum": 1, "maximum": 9}),
    obj(code=ID, zip=ZIP, color=COLOR),
    arr(obj(k=COLOR, v=SCORE), 1, 3),
    obj(flag={"type": "boolean"}, nothing={"type": "null"}),
    obj(price={"type": "number", "minimum": 0, "maximum": 100}, currency={"enum": ["EUR", "USD"]}),
    obj(person=obj(name=NAME, address=obj(zip=ZIP, street=NAME)), ids=arr(ID, 0, 2)),
    obj(version={"type": "string", "pattern": "^[0-9]\\.[0-9]{1,2}$"}, stable={"type": "boolean"}),
    obj(items=arr(obj(name=NAME, qty={"type": "integer", "minimum": 1, "maximum": 5}), 1, 2)),
    obj(level={"type": "integer", "minimum": -10, "maximum": -1}),
    obj(choice={"anyOf": [COLOR, AGE]}),
    obj(meta=obj(required=False, note=NAME, rank=AGE), key=ID),
]

REGEXES = [r"[a-z]{3,8}@example\.com", r"\d{3}-\d{3}-\d{4}", r"(cat|dog|bird)s?", r"[A-F0-9]{8}"]
CHOICES = [["yes", "no"], ["alpha", "beta", "gamma", "delta"], ["positive", "negative", "neutral"]]
