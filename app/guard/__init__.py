"""How the service protects itself: limits on connections and requests, the drain, the error format.

- :mod:`app.guard.server`: uvicorn with limits on request heads, deadlines and connections
  (``python -m app.guard.server`` is what ``make serve`` and the container run).
- :mod:`app.guard.shutdown`: the drain on ``SIGTERM`` (new requests 503, accepted ones answered).
- :mod:`app.guard.middleware`: request ids, access logs, metrics, body limits, admission.
- :mod:`app.guard.admission`: the bound on upload requests in flight.
- :mod:`app.guard.disconnect`: stopping a request's work when its client leaves.
- :mod:`app.guard.problems`: the RFC 9457 format of every 4xx/5xx, one place for every problem type
  (the ones the server writes before a request reaches the app included).

What can go wrong without HTTP (:mod:`app.errors`) stays outside: the picture path raises those
errors and imports nothing from here.
"""
