"""The web page: server-rendered Django templates over the JSON API (/api/v1/), a little plain JS."""
