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
                                 "language, customer_contract, page, per_page, status; "
                                 "body: the request body as a whole"},
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


# A page number; beyond the maximum its offset might not fit the database's integers: 422.
_PAGE = {"name": "page", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1}}


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
                    _PAGE,
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
                    "302": {"description": "No token and no browser session: to the login "
                                           "page (the label is also a page for people)",
                            "headers": {"Location": {"schema": {"type": "string"}}}},
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


# -- issue 4: the staff warehouse API (rma/views/api_warehouse.py) -----------------------
CAUSES = ["quality_defect", "misuse_drop", "misuse_heat", "misuse_water", "misuse_physical",
          "misuse_other", "no_fault_found"]
CLOCK_STATES = ["on_track", "at_risk", "breached", "met", "missed"]
_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}

SHIPMENT = {
    "type": "object",
    "required": ["kind", "serial", "product_model", "carrier", "tracking_number",
                 "shipped_at", "delivered_at", "received_by"],
    "properties": {
        "kind": {"type": "string", "enum": ["replacement", "return"],
                 "description": "return: no fault found, the customer's own unit (D-4)"},
        "serial": {"type": "string", "description": "The unit in the parcel"},
        "product_model": {"type": "string"},
        "carrier": {"type": "string"},
        "tracking_number": {"type": "string"},
        "shipped_at": {"type": "string", "format": "date-time"},
        "delivered_at": _DATE_TIME,
        "received_by": {"type": ["string", "null"], "description": "Who signed"},
    },
}

# The issue-4 fields of an item, also in GET /api/v1/rmas/{number} (no staff notes there).
ITEM_CLOCK_PROPERTIES = {
    "decision_rule": {"type": ["string", "null"], "examples": ["R-W3"],
                      "description": "The rule of the computed decision: R-W3, R-W4, R-W5 "
                                     "or D-4"},
    "decision_reason": {"type": ["string", "null"], "description": "That rule in words"},
    "overridden": {"type": "boolean", "description": "A manager overrode it (D-6)"},
    "remote_confirmation": {"type": "boolean",
                            "description": "Confirmed remotely: advance replacement (D-1)"},
    "clock_started_at": _DATE_TIME,
    "clock_state": {"type": ["string", "null"], "enum": [*CLOCK_STATES, None],
                    "description": "The 72-hour clock (R-R3); null when none runs"},
    "hours_left": {"type": ["number", "null"], "description": "Negative once breached"},
    "unit_received_at": _DATE_TIME,
    "unit_due_back_on": {"type": ["string", "null"], "format": "date",
                         "description": "Advance replacement: the faulty unit is due back "
                                        "by then (D-2)"},
    "unit_overdue": {"type": "boolean"},
    "released_at": _DATE_TIME,
    "rejected_reason": {"type": ["string", "null"]},
    "closed_at": _DATE_TIME,
    "shipments": {"type": "array", "items": {"$ref": "#/components/schemas/Shipment"}},
}
RMA["properties"]["items"]["items"]["properties"].update(ITEM_CLOCK_PROPERTIES)

WAREHOUSE_ITEM = {
    "type": "object",
    "description": "An item after a staff action, with the staff-internal notes",
    "properties": {
        "rma": _NUMBER,
        "line": {"type": "integer"},
        "serial": {"type": "string"},
        "status": {"type": "string", "enum": ITEM_STATUSES},
        "cause": {"type": ["string", "null"], "enum": [*CAUSES, None]},
        "cause_notes": {"type": "string"},
        "decision": {"type": ["string", "null"], "enum": ["free", "paid", "return_unit", None]},
        "computed_decision": {"type": ["string", "null"]},
        "confirmed_at": _DATE_TIME,
        "due_at": {**_DATE_TIME, "description": "Replacement on site by (R-R3)"},
        **ITEM_CLOCK_PROPERTIES,
        "override_reason": {"type": ["string", "null"]},
        "overridden_at": _DATE_TIME,
        "release_note": {"type": "string"},
        "breach_reason": {"type": ["string", "null"]},
        "url": {"type": "string", "format": "uri"},
    },
}

SCAN_ANSWER = {
    "type": "object",
    "required": ["outcome", "rma", "serial"],
    "properties": {
        "outcome": {"type": "string", "enum": ["received", "already_received", "unexpected",
                                               "refused", "malformed"]},
        "message": {"type": "string", "description": "In a problem document: `detail`"},
        "rma": _NUMBER,
        "serial": {"type": ["string", "null"]},
        "line": {"type": ["integer", "null"]},
        "item_status": {"type": ["string", "null"]},
        "unit_received_at": _DATE_TIME,
    },
}

REPLACEMENT = {
    "type": "object",
    "properties": {
        "rma": _NUMBER, "line": {"type": "integer"}, "serial": {"type": "string"},
        "product_model": {"type": "string"}, "customer": _CUSTOMER,
        "status": {"type": "string", "enum": ["confirmed", "released", "shipped"]},
        "decision": {"type": "string"}, "remote_confirmation": {"type": "boolean"},
        "clock_started_at": {"type": "string", "format": "date-time"},
        "due_at": {"type": "string", "format": "date-time"},
        "clock_state": {"type": "string", "enum": ["on_track", "at_risk", "breached"]},
        "hours_left": {"type": "number"},
        "url": {"type": "string", "format": "uri"},
    },
}

REPLACEMENT_PAGE = {
    "type": "object",
    "required": ["items", "page", "per_page", "total", "pages"],
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Replacement"}},
        "page": {"type": "integer"}, "per_page": {"type": "integer", "maximum": 100},
        "total": {"type": "integer"}, "pages": {"type": "integer"},
        "now": {"type": "string", "format": "date-time"},
    },
}

REPLACEMENT_REPORT = {
    "type": "object",
    "properties": {
        "since": {"type": "string", "format": "date-time"},
        "months": {"type": "array", "items": {"type": "object", "properties": {
            "month": {"type": "string", "examples": ["2026-11"],
                      "description": "China month the clocks started in"},
            "started": {"type": "integer"}, "delivered": {"type": "integer"},
            "within_target": {"type": "integer"},
            "share_within": {"type": ["number", "null"]},
            "median_hours": {"type": ["number", "null"]},
            "p90_hours": {"type": ["number", "null"], "description": "Nearest rank"},
            "breached": {"type": "integer"}}}},
        "breaches": {"type": "array", "items": {"type": "object", "properties": {
            "rma": _NUMBER, "serial": {"type": "string"}, "customer": {"type": "string"},
            "due_at": {"type": "string", "format": "date-time"},
            "delivered": {"type": "boolean"}, "hours_late": {"type": "number"},
            "reason": {"type": "string"}}}},
    },
}

WAREHOUSE_SCHEMAS = {
    "Shipment": SHIPMENT, "WarehouseItem": WAREHOUSE_ITEM, "ScanAnswer": SCAN_ANSWER,
    "Replacement": REPLACEMENT, "ReplacementPage": REPLACEMENT_PAGE,
    "ReplacementReport": REPLACEMENT_REPORT,
}

_FORBIDDEN = "A customer's token, or a staff role that may not do this"
_ACTIONS = {
    # action: (summary, request properties, required, 200 schema, extra responses)
    "confirm": ("Confirm the fault: remotely (support, D-1; the replacement may ship before "
                "the unit is back) or on inspection of the received unit. The decision comes "
                "from the cause and the coverage at the report date (R-W3..R-W5, D-4); "
                "`due_at` where the 72-hour clock runs (R-R3)",
                {"cause": {"type": "string", "enum": CAUSES},
                 "notes": {"type": "string", "maxLength": 2000,
                           "description": "Staff-internal"},
                 "remote": {"type": "boolean", "default": False}}, ["cause"], "WarehouseItem"),
    "request-unit": ("Ask the customer to send the unit back (D-1)",
                     {"notes": {"type": "string", "maxLength": 2000}}, [], "WarehouseItem"),
    "reject": ("Reject the item; the customer reads the reason",
               {"reason": {"type": "string", "maxLength": 2000}}, ["reason"], "WarehouseItem"),
    "cancel": ("Cancel the item (e.g. the paid quote was declined)",
               {"reason": {"type": "string", "maxLength": 2000}}, ["reason"], "WarehouseItem"),
    "override": ("A manager overrides the decision free <-> paid, with a reason (D-6)",
                 {"decision": {"type": "string", "enum": ["free", "paid"]},
                  "reason": {"type": "string", "maxLength": 2000}}, ["decision", "reason"],
                 "WarehouseItem"),
    "release": ("Finance releases a paid replacement on credit, with a reason, for a "
                "customer with credit terms (409 otherwise; a paid invoice releases its "
                "items itself); its 72-hour clock starts (D-3)",
                {"reason": {"type": "string", "maxLength": 2000}}, ["reason"],
                "WarehouseItem"),
    "ship": ("Ship a spare in stock of the same model or an allowed successor (for no fault "
             "found: the customer's own unit, `replacement_serial` may be left out). 409 when "
             "the spare was just shipped elsewhere, or a paid item is not released (D-3)",
             {"replacement_serial": {"type": "string"},
              "carrier": {"type": "string", "maxLength": 100},
              "tracking_number": {"type": "string", "maxLength": 100}},
             ["carrier", "tracking_number"], None),
    "deliver": ("Record the delivery on site: the 72-hour clock stops (R-R3)",
                {"delivered_at": {"type": "string", "format": "date-time",
                                  "description": "With its offset; not in the future, not "
                                                 "before the shipment"},
                 "received_by": {"type": "string", "maxLength": 200},
                 "late_reason": {"type": "string", "maxLength": 2000,
                                 "description": "Kept as the breach's reason when late"}},
                ["delivered_at", "received_by"], None),
}


def _action_answer(action: str, schema: str | None) -> dict:
    if schema is not None:
        return _json(schema, "The item after the action")
    if action == "ship":
        body = {"type": "object", "properties": {
            "shipment": {"$ref": "#/components/schemas/Shipment"},
            "item": {"$ref": "#/components/schemas/WarehouseItem"}}}
    else:
        body = {"type": "object", "required": ["within_target", "hours"], "properties": {
            "within_target": {"type": ["boolean", "null"],
                              "description": "null when no clock ran (no fault found)"},
            "hours": {"type": ["number", "null"], "examples": [41.5],
                      "description": "From the clock's start to the delivery"},
            "closed": {"type": "boolean"},
            "item": {"$ref": "#/components/schemas/WarehouseItem"}}}
    return {"description": "Done", "content": {"application/json": {"schema": body}}}


def _warehouse_paths() -> dict:
    number = {"name": "number", "in": "path", "required": True, "schema": _NUMBER}
    serial = {"name": "serial", "in": "path", "required": True, "schema": {"type": "string"}}
    common = {
        "401": _UNAUTHORIZED,
        "403": _problem_response(_FORBIDDEN),
        "404": _problem_response("No such RMA or item"),
        "409": _problem_response("The item's state does not allow it: `state` and `action` "
                                 "say which"),
        "422": _validation_response("A field is not valid; nothing was changed"),
    }
    paths = {
        "/api/v1/rmas/{number}/receive": {"post": {
            "operationId": "receiveUnit",
            "summary": "Receive a unit of this RMA by its serial (the scan station's check-off)",
            "description": "200 for received and already received (nothing changes then); "
                           "409 for a unit not on this RMA, recorded as unexpected, or an "
                           "item that cannot be received; 422 for a malformed serial (D-8).",
            "security": _BEARER, "parameters": [number],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["serial"],
                "properties": {"serial": {"type": "string"}}}}}},
            "responses": {"200": _json("ScanAnswer", "Received, or already received"),
                          **common, "400": _problem_response("The body is not JSON")},
        }},
    }
    for action, (summary, properties, required, schema) in _ACTIONS.items():
        operation_id = "".join(part.capitalize() for part in action.split("-"))
        paths[f"/api/v1/rmas/{{number}}/items/{{serial}}/{action}"] = {"post": {
            "operationId": f"item{operation_id}",
            "summary": summary,
            "security": _BEARER,
            "parameters": [number, serial],
            "requestBody": {"required": bool(required), "content": {"application/json": {
                "schema": {"type": "object", "required": required,
                           "properties": properties}}}},
            "responses": {"200": _action_answer(action, schema), **common,
                          "400": _problem_response("The body is not JSON")},
        }}
    paths["/api/v1/replacements"] = {"get": {
        "operationId": "listReplacements",
        "summary": "Open replacements whose 72-hour clock runs, least time left first (R-R3)",
        "security": _BEARER,
        "parameters": [
            {"name": "state", "in": "query",
             "schema": {"type": "string", "enum": ["on_track", "at_risk", "breached"]}},
            {"name": "customer", "in": "query", "description": "A contract number",
             "schema": {"type": "string"}},
            {"name": "status", "in": "query",
             "schema": {"type": "string", "enum": ["confirmed", "released", "shipped"]}},
            _PAGE,
            {"name": "per_page", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}},
        ],
        "responses": {"200": _json("ReplacementPage", "One page"), "401": _UNAUTHORIZED,
                      "403": _problem_response(_FORBIDDEN),
                      "422": _validation_response("A query parameter is not valid")},
    }}
    paths["/api/v1/replacements/report"] = {"get": {
        "operationId": "replacementReport",
        "summary": "Monthly figures of the 72-hour target and every breach with its reason",
        "security": _BEARER,
        "parameters": [{"name": "months", "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 120,
                                   "default": 12}}],
        "responses": {"200": _json("ReplacementReport", "The figures"), "401": _UNAUTHORIZED,
                      "403": _problem_response(_FORBIDDEN),
                      "422": _validation_response("months is not valid")},
    }}
    return paths


# -- issue 5: invoices, payments and quotes (rma/views/api_finance.py) ------------------
_MONEY = {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$", "examples": ["361.60"],
          "description": "CNY with two decimals, as a string (D-5)"}
_DATE = {"type": "string", "format": "date"}
_INVOICE_NUMBER = {"type": "string", "pattern": "^(INV|CN)-[0-9]{4}-[0-9]{6}$",
                   "examples": ["INV-2026-000123", "CN-2026-000007"]}
_QUOTE_NUMBER = {"type": "string", "pattern": "^Q-[0-9]{4}-[0-9]{6}$",
                 "examples": ["Q-2026-000001"]}
INVOICE_STATUSES = ["unpaid", "partially_paid", "paid", "credited", "issued"]
PAYMENT_METHODS = ["bank_transfer", "cheque", "cash", "online"]
QUOTE_STATUSES = ["open", "accepted", "declined", "expired", "superseded", "withdrawn"]

DOCUMENT_LINE = {
    "type": "object",
    "description": "One line; net and VAT rounded per line, half up to the fen (D-5)",
    "required": ["line_no", "description", "quantity", "unit_price", "vat_rate", "net",
                 "vat", "gross"],
    "properties": {
        "line_no": {"type": "integer", "minimum": 1},
        "kind": {"type": "string", "enum": ["replacement", "shipping", "support", "credit"]},
        "serial": {"type": ["string", "null"]},
        "description": {"type": "string", "description": "In the document's language"},
        "quantity": {"type": "integer"},
        "unit_price": _MONEY,
        "vat_rate": {"type": "string", "examples": ["0.1300"], "description": "A fraction"},
        "net": _MONEY, "vat": _MONEY, "gross": _MONEY,
    },
}
_TOTALS = {"type": "object", "required": ["net", "vat", "gross"],
           "description": "Sums of the rounded lines",
           "properties": {"net": _MONEY, "vat": _MONEY, "gross": _MONEY}}
PAYMENT = {
    "type": "object",
    "required": ["amount", "received_on", "method"],
    "properties": {
        "amount": _MONEY, "received_on": _DATE,
        "method": {"type": "string", "enum": PAYMENT_METHODS},
        "reference": {"type": "string"}, "note": {"type": "string"},
        "recorded_at": {"type": "string", "format": "date-time"},
    },
}
INVOICE = {
    "type": "object",
    "description": "An invoice (INV-…) or a credit note (CN-…) correcting one; never edited "
                   "once issued",
    "required": ["number", "kind", "status", "customer_contract", "issued_on", "currency",
                 "lines", "totals", "paid_total", "credited_total", "outstanding",
                 "payments"],
    "properties": {
        "number": _INVOICE_NUMBER,
        "kind": {"type": "string", "enum": ["invoice", "credit_note"]},
        "status": {"type": "string", "enum": INVOICE_STATUSES},
        "customer_contract": {"type": "string"},
        "billing_name": {"type": "string"},
        "quote_number": {"type": ["string", "null"]},
        "rma_number": {"type": ["string", "null"]},
        "language": {"type": "string", "enum": ["zh_CN", "en"]},
        "issued_on": _DATE,
        "due_on": {"type": ["string", "null"], "format": "date"},
        "currency": {"type": "string", "enum": ["CNY"]},
        "lines": {"type": "array", "items": {"$ref": "#/components/schemas/DocumentLine"}},
        "totals": _TOTALS,
        "paid_total": _MONEY, "credited_total": _MONEY,
        "outstanding": {**_MONEY, "description": "Still to pay (0.00 for a credit note)"},
        "settled_at": {"type": ["string", "null"], "format": "date-time"},
        "payments": {"type": "array", "items": {"$ref": "#/components/schemas/Payment"}},
        "credit_notes": {"type": "array", "items": {"type": "string"}},
        "credits": {"type": ["string", "null"],
                    "description": "A credit note: the invoice it corrects"},
        "reason": {"type": "string"},
        "url": {"type": "string", "format": "uri"},
    },
}
INVOICE_PAGE = {
    "type": "object",
    "required": ["items", "page", "per_page", "total", "pages"],
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Invoice"}},
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
        "total": {"type": "integer", "minimum": 0},
        "pages": {"type": "integer", "minimum": 1},
    },
}
PAYMENT_REQUEST = {
    "type": "object",
    "required": ["amount", "received_on", "method"],
    "properties": {
        "amount": {"type": ["string", "number"], "examples": ["120.50"],
                   "description": "More than zero, at most two decimals; read exactly (a "
                                  "JSON number is never turned into a float). At most what "
                                  "is outstanding"},
        "received_on": {**_DATE, "description": "Not in the future (China date)"},
        "method": {"type": "string", "enum": PAYMENT_METHODS},
        "reference": {"type": "string", "maxLength": 100},
        "note": {"type": "string", "maxLength": 2000},
    },
}
PAYMENT_RECORDED = {
    "type": "object", "required": ["payment", "invoice"],
    "properties": {"payment": {"$ref": "#/components/schemas/Payment"},
                   "invoice": {"$ref": "#/components/schemas/Invoice"}},
}
QUOTE = {
    "type": "object",
    "description": "Paid replacements of one RMA (R-W4, R-W5) or paid support (R-C3)",
    "required": ["number", "kind", "status", "issued_on", "valid_until", "currency", "lines",
                 "totals"],
    "properties": {
        "number": _QUOTE_NUMBER,
        "kind": {"type": "string", "enum": ["replacement", "support"]},
        "status": {"type": "string", "enum": QUOTE_STATUSES},
        "id": {"type": "integer"},
        "contract_number": {"type": "string"},
        "customer": {"type": "string", "description": "The customer's name"},
        "rma_number": {"type": ["string", "null"]},
        "language": {"type": "string", "enum": ["zh_CN", "en"]},
        "issued_on": _DATE,
        "valid_until": {**_DATE, "description": "The last day it may be accepted (China date)"},
        "currency": {"type": "string", "enum": ["CNY"]},
        "lines": {"type": "array", "items": {"$ref": "#/components/schemas/DocumentLine"}},
        "totals": _TOTALS,
        "support_months": {"type": ["integer", "null"]},
        "answered_at": {"type": ["string", "null"], "format": "date-time"},
        "answered_via": {"type": ["string", "null"],
                         "enum": ["portal", "api", "fax", "email", None]},
        "decline_disposition": {"type": ["string", "null"], "enum": ["return", "scrap", None]},
        "invoice_number": {"type": ["string", "null"]},
        "url": {"type": "string", "format": "uri"},
    },
}
QUOTE_ACCEPTED = {
    "type": "object", "required": ["quote", "invoice"],
    "properties": {"quote": {"$ref": "#/components/schemas/Quote"},
                   "invoice": {"$ref": "#/components/schemas/Invoice"}},
}
FINANCE_SCHEMAS = {
    "DocumentLine": DOCUMENT_LINE, "Payment": PAYMENT, "Invoice": INVOICE,
    "InvoicePage": INVOICE_PAGE, "PaymentRequest": PAYMENT_REQUEST,
    "PaymentRecorded": PAYMENT_RECORDED, "Quote": QUOTE, "QuoteAccepted": QUOTE_ACCEPTED,
}


def _finance_paths() -> dict:
    invoice = {"name": "number", "in": "path", "required": True, "schema": _INVOICE_NUMBER}
    quote = {"name": "number", "in": "path", "required": True, "schema": _QUOTE_NUMBER}
    not_found = _problem_response("No such document, or another customer's (404, never 403)")
    bad_json = _problem_response("The body is not JSON")
    answer_body = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"note": {"type": "string", "maxLength": 2000}}}}}}
    decline_body = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "properties": {
            "disposition": {"type": "string", "enum": ["return", "scrap"], "default": "return",
                            "description": "What becomes of a faulty unit the vendor holds: "
                                           "sent back, or scrapped at the customer's request"},
            "note": {"type": "string", "maxLength": 2000}}}}}}
    answered = "Only the customer answers through the API (a staff token gets 403)"
    conflict = _problem_response("The quote is not open: already answered, superseded, or "
                                 "expired (the detail says which)")
    return {
        "/api/v1/invoices": {"get": {
            "operationId": "listInvoices",
            "summary": "Invoices and credit notes, newest first",
            "description": "A customer's token: its own. Finance, manager and admin tokens: "
                           "every customer's. Other staff: 403.",
            "security": _BEARER,
            "parameters": [
                {"name": "status", "in": "query",
                 "schema": {"type": "string", "enum": INVOICE_STATUSES}},
                {"name": "customer", "in": "query", "description": "A contract number",
                 "schema": {"type": "string"}},
                _PAGE,
                {"name": "per_page", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
            ],
            "responses": {"200": _json("InvoicePage", "One page"), "401": _UNAUTHORIZED,
                          "403": _problem_response("A staff role that may not see invoices"),
                          "422": _validation_response("A query parameter is not valid")},
        }},
        "/api/v1/invoices/{number}": {"get": {
            "operationId": "getInvoice",
            "summary": "One invoice or credit note: lines with VAT per line, totals, payments, "
                       "outstanding",
            "security": _BEARER, "parameters": [invoice],
            "responses": {"200": _json("Invoice", "The invoice"), "401": _UNAUTHORIZED,
                          "404": not_found},
        }},
        "/api/v1/invoices/{number}/payments": {"post": {
            "operationId": "recordPayment",
            "summary": "Record a payment received (finance only); paid in full, the invoice "
                       "releases its items for shipping and their 72-hour clock starts (D-3)",
            "description": "Partial payments add up. More than what is outstanding is refused "
                           "with 422 (`errors` names `amount`) and nothing is recorded.",
            "security": _BEARER, "parameters": [invoice],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/PaymentRequest"}}}},
            "responses": {
                "201": {**_json("PaymentRecorded", "Recorded"),
                        "headers": {"Location": {"schema": {"type": "string"},
                                                 "description": "/api/v1/invoices/{number}"}}},
                "400": bad_json, "401": _UNAUTHORIZED,
                "403": _problem_response("Not a finance token"),
                "404": _problem_response("No such invoice"),
                "409": _problem_response("A credit note, or an invoice already settled"),
                "422": _validation_response("A field is not valid, or the amount is more than "
                                            "what is outstanding; nothing was recorded"),
            },
        }},
        "/api/v1/quotes/{number}": {"get": {
            "operationId": "getQuote",
            "summary": "One quote: lines with VAT per line, totals, valid until, status",
            "security": _BEARER, "parameters": [quote],
            "responses": {"200": _json("Quote", "The quote"), "401": _UNAUTHORIZED,
                          "404": not_found},
        }},
        "/api/v1/quotes/{number}/accept": {"post": {
            "operationId": "acceptQuote",
            "summary": "The customer accepts an open quote: the invoice is issued at once; "
                       "the replacements ship once it is paid (D-3)",
            "security": _BEARER, "parameters": [quote], "requestBody": answer_body,
            "responses": {
                "201": {**_json("QuoteAccepted", "Accepted; the invoice"),
                        "headers": {"Location": {"schema": {"type": "string"},
                                                 "description": "/api/v1/invoices/{number}"}}},
                "400": bad_json, "401": _UNAUTHORIZED, "403": _problem_response(answered),
                "404": not_found, "409": conflict,
                "422": _validation_response("A field is not valid"),
            },
        }},
        "/api/v1/quotes/{number}/decline": {"post": {
            "operationId": "declineQuote",
            "summary": "The customer declines an open quote: no replacement, nothing to pay; "
                       "the faulty unit is sent back or scrapped",
            "security": _BEARER, "parameters": [quote], "requestBody": decline_body,
            "responses": {
                "200": _json("Quote", "Declined"),
                "400": bad_json, "401": _UNAUTHORIZED, "403": _problem_response(answered),
                "404": not_found, "409": conflict,
                "422": _validation_response("disposition or note is not valid"),
            },
        }},
    }


# -- issue 6: incidents, on-site visits (rma/views/api_incidents.py) --------------------
_INCIDENT_NUMBER = {"type": "string", "pattern": "^INC-[0-9]{4}-[0-9]{6}$",
                    "examples": ["INC-2026-000001"]}
INCIDENT_PRIORITIES = ["urgent", "serious", "general"]
INCIDENT_STATUSES = ["new", "contacted", "diagnosed", "resolved"]
SUPPORT_MODES = ["phone", "remote", "onsite"]
_PERSON = {"type": ["object", "null"], "properties": {"id": {"type": "integer"},
                                                      "name": {"type": "string"}}}
_INSTANT = {"type": "string", "format": "date-time"}

DEADLINE = {
    "type": "object",
    "required": ["target", "due_at", "clock", "state", "breached", "calendar_warning"],
    "properties": {
        "target": {"type": "string",
                   "enum": ["contact", "diagnosis", "resolution", "onsite_arrival"],
                   "description": "contact: R-I1 (30 min), diagnosis: R-I2 (24 h), "
                                  "resolution: the ladder's top rung (R-I4), onsite_arrival: "
                                  "R-I6 (8 h) of the open or last visit"},
        "due_at": _INSTANT,
        "done_at": _DATE_TIME,
        "clock": {"type": "string", "enum": ["calendar", "office"],
                  "description": "calendar hours (7x24) or office hours, by setting (D-7)"},
        "state": {"type": "string", "enum": ["on_track", "warning", "breached", "met", "missed"]},
        "breached": {"type": "boolean", "description": "Due time passed before it was done"},
        "remaining_seconds": {"type": "integer", "description": "Negative when overdue"},
        "calendar_warning": {"type": ["string", "null"],
                             "description": "Set when an office-hours clock crossed a year "
                                            "without holiday data (R-I7)"},
    },
}
ESCALATION = {
    "type": "object", "description": "A rung of the R-I4 ladder (staff tokens only)",
    "required": ["hours", "role", "due_at", "fired_at"],
    "properties": {
        "hours": {"type": "integer"},
        "role": {"type": "string", "enum": ["account_manager", "technical_lead",
                                            "service_director", "cto", "president"]},
        "due_at": _INSTANT, "fired_at": _DATE_TIME, "fired": {"type": "boolean"},
        "recipients": {"type": "array", "items": {}},
    },
}
VISIT = {
    "type": "object",
    "required": ["id", "kind", "requested_at", "arrival_due_at", "arrived_at", "ended_at",
                 "chargeable", "briefs"],
    "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["emergency", "change"]},
        "requested_at": _INSTANT,
        "arrival_due_at": {**_INSTANT, "description": "R-I6: 8 hours after the request"},
        "arrived_at": _DATE_TIME, "ended_at": _DATE_TIME,
        "engineer": _PERSON,
        "site_address": {"type": "string"}, "note": {"type": "string"},
        "chargeable": {"type": "boolean",
                       "description": "R-C4: a second change visit in the contract year"},
        "contract_year_start": {"type": ["string", "null"], "format": "date"},
        "briefs": {"type": "array", "items": {"type": "object", "properties": {
            "day": {"type": "string", "format": "date"}, "text": {"type": "string"},
            "filed_at": _INSTANT}}},
        "final_report": {"type": "string"},
        "report_url": {"type": ["string", "null"], "format": "uri",
                       "description": "The final report as PDF, once the visit ended"},
    },
}
INCIDENT_SUMMARY = {
    "type": "object",
    "required": ["number", "customer", "priority", "status", "title", "reported_at", "url"],
    "properties": {
        "number": _INCIDENT_NUMBER,
        "customer": {"type": "object", "properties": {"name": {"type": "string"},
                                                      "contract_number": {"type": "string"}}},
        "priority": {"type": "string", "enum": INCIDENT_PRIORITIES},
        "status": {"type": "string", "enum": INCIDENT_STATUSES},
        "support_mode": {"type": "string", "enum": SUPPORT_MODES},
        "title": {"type": "string"},
        "reported_at": {**_INSTANT, "description": "Every deadline counts from it"},
        "engineer": _PERSON,
        "next_due_at": _DATE_TIME,
        "url": {"type": "string", "format": "uri"},
    },
}
INCIDENT = {
    "allOf": [{"$ref": "#/components/schemas/IncidentSummary"}, {
        "type": "object",
        "required": ["deadlines", "visits", "timeline"],
        "properties": {
            "channel": {"type": "string", "enum": ["portal", "api", "phone", "email"]},
            "description": {"type": "string"},
            "reporter_name": {"type": "string"}, "reporter_contact": {"type": "string"},
            "language": {"type": "string", "enum": ["zh_CN", "en"]},
            "serials": {"type": "array", "items": {"type": "string"}},
            "product_models": {"type": "array", "items": {"type": "string"}},
            "contacted_at": _DATE_TIME, "diagnosed_at": _DATE_TIME,
            "diagnosis": {"type": "string"},
            "resolved_at": _DATE_TIME, "resolution": {"type": "string"},
            "deadlines": {"type": "array", "items": {"$ref": "#/components/schemas/Deadline"}},
            "calendar_warnings": {"type": "array", "items": {"type": "string"}},
            "visits": {"type": "array", "items": {"$ref": "#/components/schemas/OnsiteVisit"}},
            "timeline": {"type": "array", "items": {"type": "object", "properties": {
                "at": _INSTANT, "kind": {"type": "string"}, "text": {"type": "string"},
                "public": {"type": "boolean"}}},
                "description": "Customers see the public entries only"},
            "escalated_role": {"type": ["string", "null"], "description": "Staff only"},
            "escalations": {"type": "array",
                            "items": {"$ref": "#/components/schemas/Escalation"},
                            "description": "Staff only: every rung, fired or not"},
        },
    }],
}
INCIDENT_PAGE = {
    "type": "object",
    "required": ["items", "page", "per_page", "total", "pages"],
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/IncidentSummary"}},
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
        "total": {"type": "integer", "minimum": 0},
        "pages": {"type": "integer", "minimum": 1},
    },
}
INCIDENT_REQUEST = {
    "type": "object",
    "required": ["priority", "title", "description"],
    "properties": {
        "priority": {"type": "string", "enum": INCIDENT_PRIORITIES,
                     "description": "R-I3. urgent: business system crashed or severely "
                                    "degraded for security reasons, a regional uplink down, a "
                                    "public service stopped. serious: internal "
                                    "business-support systems unstable, part of a service "
                                    "down. general: normal use not stopped; consultation, "
                                    "documentation, technical assistance"},
        "title": {"type": "string", "maxLength": 200},
        "description": {"type": "string", "maxLength": 10000},
        "serials": {"type": "array", "items": {"type": "string"},
                    "description": "Units of the customer (a text with one per line is "
                                   "accepted too)"},
        "model_codes": {"type": "array", "items": {"type": "string"}},
        "reporter_name": {"type": "string", "maxLength": 200},
        "reporter_contact": {"type": "string", "maxLength": 254},
        "language": {"type": "string", "enum": ["zh_CN", "en"]},
        "customer_contract": {"type": "string",
                              "description": "Staff tokens only, and required for them"},
        "reported_at": {**_INSTANT,
                        "description": "Staff tokens only: when the customer called, with "
                                       "its offset; not in the future, at most 7 days back. "
                                       "Default: now"},
    },
}
INCIDENT_SCHEMAS = {
    "Deadline": DEADLINE, "Escalation": ESCALATION, "OnsiteVisit": VISIT,
    "IncidentSummary": INCIDENT_SUMMARY, "Incident": INCIDENT, "IncidentPage": INCIDENT_PAGE,
    "IncidentRequest": INCIDENT_REQUEST,
}

# action → (summary, body properties, required, staff only, success status)
_INCIDENT_ACTIONS = {
    "contact": ("R-I1: the customer was contacted and an engineer assigned (default: the "
                "token's user)",
                {"engineer_id": {"type": "integer"}, "note": {"type": "string"}}, [], True, "200"),
    "diagnosis": ("R-I2: the diagnosis given to the customer",
                  {"diagnosis": {"type": "string"}}, ["diagnosis"], True, "200"),
    "priority": ("D-7: change the priority; every deadline is recomputed from reported_at",
                 {"priority": {"type": "string", "enum": INCIDENT_PRIORITIES},
                  "reason": {"type": "string", "maxLength": 2000}},
                 ["priority", "reason"], True, "200"),
    "support-mode": ("R-I5: phone or e-mail, remote login, on site",
                     {"mode": {"type": "string", "enum": SUPPORT_MODES},
                      "note": {"type": "string"}}, ["mode"], True, "200"),
    "onsite": ("R-I6: request on-site help (customer or staff); the 8-hour arrival clock "
               "starts. R-C4: the second change visit in a contract year is chargeable",
               {"kind": {"type": "string", "enum": ["emergency", "change"],
                         "default": "emergency"},
                "requested_at": {**_INSTANT, "description": "Staff only; default now"},
                "site_address": {"type": "string"}, "note": {"type": "string"}},
               [], False, "201"),
    "resolve": ("Resolved (no open on-site visit); escalation stops",
                {"resolution": {"type": "string"}}, ["resolution"], True, "200"),
    "notes": ("A note on the timeline: a customer's is public; staff choose with `public`",
              {"text": {"type": "string"}, "public": {"type": "boolean", "default": False}},
              ["text"], False, "201"),
}
_VISIT_ACTIONS = {
    "arrival": ("The engineer arrived on site (R-I6)",
                {"arrived_at": {**_INSTANT, "description": "Default now"}}, []),
    "briefs": ("The daily brief of one China-time day of the visit (R-I6)",
               {"day": {"type": "string", "format": "date"}, "text": {"type": "string"}},
               ["day", "text"]),
    "end": ("End the response with the final report; the customer gets it as PDF (R-I6)",
            {"final_report": {"type": "string"}}, ["final_report"]),
}


def _incident_paths() -> dict:
    number = {"name": "number", "in": "path", "required": True, "schema": _INCIDENT_NUMBER}
    visit = {"name": "visit_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    common = {
        "400": _problem_response("The body is not JSON"),
        "401": _UNAUTHORIZED,
        "404": _problem_response("No such incident or visit, or another customer's "
                                 "(404, never 403)"),
        "409": _problem_response("The incident's or visit's state does not allow it"),
        "422": _validation_response("A field is not valid (`errors` names it); nothing "
                                    "was changed"),
    }
    staff_only = {"403": _problem_response("Not a support, manager or admin token (a "
                                           "customer's, warehouse's or finance's)")}
    paths: dict = {
        "/api/v1/incidents": {
            "get": {
                "operationId": "listIncidents",
                "summary": "Incidents, newest first: a customer's token its own, staff "
                           "every customer's",
                "security": _BEARER,
                "parameters": [
                    {"name": "status", "in": "query",
                     "schema": {"type": "string", "enum": INCIDENT_STATUSES}},
                    {"name": "priority", "in": "query",
                     "schema": {"type": "string", "enum": INCIDENT_PRIORITIES}},
                    {"name": "customer", "in": "query",
                     "description": "Staff: a contract number", "schema": {"type": "string"}},
                    _PAGE,
                    {"name": "per_page", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                "default": 20}},
                ],
                "responses": {"200": _json("IncidentPage", "One page"), "401": _UNAUTHORIZED,
                              "422": _validation_response("A query parameter is not valid")},
            },
            "post": {
                "operationId": "reportIncident",
                "summary": "Report a fault (R-I1..R-I3): the number and every deadline come "
                           "back at once",
                "description": "Staff tokens name the customer and may give `reported_at` "
                               "for a call logged after the fact: every deadline counts "
                               "from it.",
                "security": _BEARER,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/IncidentRequest"}}}},
                "responses": {
                    "201": {**_json("Incident", "Reported"),
                            "headers": {"Location": {"schema": {"type": "string"}}}},
                    **{k: v for k, v in common.items() if k not in ("404", "409")},
                    "403": _problem_response("A staff role that does not report incidents "
                                             "(warehouse, finance)"),
                },
            },
        },
        "/api/v1/incidents/{number}": {"get": {
            "operationId": "getIncident",
            "summary": "One incident: every deadline (due_at, clock, state, breached, "
                       "calendar_warning), escalation history (staff), visits, timeline",
            "security": _BEARER, "parameters": [number],
            "responses": {"200": _json("Incident", "The incident"), "401": _UNAUTHORIZED,
                          "404": common["404"]},
        }},
        "/api/v1/incidents/{number}/visits/{visit_id}/report.pdf": {"get": {
            "operationId": "getOnsiteReport",
            "summary": "The final emergency response report (PDF) of an ended visit",
            "security": _BEARER, "parameters": [number, visit],
            "responses": {"200": {"description": "The PDF",
                                  "content": {"application/pdf": {}}},
                          "401": _UNAUTHORIZED, "404": common["404"],
                          "409": _problem_response("The visit has not ended")},
        }},
    }
    for action, (summary, properties, required, staff, ok) in _INCIDENT_ACTIONS.items():
        operation = "".join(part.capitalize() for part in action.split("-"))
        paths[f"/api/v1/incidents/{{number}}/{action}"] = {"post": {
            "operationId": f"incident{operation}",
            "summary": summary,
            "security": _BEARER, "parameters": [number],
            "requestBody": {"required": bool(required), "content": {"application/json": {
                "schema": {"type": "object", "required": required,
                           "properties": properties}}}},
            "responses": {ok: _json("Incident", "The incident after the action"), **common,
                          **(staff_only if staff else {})},
        }}
    for action, (summary, properties, required) in _VISIT_ACTIONS.items():
        paths[f"/api/v1/incidents/{{number}}/visits/{{visit_id}}/{action}"] = {"post": {
            "operationId": f"visit{action.capitalize()}",
            "summary": summary,
            "security": _BEARER, "parameters": [number, visit],
            "requestBody": {"required": bool(required), "content": {"application/json": {
                "schema": {"type": "object", "required": required,
                           "properties": properties}}}},
            "responses": {"201" if action == "briefs" else "200":
                          _json("Incident", "The incident after the action"),
                          **common, **staff_only},
        }}
    return paths


# -- issue 7: security advisories (rma/views/api_advisories.py; helper P1) ---------------
_ADVISORY_NUMBER = {"type": "string", "pattern": "^SA-[0-9]{4}-[0-9]{4}$",
                    "examples": ["SA-2026-0001"]}
ADVISORY_SEVERITIES = ["high", "medium", "low"]
ADVISORY_STATUSES = ["draft", "notified", "published"]
_DAY_OR_NULL = {"type": ["string", "null"], "format": "date"}
ADVISORY_NOTICE = {
    "type": "object",
    "description": "The customer's notice (R-A2): e-mailed, opened, acknowledged",
    "properties": {"queued_at": {"type": "string", "format": "date-time"},
                   "opened_at": _DATE_TIME, "acknowledged_at": _DATE_TIME,
                   "acknowledged": {"type": "boolean"}},
}
ADVISORY = {
    "type": "object",
    "description": "R-A1. Anonymous callers get the public members; a customer's token "
                   "adds `notice`; staff add the members marked staff.",
    "required": ["number", "title", "severity", "status", "product_models", "description"],
    "properties": {
        "number": _ADVISORY_NUMBER,
        "title": {"type": "string"},
        "severity": {"type": "string", "enum": ADVISORY_SEVERITIES},
        "status": {"type": "string", "enum": ADVISORY_STATUSES},
        "product_models": {"type": "array", "items": {"type": "string"}},
        "affected_versions": {"type": "string"},
        "description": {"type": "string"},
        "solution": {"type": "string"},
        "references": {"type": "array", "items": {"type": "string"}},
        "vendor_found": {"type": "boolean", "description": "R-A3"},
        "patch_released_on": _DAY_OR_NULL,
        "published_at": _DATE_TIME,
        "url": {"type": "string"},
        "notice": {"oneOf": [{"$ref": "#/components/schemas/AdvisoryNotice"},
                             {"type": "null"}],
                   "description": "Customer tokens: its own notice, null when none"},
        "notify_due_on": {**_DAY_OR_NULL,
                          "description": "Staff. R-A2: patch date + 2 working days"},
        "notify_overdue": {"type": "boolean",
                           "description": "Staff: the due day passed, nobody notified"},
        "notified_at": {**_DATE_TIME, "description": "Staff: the first notices"},
        "public_from_on": {**_DAY_OR_NULL,
                           "description": "Staff. R-A3: first notice + 14 days"},
        "may_publish": {"type": "boolean", "description": "Staff"},
        "publish_possible_on": {**_DAY_OR_NULL, "description": "Staff. R-A3"},
        "notices": {"type": "object", "description": "Staff: counts",
                    "properties": {"sent": {"type": "integer"},
                                   "opened": {"type": "integer"},
                                   "acknowledged": {"type": "integer"}}},
        "customers": {"type": "array", "description": "Staff, one advisory: each notice",
                      "items": {"type": "object", "properties": {
                          "name": {"type": "string"}, "contract_number": {"type": "string"},
                          "recipients": {"type": "array", "items": {"type": "string"}},
                          "queued_at": {"type": "string", "format": "date-time"},
                          "opened_at": _DATE_TIME, "acknowledged_at": _DATE_TIME,
                          "acknowledged": {"type": "boolean"}}}},
        "notices_created": {"type": "integer",
                            "description": "After notify: the customers noticed now"},
    },
}
ADVISORY_PAGE = {
    "type": "object", "required": ["items", "total"],
    "properties": {"items": {"type": "array",
                             "items": {"$ref": "#/components/schemas/Advisory"}},
                   "total": {"type": "integer"}},
}
ADVISORY_REQUEST = {
    "type": "object",
    "required": ["title", "severity", "description", "model_codes"],
    "properties": {
        "title": {"type": "string", "maxLength": 200},
        "severity": {"type": "string", "enum": ADVISORY_SEVERITIES},
        "description": {"type": "string"},
        "solution": {"type": "string"},
        "references": {"oneOf": [{"type": "string", "description": "One per line"},
                                 {"type": "array", "items": {"type": "string"}}]},
        "affected_versions": {"type": "string", "description": "Platforms and versions"},
        "model_codes": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "vendor_found": {"type": "boolean", "default": False,
                         "description": "R-A3: found by the vendor itself: customers "
                                        "first, public no earlier than 14 days later"},
        "patch_released_on": {**_DAY_OR_NULL, "description": "The official patch (R-A2)"},
    },
}
ADVISORY_SCHEMAS = {"Advisory": ADVISORY, "AdvisoryPage": ADVISORY_PAGE,
                    "AdvisoryNotice": ADVISORY_NOTICE, "AdvisoryRequest": ADVISORY_REQUEST}
_OPTIONAL_BEARER = [{}, {"bearerAuth": []}]


def _advisory_paths() -> dict:
    number = {"name": "number", "in": "path", "required": True, "schema": _ADVISORY_NUMBER}
    not_found = _problem_response("No such advisory, or one the caller may not see "
                                  "(another customer's notice reads as unknown)")
    staff_only = {"401": _UNAUTHORIZED,
                  "403": _problem_response("Not a support, manager or admin token"),
                  "404": not_found}
    return {
        "/api/v1/advisories": {
            "get": {
                "operationId": "listAdvisories",
                "summary": "Advisories: anonymous callers the published ones; a customer's "
                           "token also its noticed ones; staff every one",
                "security": _OPTIONAL_BEARER,
                "parameters": [{"name": "status", "in": "query",
                                "description": "Staff only",
                                "schema": {"type": "string", "enum": ADVISORY_STATUSES}}],
                "responses": {"200": _json("AdvisoryPage", "The advisories"),
                              "401": _UNAUTHORIZED,
                              "422": _validation_response("Unknown status")},
            },
            "post": {
                "operationId": "createAdvisory",
                "summary": "Write an advisory (R-A1); a draft with its R-A2 due day",
                "security": _BEARER,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/AdvisoryRequest"}}}},
                "responses": {
                    "201": {**_json("Advisory", "Created"),
                            "headers": {"Location": {"schema": {"type": "string"}}}},
                    "400": _problem_response("The body is not JSON"),
                    **{k: v for k, v in staff_only.items() if k != "404"},
                    "422": _validation_response("A field is not valid; nothing was saved"),
                },
            },
        },
        "/api/v1/advisories/{number}": {"get": {
            "operationId": "getAdvisory",
            "summary": "One advisory, as the caller may see it; a customer's user reading "
                       "its notice marks it opened",
            "security": _OPTIONAL_BEARER, "parameters": [number],
            "responses": {"200": _json("Advisory", "The advisory"), "401": _UNAUTHORIZED,
                          "404": not_found},
        }},
        "/api/v1/advisories/{number}/notify": {"post": {
            "operationId": "notifyAdvisoryCustomers",
            "summary": "R-A2: notice every affected customer not noticed yet and e-mail "
                       "its active users (once each); a repeat notices only customers "
                       "affected since",
            "security": _BEARER, "parameters": [number],
            "responses": {"200": _json("Advisory", "With `notices_created`"), **staff_only},
        }},
        "/api/v1/advisories/{number}/publish": {"post": {
            "operationId": "publishAdvisory",
            "summary": "Publish on the public pages. R-A3: a vendor-found vulnerability "
                       "no earlier than 14 days after the first notice; any other at once",
            "security": _BEARER, "parameters": [number],
            "responses": {
                "200": _json("Advisory", "Published"), **staff_only,
                "409": {"description": "Not yet (or already published): `possible_on` is "
                                       "the first day it may be, null when the customers "
                                       "must be notified first",
                        "content": {"application/problem+json": {"schema": {"allOf": [
                            {"$ref": "#/components/schemas/Problem"},
                            {"type": "object", "required": ["possible_on"], "properties": {
                                "possible_on": _DAY_OR_NULL}}]}}}},
            },
        }},
        "/api/v1/advisories/{number}/acknowledge": {"post": {
            "operationId": "acknowledgeAdvisory",
            "summary": "A customer's user acknowledges its notice (once; a repeat "
                       "changes nothing)",
            "security": _BEARER, "parameters": [number],
            "responses": {"200": _json("Advisory", "With the notice"), "401": _UNAUTHORIZED,
                          "403": _problem_response("Not a customer's token"),
                          "404": not_found},
        }},
    }


# Sent on every answer of a rate-limited operation while limiting is on (per address).
_RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer", "minimum": 1},
                          "description": "Requests allowed in the window"},
    "X-RateLimit-Remaining": {"schema": {"type": "integer", "minimum": 0}},
    "X-RateLimit-Reset": {"schema": {"type": "integer", "minimum": 0},
                          "description": "Seconds until the window starts again"},
}


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
                                "headers": _RATE_LIMIT_HEADERS,
                                "content": {"application/json": {
                                    "schema": {"$ref": "#/components/schemas/Warranty"}}}},
                        "404": {**_problem_response("Unknown serial"),
                                "headers": _RATE_LIMIT_HEADERS},
                        "422": {**_problem_response("Malformed serial (D-8)"),
                                "headers": _RATE_LIMIT_HEADERS},
                        "429": {**_problem_response("Too many requests from this address"),
                                "headers": {**_RATE_LIMIT_HEADERS, "Retry-After": {
                                    "schema": {"type": "integer", "minimum": 0},
                                    "description": "Seconds until it may ask again"}}},
                    },
                }
            },
            **_rma_paths(),
            **_warehouse_paths(),
            **_finance_paths(),
            **_incident_paths(),
            **_advisory_paths(),
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
                "RmaSummary": RMA_SUMMARY, "RmaPage": RMA_PAGE, **WAREHOUSE_SCHEMAS,
                **FINANCE_SCHEMAS, **INCIDENT_SCHEMAS, **ADVISORY_SCHEMAS,
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "Token from `rma create-token EMAIL`, sent as "
                                              "`Authorization: Bearer <token>`"},
            },
        },
    }
