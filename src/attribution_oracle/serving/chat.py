"""The canonical prompt of a chat request: what the payer hashes and the model reads.

For ``/v1/chat/completions`` the paid ``inputHash`` is the sha256 of the UTF-8 bytes of
``render_chat(tokenizer, messages)``: the base model tokenizer's chat template applied to the messages with
``add_generation_prompt=True`` (SmolLM2's ChatML template), or, for a tokenizer without a template (the tiny
test model), ``FALLBACK_TEMPLATE``: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message followed by
``<|im_start|>assistant\\n``. Clients that do not hold the tokenizer ask the server: ``POST /v1/chat/render``.
"""

from __future__ import annotations

from attribution_oracle.errors import UserError

__all__ = ["FALLBACK_TEMPLATE", "ChatFormatError", "render_chat"]

FALLBACK_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ROLES = ("system", "user", "assistant")


class ChatFormatError(UserError):
    """Messages that are not a list of ``{"role", "content"}`` with known roles and string content."""


def validate_messages(messages: object) -> list[dict[str, str]]:
    """Check the messages' shape; returns them as plain ``{"role", "content"}`` dicts."""
    if not isinstance(messages, list) or not messages:
        raise ChatFormatError("messages must be a non-empty list")
    clean = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ChatFormatError(f"message {i} needs a role among {', '.join(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise ChatFormatError(f"message {i} needs string content")
        clean.append({"role": message["role"], "content": message["content"]})
    return clean


def render_chat(tokenizer, messages: object) -> str:
    """The canonical prompt string of ``messages`` (see the module docstring)."""
    clean = validate_messages(messages)
    template = getattr(tokenizer, "chat_template", None) or FALLBACK_TEMPLATE
    return tokenizer.apply_chat_template(clean, chat_template=template, tokenize=False, add_generation_prompt=True)
