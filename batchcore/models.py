"""Provider-neutral data: requests, payloads, handles, statuses, results and job events.

Every class is an immutable attrs class. Everything a runner persists (requests, handles,
statuses, results, events) round-trips through JSON with ``to_dict``/``from_dict``; timestamps
are timezone-aware UTC datetimes and serialise as ISO-8601 strings.
"""

from __future__ import annotations

import enum
import fnmatch
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import attrs
import orjson

from batchcore.errors import ConfigurationError, InvalidRequestError
from batchcore.frozen import FrozenDict, freeze

__all__ = [
    "CHAT_COMPLETIONS",
    "EMBEDDINGS",
    "ENDPOINTS",
    "RESPONSES",
    "SAFE_CUSTOM_ID",
    "BatchError",
    "BatchHandle",
    "BatchLimits",
    "BatchPayload",
    "BatchRequest",
    "BatchResult",
    "BatchState",
    "BatchStatus",
    "JobEvent",
    "JobEventKind",
    "QueueLimit",
    "ResultError",
    "ResultStatus",
    "Usage",
    "parse_timestamp",
]

CHAT_COMPLETIONS = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
RESPONSES = "/v1/responses"
COMPLETIONS = "/v1/completions"
MODERATIONS = "/v1/moderations"

#: Endpoints a BatchRequest can address, in OpenAI's spelling (the lingua franca), mapped to the
#: body field that carries the input for endpoints that take no ``messages``.
ENDPOINTS: Mapping[str, str | None] = {
    CHAT_COMPLETIONS: None,
    EMBEDDINGS: "input",
    RESPONSES: "input",
    COMPLETIONS: "prompt",
    MODERATIONS: "input",
}

#: The custom_id alphabet every vendor accepts (Anthropic's documented rule, the strictest).
SAFE_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_UNKNOWN = object()


def parse_timestamp(value: Any) -> datetime | None:
    """Read a vendor timestamp (unix seconds, ISO-8601/RFC 3339 text, or datetime) as aware UTC.

    ``None`` and empty strings give ``None``; naive datetimes are taken to be UTC.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return (
            value.replace(tzinfo=timezone.utc)
            if value.tzinfo is None
            else value.astimezone(timezone.utc)
        )
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # Python 3.10's fromisoformat accepts at most 6 fractional digits; vendors send up to 9.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        parsed = datetime.fromisoformat(text)
        return parse_timestamp(parsed)
    raise ValueError(f"not a timestamp: {value!r}")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _utc(value: Any) -> datetime | None:
    return parse_timestamp(value)


def _utc_required(value: Any) -> datetime:
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError("a timestamp is required")
    return parsed


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # A private, deeply immutable copy: a caller mutating their dict later cannot change it.
    return _EMPTY if not value else freeze(value if isinstance(value, Mapping) else dict(value))


def _provider_params(value: Any) -> Mapping[str, Mapping[str, Any]]:
    # Frozen here; anything that is not a mapping (even an empty list) is kept as it is, for the
    # request's validation to refuse by name.
    if value is None:
        return _EMPTY
    if isinstance(value, Mapping):
        return freeze(value) if value else _EMPTY
    return value  # type: ignore[no-any-return]


_EMPTY: Mapping[str, Any] = FrozenDict()


#: The last request whose body :meth:`BatchRequest.body_parts` decoded, per thread.
_LAST_READ = threading.local()


def custom_id_problem(custom_id: str) -> str | None:
    """Why *custom_id* cannot travel through a vendor's JSONL file and back, or None.

    Control characters (C0, DEL, C1), line and paragraph separators (U+2028, U+2029) and lone
    surrogates are refused for every provider: they break line-based files and logs, and
    vendors normalise them differently, so a result could never be joined back.
    """
    if custom_id.isprintable():  # the common case, in C
        return None
    for index, char in enumerate(custom_id):
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return (
                f"custom_id {custom_id!r} contains the control character U+{ord(char):04X} at "
                f"position {index}; custom_ids must be printable text"
            )
    return None


_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


def _invalid(custom_id: Any, message: str, field: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"request {custom_id!r}: {message}",
        custom_id=custom_id if isinstance(custom_id, str) else None,
        field=field,
    )


def _json_problem(value: Any, path: str) -> str | None:
    """Where *value* stops being strict JSON, or None. Cheaper and more precise than a failed
    dumps: it names the path and refuses NaN/Infinity, which encoders write as invalid JSON."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value!r} is not valid JSON"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: key {key!r} is not a string"
            problem = _json_problem(item, f"{path}.{key}")
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _json_problem(item, f"{path}[{index}]")
            if problem:
                return problem
        return None
    return f"{path}: {type(value).__name__} is not JSON-serialisable"


@attrs.frozen(kw_only=True, init=False, eq=False, hash=False, repr=False)
class BatchRequest:
    """One request of a batch, provider-neutral.

    The shape is OpenAI's chat-completions request: ``messages`` in OpenAI chat format, and every
    generation parameter (``max_tokens``, ``temperature``, ``response_format``, ``tools``, ...) in
    ``params``. ``endpoint`` (OpenAI's URL path) selects other request kinds: embeddings put their
    ``input`` in ``params`` and leave ``messages`` empty. ``provider_params`` carries vendor-only
    options keyed by provider name (``{"anthropic": {"top_k": 5}}``); each provider merges its own
    entry into the vendor body unchanged.

    A request is deeply immutable and hashable. It is checked and serialised once, when it is
    built: the OpenAI body bytes are what it holds, so a caller changing their dicts later
    changes nothing, and it encodes the same way for every provider however long it lives.
    ``messages`` and ``params`` are read-only views of those bytes
    (:class:`~batchcore.frozen.FrozenDict` objects and tuples), decoded on first use;
    :meth:`openai_body` gives a private, mutable copy. Two requests are equal when their
    custom_id, endpoint, provider_params and body bytes are. Build a changed copy with
    ``attrs.evolve(request, params={**request.params, ...})``.
    """

    custom_id: str
    model: str
    endpoint: str = CHAT_COMPLETIONS
    provider_params: Mapping[str, Mapping[str, Any]] = attrs.field(factory=FrozenDict)
    # The request itself: OpenAI's body, serialised once (``body_json`` for attrs.evolve).
    _body_json: bytes = attrs.field(alias="body_json")
    # (messages, params), decoded and frozen on first use.
    _view: tuple[tuple[Mapping[str, Any], ...], Mapping[str, Any]] | None = attrs.field(
        init=False, default=None
    )

    def __init__(
        self,
        *,
        custom_id: str,
        model: str,
        messages: Iterable[Mapping[str, Any]] | None = None,
        params: Mapping[str, Any] | None = None,
        endpoint: str = CHAT_COMPLETIONS,
        provider_params: Mapping[str, Mapping[str, Any]] | None = None,
        body_json: bytes | None = None,
    ) -> None:
        # Written by hand, and the request kept as bytes rather than frozen copies: this runs
        # once per request of every job, and checking the caller's structures then serialising
        # them once (in C) costs a fraction of deep-freezing them (benchmarks/bench_prepare.py,
        # "from raw dicts"). *body_json* is how attrs.evolve hands over the current body.
        if body_json is not None and (messages is None or params is None):
            stored = orjson.loads(body_json)
            stored.pop("model", None)
            held = stored.pop("messages", ())
            messages = held if messages is None else messages
            params = stored if params is None else params
        init = object.__setattr__
        init(self, "custom_id", custom_id)
        init(self, "model", model)
        init(self, "endpoint", endpoint)
        init(self, "provider_params", _provider_params(provider_params))
        init(self, "_view", None)
        init(self, "_body_json", self._checked_body(messages or (), params or _EMPTY))

    def _checked_body(self, messages: Iterable[Any], params: Any) -> bytes:
        """Check the request (raise :class:`InvalidRequestError` naming the field) and return
        its OpenAI body, serialised."""
        cid = self.custom_id
        model = self.model
        if messages.__class__ is not list and messages.__class__ is not tuple:
            if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
                raise _invalid(cid, "messages must be a list of objects", "messages")
            messages = list(messages)
        if not isinstance(params, Mapping):
            params = dict(params)
        input_field = ENDPOINTS.get(self.endpoint, _UNKNOWN)
        # The common case (a chat request of plain dict messages) is recognised with exact
        # type tests; anything else is checked the long way, which names the exact problem.
        if (
            cid.__class__ is not str
            or not cid
            or not cid.isprintable()
            or model.__class__ is not str
            or not model
            or input_field is not None
            or not messages
            or "model" in params
            or "messages" in params
        ):
            self._check_fields(input_field, messages, params)
        else:
            for message in messages:
                kind = message.__class__
                if (kind is not dict and kind is not FrozenDict) or message.get(
                    "role"
                ) not in _ROLES:
                    self._check_fields(input_field, messages, params)
                    break
        for key, value in params.items():
            if value.__class__ is float and not math.isfinite(value):
                raise _invalid(cid, f"params.{key}: {value!r} is not valid JSON", f"params.{key}")
        if self.provider_params is not _EMPTY:
            self._check_provider_params()
        try:
            return self._dump(model, messages, params)
        except TypeError:
            pass
        # Not plain JSON types: any other mapping or sequence is taken as what it stands for.
        messages, params = freeze(list(messages)), freeze(params)
        try:
            return self._dump(model, messages, params)
        except TypeError:
            problem = (
                _json_problem(messages, "messages")
                or _json_problem(params, "params")
                or _json_problem(self.provider_params, "provider_params")
                or "the request is not JSON-serialisable"
            )
            raise _invalid(cid, problem, problem.split(":", 1)[0]) from None

    def _dump(self, model: str, messages: Any, params: Mapping[str, Any]) -> bytes:
        if self.provider_params:
            orjson.dumps(self.provider_params)  # proves it is JSON, naming it if not
        if messages:
            return orjson.dumps({"model": model, "messages": messages, **params})
        return orjson.dumps({"model": model, **params})

    def _check_fields(
        self, input_field: object, messages: Sequence[Any], params: Mapping[str, Any]
    ) -> None:
        """Raise :class:`InvalidRequestError` naming the first field that is wrong, if any."""
        cid = self.custom_id
        if not isinstance(cid, str) or not cid:
            raise _invalid(cid, "custom_id must be a non-empty string", "custom_id")
        problem = custom_id_problem(cid)
        if problem is not None:
            raise InvalidRequestError(problem, custom_id=cid, field="custom_id")
        if not isinstance(self.model, str) or not self.model:
            raise _invalid(cid, "model must be a non-empty string", "model")
        if input_field is _UNKNOWN:
            raise _invalid(
                cid, f"endpoint {self.endpoint!r} is not one of {', '.join(ENDPOINTS)}", "endpoint"
            )
        if "model" in params or "messages" in params:
            raise _invalid(
                cid, "params must not contain 'model' or 'messages'; use the fields", "params"
            )
        if input_field is None:
            if not messages:
                raise _invalid(cid, "messages must not be empty", "messages")
            for index, message in enumerate(messages):
                if not isinstance(message, Mapping):
                    raise _invalid(
                        cid, f"messages[{index}] must be an object", f"messages[{index}]"
                    )
                role = message.get("role")
                if role not in _ROLES:
                    raise _invalid(
                        cid,
                        f"messages[{index}].role {role!r} is not one of {sorted(_ROLES)}",
                        f"messages[{index}].role",
                    )
        else:
            if messages:
                raise _invalid(
                    cid, f"{self.endpoint} takes params[{input_field!r}], not messages", "messages"
                )
            if input_field not in params:
                raise _invalid(cid, f"{self.endpoint} needs params[{input_field!r}]", "params")

    def _check_provider_params(self) -> None:
        value = self.provider_params
        if not isinstance(value, Mapping):
            raise _invalid(
                self.custom_id,
                "provider_params must be an object keyed by provider name, like "
                '{"anthropic": {"top_k": 5}}, got ' + type(value).__name__,
                "provider_params",
            )
        for name, entry in value.items():
            if not isinstance(entry, Mapping):
                raise _invalid(
                    self.custom_id,
                    f"provider_params[{name!r}] must be an object of vendor body fields, got "
                    f"{type(entry).__name__}",
                    f"provider_params.{name}",
                )

    # -- the request's parts, read from its body --------------------------------------------

    def _parts(self) -> tuple[tuple[Mapping[str, Any], ...], Mapping[str, Any]]:
        view = self._view
        if view is None:
            body = orjson.loads(self._body_json)
            del body["model"]
            messages = tuple(freeze(body.pop("messages", ())))
            view = (messages, freeze(body) if body else _EMPTY)
            object.__setattr__(self, "_view", view)  # a cache of immutable values
        return view

    def body_parts(self) -> tuple[Sequence[Mapping[str, Any]], Mapping[str, Any]]:
        """``(messages, params)`` for reading only, never to be changed: for a provider's
        checks and conversions. The read-only views when they were decoded already, else one
        plain decode of the body, shared by every reader of this request until another
        request is read in the same thread (so the checks, the token estimate and the
        conversion of one request decode it once, and nothing is kept per request)."""
        view = self._view
        if view is not None:
            return view
        last = _LAST_READ.__dict__.get("parts")
        if last is not None and last[0] is self:
            return last[1]  # type: ignore[no-any-return]
        body = orjson.loads(self._body_json)
        del body["model"]
        parts = (body.pop("messages", ()), body)
        _LAST_READ.parts = (self, parts)
        return parts

    @property
    def messages(self) -> tuple[Mapping[str, Any], ...]:
        """The messages (read-only), in OpenAI chat format; empty for endpoints without."""
        return self._parts()[0]

    @property
    def params(self) -> Mapping[str, Any]:
        """Every generation parameter (read-only): the body's keys but model and messages."""
        return self._parts()[1]

    def openai_body_json(self) -> bytes:
        """:meth:`openai_body` serialised as compact JSON: the bytes the request holds."""
        return self._body_json

    def openai_body(self) -> dict[str, Any]:
        """The request body in OpenAI's format for ``endpoint`` (without provider_params): a
        private copy the caller may change."""
        body: dict[str, Any] = orjson.loads(self._body_json)
        return body

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, BatchRequest)
        return (
            self.custom_id == other.custom_id
            and self.endpoint == other.endpoint
            and self._body_json == other._body_json
            and self.provider_params == other.provider_params
        )

    def __hash__(self) -> int:
        return hash((self.custom_id, self.endpoint, self._body_json, self.provider_params))

    def __repr__(self) -> str:
        return (
            f"BatchRequest(custom_id={self.custom_id!r}, model={self.model!r}, "
            f"messages={self.messages!r}, params={self.params!r}, endpoint={self.endpoint!r}, "
            f"provider_params={self.provider_params!r})"
        )

    @classmethod
    def from_openai_line(cls, line: str | bytes | Mapping[str, Any]) -> BatchRequest:
        """Read one line of an OpenAI batch input file (``custom_id, method, url, body``); see
        :func:`batchcore.inputs.from_openai_line`."""
        from batchcore.inputs import from_openai_line

        return from_openai_line(line)

    @classmethod
    def from_json(cls, line: str | bytes | Mapping[str, Any]) -> BatchRequest:
        """Read either input format batchcore accepts (a unified request or an OpenAI batch
        line); see :func:`batchcore.inputs.from_json`."""
        from batchcore.inputs import from_json

        return from_json(line)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "custom_id": self.custom_id,
            "model": self.model,
            "endpoint": self.endpoint,
            "messages": list(self.messages),
            "params": dict(self.params),
        }
        if self.provider_params:
            data["provider_params"] = dict(self.provider_params)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchRequest:
        return cls(
            custom_id=data["custom_id"],
            model=data["model"],
            endpoint=data.get("endpoint", CHAT_COMPLETIONS),
            messages=data.get("messages", ()),
            params=data.get("params") or {},
            provider_params=data.get("provider_params") or {},
        )


@attrs.frozen(kw_only=True)
class BatchLimits:
    """What one batch may hold. Providers declare defaults; users override them in config with
    ``max_requests_per_batch`` and ``max_bytes_per_batch``."""

    max_requests: int
    max_bytes: int

    def __attrs_post_init__(self) -> None:
        for name in ("max_requests", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")

    def with_overrides(self, config: Mapping[str, Any]) -> BatchLimits:
        return BatchLimits(
            max_requests=_int_setting(config, "max_requests_per_batch", self.max_requests),
            max_bytes=_int_setting(config, "max_bytes_per_batch", self.max_bytes),
        )


def _int_setting(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"config {key!r} must be a positive integer, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class QueueLimit:
    """How much a vendor lets wait in its batch queue at once, per account.

    ``measure`` is ``"tokens"`` (estimated input tokens enqueued: OpenAI, Azure, Gemini,
    Together) or ``"requests"`` (requests pending: Anthropic, Mistral); ``per_model`` says
    whether the cap counts each model apart. ``default`` is safe for the vendor's lowest paid
    tier; ``model_defaults`` gives models whose lowest-tier cap is known to differ their own
    (glob patterns, the first match wins), so a small model is not held to a big one's cap.
    Users set the cap with the config key ``max_enqueued_tokens`` / ``max_enqueued_requests``,
    which wins over both.
    """

    measure: str = attrs.field(validator=attrs.validators.in_(("tokens", "requests")))
    per_model: bool
    default: int = attrs.field(validator=attrs.validators.gt(0))
    model_defaults: tuple[tuple[str, int], ...] = ()

    @property
    def config_key(self) -> str:
        return f"max_enqueued_{self.measure}"

    def default_for(self, model: str | None) -> int:
        """The declared cap for *model*: its ``model_defaults`` entry, else ``default``."""
        if model is not None:
            for pattern, cap in self.model_defaults:
                if fnmatch.fnmatchcase(model, pattern):
                    return cap
        return self.default


@attrs.frozen(kw_only=True)
class BatchPayload:
    """One batch, ready to submit: validated, converted to the vendor's format and within limits.

    The vendor body lives on disk (``path``; streamed on upload) with its custom_ids beside it
    (``ids_path``, one JSON string per line, so any id round-trips exactly), so a payload never
    holds the whole batch in memory. Call :meth:`discard` once it is submitted.

    What a caller that keeps submissions durable (the runner) hands back on a later attempt:

    * ``idempotency_key`` - the same key for every attempt to submit this payload;
    * ``staged`` - what the provider's ``upload`` returned (an uploaded file's id), so a retry
      does not upload again and can recognise the batch it created;
    * ``attempted_at`` - when an earlier create may have been sent whose answer never came:
      ``submit`` then looks for that batch first and never creates a second one blindly.
    """

    provider: str
    model: str | None
    endpoint: str
    request_count: int
    size_bytes: int
    path: Path | None = None
    ids_path: Path | None = None
    idempotency_key: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    staged: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    attempted_at: datetime | None = attrs.field(default=None, converter=_utc)
    #: Estimated input tokens of its requests (:mod:`batchcore.tokens`, expected value), when
    #: the provider's queue is counted in tokens; 0 otherwise.
    tokens: int = 0

    def iter_custom_ids(self) -> Iterator[str]:
        """The custom_ids in this payload, in the order they were written."""
        if self.ids_path is None:
            return
        with open(self.ids_path, "rb") as handle:
            for line in handle:
                yield orjson.loads(line)

    def discard(self) -> None:
        """Delete the payload's files. Safe to call twice."""
        for file in (self.path, self.ids_path):
            if file is not None:
                file.unlink(missing_ok=True)


@attrs.frozen(kw_only=True)
class BatchHandle:
    """What identifies a submitted batch. Persist it (``to_dict``) to poll or fetch later."""

    provider: str
    batch_id: str
    created_at: datetime = attrs.field(converter=_utc_required)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "batch_id": self.batch_id,
            "created_at": self.created_at.isoformat(),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchHandle:
        return cls(
            provider=data["provider"],
            batch_id=data["batch_id"],
            created_at=data["created_at"],
            metadata=data.get("metadata") or {},
        )


class BatchState(str, enum.Enum):
    """A batch's lifecycle state, normalised across vendors."""

    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_STATES

    def __str__(self) -> str:
        return self.value


_TERMINAL_STATES = frozenset(
    {BatchState.COMPLETED, BatchState.FAILED, BatchState.EXPIRED, BatchState.CANCELLED}
)


@attrs.frozen(kw_only=True)
class BatchError:
    """A batch-level error (for example, input validation), with the input line when known."""

    code: str | None
    message: str
    line: int | None = None
    param: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchError:
        return cls(
            code=data.get("code"),
            message=data.get("message") or "",
            line=data.get("line"),
            param=data.get("param"),
        )


def _errors(value: Iterable[BatchError]) -> tuple[BatchError, ...]:
    return tuple(value)


def _timestamps(value: Mapping[str, Any] | None) -> Mapping[str, datetime]:
    out: dict[str, datetime] = {}
    for key, raw in (value or {}).items():
        parsed = parse_timestamp(raw)
        if parsed is not None:
            out[key] = parsed
    return out


@attrs.frozen(kw_only=True)
class BatchStatus:
    """Where a batch stands. ``state`` is normalised, ``raw_status`` is the vendor's word.

    Counts are ``None`` when the vendor has not reported them yet. ``timestamps`` keeps every
    vendor timestamp under the vendor's own name; ``raw`` keeps the vendor object (not compared,
    not shown, not serialised).
    """

    provider: str
    batch_id: str
    state: BatchState = attrs.field(converter=BatchState)
    raw_status: str
    total: int | None = None
    completed: int | None = None
    failed: int | None = None
    created_at: datetime | None = attrs.field(default=None, converter=_utc)
    expires_at: datetime | None = attrs.field(default=None, converter=_utc)
    ended_at: datetime | None = attrs.field(default=None, converter=_utc)
    timestamps: Mapping[str, datetime] = attrs.field(factory=dict, converter=_timestamps)
    errors: tuple[BatchError, ...] = attrs.field(default=(), converter=_errors)
    raw: Mapping[str, Any] | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def pending(self) -> int | None:
        """Requests not yet finished, when the counts say."""
        if self.total is None:
            return None
        return max(self.total - (self.completed or 0) - (self.failed or 0), 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "batch_id": self.batch_id,
            "state": self.state.value,
            "raw_status": self.raw_status,
            "is_terminal": self.is_terminal,
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "ended_at": _iso(self.ended_at),
            "timestamps": {k: v.isoformat() for k, v in self.timestamps.items()},
            "errors": [error.to_dict() for error in self.errors],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchStatus:
        return cls(
            provider=data["provider"],
            batch_id=data["batch_id"],
            state=data["state"],
            raw_status=data["raw_status"],
            total=data.get("total"),
            completed=data.get("completed"),
            failed=data.get("failed"),
            created_at=data.get("created_at"),
            expires_at=data.get("expires_at"),
            ended_at=data.get("ended_at"),
            timestamps=data.get("timestamps") or {},
            errors=[BatchError.from_dict(e) for e in data.get("errors") or ()],
        )


class ResultStatus(str, enum.Enum):
    """How one request of a batch ended."""

    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


#: A slot's setter, for the hand-written ``__init__`` of the result classes below.
_SlotSetter = Callable[[Any, Any], None]


def _slot_setters(cls: type, *names: str) -> tuple[_SlotSetter, ...]:
    """The setters of slots *names* of the frozen attrs class *cls*, bypassing its frozen
    ``__setattr__``. One result (with its usage) is built per request of every job, when it
    is fetched and again when it is read back from the store: setting slots through their
    descriptors costs half of what attrs' generated ``__init__`` does through
    ``object.__setattr__`` (benchmarks/bench_parse.py)."""
    return tuple(getattr(cls, name).__set__ for name in names)


@attrs.frozen(kw_only=True, init=False)
class ResultError:
    """Why one request did not succeed. ``retryable`` says whether resubmitting it unchanged can
    help (expired, cancelled, rate-limited, server errors) or not (invalid request)."""

    code: str
    message: str
    retryable: bool
    status_code: int | None = None

    def __init__(
        self, *, code: str, message: str, retryable: bool, status_code: int | None = None
    ) -> None:
        set_code, set_message, set_retryable, set_status_code = _RESULT_ERROR_SLOTS
        set_code(self, code)
        set_message(self, message)
        set_retryable(self, retryable)
        set_status_code(self, status_code)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "status_code": self.status_code,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultError:
        return cls(
            code=data["code"],
            message=data.get("message") or "",
            retryable=bool(data.get("retryable")),
            status_code=data.get("status_code"),
        )


_RESULT_ERROR_SLOTS = _slot_setters(ResultError, "code", "message", "retryable", "status_code")


@attrs.frozen(kw_only=True, init=False)
class Usage:
    """Token usage of one request, in vendor-neutral names.

    ``input_tokens`` is the *whole* input, cached or not (as OpenAI reports ``prompt_tokens``);
    ``cache_read_tokens`` and ``cache_write_tokens`` say how much of it was read from or written
    to a prompt cache (billed at other rates). ``output_tokens`` is the whole output, reasoning
    included; ``reasoning_tokens`` says how much of it was reasoning ("thinking"). Fields a
    vendor does not report are None.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None

    def __init__(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        total_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        set_input, set_output, set_total, set_cache_read, set_cache_write, set_reasoning = (
            _USAGE_SLOTS
        )
        set_input(self, input_tokens)
        set_output(self, output_tokens)
        set_total(self, total_tokens)
        set_cache_read(self, cache_read_tokens)
        set_cache_write(self, cache_write_tokens)
        set_reasoning(self, reasoning_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(
            input_tokens=data.get("input_tokens"),
            output_tokens=data.get("output_tokens"),
            total_tokens=data.get("total_tokens"),
            cache_read_tokens=data.get("cache_read_tokens"),
            cache_write_tokens=data.get("cache_write_tokens"),
            reasoning_tokens=data.get("reasoning_tokens"),
        )


_USAGE_SLOTS = _slot_setters(
    Usage,
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)

#: The type :meth:`BatchResult.parse` returns: the model it is given.
_Parsed = TypeVar("_Parsed")


def _result_status(value: ResultStatus | str) -> ResultStatus:
    # Providers pass the enum member (one result per request): skip the enum's lookup then.
    return value if value.__class__ is ResultStatus else ResultStatus(value)


@attrs.frozen(kw_only=True)
class BatchResult:
    """The outcome of one request, joined on ``custom_id``.

    ``response`` is the vendor's response body (for a success) or error body. ``text`` is the
    whole text of the answer: every text part of the final message, in order (the parts
    themselves stay in ``response``). ``refusal`` is the model's refusal message when it
    declined to answer (OpenAI ``message.refusal``, Anthropic ``stop_reason: refusal``); such a
    result still counts as succeeded (the request ran and was billed). A failed request is data
    (``error``), never an exception.
    """

    custom_id: str
    status: ResultStatus = attrs.field(converter=_result_status)
    response: Mapping[str, Any] | None = attrs.field(default=None, repr=False)
    text: str | None = None
    usage: Usage | None = None
    error: ResultError | None = None
    batch_id: str | None = None
    refusal: str | None = None
    #: For an answer reused from an earlier job (``reuse_results``): that job and custom_id.
    reused_from: Mapping[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.status is ResultStatus.SUCCEEDED

    @property
    def retryable(self) -> bool:
        """Whether resubmitting this request can change the outcome."""
        return self.error is not None and self.error.retryable

    def parse(self, model: type[_Parsed]) -> _Parsed:
        """The answer as an instance of *model* (a pydantic model, or any type pydantic
        validates), for a request sent with ``response_format`` from
        :func:`batchcore.structured.response_format`. Raises
        :class:`~batchcore.structured.StructuredOutputError` for a result that failed, was
        refused, has no text, is not JSON or does not match the model. Needs pydantic
        (``batchcore[pydantic]``)."""
        from batchcore.structured import parse

        return parse(self, model)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "custom_id": self.custom_id,
            "status": self.status.value,
            "ok": self.ok,
            "text": self.text,
            "usage": None if self.usage is None else self.usage.to_dict(),
            "error": None if self.error is None else self.error.to_dict(),
            "batch_id": self.batch_id,
            "response": self.response,
        }
        if self.refusal is not None:
            data["refusal"] = self.refusal
        if self.reused_from is not None:
            data["reused_from"] = dict(self.reused_from)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchResult:
        usage = data.get("usage")
        error = data.get("error")
        return cls(
            custom_id=data["custom_id"],
            status=data["status"],
            response=data.get("response"),
            text=data.get("text"),
            usage=None if usage is None else Usage.from_dict(usage),
            error=None if error is None else ResultError.from_dict(error),
            batch_id=data.get("batch_id"),
            refusal=data.get("refusal"),
            reused_from=data.get("reused_from"),
        )

    @classmethod
    def unfinished(
        cls, custom_id: str, status: ResultStatus, *, batch_id: str | None = None
    ) -> BatchResult:
        """A request that never ran because its batch expired or was cancelled (retryable)."""
        if status is ResultStatus.EXPIRED:
            code, message = "batch_expired", "The batch expired before this request ran."
        else:
            code, message = "batch_cancelled", "The batch was cancelled before this request ran."
        return cls(
            custom_id=custom_id,
            status=status,
            error=ResultError(code=code, message=message, retryable=True),
            batch_id=batch_id,
        )

    @classmethod
    def missing(cls, custom_id: str, status: BatchStatus) -> BatchResult:
        """The result of a request its ended batch returned nothing for: the one rule, used by
        every provider and the runner. Expired and cancelled batches give expired/cancelled
        (retryable); a failed batch gives ``batch_failed`` with the batch's errors (retryable
        only when every error names another line: this request never ran and is not at
        fault); a completed batch that lost the request gives ``result_missing`` (retryable)."""
        batch_id = status.batch_id
        if status.state is BatchState.EXPIRED:
            return cls.unfinished(custom_id, ResultStatus.EXPIRED, batch_id=batch_id)
        if status.state is BatchState.CANCELLED:
            return cls.unfinished(custom_id, ResultStatus.CANCELLED, batch_id=batch_id)
        if status.state is BatchState.FAILED:
            reasons = "; ".join(
                f"{e.code + ': ' if e.code else ''}{e.message}"
                + (f" (line {e.line})" if e.line else "")
                for e in status.errors
            )
            # A batch refused for some of its lines never ran the others, which are fine: they
            # may go again without those lines. A batch refused as a whole (a bad model, an
            # expired file) would be refused again.
            other_lines = bool(status.errors) and all(e.line is not None for e in status.errors)
            error = ResultError(
                code="batch_failed",
                retryable=other_lines,
                message=(
                    f"The batch failed because of other requests in it ({reasons}); this one "
                    "never ran."
                    if other_lines
                    else f"The batch failed: {reasons or 'no reason given'}"
                ),
            )
        else:
            error = ResultError(
                code="result_missing",
                retryable=True,
                message="The batch ended without a result for this request.",
            )
        return cls(custom_id=custom_id, status=ResultStatus.ERRORED, error=error, batch_id=batch_id)


class JobEventKind(str, enum.Enum):
    """What happened to a job; see the ``batchcore_job_event`` hook."""

    SUBMITTED = "submitted"
    STATUS_CHANGED = "status_changed"
    RESULTS_FETCHED = "results_fetched"
    RETRIED = "retried"
    WAITING = "waiting"  # a step is postponed (a transient failure, a Retry-After): until when
    NOTICE = "notice"  # something the user should know (a takeover, options given again)
    STOPPED = "stopped"  # the driver stopped before the end; the job is kept
    FINISHED = "finished"

    def __str__(self) -> str:
        return self.value


@attrs.frozen(kw_only=True)
class JobEvent:
    """One thing that happened to a job, for observers (progress displays, metrics, logs).

    ``counts`` holds the job's result counts by status at the time of the event;
    ``batch_id`` and ``status`` are set for events about one batch; ``actor`` names the process
    (``host:pid``, or a worker's name) that acted. ``cost_usd`` is what the job's fetched
    results cost so far at batch prices, when known (None: no results yet, no price, or a
    sandbox job, whose usage is invented).
    """

    kind: JobEventKind = attrs.field(converter=JobEventKind)
    job_id: str
    provider: str
    at: datetime = attrs.field(converter=_utc_required)
    batch_id: str | None = None
    status: BatchStatus | None = None
    counts: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_mapping)
    detail: str | None = None
    actor: str | None = None
    cost_usd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "cost_usd": self.cost_usd,
            "kind": self.kind.value,
            "job_id": self.job_id,
            "provider": self.provider,
            "at": self.at.isoformat(),
            "batch_id": self.batch_id,
            "status": None if self.status is None else self.status.to_dict(),
            "counts": dict(self.counts),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobEvent:
        status = data.get("status")
        return cls(
            kind=data["kind"],
            job_id=data["job_id"],
            provider=data["provider"],
            at=data["at"],
            batch_id=data.get("batch_id"),
            status=None if status is None else BatchStatus.from_dict(status),
            counts=data.get("counts") or {},
            detail=data.get("detail"),
            actor=data.get("actor"),
            cost_usd=data.get("cost_usd"),
        )
