"""The FastAPI service: classify, rotate and compare digits with the shipped CNN and G-CNN.

Three parts (dependencies run one way, ``app`` imports ``model``, never the reverse):

- **How a picture becomes a 28x28 input**: :mod:`app.pictures` (uploads, safe decoding, preprocessing,
  the decode processes, transforms).
- **How models answer**: :mod:`app.answering` (:mod:`~app.answering.inputs`: a request's pictures and
  :class:`~app.answering.inputs.InputSpec`, the batch they make; :mod:`~app.answering.inference`: the loaded
  models, asked through :mod:`model.serving`, the torch worker, micro-batching; :mod:`~app.answering.answers`:
  the models' outputs -> the API's answer per image; :mod:`~app.answering.pipeline`: uploads -> pictures ->
  engine, the steps the routes share).
- **How the service protects itself**: :mod:`app.guard` (:mod:`~app.guard.server`: uvicorn with limits on
  request heads, deadlines, connections; :mod:`~app.guard.middleware`: request ids, access logs, metrics, body
  limits, admission; :mod:`~app.guard.admission`: the bound on upload requests in flight;
  :mod:`~app.guard.disconnect`: stopping a request's work when its client leaves; :mod:`~app.guard.shutdown`:
  the drain; :mod:`~app.guard.problems`: the RFC 9457 format of every 4xx/5xx and every problem type).

Around them: :mod:`app.main` (the ASGI app: lifespan, middleware, routers), :mod:`app.settings`
(``GCNN_*`` variables), :mod:`app.errors` (what can go wrong, no HTTP), :mod:`app.schemas` (response
bodies), :mod:`app.dependencies` (FastAPI dependencies), :mod:`app.logs` (JSON log lines),
:mod:`app.metrics` (Prometheus), :mod:`app.routers` (the endpoints, by concern); ``app/static``: the demo page.
"""
