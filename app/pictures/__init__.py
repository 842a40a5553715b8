"""How a picture becomes the 28x28 input: reading uploads, decoding them safely, preprocessing, transforms.

- :mod:`app.pictures.uploads`: reading uploaded files (size, type, safe names).
- :mod:`app.pictures.imaging`: decoding uploads safely into 8-bit grey or colour images.
- :mod:`app.pictures.preprocessing`: turning a grey image into the 28x28 MNIST-like input.
- :mod:`app.pictures.decoding`: what the decode processes run (imaging + preprocessing);
  :mod:`app.pictures.sandbox`: those processes, with a time and memory budget per image.
- :mod:`app.pictures.transforms`: the rotation a request asks for (group element or angle), on the
  28x28 input or the picture itself.

The decode side (imaging, preprocessing, decoding, sandbox) is NumPy and Pillow only: it is what a
decode process imports (``python -m app.pictures.sandbox``), never torch. Uploads read FastAPI's
file parts; transforms act through :mod:`model.rotation` (torch).
"""
