"""Prompt templates: the paper's styles, byte-exact, rendered for any chat model family.

`spec` defines templates (registry, YAML, `paper:` names), `defences` the prompt defences (Self-Reminder, Goal
Prioritization, inoculation prompts) with their sources, `family` probes what a tokenizer's chat template does
with a system message, `render` produces the exact text (one function for training, evaluation and serving).
"""

from ptst.templates.family import (
    DATE_STRING,
    PLACEMENT_WORDS,
    ChatTokenizer,
    Family,
    Placement,
    RenderError,
    drop_default,
    inspect_family,
)
from ptst.templates.render import (
    RENDER_VERSION,
    Frame,
    Rendered,
    fingerprint,
    frame,
    placement,
    prompt_format,
    render,
    render_conversation,
)
from ptst.templates.spec import (
    ALPACA_PROMPT,
    DEFENCES,
    GPT_LLAMA_PROMPT,
    GPT_LLAMA_SHORT_PROMPT,
    INPUT,
    LLAMA_BASE_PROMPT,
    LLAMA_SHORT_PROMPT,
    MISTRAL_PROMPT,
    MPT_PROMPT,
    PAPER_PREFIX,
    RENDERINGS,
    TEMPLATES,
    DefaultSystem,
    Defence,
    Rendering,
    Template,
    get_template,
    load_templates_file,
    paper_literal,
    template_from_dict,
)

__all__ = [
    "ALPACA_PROMPT", "DATE_STRING", "DEFENCES", "GPT_LLAMA_PROMPT", "GPT_LLAMA_SHORT_PROMPT", "INPUT",
    "LLAMA_BASE_PROMPT", "LLAMA_SHORT_PROMPT", "MISTRAL_PROMPT", "MPT_PROMPT", "PAPER_PREFIX", "PLACEMENT_WORDS",
    "RENDER_VERSION", "RENDERINGS", "TEMPLATES",
    "ChatTokenizer", "DefaultSystem", "Defence", "Family", "Frame", "Placement", "RenderError", "Rendered",
    "Rendering", "Template", "drop_default", "fingerprint", "frame", "get_template", "inspect_family",
    "load_templates_file", "paper_literal", "placement", "prompt_format", "render", "render_conversation",
    "template_from_dict",
]
