"""FastAPI dependencies and their ``Annotated`` aliases, in one place.

Every dependency is ``async def`` although none awaits: FastAPI runs a plain
``def`` dependency on a worker thread, a hop that costs more than the work.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, File, Query, Request, UploadFile

from app.answering.inference import InferenceEngine, TorchWorker
from app.errors import InvalidFormError, InvalidTransformError, ModelsUnavailableError, UnsupportedMediaTypeError
from app.guard.admission import Admission
from app.metrics import Metrics
from app.pictures.preprocessing import PreprocessMode
from app.pictures.sandbox import DecodePool
from app.pictures.transforms import Transform, parse_group
from app.schemas import OrientationPrior
from app.settings import Settings, get_settings

__all__ = [
    "AdmissionDep",
    "DecoderDep",
    "EngineDep",
    "MetricsDep",
    "OrientationPriorDep",
    "PreprocessDep",
    "RequestIdDep",
    "ReturnImageDep",
    "SettingsDep",
    "TorchWorkerDep",
    "TransformDep",
    "UploadDep",
    "UploadsDep",
    "require_multipart",
]

SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_engine(request: Request) -> InferenceEngine:
    """The loaded models; 503 while they are loading or after they failed to load."""
    engine: InferenceEngine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        reason = getattr(request.app.state, "load_error", None) or "they are still loading"
        raise ModelsUnavailableError(f"the models are not loaded: {reason}")
    return engine


async def get_torch_worker(request: Request) -> TorchWorker:
    return request.app.state.torch_worker  # type: ignore[no-any-return]


async def get_admission(request: Request) -> Admission:
    return request.app.state.admission  # type: ignore[no-any-return]


async def get_decoder(request: Request) -> DecodePool:
    return request.app.state.decoder  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


async def get_request_id(request: Request) -> str:
    return str(request.state.request_id)


async def require_multipart(request: Request) -> None:
    """415 for a body declared as anything but multipart/form-data (no Content-Type: the body is empty)."""
    declared = request.headers.get("content-type")
    media_type = (declared or "").split(";", 1)[0].strip()
    if declared is not None and media_type.lower() != "multipart/form-data":
        media_type = media_type or "(empty)"
        raise UnsupportedMediaTypeError(
            f"the request body is {media_type}; send multipart/form-data with the image in the 'file' field "
            "(curl -F file=@digit.png)"
        )


async def requested_transform(
    group: Annotated[
        str | None,
        Query(
            max_length=16,
            description="A group, `C<N>` (N rotations) or `D<N>` (N rotations and N reflections), N = 1..999. "
            "Use with `element`; not with `angle`.",
            openapi_examples={"C8": {"value": "C8"}, "D4": {"value": "D4"}},
        ),
    ] = None,
    element: Annotated[
        int | None,
        Query(
            ge=0,
            description="Element index i = s*N + k of `group`: rotate counter-clockwise by k*360/N degrees, "
            "after a left-right mirror when s = 1. 0..N-1 for C_N, 0..2N-1 for D_N.",
            openapi_examples={"135 degrees in C8": {"value": 3}},
        ),
    ] = None,
    angle: Annotated[
        float | None,
        Query(
            allow_inf_nan=False,
            description="Rotation in degrees, counter-clockwise; any finite number (taken modulo 360). "
            "Multiples of 90 are exact, other angles bilinear. Not with `group`/`element`.",
            openapi_examples={"30 degrees": {"value": 30}},
        ),
    ] = None,
) -> Transform:
    """The transformation asked for by the query (identity when none)."""
    if angle is not None:
        if group is not None or element is not None:
            raise InvalidTransformError("give either angle, or group with element, not both")
        return Transform.from_angle(angle)
    if group is None and element is None:
        return Transform()
    if group is None or element is None:
        raise InvalidTransformError("group and element go together: e.g. group=C8&element=3")
    return Transform.from_element(parse_group(group), element)


async def preprocess_mode(
    preprocess: Annotated[
        PreprocessMode,
        Query(
            description="`auto`: MNIST-style normalisation unless the image already is a 28x28 MNIST-like "
            "digit (light ink on black), which passes unchanged. `mnist`: always normalise. `none`: only "
            "convert to grey and resize to 28x28.",
            openapi_examples={mode.value: {"value": mode.value} for mode in PreprocessMode},
        ),
    ] = PreprocessMode.AUTO,
) -> PreprocessMode:
    return preprocess


async def orientation_prior(
    orientation_prior: Annotated[
        OrientationPrior,
        Query(
            description="`none`: read the digit however it is turned (rotation-invariant). `upright`: the upload "
            "is known to be roughly upright; weigh each G-CNN reading by a soft prior peaked at 0 degrees, or at "
            "the angle the service turned the upload by (`angle`, `element`, each /orbit row) "
            "(von Mises, concentration 2: 45 degrees keeps 0.56 of the weight, 90 degrees 0.14, 180 degrees "
            "0.018), which tells an upright 6 from a 9. Models without orientation ignore it.",
            openapi_examples={prior.value: {"value": prior.value} for prior in OrientationPrior},
        ),
    ] = OrientationPrior.NONE,
) -> OrientationPrior:
    return orientation_prior


async def return_image_flag(
    return_image: Annotated[
        bool,
        Query(
            description="Also return the 28x28 image the models saw, as a base64 PNG (and, for each G-CNN "
            "with a joint head, that image turned upright by its orientation estimate).",
            openapi_examples={"with the image": {"value": True}},
        ),
    ] = False,
) -> bool:
    return return_image


EngineDep = Annotated[InferenceEngine, Depends(get_engine)]
DecoderDep = Annotated[DecodePool, Depends(get_decoder)]
AdmissionDep = Annotated[Admission, Depends(get_admission)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
TorchWorkerDep = Annotated[TorchWorker, Depends(get_torch_worker)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
TransformDep = Annotated[Transform, Depends(requested_transform)]
PreprocessDep = Annotated[PreprocessMode, Depends(preprocess_mode)]
ReturnImageDep = Annotated[bool, Depends(return_image_flag)]
OrientationPriorDep = Annotated[OrientationPrior, Depends(orientation_prior)]


async def single_file(
    request: Request,
    file: Annotated[
        UploadFile,
        File(description="The image: PNG, JPEG, GIF, BMP, WebP or TIFF (first frame), at most GCNN_MAX_UPLOAD_BYTES."),
    ],
) -> UploadFile:
    """The one ``file`` part; 422 when the form holds several (which one was meant is anyone's guess)."""
    count = len((await request.form()).getlist("file"))  # the form is parsed once and cached
    if count > 1:
        raise InvalidFormError(f"the form has {count} 'file' parts; send exactly one (or use /classify/batch)")
    return file


UploadDep = Annotated[UploadFile, Depends(single_file)]
UploadsDep = Annotated[
    list[UploadFile],
    File(description="The images, each as a `files` part; at most GCNN_MAX_BATCH of them."),
]
