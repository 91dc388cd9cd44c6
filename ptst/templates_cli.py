"""`ptst templates list|show`: see exactly what a model will see."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ptst import templates as T
from ptst.errors import PtstError
from ptst.models import load_tokenizer


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list registered templates")
    ls.add_argument("--file", help="also list the templates of this YAML file")
    show = sub.add_parser("show", help="print a template rendered for a model")
    show.add_argument("name", help="template name, FILE.yaml or FILE.yaml:NAME")
    show.add_argument("--model", help="model whose tokenizer renders chat templates: a local model or tokenizer "
                      "directory, an HF id (from the HF cache when offline), a GGUF file or an alias")
    show.add_argument("--chat-template", metavar="FILE", help="render with this Jinja chat template instead of the "
                      "tokenizer's own (e.g. a model's .jinja file; needs --model for the tokenizer)")
    show.add_argument("--input", default=None, help="user input to render (default: the literal {input})")
    show.add_argument("--response", default=None, help="also render this target response (as in training)")
    show.add_argument("--raw", action="store_true", help="print only the exact rendered text, nothing else")


def cli(args: argparse.Namespace) -> int:
    if args.action == "list":
        items = [T.TEMPLATES.get(n) for n in T.TEMPLATES.names()]
        if args.file:
            items += T.load_templates_file(args.file)
        width = max(len(t.name) for t in items)
        for t in items:
            flag = " [safety prompt]" if t.safety_prompt else ""
            flag += f" [{defence_kind(t)}]" if t.defence else ""
            print(f"{t.name:<{width}}  {t.mode:<4}  {t.description}{flag}")
            if t.source:
                print(f"{'':<{width}}  source: {t.source}")
        print(f"\n{T.PAPER_PREFIX}NAME: any chat template above under the paper's literal Llama-2 rendering "
              f"(e.g. {T.PAPER_PREFIX}gsm:chat:llama)")
        return 0
    t = T.get_template(args.name)
    tok = _tokenizer(args)
    text = T.INPUT if args.input is None else args.input
    if tok is None and t.mode == "chat" and t.rendering == "native":
        print(f"# template {t.name} (chat); no --model given: OpenAI-style messages (pass --model to render)")
        _provenance(t)
        for m in t.messages(text):
            print(f"[{m['role']}]\n{m['content']}")
        return 0
    r = T.render(t, tok, text, args.response)
    sys_note = T.placement(t, tok)
    if not args.raw:
        print(f"# template {t.name} ({t.mode}); fingerprint {T.fingerprint(t, tok)[:16]}")
        _provenance(t)
        print(f"# {sys_note}")
        if tok is not None:
            n = len(tok(r.text, add_special_tokens=False)["input_ids"])
            print(f"# {n} tokens")
        print(f"# ---- rendered {'text' if args.response is not None else 'prompt'} (exact): {len(r.text)} characters, "
              "from the next line to the end of the output, no newline added ----")
    sys.stdout.write(r.text)
    sys.stdout.flush()
    if not args.raw:  # on stderr, so stdout stays exact; says where the text ends when it ends in whitespace
        lead = "" if r.text.endswith("\n") else "\n"
        print(f"{lead}# ---- end; the text ends with {r.text[-24:]!r} ----", file=sys.stderr)
    return 0


def defence_kind(t: T.Template) -> str:
    """How a defence template is used: `test-time defence`, `inoculation (train-time)`, `safety-prompt`."""
    return {"test-time": "test-time defence", "inoculation": "inoculation (train-time)"}.get(t.defence, t.defence)


def _provenance(t: T.Template) -> None:
    if t.defence:
        print(f"# defence: {defence_kind(t)}")
    if t.source:
        print(f"# source: {t.source}")


def _tokenizer(args: argparse.Namespace) -> Any:
    if args.chat_template and not args.model:
        raise PtstError("--chat-template needs --model: the tokenizer whose tokens the template is rendered with")
    if not args.model:
        return None
    from pathlib import Path

    tok = load_tokenizer(args.model)
    if args.chat_template:
        path = Path(args.chat_template)
        try:
            tok.chat_template = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise PtstError(f"--chat-template {path}: cannot read it ({e})") from None
    return tok
