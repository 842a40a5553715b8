"""The FastAPI service: classify, rotate and compare digits with the shipped CNN and G-CNN.

Layout (dependencies run one way, ``app`` imports ``model``, never the reverse):

- :mod:`app.settings`: configuration (environment variables ``GCNN_*``).
- :mod:`app.imaging`: decoding uploads safely into 8-bit grey or colour images.
- :mod:`app.preprocessing`: turning a grey image into the 28x28 MNIST-like input.
- :mod:`app.transforms`: the rotation a request asks for (group element or angle).
- :mod:`app.inference`: the loaded models and the one function that runs them.
- :mod:`app.problems`: the RFC 9457 error format shared by every 4xx/5xx.
- :mod:`app.routers`: the HTTP endpoints, grouped by concern.
"""
