"""kling-elements: Kling AI Multi-Elements video editing from Python.

``import kling_elements as ke``; then ``ke.Client.from_env()``. The sandbox
(``kling_elements.sandbox``) and video probing need the ``sandbox`` / ``video`` extras;
nothing here imports them.
"""

from . import batch, errors, media, rle, validate
from .async_client import AsyncClient
from .client import DEFAULT_BASE_URL, REGIONS, Client, RestoreReport
from .cost import Cost
from .errors import (
    AccountError,
    AuthError,
    ConnectionFailed,
    CreateCancelled,
    InvalidRequestError,
    KlingError,
    NotFoundError,
    PermissionDeniedError,
    PolicyError,
    RateLimitError,
    RejectedError,
    ResponseFormatError,
    RestoreDisabledError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
)
from .models import (
    AccountCosts,
    InitResult,
    Mask,
    PreviewResult,
    ResourcePack,
    SelectionResult,
    Task,
    TaskVideo,
)
from .selection import SelectionState

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BASE_URL",
    "REGIONS",
    "AccountCosts",
    "AccountError",
    "AsyncClient",
    "AuthError",
    "Client",
    "ConnectionFailed",
    "Cost",
    "CreateCancelled",
    "InitResult",
    "InvalidRequestError",
    "KlingError",
    "Mask",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyError",
    "PreviewResult",
    "RateLimitError",
    "RejectedError",
    "ResourcePack",
    "ResponseFormatError",
    "RestoreDisabledError",
    "RestoreReport",
    "SelectionResult",
    "SelectionState",
    "ServerError",
    "Task",
    "TaskFailedError",
    "TaskTimeoutError",
    "TaskVideo",
    "ValidationError",
    "batch",
    "errors",
    "media",
    "rle",
    "validate",
]
