"""The part of flask-smorest (0.44+, untyped) that ticket_api uses; see typings/README.md."""

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import flask
from apispec import APISpec
from flask import Flask
from marshmallow import Schema

_F = TypeVar("_F", bound=Callable[..., Any])

class Blueprint(flask.Blueprint):
    description: str
    def __init__(self, name: str, import_name: str, *args: Any, description: str = ..., **kwargs: Any) -> None: ...
    def route(
        self, rule: str, *, parameters: list[Any] | None = ..., tags: list[str] | None = ..., **options: Any
    ) -> Callable[[_F], _F]: ...
    def arguments(
        self,
        schema: type[Schema] | Schema,
        *,
        location: str = ...,
        content_type: str | None = ...,
        required: bool = ...,
        description: str | None = ...,
        example: Any = ...,
        examples: Mapping[str, Any] | None = ...,
        **kwargs: Any,
    ) -> Callable[[_F], _F]: ...
    def response(
        self,
        status_code: int | str,
        schema: type[Schema] | Schema | None = ...,
        *,
        content_type: str | None = ...,
        description: str | None = ...,
        example: Any = ...,
        examples: Mapping[str, Any] | None = ...,
        headers: Mapping[str, Any] | None = ...,
    ) -> Callable[[_F], _F]: ...
    def alt_response(
        self,
        status_code: int | str,
        response: str | Mapping[str, Any] | None = ...,
        *,
        schema: type[Schema] | Schema | None = ...,
        content_type: str | None = ...,
        description: str | None = ...,
        example: Any = ...,
        examples: Mapping[str, Any] | None = ...,
        headers: Mapping[str, Any] | None = ...,
        success: bool = ...,
    ) -> Callable[[_F], _F]: ...
    @staticmethod
    def doc(**kwargs: Any) -> Callable[[_F], _F]: ...

class Api:
    ERROR_SCHEMA: type[Schema]
    spec: APISpec
    config: Mapping[str, Any]
    def __init__(
        self, app: Flask | None = ..., *, spec_kwargs: Mapping[str, Any] | None = ..., config_prefix: str = ...
    ) -> None: ...
    def init_app(self, app: Flask, *, spec_kwargs: Mapping[str, Any] | None = ...) -> None: ...
    def register_blueprint(self, blp: Blueprint, *, parameters: list[Any] | None = ..., **options: Any) -> None: ...
