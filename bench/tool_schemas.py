"""BFCL-like tool schemas shared by the benchmarks (OpenAI function format, parameters only)."""

from __future__ import annotations

TEN_TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
    {
        "name": "convert_units",
        "description": "Convert a value between length units.",
        "parameters": {
            "type": "object",
            "properties": {
                "value": {"type": "number"},
                "from_unit": {"type": "string", "enum": ["km", "mi", "m", "ft"]},
                "to_unit": {"type": "string", "enum": ["km", "mi", "m", "ft"]},
            },
            "required": ["value", "from_unit", "to_unit"],
        },
    },
    {
        "name": "calculate_area",
        "description": "Area of a shape.",
        "parameters": {
            "type": "object",
            "properties": {
                "shape": {"type": "string", "enum": ["circle", "square", "triangle"]},
                "width": {"type": "number"},
                "height": {"type": "number"},
            },
            "required": ["shape", "width"],
        },
    },
    {
        "name": "search_flights",
        "description": "Find flights between two airports on a date.",
        "parameters": {
            "type": "object",
            "properties": {
                "origin": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "destination": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "date": {"type": "string", "format": "date"},
                "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
            },
            "required": ["origin", "destination", "date"],
        },
    },
    {
        "name": "send_email",
        "description": "Send an email.",
        "parameters": {
            "type": "object",
            "properties": {
                "to": {"type": "string", "format": "email"},
                "subject": {"type": "string", "maxLength": 120},
                "body": {"type": "string", "maxLength": 1000},
            },
            "required": ["to", "subject", "body"],
        },
    },
    {
        "name": "get_stock_price",
        "description": "Latest price of a stock ticker.",
        "parameters": {
            "type": "object",
            "properties": {"ticker": {"type": "string", "pattern": "^[A-Z]{1,5}$"}},
            "required": ["ticker"],
        },
    },
    {
        "name": "create_event",
        "description": "Create a calendar event.",
        "parameters": {
            "type": "object",
            "properties": {
                "title": {"type": "string", "maxLength": 80},
                "start": {"type": "string", "format": "date-time"},
                "duration_minutes": {"type": "integer", "minimum": 5, "maximum": 480},
                "attendees": {
                    "type": "array",
                    "items": {"type": "string", "format": "email"},
                    "maxItems": 10,
                },
            },
            "required": ["title", "start"],
        },
    },
    {
        "name": "translate_text",
        "description": "Translate text to a language.",
        "parameters": {
            "type": "object",
            "properties": {
                "text": {"type": "string", "maxLength": 500},
                "target_language": {"type": "string", "enum": ["en", "fr", "de", "es", "it", "ja"]},
            },
            "required": ["text", "target_language"],
        },
    },
    {
        "name": "factorial",
        "description": "Factorial of a non-negative integer.",
        "parameters": {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 170}},
            "required": ["n"],
        },
    },
    {
        "name": "set_thermostat",
        "description": "Set the thermostat temperature.",
        "parameters": {
            "type": "object",
            "properties": {
                "temperature": {"type": "number", "minimum": 5, "maximum": 35},
                "mode": {"type": "string", "enum": ["heat", "cool", "auto"]},
            },
            "required": ["temperature"],
        },
    },
]
