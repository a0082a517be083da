"""The API description served at ``/api/v1/openapi.json`` (OpenAPI 3.1)."""

from __future__ import annotations

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem document",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}

WARRANTY = {
    "type": "object",
    "required": ["serial", "product_model", "kind", "warranty_basis", "warranty_start",
                 "warranty_end", "in_warranty", "days_left", "replacement_of"],
    "properties": {
        "serial": {"type": "string", "description": "Normalised serial (D-8)"},
        "product_model": {"type": "string"},
        "kind": {"type": "string", "enum": ["hardware", "software", "appliance"]},
        "warranty_basis": {
            "type": "string",
            "description": "Which date started the warranty",
            "enum": ["ship", "activation", "acceptance", "ship_fallback",
                     "replacement_inherit", "replacement_fresh",
                     "replacement_inherit_min_days", "not_shipped"],
        },
        "warranty_start": {"type": ["string", "null"], "format": "date"},
        "warranty_end": {"type": ["string", "null"], "format": "date",
                         "description": "Last covered day (inclusive)"},
        "in_warranty": {"type": "boolean"},
        "days_left": {"type": "integer", "minimum": 0,
                      "description": "Covered days from today through warranty_end"},
        "replacement_of": {"type": ["string", "null"],
                           "description": "Serial of the unit this one replaced"},
    },
}


def _problem_response(description: str) -> dict:
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description,
            "content": {"application/problem+json": {"schema": schema}}}


def spec() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "RMA and warranty service API", "version": "1"},
        "servers": [{"url": "/"}],
        "paths": {
            "/api/v1/warranty/{serial}": {
                "get": {
                    "operationId": "getWarranty",
                    "summary": "Warranty coverage of one unit (public)",
                    "security": [],
                    "parameters": [{
                        "name": "serial", "in": "path", "required": True,
                        "schema": {"type": "string", "maxLength": 200},
                    }],
                    "responses": {
                        "200": {"description": "Coverage today (China time)",
                                "content": {"application/json": {
                                    "schema": {"$ref": "#/components/schemas/Warranty"}}}},
                        "404": _problem_response("Unknown serial"),
                        "422": _problem_response("Malformed serial (D-8)"),
                        "429": _problem_response("Too many requests from this address"),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This description",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI document",
                                          "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "schemas": {"Problem": PROBLEM, "Warranty": WARRANTY},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "Token from `rma create-token EMAIL`"},
            },
        },
    }
