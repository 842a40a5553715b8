"""How models answer: a request's pictures -> one batch -> the models -> the API's answer per image.

- :mod:`app.answering.inputs`: a request's pictures and :class:`~app.answering.inputs.InputSpec`, the batch
  they make.
- :mod:`app.answering.inference`: the loaded models, asked through :mod:`model.serving`; the torch worker;
  micro-batching.
- :mod:`app.answering.answers`: the models' outputs -> the API's answer per image.
- :mod:`app.answering.pipeline`: uploads -> pictures -> engine, the steps the routes share.

The pictures come from :mod:`app.pictures`; the routes (:mod:`app.routers`) call the pipeline.
"""
