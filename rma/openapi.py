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


ERROR = {
    "type": "object",
    "required": ["item", "field", "code", "message"],
    "properties": {
        "item": {"type": ["integer", "null"], "minimum": 0,
                 "description": "0-based index in `items`; null for the form as a whole"},
        "field": {"type": "string", "examples": ["serial", "fault_description", "contact_email"],
                  "description": "serial, fault_description, fault_category, item, contact, "
                                 "contact_name, contact_phone, contact_email, ship_to, items, "
                                 "language, customer_contract, page, per_page, status"},
        "code": {"type": "string",
                 "enum": ["malformed", "unknown", "foreign", "open_rma", "duplicate",
                          "required", "too_long", "unknown_category", "bad_photo",
                          "photo_too_large", "too_many_photos", "too_many_items", "invalid"]},
        "message": {"type": "string", "description": "In English, or Chinese with "
                                                     "Accept-Language: zh"},
    },
}

VALIDATION_PROBLEM = {
    "description": "A problem document listing every error; nothing was saved",
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {"type": "object", "required": ["errors"], "properties": {
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/Error"}},
        }},
    ],
}

FAULT_CATEGORY_KEYS = ["no_display", "buttons", "battery", "wrong_codes", "physical_damage",
                       "activation", "licence", "other"]
ITEM_STATUSES = ["submitted", "awaiting_unit", "received", "confirmed", "waiting_payment",
                 "released", "shipped", "delivered", "closed", "cancelled", "rejected"]
RMA_STATUSES = ["open", "closed", "cancelled"]

RMA_REQUEST = {
    "type": "object",
    "required": ["contact", "ship_to", "items"],
    "properties": {
        "contact": {
            "type": "object", "required": ["name", "phone", "email"],
            "properties": {"name": {"type": "string", "maxLength": 200},
                           "phone": {"type": "string", "maxLength": 64},
                           "email": {"type": "string", "format": "email", "maxLength": 254}},
        },
        "ship_to": {"type": "string", "maxLength": 2000,
                    "description": "Where the replacement goes"},
        "items": {
            "type": "array", "minItems": 1, "maxItems": 500,
            "description": "One per unit; at most RMA_MAX_ITEMS (500 by default)",
            "items": {
                "type": "object", "required": ["serial", "fault_description"],
                "properties": {
                    "serial": {"type": "string",
                               "description": "Trimmed and upper-cased; 4 to 32 characters "
                                              "A-Z, 0-9 and '-' (D-8)"},
                    "fault_description": {"type": "string", "maxLength": 2000},
                    "fault_category": {"type": ["string", "null"],
                                       "enum": [*FAULT_CATEGORY_KEYS, "", None]},
                },
            },
        },
        "language": {"type": "string", "enum": ["zh_CN", "en"],
                     "description": "Of the e-mails to the contact; default: the token "
                                    "user's language (zh_CN for staff)"},
        "customer_contract": {"type": "string",
                              "description": "Staff tokens only, and required for them: "
                                             "the customer's contract number"},
    },
}

COVERAGE = {
    "type": "object",
    "description": "The warranty API's fields, judged on the report date (`judged_on`)",
    "required": [*WARRANTY["required"], "judged_on", "meaning"],
    "properties": {
        **{k: v for k, v in WARRANTY["properties"].items() if k != "days_left"},
        "kind": {"type": "string", "enum": ["hardware", "software", "appliance"]},
        "days_left": {"type": "integer", "minimum": 0,
                      "description": "Covered days from judged_on through warranty_end"},
        "judged_on": {"type": "string", "format": "date",
                      "description": "The date the fault was reported (China time)"},
        "meaning": {"type": "string", "description": "What the coverage means for a "
                                                     "replacement, in words"},
    },
}

_NUMBER = {"type": "string", "pattern": "^RMA-[0-9]{4}-[0-9]{6}$",
           "examples": ["RMA-2026-000042"]}
_URLS = {
    "url": {"type": "string", "format": "uri"},
    "label_url": {"type": "string", "format": "uri",
                  "description": "The parcel label PDF (R-R2); add ?size=thermal for "
                                 "100 x 150 mm"},
}

RMA_CREATED = {
    "type": "object",
    "required": ["number", "status", "items", "url", "label_url"],
    "properties": {
        "number": _NUMBER,
        "status": {"type": "string", "enum": RMA_STATUSES},
        "items": {"type": "array", "items": {
            "type": "object", "required": ["line", "serial", "status", "coverage"],
            "properties": {"line": {"type": "integer"}, "serial": {"type": "string"},
                           "status": {"type": "string", "enum": ITEM_STATUSES},
                           "coverage": {"$ref": "#/components/schemas/Coverage"}},
        }},
        **_URLS,
    },
}

_CUSTOMER = {"type": "object", "properties": {"name": {"type": "string"},
                                              "contract_number": {"type": "string"}}}

RMA = {
    "type": "object",
    "required": ["number", "status", "customer", "contact", "ship_to", "submitted_at",
                 "items", "timeline", "url", "label_url"],
    "properties": {
        "number": _NUMBER,
        "status": {"type": "string", "enum": RMA_STATUSES},
        "customer": _CUSTOMER,
        "contact": RMA_REQUEST["properties"]["contact"],
        "ship_to": {"type": "string"},
        "language": {"type": "string", "enum": ["zh_CN", "en"]},
        "submitted_at": {"type": "string", "format": "date-time"},
        "items": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "line": {"type": "integer"},
                "serial": {"type": "string"},
                "product_model": {"type": "string"},
                "product_name": {"type": "string"},
                "status": {"type": "string", "enum": ITEM_STATUSES},
                "fault_description": {"type": "string"},
                "fault_category": {"type": ["string", "null"]},
                "photos": {"type": "integer", "description": "Number of photos"},
                "coverage": {"$ref": "#/components/schemas/Coverage"},
                "cause": {"type": ["string", "null"], "description": "After inspection (D-4)"},
                "decision": {"type": ["string", "null"], "description": "free or paid"},
                "confirmed_at": {"type": ["string", "null"], "format": "date-time"},
                "due_at": {"type": ["string", "null"], "format": "date-time",
                           "description": "Replacement on site by (R-R3)"},
                "shipments": {"type": "array", "items": {"type": "object"}},
            },
        }},
        "timeline": {"type": "array", "items": {
            "type": "object",
            "properties": {"at": {"type": "string", "format": "date-time"},
                           "text": {"type": "string"},
                           "serial": {"type": ["string", "null"]},
                           "actor": {"type": "string"}},
        }},
        **_URLS,
    },
}

RMA_SUMMARY = {
    "type": "object",
    "properties": {
        "number": _NUMBER,
        "status": {"type": "string", "enum": RMA_STATUSES},
        "customer": _CUSTOMER,
        "contact_name": {"type": "string"},
        "submitted_at": {"type": "string", "format": "date-time"},
        "item_count": {"type": "integer"},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "line": {"type": "integer"}, "serial": {"type": "string"},
            "status": {"type": "string", "enum": ITEM_STATUSES}}}},
        **_URLS,
    },
}

RMA_PAGE = {
    "type": "object",
    "required": ["items", "page", "per_page", "total", "pages"],
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/RmaSummary"}},
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
        "total": {"type": "integer", "minimum": 0},
        "pages": {"type": "integer", "minimum": 1},
    },
}


def _json(schema: str, description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _validation_response(description: str) -> dict:
    schema = {"$ref": "#/components/schemas/ValidationProblem"}
    return {"description": description,
            "content": {"application/problem+json": {"schema": schema}}}


_BEARER = [{"bearerAuth": []}]
_UNAUTHORIZED = {
    "description": "No token, or a token that is unknown, revoked or of an inactive user",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"},
                                     "description": 'Bearer realm="rma"'}},
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def _rma_paths() -> dict:
    number = {"name": "number", "in": "path", "required": True, "schema": _NUMBER}
    return {
        "/api/v1/rmas": {
            "post": {
                "operationId": "createRma",
                "summary": "Submit an RMA (R-R1); its number and label come back at once "
                           "(R-R2, D-1)",
                "description": "All or nothing: every error is listed and nothing is saved. "
                               "A customer's token submits for its own organisation; a staff "
                               "token must name the customer with `customer_contract`. The "
                               "contact gets an e-mail with the label PDF.",
                "security": _BEARER,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RmaRequest"}}}},
                "responses": {
                    "201": {**_json("RmaCreated", "Created"),
                            "headers": {"Location": {"schema": {"type": "string"},
                                                     "description": "/api/v1/rmas/{number}"}}},
                    "400": _problem_response("The body is not JSON"),
                    "401": _UNAUTHORIZED,
                    "422": _validation_response("Not valid; `errors` lists every problem"),
                },
            },
            "get": {
                "operationId": "listRmas",
                "summary": "RMAs the token may see, newest first",
                "security": _BEARER,
                "parameters": [
                    {"name": "page", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "default": 1}},
                    {"name": "per_page", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                "default": 20}},
                    {"name": "status", "in": "query",
                     "description": "An RMA status, or an item status (RMAs with such an item)",
                     "schema": {"type": "string", "enum": [*RMA_STATUSES, *ITEM_STATUSES]}},
                    {"name": "serial", "in": "query", "description": "RMAs with this serial",
                     "schema": {"type": "string"}},
                    {"name": "q", "in": "query",
                     "description": "Part of an RMA number, or a whole serial",
                     "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json("RmaPage", "One page"),
                    "401": _UNAUTHORIZED,
                    "422": _validation_response("A query parameter is not valid"),
                },
            },
        },
        "/api/v1/rmas/{number}": {
            "get": {
                "operationId": "getRma",
                "summary": "One RMA: items, coverage, decision, deadline, shipments, timeline",
                "security": _BEARER,
                "parameters": [number],
                "responses": {
                    "200": _json("Rma", "The RMA"),
                    "401": _UNAUTHORIZED,
                    "404": _problem_response("No such RMA, or not the token's customer's"),
                },
            },
        },
        "/rmas/{number}/label.pdf": {
            "get": {
                "operationId": "getRmaLabel",
                "summary": "The parcel label (R-R2) as PDF",
                "description": "Also works with the browser session of a logged-in user.",
                "security": _BEARER,
                "parameters": [
                    number,
                    {"name": "size", "in": "query",
                     "schema": {"type": "string", "enum": ["a4", "thermal"], "default": "a4"}},
                    {"name": "download", "in": "query",
                     "description": "0 to show it in the browser instead of downloading",
                     "schema": {"type": "string", "enum": ["0", "1"], "default": "1"}},
                ],
                "responses": {
                    "200": {"description": "The PDF (Content-Disposition: attachment)",
                            "content": {"application/pdf": {}}},
                    "400": {"description": "Unknown size"},
                    "401": {"description": "A bearer token that is not valid"},
                    "404": {"description": "No such RMA, or not yours"},
                },
            },
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
            **_rma_paths(),
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
            "schemas": {
                "Problem": PROBLEM, "Warranty": WARRANTY, "Error": ERROR,
                "ValidationProblem": VALIDATION_PROBLEM, "Coverage": COVERAGE,
                "RmaRequest": RMA_REQUEST, "RmaCreated": RMA_CREATED, "Rma": RMA,
                "RmaSummary": RMA_SUMMARY, "RmaPage": RMA_PAGE,
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "Token from `rma create-token EMAIL`, sent as "
                                              "`Authorization: Bearer <token>`"},
            },
        },
    }
