"""The OpenAPI document of a service: written into the bento, served at `/docs.json`."""

from __future__ import annotations

from ocibuild.sdk.service import ServiceSpec

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def openapi_document(spec: ServiceSpec, version: str = "0") -> dict:
    paths = {}
    for api in spec.apis:
        paths[f"/{api.name}"] = {
            "post": {
                "operationId": api.name,
                "summary": api.doc.splitlines()[0] if api.doc else api.name,
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": api.input_schema()}}},
                "responses": {
                    "200": {"description": "Success",
                            "content": {"application/json": {"schema": api.output_schema()}}},
                    "400": {"description": "Invalid input",
                            "content": {"application/json": {"schema": _ERROR}}},
                },
            }
        }
    for probe in ("healthz", "livez", "readyz"):
        paths[f"/{probe}"] = {"get": {"responses": {"200": {"description": "OK"}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": spec.name, "version": version},
        "paths": dict(sorted(paths.items())),
    }
