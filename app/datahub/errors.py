"""Error bodies the datahub answers with, declared so the OpenAPI document matches them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class FieldProblem(BaseModel):
    field: str
    problem: str


class InvalidRequest(BaseModel):
    """422 for a request whose parameters or body fail validation."""

    detail: str
    errors: list[FieldProblem] = []


class Problem(BaseModel):
    """Any other 4xx/5xx of the REST API."""

    detail: str


class UdfError(BaseModel):
    """UDF's own error shape (TradingView's datafeed reads ``s`` and ``errmsg``)."""

    s: Literal["error"]
    errmsg: str


class WebhookRejection(BaseModel):
    status: Literal["rejected"]
    error: str
    errors: list[FieldProblem] | None = None


def responses(model: type[BaseModel], *codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": model} for code in codes}
