"""`@service` and `@api`: what a service is made of, captured as immutable specs."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ocibuild.errors import SpecError
from ocibuild.sdk.model import Model
from ocibuild.sdk.images import PythonImage
from ocibuild.sdk.names import validate_name
from ocibuild.sdk.schema import json_schema

SERVICE_ATTRIBUTE = "__ocibuild_service__"
API_ATTRIBUTE = "__ocibuild_api__"

_STAGES = ("both", "build", "runtime")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # fullmatch: `$` would admit a trailing newline


@dataclass(frozen=True)
class EnvVar:
    """An environment variable: with no value it must be set when the service runs."""

    name: str
    value: str | None = None
    stage: str = "both"  # "build": only `ocibuild build` and uv see it; "runtime": only the service

    @property
    def required(self) -> bool:
        return self.value is None

    @property
    def at_runtime(self) -> bool:
        return self.stage != "build"

    @property
    def at_build(self) -> bool:
        return self.stage != "runtime"


@dataclass(frozen=True)
class Parameter:
    """One parameter of an API method: its name, its type hint, whether a request must give it."""

    name: str
    hint: Any
    required: bool


@dataclass(frozen=True)
class ApiSpec:
    """One `@api` method: served as `POST /<name>`, JSON parameters in, JSON out."""

    name: str
    parameters: tuple[Parameter, ...]
    output: Any
    doc: str = ""

    def input_schema(self) -> dict:
        return {
            "type": "object",
            "properties": {p.name: json_schema(p.hint) for p in self.parameters},
            "required": [p.name for p in self.parameters if p.required],
            "additionalProperties": False,
        }

    def output_schema(self) -> dict:
        return json_schema(self.output)


@dataclass(frozen=True)
class ServiceSpec:
    """What `@ocibuild.service` declares: the image, envs, APIs and models, checked when it is built."""

    name: str
    class_name: str
    image: PythonImage
    envs: tuple[EnvVar, ...]  # what the service sees at run time (stage "both" and "runtime")
    apis: tuple[ApiSpec, ...] = field(default=())
    models: tuple[Model, ...] = field(default=())
    build_only_envs: tuple[EnvVar, ...] = field(default=())  # stage "build": never in the image

    def required_envs(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.envs if e.required)

    def runtime_envs(self) -> tuple[EnvVar, ...]:
        return self.envs

    def build_envs(self) -> tuple[EnvVar, ...]:
        """What `build` and uv see: stage "both" and "build", in declaration order."""
        return tuple(e for e in self.declared_envs() if e.at_build)

    def declared_envs(self) -> tuple[EnvVar, ...]:
        return self.envs + self.build_only_envs


def api(fn: Callable) -> Callable:
    """Mark a method as an HTTP endpoint; its type hints describe the input and output."""
    if not callable(fn):
        raise SpecError("@ocibuild.api decorates a method")
    setattr(fn, API_ATTRIBUTE, True)
    return fn


def service(cls: type | None = None, *, image: PythonImage | None = None,
            envs: list[dict] | None = None, name: str | None = None, models: list[Model] | None = None):
    """Class decorator declaring a service; usable bare or with arguments.

    Models are those in `models` and every `Model` class attribute.
    """

    def decorate(target: type) -> type:
        if not inspect.isclass(target):
            raise SpecError("@ocibuild.service decorates a class")
        parsed_envs = parse_envs(envs or [])
        spec = ServiceSpec(
            name=validate_name(name if name is not None else target.__name__.lower()),
            class_name=target.__name__,
            image=_check_image(image),
            envs=tuple(e for e in parsed_envs if e.at_runtime),
            build_only_envs=tuple(e for e in parsed_envs if not e.at_runtime),
            apis=tuple(_api_spec(n, f) for n, f in inspect.getmembers(target, inspect.isfunction)
                       if getattr(f, API_ATTRIBUTE, False)),
            models=_models(target, models or []),
        )
        setattr(target, SERVICE_ATTRIBUTE, spec)
        return target

    return decorate(cls) if cls is not None else decorate


def service_spec(cls: type) -> ServiceSpec | None:
    return cls.__dict__.get(SERVICE_ATTRIBUTE)


def _models(cls: type, declared: list[Model]) -> tuple[Model, ...]:
    attributes = [v for _, v in sorted(vars(cls).items()) if isinstance(v, Model)]
    for model in declared:
        if not isinstance(model, Model):
            raise SpecError(f"models must be ocibuild.models.Model values, not {model!r}")
    unique: dict[Model, None] = dict.fromkeys([*declared, *attributes])
    names = [m.name for m in unique]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SpecError(f"model {duplicated[0]} is declared with two different versions")
    return tuple(unique)


def _check_image(image: PythonImage | None) -> PythonImage:
    if image is None:
        return PythonImage()
    if not isinstance(image, PythonImage):
        raise SpecError(f"image must be an ocibuild.images.PythonImage, not {type(image).__name__}")
    return image


def parse_envs(envs: list[dict]) -> tuple[EnvVar, ...]:
    parsed: list[EnvVar] = []
    for entry in envs:
        if not isinstance(entry, dict) or "name" not in entry or set(entry) - {"name", "value", "stage"}:
            raise SpecError(f"invalid env {entry!r}: expected {{'name': ..., 'value': ..., 'stage': ...}} "
                            "(value and stage optional)")
        env_name, value, stage = entry["name"], entry.get("value"), entry.get("stage", "both")
        if stage not in _STAGES:
            raise SpecError(f"invalid stage {stage!r} for env {env_name}: one of {', '.join(_STAGES)}")
        if not isinstance(env_name, str) or not ENV_NAME.fullmatch(env_name):
            raise SpecError(f"invalid env name {env_name!r}: letters, digits and '_', not starting with a digit")
        if value is not None and not isinstance(value, str):
            raise SpecError(f"invalid value for env {env_name}: expected a string, got {type(value).__name__}")
        if any(e.name == env_name for e in parsed):
            raise SpecError(f"env {env_name} is declared twice")
        parsed.append(EnvVar(env_name, value, stage))
    return tuple(parsed)


def _api_spec(method_name: str, fn: Callable) -> ApiSpec:
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # unresolvable forward references
        raise SpecError(f"cannot read the type hints of @api {method_name}: {exc}") from None
    params = []
    for i, p in enumerate(inspect.signature(fn).parameters.values()):
        if i == 0:  # self
            continue
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            raise SpecError(f"@api {method_name}: parameter {p.name} must be a named parameter")
        params.append(Parameter(p.name, hints.get(p.name, inspect.Parameter.empty), p.default is p.empty))
    spec = ApiSpec(method_name, tuple(params), hints.get("return", inspect.Parameter.empty),
                   inspect.getdoc(fn) or "")
    try:
        spec.input_schema(), spec.output_schema()
    except TypeError as exc:
        raise SpecError(f"@api {method_name}: {exc}") from None
    return spec
