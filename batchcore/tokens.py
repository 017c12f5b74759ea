"""How many tokens a request will cost, estimated offline from its own content.

This is the one token estimate of batchcore: the cost estimate (:mod:`batchcore.estimate`)
and queue admission both use it. For a :class:`~batchcore.models.BatchRequest`,
:func:`estimate_tokens` gives

* ``expected`` - the input tokens the vendor will most likely count;
* ``upper`` - a conservative bound on them (see "Why the upper bound holds");
* ``output_upper`` - the most output tokens the request allows: ``max_completion_tokens``,
  ``max_tokens`` or ``max_output_tokens`` (from ``params``, else from the provider's own
  ``provider_params`` entry), times the number of choices (``n``, ``best_of``); else the
  default the caller passes (a provider's default); ``0`` for embeddings and moderations;
  ``None`` when nothing bounds it.

How tokens are counted. No tokenizer and no vendor token-count endpoint is used: those
endpoints cost a call per request and need keys, and vendors do not publish every tokenizer.
Instead the estimate reads the text the vendor will tokenize:

* every message's text: string contents and text parts, names, refusals, tool calls (function
  names and arguments) and tool results; system and developer messages;
* the tool definitions (``tools``, ``functions``, a named ``tool_choice``) and the structured
  output schema (``response_format``, Responses ``text``), as compact JSON;
* the ``input`` of embeddings, moderations and Responses requests, Responses ``instructions``
  and legacy ``prompt`` (pre-tokenized inputs, lists of token ids, count one token per id);
* the running provider's ``provider_params`` entry (all entries when no provider is named).

Of that text it measures the UTF-8 bytes. ``upper`` counts one token per byte; ``expected``
four bytes per token: Gemini documents about four characters per token, OpenAI's o200k and
cl100k encodings take 4.5-4.8 bytes per token of English prose and code (so the expected value
is 10-20% high for them), Claude's tokenizer takes fewer; CJK and Cyrillic text lands within a
factor of two either way, depending on the vocabulary.
Both add a per-message and a per-request overhead (role markers, the reply priming) and, for
requests with tools or a schema, the hidden system prompt vendors add for them. Images, audio
and files are never counted as zero: each has a per-item expected value and bound, below.

Why the upper bound holds. The vendors' text tokenizers are byte-level BPE (OpenAI's
o200k/cl100k, Anthropic's, Llama 3 and Mistral's Tekken served by Groq, Together and Mistral)
or SentencePiece with byte fallback (Gemini): every token covers at least one byte of the text,
so a text never has more tokens than UTF-8 bytes. (A tokenizer that first applied NFKC
normalisation could expand rare compatibility characters; none of these does.) The overheads
are bounded by what the chat templates add (:data:`MESSAGE_OVERHEAD_UPPER`,
:data:`REQUEST_OVERHEAD_UPPER`, :data:`INSTRUCTIONS_OVERHEAD_UPPER`). Images are bounded by the
largest per-image cost any vendor documents (:data:`IMAGE_TOKENS_UPPER`). Files and audio
cannot be measured offline (a PDF's page count and an audio clip's length are not in the
request in a form that is cheap to read), so their bounds are documented *assumptions*, not
guarantees: :attr:`TokenEstimate.assumed` counts the parts whose bound is one.

It is cheap (about a microsecond for a one-message chat request): it runs once per request of
jobs with millions of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from batchcore.models import BatchRequest

__all__ = [
    "AUDIO_BASE64_CHARS_PER_TOKEN",
    "FILE_TOKENS_EXPECTED",
    "FILE_TOKENS_UPPER",
    "IMAGE_TOKENS_EXPECTED",
    "IMAGE_TOKENS_UPPER",
    "INSTRUCTIONS_OVERHEAD_EXPECTED",
    "INSTRUCTIONS_OVERHEAD_UPPER",
    "MESSAGE_OVERHEAD_EXPECTED",
    "MESSAGE_OVERHEAD_UPPER",
    "METHOD",
    "REQUEST_OVERHEAD_EXPECTED",
    "REQUEST_OVERHEAD_UPPER",
    "TokenEstimate",
    "estimate_tokens",
]

#: The largest per-image cost a vendor documents: OpenAI's gpt-4o-mini at ``detail: high``,
#: 2,833 base tokens plus 5,667 per 512-px tile, with at most 8 tiles (an image is scaled to
#: fit 2048x2048, then its short side to 768 px: 2x4 tiles), ``2833 + 8 * 5667`` (OpenAI's
#: vision guide, "Calculating costs"). Every other documented rule stays below it: GPT-4o and
#: GPT-4.1 at most 1,445 (85 + 8 * 170), the patch-based GPT-4.1-nano/GPT-5-nano at most 3,779
#: (1,536 patches * 2.46), Claude about 1,600 (width * height / 750 after scaling to at most
#: 1.15 megapixels), Together's vision models 6,404 (2x2 tiles * 1,601), Gemini 2.x 258 per
#: 768-px tile (an image would need about 10,000 px a side to pass this bound).
IMAGE_TOKENS_UPPER = 48_169
#: What an image usually costs: a 1024x1024 picture is 765 tokens on GPT-4o (85 + 4 * 170),
#: about 1,400 on Claude (1024 * 1024 / 750) and 1,032 on Gemini 2.x (4 tiles * 258).
IMAGE_TOKENS_EXPECTED = 1_000
#: An assumption, not a bound (a file's pages are not known offline): a document of about 30
#: pages at Anthropic's documented 1,500-3,000 text tokens per page, with its page images.
FILE_TOKENS_UPPER = 100_000
#: A few pages.
FILE_TOKENS_EXPECTED = 5_000
#: Audio is bounded from its base64 size, assuming it is encoded at 8 kbit/s or more: one second
#: is then at least 1,333 base64 characters, and Gemini (the most per second) counts 32 tokens a
#: second (OpenAI's audio models count 10).
AUDIO_BASE64_CHARS_PER_TOKEN = 32
#: Role markers around each message: OpenAI counts 3 per message (plus 1 for a ``name``, which
#: is counted with the text here); the Llama 3, Gemma/Gemini and Mistral chat templates add at
#: most 5-6 special and separator tokens.
MESSAGE_OVERHEAD_EXPECTED = 4
MESSAGE_OVERHEAD_UPPER = 10
#: Once per request: OpenAI's reply priming is 3 tokens; the longest fixed preamble of the
#: templates we know is Llama 3.1's default system header (knowledge cut-off and today's date,
#: about 25 tokens) and the harmony preamble of gpt-oss models (about 50).
REQUEST_OVERHEAD_EXPECTED = 3
REQUEST_OVERHEAD_UPPER = 64
#: The hidden system prompt vendors add when a request has tools or an output schema: Anthropic
#: documents 159-530 tokens per model (its tool-use pricing page; 346 for current models).
INSTRUCTIONS_OVERHEAD_EXPECTED = 350
INSTRUCTIONS_OVERHEAD_UPPER = 600

#: How tokens are counted, for reports (see this module's docstring).
METHOD = (
    "offline, from the request text (no tokenizer, no vendor call): upper = 1 token per UTF-8 "
    f"byte, expected = 1 token per 4 bytes; plus per-message "
    f"({MESSAGE_OVERHEAD_UPPER}) and per-request ({REQUEST_OVERHEAD_UPPER}) overheads, "
    f"{INSTRUCTIONS_OVERHEAD_UPPER} for tools or an output schema, {IMAGE_TOKENS_UPPER} per "
    f"image (expected {IMAGE_TOKENS_EXPECTED}); files ({FILE_TOKENS_UPPER} each) and audio "
    f"(1 token per {AUDIO_BASE64_CHARS_PER_TOKEN} base64 characters) are assumptions; output "
    "bounded by max_tokens / max_completion_tokens / max_output_tokens times n"
)


class TokenEstimate(NamedTuple):
    """The token estimate of one request (see :mod:`batchcore.tokens`)."""

    #: Input tokens the vendor most likely counts.
    expected: int
    #: A bound on the input tokens the vendor counts (an assumption for files and audio).
    upper: int
    #: The most output tokens the request allows (reasoning included), or None when unbounded.
    output_upper: int | None
    #: Parts (files, audio) whose bound is an assumption rather than a guarantee.
    assumed: int = 0
    #: Whether ``output_upper`` is the caller's default (the request sets no limit).
    output_defaulted: bool = False


# Content part types, OpenAI's (chat and Responses) and Anthropic's native ones.
_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
_FILE_PARTS = frozenset({"file", "input_file", "document"})
_AUDIO_PARTS = frozenset({"input_audio"})
_TEXT_SOURCES = frozenset({"text", "content"})
_MIME_KEYS = ("mime_type", "mimeType", "media_type")
#: Keys whose object values are data the vendor renders as JSON (tool-call inputs, function
#: arguments and results, schemas), not message structure.
_JSON_VALUES = frozenset(
    {"input", "arguments", "args", "parameters", "input_schema", "schema", "response"}
)
_OUTPUT_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_NO_OUTPUT_ENDPOINTS = frozenset({"/v1/embeddings", "/v1/moderations"})
_LIMIT, _CHOICES, _TEXT, _JSON = range(4)
#: The parameters the estimate reads: output limits, the number of answers, text the model
#: reads, and tool definitions and output schemas (counted as their compact JSON).
_PARAM_KINDS: Mapping[str, int] = {
    **dict.fromkeys(_OUTPUT_KEYS, _LIMIT),
    **dict.fromkeys(("n", "best_of"), _CHOICES),
    **dict.fromkeys(("input", "prompt", "instructions", "tool_choice", "suffix"), _TEXT),
    **dict.fromkeys(("tools", "functions", "response_format", "text"), _JSON),
}


class _Count:
    """What the slow path accumulates."""

    __slots__ = ("assumed", "audio", "exact", "files", "images", "nbytes")

    def __init__(self) -> None:
        self.nbytes = 0
        self.exact = 0  # pre-tokenized input: token ids count as they are
        self.images = 0
        self.files = 0
        self.audio = 0  # upper-bound tokens of audio parts
        self.assumed = 0

    def text(self, value: str) -> None:
        self.nbytes += len(value) if value.isascii() else len(value.encode("utf-8", "replace"))

    def value(self, value: Any) -> None:
        """Every string in *value* (values, not keys), with media parts recognised."""
        if value.__class__ is str:
            self.text(value)
        elif isinstance(value, dict):
            self.mapping(value)
        elif isinstance(value, (list, tuple)):
            if value and all(item.__class__ is int for item in value):
                self.exact += len(value)  # token ids
            else:
                for item in value:
                    self.value(item)
        elif isinstance(value, Mapping):
            self.mapping(value)

    def mapping(self, value: Mapping[str, Any]) -> None:
        kind = value.get("type")
        if kind in _IMAGE_PARTS:
            self.images += 1
            return
        if kind in _FILE_PARTS:
            source = value.get("source") if kind == "document" else None
            if isinstance(source, Mapping) and source.get("type") in _TEXT_SOURCES:
                # Anthropic's plain-text and custom-content documents are text.
                self.value(source.get("data") or source.get("content"))
                return
            self.files += 1
            self.assumed += 1
            return
        if kind in _AUDIO_PARTS:
            audio = value.get("input_audio")
            data = audio.get("data") if isinstance(audio, Mapping) else None
            size = len(data) if data.__class__ is str else 0
            self.audio += -(-size // AUDIO_BASE64_CHARS_PER_TOKEN)
            self.assumed += 1
            return
        for key in _MIME_KEYS:
            mime = value.get(key)
            if mime.__class__ is str:
                # Inline media without a part type (Gemini's inlineData / fileData).
                if mime.startswith("image/"):
                    self.images += 1
                elif mime.startswith("audio/"):
                    data = value.get("data")
                    size = len(data) if data.__class__ is str else 0
                    self.audio += -(-size // AUDIO_BASE64_CHARS_PER_TOKEN)
                    self.assumed += 1
                elif mime.startswith("text/") and value.get("data").__class__ is str:
                    break
                else:
                    self.files += 1
                    self.assumed += 1
                return
        for key, item in value.items():
            if key == "type":
                continue  # structure, not text
            if key in _JSON_VALUES and isinstance(item, Mapping):
                # Call arguments and schemas given as objects are rendered as JSON, keys too.
                self.nbytes += len(orjson.dumps(item))
            else:
                self.value(item)

    def message(self, message: Mapping[str, Any]) -> None:
        for key, item in message.items():
            if key != "role":
                self.value(item)


def estimate_tokens(
    request: BatchRequest,
    *,
    default_max_output: int | None = None,
    provider: str | None = None,
) -> TokenEstimate:
    """The token estimate of *request* (see :mod:`batchcore.tokens` for how it is counted).

    *default_max_output* bounds the output of a request that sets no output limit (a
    provider's default ``max_tokens``); *provider* names the running provider, whose
    ``provider_params`` entry is counted and read for an output limit.
    """
    messages, params = request.body_parts()
    nbytes = 0
    count: _Count | None = None
    for message in messages:
        content = message.get("content")
        if content.__class__ is str and len(message) == 2:
            nbytes += len(content) if content.isascii() else len(content.encode("utf-8", "replace"))
        else:
            if count is None:
                count = _Count()
            count.message(message)
    expected_extra = REQUEST_OVERHEAD_EXPECTED + MESSAGE_OVERHEAD_EXPECTED * len(messages)
    upper_extra = REQUEST_OVERHEAD_UPPER + MESSAGE_OVERHEAD_UPPER * len(messages)
    output: int | None = None
    choices = 1
    if params:
        # One pass over the parameters (most requests have one or two).
        for key, value in params.items():
            kind = _PARAM_KINDS.get(key)
            if kind is None or value is None:
                continue
            if kind == _LIMIT:
                if value.__class__ is int and (output is None or value > output):
                    output = value
            elif kind == _CHOICES:
                if value.__class__ is int and value > choices:
                    choices = value
            elif kind == _TEXT:
                if count is None:
                    count = _Count()
                count.value(value)
            elif value:  # _JSON
                nbytes += len(orjson.dumps(value))
                if key == "tools" or key == "functions" or _has_schema(value):
                    expected_extra += INSTRUCTIONS_OVERHEAD_EXPECTED
                    upper_extra += INSTRUCTIONS_OVERHEAD_UPPER
    provider_params = request.provider_params
    if provider_params:
        entries = (
            provider_params.values()
            if provider is None
            else ((provider_params[provider],) if provider in provider_params else ())
        )
        for entry in entries:
            if isinstance(entry, Mapping):
                limit, more = _output_limit(entry)
                if output is None:
                    output = limit
                choices = max(choices, more)
            if count is None:
                count = _Count()
            count.value(entry)
    if count is not None:
        nbytes += count.nbytes
        images = count.images
        expected_extra += (
            count.exact
            + images * IMAGE_TOKENS_EXPECTED
            + count.files * FILE_TOKENS_EXPECTED
            + count.audio // 4
        )
        upper_extra += (
            count.exact
            + images * IMAGE_TOKENS_UPPER
            + count.files * FILE_TOKENS_UPPER
            + count.audio
        )
        assumed = count.assumed
    else:
        assumed = 0
    expected = ((nbytes + 3) >> 2) + expected_extra
    upper = nbytes + upper_extra
    defaulted = False
    if output is None:
        if request.endpoint in _NO_OUTPUT_ENDPOINTS:
            output = 0
        else:
            output = default_max_output
            defaulted = output is not None
    if output is not None and choices > 1:
        output *= choices
    return TokenEstimate(expected, upper, output, assumed, defaulted)


def _has_schema(value: Any) -> bool:
    """Whether an output-format parameter carries a JSON schema (Chat ``response_format``, or
    Responses ``text.format``)."""
    if not isinstance(value, Mapping):
        return False
    if value.get("type") == "json_schema":
        return True
    inner = value.get("format")
    return isinstance(inner, Mapping) and inner.get("type") == "json_schema"


def _output_limit(entry: Mapping[str, Any]) -> tuple[int | None, int]:
    """The output limit and number of choices a provider_params entry sets (in the vendor's
    spelling: ``max_tokens``, or Gemini's ``generationConfig.maxOutputTokens``)."""
    limit = None
    for key in _OUTPUT_KEYS:
        value = entry.get(key)
        if value.__class__ is int:
            limit = value
            break
    choices = 1
    config = entry.get("generationConfig") or entry.get("generation_config")
    if isinstance(config, Mapping):
        if limit is None:
            value = config.get("maxOutputTokens", config.get("max_output_tokens"))
            if value.__class__ is int:
                limit = value
        value = config.get("candidateCount", config.get("candidate_count"))
        if value.__class__ is int and value > 1:
            choices = value
    return limit, choices
