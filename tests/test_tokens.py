"""The offline token estimate: its upper bound against a real tokenizer, its parts, its cost."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import random
import string
from importlib import util
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchcore.models import BatchRequest
from batchcore.tokens import (
    AUDIO_BASE64_CHARS_PER_TOKEN,
    FILE_TOKENS_EXPECTED,
    FILE_TOKENS_UPPER,
    IMAGE_TOKENS_EXPECTED,
    IMAGE_TOKENS_UPPER,
    INSTRUCTIONS_OVERHEAD_EXPECTED,
    INSTRUCTIONS_OVERHEAD_UPPER,
    MESSAGE_OVERHEAD_EXPECTED,
    MESSAGE_OVERHEAD_UPPER,
    REQUEST_OVERHEAD_EXPECTED,
    REQUEST_OVERHEAD_UPPER,
    TokenEstimate,
    estimate_tokens,
)

# tiktoken's own published hashes of its encoding files (tiktoken_ext/openai_public.py).
ENCODING_HASHES = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def chat(*contents: Any, **params: Any) -> BatchRequest:
    return BatchRequest(
        custom_id="r",
        model="m",
        messages=[{"role": "user", "content": content} for content in contents],
        params=params,
    )


PROSE = (
    "Batch interfaces trade latency for price: a job is uploaded as a file of requests, the "
    "vendor works through it within a day, and the results come back as another file. Half "
    "the usual price is a good reason to accept the wait, but the bookkeeping is real. Each "
    "request needs an identifier that survives the round trip; each batch can expire with "
    "only part of its work done; a lost answer to the create call must never lead to paying "
    "twice. Estimating the cost before sending anything, and refusing a job that could "
    "exceed its budget, is the least a careful tool should do.\n\n"
)


def adversarial_texts() -> dict[str, str]:
    rnd = random.Random(7)
    return {
        "english": PROSE * 20,
        "cjk_random": "".join(chr(rnd.randint(0x4E00, 0x9FFF)) for _ in range(3000)),
        "chinese": "我们的目标是提供一个统一的批处理接口。" * 150,
        "japanese": "これはテストです。日本語の文章をトークン化します。" * 150,
        "emoji": "".join(rnd.choice("😀🎉👍🏽🧑‍💻🇫🇷❤️🔥✨🫠") for _ in range(2000)),
        "base64": base64.b64encode(rnd.randbytes(15_000)).decode(),
        "digits": "".join(rnd.choice(string.digits) for _ in range(20_000)),
        "whitespace": " " * 5000 + "\n" * 3000 + "\t" * 2000 + " \n" * 1000,
        "printable": "".join(rnd.choice(string.printable) for _ in range(20_000)),
        "planes": "".join(
            chr(c)
            for c in (rnd.randint(0x20, 0x2FFFF) for _ in range(6000))
            if not 0xD800 <= c <= 0xDFFF
        ),
        "combining": "e\u0301\u0302\u0303\u0304" * 2000,
        "cyrillic": "Привет, как дела? Это тестовый текст. " * 300,
    }


# -- a real tokenizer ----------------------------------------------------------------------


def _encoding_data(name: str) -> bytes | None:
    """The encoding file, from the bpe-openai wheel (which ships tiktoken's files), when
    installed; checked against tiktoken's published hash."""
    spec = util.find_spec("bpe_openai")
    if spec is None or spec.origin is None:
        return None
    packed = Path(spec.origin).parent / "data" / f"{name}.tiktoken.gz"
    if not packed.is_file():
        return None
    data = gzip.decompress(packed.read_bytes())
    assert hashlib.sha256(data).hexdigest() == ENCODING_HASHES[name], f"{name} data is corrupt"
    return data


@pytest.fixture(scope="session")
def encodings(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """OpenAI's o200k_base and cl100k_base encodings in the real tiktoken, loaded offline."""
    missing = [name for name in ("tiktoken", "tiktoken_ext") if util.find_spec(name) is None]
    datas = {name: _encoding_data(name) for name in ENCODING_HASHES}
    if missing or None in datas.values():
        why = "tiktoken and bpe-openai (the encodings' data) are not installed"
        if os.environ.get("BATCHCORE_REQUIRE_TOKENIZER"):
            pytest.fail(f"BATCHCORE_REQUIRE_TOKENIZER is set but {why}")
        pytest.skip(why)
    import tiktoken
    from tiktoken_ext import openai_public

    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for name, data in datas.items():
        key = hashlib.sha1(ENCODING_URL.format(name).encode()).hexdigest()
        (cache / key).write_bytes(data or b"")
    before = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        loaded = [
            tiktoken.Encoding(**openai_public.o200k_base()),
            tiktoken.Encoding(**openai_public.cl100k_base()),
        ]
    finally:
        if before is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = before
    return loaded


def openai_chat_tokens(encoding: Any, messages: list[dict[str, str]]) -> int:
    """What OpenAI counts for a chat request: its documented formula (3 tokens per message,
    the role and content encoded, 3 for the reply priming)."""
    total = 3
    for message in messages:
        total += 3
        for value in message.values():
            total += len(encoding.encode(value, disallowed_special=()))
    return total


@pytest.mark.parametrize("name", sorted(adversarial_texts()))
def test_upper_bound_holds_against_a_real_tokenizer(name: str, encodings: list[Any]) -> None:
    text = adversarial_texts()[name]
    estimate = estimate_tokens(chat(text))
    for encoding in encodings:
        counted = openai_chat_tokens(encoding, [{"role": "user", "content": text}])
        assert estimate.upper >= counted, (name, encoding.name, estimate.upper, counted)


def test_upper_bound_holds_for_many_messages_and_parts(encodings: list[Any]) -> None:
    texts = list(adversarial_texts().values())
    request = BatchRequest(
        custom_id="r",
        model="m",
        messages=[
            {"role": "system", "content": texts[0]},
            {"role": "user", "content": [{"type": "text", "text": t} for t in texts[1:6]]},
            {"role": "assistant", "content": texts[6]},
            {"role": "user", "content": texts[7] + texts[8]},
        ],
    )
    estimate = estimate_tokens(request)
    for encoding in encodings:
        counted = 3 + sum(3 + len(encoding.encode(t, disallowed_special=())) + 1 for t in texts[:9])
        assert estimate.upper >= counted


@pytest.mark.parametrize("name", ["english", "chinese", "japanese"])
def test_expected_is_near_a_real_tokenizer_on_natural_text(name: str, encodings: list[Any]) -> None:
    text = adversarial_texts()[name]
    expected = estimate_tokens(chat(text)).expected
    counts = [
        openai_chat_tokens(encoding, [{"role": "user", "content": text}]) for encoding in encodings
    ]
    # Within a factor of two of both OpenAI encodings; on English prose, at most 25% above
    # them (four bytes a token, where o200k and cl100k take about 4.8).
    assert all(count / 2 <= expected <= count * 2 for count in counts), (expected, counts)
    if name == "english":
        assert all(count <= expected <= count * 1.25 for count in counts), (expected, counts)


@pytest.mark.parametrize("name", sorted(adversarial_texts()))
def test_upper_bound_counts_every_byte(name: str) -> None:
    # The argument of the bound, with no tokenizer: a byte-level vocabulary never has more
    # tokens than bytes.
    text = adversarial_texts()[name]
    estimate = estimate_tokens(chat(text))
    size = len(text.encode("utf-8"))
    assert estimate.upper == size + REQUEST_OVERHEAD_UPPER + MESSAGE_OVERHEAD_UPPER
    assert estimate.expected == (size + 3) // 4 + REQUEST_OVERHEAD_EXPECTED + (
        MESSAGE_OVERHEAD_EXPECTED
    )


# -- what is counted -----------------------------------------------------------------------


def base_upper(messages: int) -> int:
    return REQUEST_OVERHEAD_UPPER + MESSAGE_OVERHEAD_UPPER * messages


def base_expected(messages: int) -> int:
    return REQUEST_OVERHEAD_EXPECTED + MESSAGE_OVERHEAD_EXPECTED * messages


def test_images_are_never_zero_and_their_data_is_not_text() -> None:
    data = base64.b64encode(random.Random(1).randbytes(300_000)).decode()
    request = chat(
        [
            {"type": "text", "text": "abcd"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ]
    )
    estimate = estimate_tokens(request)
    assert estimate.upper == 4 + 2 * IMAGE_TOKENS_UPPER + base_upper(1)
    assert estimate.expected == 1 + 2 * IMAGE_TOKENS_EXPECTED + base_expected(1)
    assert estimate.assumed == 0


def test_image_parts_of_other_shapes_count_as_images() -> None:
    responses = BatchRequest(
        custom_id="r",
        model="m",
        endpoint="/v1/responses",
        params={
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "abcd"},
                        {"type": "input_image", "image_url": "https://example.com/a.png"},
                    ],
                }
            ]
        },
    )
    native = chat(
        [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}}]
    )
    assert estimate_tokens(responses).upper >= IMAGE_TOKENS_UPPER
    assert estimate_tokens(native).upper == IMAGE_TOKENS_UPPER + base_upper(1)


def test_files_and_audio_have_assumed_bounds() -> None:
    audio = "A" * (AUDIO_BASE64_CHARS_PER_TOKEN * 1000)
    request = chat(
        [
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x"}},
            {"type": "file", "file": {"file_id": "file-abc"}},
            {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
        ]
    )
    estimate = estimate_tokens(request)
    assert estimate.assumed == 3
    assert estimate.upper == 2 * FILE_TOKENS_UPPER + 1000 + base_upper(1)
    assert estimate.expected == 2 * FILE_TOKENS_EXPECTED + 250 + base_expected(1)


def test_plain_text_documents_are_text() -> None:
    text = "x" * 4000
    request = chat(
        [
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": text},
            }
        ]
    )
    estimate = estimate_tokens(request)
    assert estimate.upper == 4000 + base_upper(1)
    assert estimate.assumed == 0


def test_tools_and_schemas_count_their_json_and_the_hidden_prompt() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look a word up",
                "parameters": {"type": "object", "properties": {"w": {"type": "string"}}},
            },
        }
    ]
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {}}},
    }
    plain = estimate_tokens(chat("hi"))
    with_tools = estimate_tokens(chat("hi", tools=tools))
    with_schema = estimate_tokens(chat("hi", response_format=schema))
    json_mode = estimate_tokens(chat("hi", response_format={"type": "json_object"}))
    tools_size = len(orjson.dumps(tools))
    assert with_tools.upper - plain.upper == tools_size + INSTRUCTIONS_OVERHEAD_UPPER
    assert with_tools.expected - plain.expected >= INSTRUCTIONS_OVERHEAD_EXPECTED
    schema_size = len(orjson.dumps(schema))
    assert with_schema.upper - plain.upper == schema_size + INSTRUCTIONS_OVERHEAD_UPPER
    assert json_mode.upper - plain.upper == len(b'{"type":"json_object"}')


def test_tool_calls_tool_results_names_and_refusals_are_text() -> None:
    request = BatchRequest(
        custom_id="r",
        model="m",
        messages=[
            {"role": "user", "content": "aaaa", "name": "bbbb"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "dddd", "arguments": '{"q": "eeee"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "ffff"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "gggg"}]},
        ],
    )
    estimate = estimate_tokens(request)
    # Part and call types are structure, not text; ids are counted (harmless in a bound).
    strings = ["aaaa", "bbbb", "c", "dddd", '{"q": "eeee"}', "c", "ffff", "gggg"]
    assert estimate.upper == sum(map(len, strings)) + base_upper(4)


def test_tool_inputs_given_as_objects_count_as_json() -> None:
    arguments = {"location": "Paris", "units": ["celsius"], "days": 3}
    request = BatchRequest(
        custom_id="r",
        model="m",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "forecast", "input": arguments}
                ],
            },
        ],
    )
    strings = ["weather?", "t1", "forecast"]
    assert estimate_tokens(request).upper == (
        sum(map(len, strings)) + len(orjson.dumps(arguments)) + base_upper(2)
    )


def test_embeddings_inputs_and_token_ids() -> None:
    text = BatchRequest(
        custom_id="r", model="m", endpoint="/v1/embeddings", params={"input": ["ab", "cdef"]}
    )
    ids = BatchRequest(
        custom_id="r",
        model="m",
        endpoint="/v1/embeddings",
        params={"input": [[1, 2, 3], [4, 5]]},
    )
    assert estimate_tokens(text) == TokenEstimate(
        2 + base_expected(0), 6 + base_upper(0), 0, 0, False
    )
    assert estimate_tokens(ids) == TokenEstimate(5 + base_expected(0), 5 + base_upper(0), 0)


def test_responses_instructions_and_input_string() -> None:
    request = BatchRequest(
        custom_id="r",
        model="m",
        endpoint="/v1/responses",
        params={"input": "x" * 100, "instructions": "y" * 50, "max_output_tokens": 300},
    )
    estimate = estimate_tokens(request)
    assert estimate.upper == 150 + base_upper(0)
    assert estimate.output_upper == 300


def test_the_running_providers_params_are_counted_and_read() -> None:
    request = BatchRequest(
        custom_id="r",
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        provider_params={
            "anthropic": {"max_tokens": 700, "system": "z" * 40},
            "gemini": {"generationConfig": {"maxOutputTokens": 900, "candidateCount": 2}},
        },
    )
    anthropic = estimate_tokens(request, provider="anthropic")
    gemini = estimate_tokens(request, provider="gemini")
    other = estimate_tokens(request, provider="openai", default_max_output=5)
    assert anthropic.output_upper == 700
    assert anthropic.upper == 2 + 40 + base_upper(1)
    assert gemini.output_upper == 1800
    assert gemini.upper == 2 + base_upper(1)
    assert other == TokenEstimate(1 + base_expected(1), 2 + base_upper(1), 5, 0, True)


# -- the output bound ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "default", "bound", "defaulted"),
    [
        ({"max_tokens": 100}, None, 100, False),
        ({"max_completion_tokens": 100}, 5000, 100, False),
        ({"max_tokens": 100, "max_completion_tokens": 300}, None, 300, False),
        ({"max_tokens": 100, "n": 3}, None, 300, False),
        ({"n": 2}, 1000, 2000, True),
        ({"temperature": 0}, 1000, 1000, True),
        ({}, None, None, False),
    ],
)
def test_output_bound(
    params: dict[str, Any], default: int | None, bound: int | None, defaulted: bool
) -> None:
    estimate = estimate_tokens(chat("hi", **params), default_max_output=default)
    assert estimate.output_upper == bound
    assert estimate.output_defaulted is defaulted


def test_legacy_completions_bound_counts_best_of() -> None:
    request = BatchRequest(
        custom_id="r",
        model="m",
        endpoint="/v1/completions",
        params={"prompt": "abcd", "max_tokens": 10, "best_of": 4, "n": 2},
    )
    estimate = estimate_tokens(request)
    assert estimate.output_upper == 40
    assert estimate.upper == 4 + base_upper(0)
