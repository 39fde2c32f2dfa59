"""The schema view builds one schema at a time per process (drf-spectacular's lazy extension loading
is not thread-safe: a threaded worker answered the first GET /api/schema/ after start-up with a 500)."""
import threading
import time

from drf_spectacular.views import SpectacularAPIView

from quire.api.schema import SchemaView


def test_schema_builds_are_serialised(monkeypatch):
    inside, peak, lock = [0], [0], threading.Lock()

    def slow_build(self, request, *args, **kwargs):  # stands in for the schema generation
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        time.sleep(0.05)
        with lock:
            inside[0] -= 1
        return "schema"

    monkeypatch.setattr(SpectacularAPIView, "get", slow_build)
    results = []
    threads = [threading.Thread(target=lambda: results.append(SchemaView().get(None))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["schema"] * 4
    assert peak[0] == 1
