"""The OpenAPI document, made from the routes themselves so it cannot drift."""
from __future__ import annotations

import re

from aiohttp import web

from . import __version__, auth_policy, openapi_schemas

ERROR = {"$ref": "#/components/schemas/Error"}
UNDOCUMENTED = {"/{path}"}
# Request bodies with a schema of their own (components.schemas).
BODIES = {("post", "/api/shots"): "ShotSpec", ("patch", "/api/shots/{shot_id}"): "ShotChange",
          ("patch", "/api/nodes/{node_id}"): "NodeChange"}


def documented_routes(app: web.Application) -> list[tuple[str, str, str]]:
    """(method, path, summary) for every API route; the summary is the docstring."""
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method == "HEAD":
            continue
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)
        if path in UNDOCUMENTED:
            continue
        doc = (route.handler.__doc__ or "").strip().splitlines()
        out.append((route.method.lower(), path, doc[0] if doc else ""))
    return out


def openapi_document(app: web.Application) -> dict:
    paths: dict[str, dict] = {}
    for method, path, summary in documented_routes(app):
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                  for p in re.findall(r"\{(\w+)\}", path)]
        op: dict = {"summary": summary, "responses": {
            "200": {"description": "OK"},
            "4XX": {"description": "Bad input", "content": {"application/json": {
                "schema": ERROR}}}}}
        if params:
            op["parameters"] = params
        if (method, path) in BODIES:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{BODIES[method, path]}"}}}}
        roles = auth_policy.roles_of(method, path)
        op["x-roles"] = roles
        if "anyone" not in roles:
            op["security"] = [{"token": []}]
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Brender coordinator", "version": __version__,
                 "description": "See docs/api.md for objects, events and the node protocol."},
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"}, "field": {"type": "string"}}},
                "ShotSpec": openapi_schemas.shot_spec(),
                "RenderOverrides": openapi_schemas.render_overrides(),
                "ShotChange": openapi_schemas.shot_change(),
                "NodeChange": openapi_schemas.node_change()}},
    }
