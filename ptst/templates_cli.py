"""`ptst templates list|show`: see exactly what a model will see."""

from __future__ import annotations

import argparse
import sys


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list registered templates")
    ls.add_argument("--file", help="also list the templates of this YAML file")
    show = sub.add_parser("show", help="print a template rendered for a model")
    show.add_argument("name", help="template name, FILE.yaml or FILE.yaml:NAME")
    show.add_argument("--model", help="model whose tokenizer renders chat templates (HF id, directory, GGUF, alias)")
    show.add_argument("--input", default=None, help="user input to render (default: the literal {input})")
    show.add_argument("--response", default=None, help="also render this target response (as in training)")
    show.add_argument("--raw", action="store_true", help="print only the exact rendered text, nothing else")


def cli(args: argparse.Namespace) -> int:
    from ptst import templates as T

    if args.action == "list":
        items = [T.TEMPLATES.get(n) for n in T.TEMPLATES.names()]
        if args.file:
            items += T.load_templates_file(args.file)
        width = max(len(t.name) for t in items)
        for t in items:
            flag = " [safety prompt]" if t.safety_prompt else ""
            print(f"{t.name:<{width}}  {t.mode:<4}  {t.description}{flag}")
        return 0
    t = T.get_template(args.name)
    tok = None
    if args.model:
        from ptst.models import load_tokenizer

        tok = load_tokenizer(args.model)
    text = T.INPUT if args.input is None else args.input
    if tok is None and t.mode == "chat":
        print(f"# template {t.name} (chat); no --model given: OpenAI-style messages (pass --model to render)")
        for m in t.messages(text):
            print(f"[{m['role']}]\n{m['content']}")
        return 0
    r = T.render(t, tok, text, args.response)
    sys_note = ""
    if tok is not None and t.mode == "chat":
        fam = T.inspect_family(tok)
        if not fam.supports_system and t.system is not None:
            sys_note = "family has no system role: system prompt folded into the first user turn"
        elif fam.default_system is not None and t.system is None:
            sys_note = f"family injects default system prompt {fam.default_system!r}: policy {t.default_system}"
    if not args.raw:
        print(f"# template {t.name} ({t.mode}); fingerprint {T.fingerprint(t, tok)[:16]}")
        if sys_note:
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
