"""The FastAPI service: classify, rotate and compare digits with the shipped CNN and G-CNN.

Layout (dependencies run one way, ``app`` imports ``model``, never the reverse):

- :mod:`app.main`: the ASGI app (lifespan, middleware, routers); :mod:`app.server`: how it is served
  (``python -m app.server``: uvicorn with limits on request heads, deadlines, connections).
- :mod:`app.settings`: configuration (environment variables ``GCNN_*``).
- :mod:`app.pictures.uploads`: reading uploaded files (size, type, safe names).
- :mod:`app.pictures.imaging`: decoding uploads safely into 8-bit grey or colour images.
- :mod:`app.pictures.preprocessing`: turning a grey image into the 28x28 MNIST-like input.
- :mod:`app.pictures.decoding`: what the decode processes run (imaging + preprocessing, no torch);
  :mod:`app.pictures.sandbox`: those processes, with a time and memory budget per image.
- :mod:`app.pictures.transforms`: the rotation a request asks for (group element or angle).
- :mod:`app.inference`: the loaded models, the torch worker and micro-batching.
- :mod:`app.pipeline`: upload -> input -> batch -> response rows, shared by the routes.
- :mod:`app.admission`: the bound on upload requests in flight; :mod:`app.disconnect`: stopping a
  request's work when its client leaves.
- :mod:`app.middleware`: request ids, access logs, metrics, body limits, admission.
- :mod:`app.errors` (what can go wrong, no HTTP) and :mod:`app.problems` (the RFC 9457 format of
  every 4xx/5xx); :mod:`app.logs`: JSON log lines; :mod:`app.metrics`: Prometheus metrics.
- :mod:`app.schemas`: response bodies; :mod:`app.dependencies`: FastAPI dependencies.
- :mod:`app.routers`: the HTTP endpoints, grouped by concern; ``app/static``: the demo page.
"""
