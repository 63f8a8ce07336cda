"""Chat prompts: Gemma's turn format, GGUF templates in the sandbox, tool support."""

from __future__ import annotations

import pytest

from modelyard.engines.chat_templates import render_chat
from modelyard.errors import EngineFault, InvalidInput

GEMMA = {"architecture": "gemma3", "chat_template": None}


def test_gemma_turn_format_with_system_and_history() -> None:
    chat = render_chat(
        GEMMA,
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [{"type": "text", "text": "Bye"}]},
        ],
    )
    assert chat.prompt == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert chat.stop == ("<end_of_turn>",)


def test_gguf_template_is_rendered_in_the_sandbox() -> None:
    template = (
        "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    chat = render_chat({"chat_template": template}, [{"role": "user", "content": "x"}])
    assert chat.prompt == "[user]x[assistant]"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.append(1) }}",
        "{{ cycler.__init__.__globals__.os.system('true') }}",
    ],
)
def test_template_escaping_the_sandbox_fails_clearly(template: str) -> None:
    with pytest.raises(EngineFault, match=r"sandbox|broken"):
        render_chat({"chat_template": template}, [{"role": "user", "content": "x"}])


def test_template_raise_exception_is_a_client_error() -> None:
    template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(InvalidInput, match="roles must alternate"):
        render_chat({"chat_template": template}, [{"role": "user", "content": "x"}])


def test_tools_need_a_template_that_takes_them() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    with pytest.raises(InvalidInput) as no_template:
        render_chat(GEMMA, [{"role": "user", "content": "x"}], tools=tools)
    assert no_template.value.param == "tools"
    with pytest.raises(InvalidInput):
        render_chat(
            {"chat_template": "{{ messages }}"}, [{"role": "user", "content": "x"}], tools=tools
        )
    with_tools = (
        "{% for t in tools %}{{ t['function']['name'] }};{% endfor %}{{ messages[0]['content'] }}"
    )
    chat = render_chat(
        {"chat_template": with_tools}, [{"role": "user", "content": "x"}], tools=tools
    )
    assert chat.prompt == "f;x"


def test_non_text_content_is_refused() -> None:
    with pytest.raises(InvalidInput):
        render_chat(GEMMA, [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])
