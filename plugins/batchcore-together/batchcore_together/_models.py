"""Together's batch facts as data: which models it batches, which it does not, and its limits.

Sources (re-check them when Together changes its batch service): the batch overview
(docs.together.ai/docs/inference/batch/overview), its tutorial and "manage" pages, and the
``together`` SDKs. Where they disagree, the reading that can never make a batch fail is taken;
the README says which and why.
"""

from __future__ import annotations

from batchcore.plugin import BatchLimits

__all__ = [
    "BATCH_MODEL_PATTERNS",
    "ENQUEUED_TOKENS_PER_MODEL",
    "MAX_CUSTOM_ID_LENGTH",
    "MAX_LINE_BYTES",
    "TOGETHER_LIMITS",
    "UNAVAILABLE_MODELS",
]

#: Families of Together's serverless chat models ("most serverless models support batch
#: processing through /v1/chat/completions"). Model names are namespaced by publisher; config
#: ``models`` adds others (a dedicated endpoint's name, a family added after this release).
BATCH_MODEL_PATTERNS: tuple[str, ...] = (
    "meta-llama/*",
    "deepseek-ai/*",
    "Qwen/*",
    "mistralai/*",
    "zai-org/*",
    "openai/gpt-oss-*",
    "moonshotai/*",
    "MiniMaxAI/*",
    "google/gemma-*",
    "nvidia/*",
    "arcee-ai/*",
    "NousResearch/*",
)

#: Serverless models Together lists as "not currently available for batch processing" (batch
#: jobs that target them fail). Refused offline unless config ``models`` names one exactly.
UNAVAILABLE_MODELS: frozenset[str] = frozenset(
    {
        "deepseek-ai/DeepSeek-R1",
        "deepseek-ai/DeepSeek-V3.1",
        "deepseek-ai/DeepSeek-V4-Pro",
        "MiniMaxAI/MiniMax-M2.7",
        "moonshotai/Kimi-K2.5",
        "moonshotai/Kimi-K2.6",
    }
)

#: "Up to 50,000 requests per batch" and "up to 100 MB per input file": 100 MB read as
#: 100,000,000 bytes, the smaller of the decimal and binary readings.
TOGETHER_LIMITS = BatchLimits(max_requests=50_000, max_bytes=100_000_000)

#: "Each line must be under 10 MB" (oversized lines pass validation and then fail): a line and
#: its newline must stay under 10,000,000 bytes.
MAX_LINE_BYTES = 10_000_000

#: "custom_id ... max 64 chars".
MAX_CUSTOM_ID_LENGTH = 64

#: "Up to 30B tokens enqueued per model at any time" (one figure for every account).
ENQUEUED_TOKENS_PER_MODEL = 30_000_000_000
