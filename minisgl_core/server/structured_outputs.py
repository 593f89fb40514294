"""Structured-output request fields (pydantic), mapped onto ``SamplingParams``' constraint fields.

OpenAI's ``response_format`` (``{"type": "json_object"}``, ``{"type": "json_schema", "json_schema": {"name",
"schema", "strict"}}``, ``{"type": "text"}``), SGLang's ``json_schema`` (JSON text or an object), ``regex`` and
``ebnf``, and vLLM's ``guided_json``, ``guided_regex``, ``guided_choice`` and ``guided_grammar``. At most one
may constrain a request (400 naming the second otherwise). A constraint that does not compile is a 400 naming
the field the request used (:func:`request_param` maps the engine's field back to it).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

from minisgl_core.server.errors import APIError

Str = Annotated[str, Strict()]
NonEmpty = Annotated[str, Strict(), Field(min_length=1)]
Schema = dict[str, Any] | Annotated[bool, Strict()]

CONSTRAINT_FIELDS = ("json_schema", "regex", "grammar", "choice")
"""The ``SamplingParams`` fields a constraint lands in (what the engine's compile errors name)."""


class JSONSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Str | None = None
    description: Str | None = None
    schema_: Schema | None = Field(None, alias="schema")
    strict: Annotated[bool, Strict()] | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StructuredFields(BaseModel):
    """The structured-output fields of chat and text completions."""

    response_format: ResponseFormat | None = None
    json_schema: NonEmpty | dict[str, Any] | None = None
    regex: NonEmpty | None = None
    ebnf: NonEmpty | None = None
    guided_json: NonEmpty | dict[str, Any] | None = None
    guided_regex: NonEmpty | None = None
    guided_choice: Annotated[list[NonEmpty], Field(min_length=1)] | None = None
    guided_grammar: NonEmpty | None = None

    def constraint_kwargs(self) -> dict[str, Any]:
        """The ``SamplingParams`` keywords of this request's constraint (empty when it has none)."""
        given = [(name, kw) for name, kw in self._constraints() if kw is not None]
        if len(given) > 1:
            (first, _), (second, _) = given[:2]
            raise APIError(400, f"'{second}' cannot be combined with '{first}': give one constraint", second)
        return given[0][1] if given else {}

    def constraint_param(self) -> str | None:
        """The request field that carries the constraint, if any."""
        return next((name for name, kw in self._constraints() if kw is not None), None)

    def _constraints(self) -> list[tuple[str, dict[str, Any] | None]]:
        return [
            ("response_format", _response_format(self.response_format)),
            ("json_schema", None if self.json_schema is None else {"json_schema": _schema(self.json_schema)}),
            ("regex", None if self.regex is None else {"regex": self.regex}),
            ("ebnf", None if self.ebnf is None else {"grammar": self.ebnf}),
            ("guided_json", None if self.guided_json is None else {"json_schema": _schema(self.guided_json)}),
            ("guided_regex", None if self.guided_regex is None else {"regex": self.guided_regex}),
            ("guided_choice", None if self.guided_choice is None else {"choice": list(self.guided_choice)}),
            ("guided_grammar", None if self.guided_grammar is None else {"grammar": self.guided_grammar}),
        ]


def _schema(value: str | dict[str, Any]) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _response_format(rf: ResponseFormat | None) -> dict[str, Any] | None:
    if rf is None or rf.type == "text":
        return None
    if rf.type == "json_object":
        return {"json_schema": '{"type": "object"}'}
    if rf.json_schema is None or rf.json_schema.schema_ is None:
        raise APIError(400, "response_format of type 'json_schema' needs json_schema.schema", "response_format")
    return {"json_schema": json.dumps(rf.json_schema.schema_)}


def request_param(exc: APIError, body: Any) -> APIError:
    """``exc`` naming the request's own constraint field when the engine named its ``SamplingParams`` field."""
    if exc.param in CONSTRAINT_FIELDS and isinstance(body, StructuredFields):
        param = body.constraint_param()
        if param is not None and param != exc.param:
            return APIError(exc.status, exc.message.replace(exc.param, param, 1), param)
    if exc.param is None and "grammar backend" in exc.message and isinstance(body, StructuredFields):
        param = body.constraint_param()  # the engine has no backend: name the request's field
        return APIError(exc.status, f"{param}: {exc.message}", param)
    return exc
