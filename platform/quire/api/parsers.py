"""Request parsers of the API.

`ObjectJSONParser` is DRF's JSONParser that accepts only a JSON object at the top level: every
JSON endpoint reads fields with `request.data.get(...)`, and a list, string, number or null body
gave a 500 there (or, on `POST /models/train/`, `[1]` started a training job with the defaults).
"""
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


class ObjectJSONParser(JSONParser):
    """JSONParser raising ParseError (HTTP 400 "expected a JSON object, got ...") unless the body
    is a JSON object."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if not isinstance(data, dict):
            kind = _JSON_TYPES.get(type(data), "another value")
            raise ParseError(f"expected a JSON object as the request body, got {kind}")
        return data
