"""Report blocks (headings, paragraphs, tables, figures) rendered to Markdown and to self-contained HTML."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    """Text with a tiny Markdown subset: **bold** and `code`."""

    text: str
    cls: str = ""  # HTML class: "headline", "note", "warn"


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    name: str  # file name next to report.md
    png: bytes
    caption: str


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Para | Table | Figure | Code


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(h) for h in b.header) + " |",
                     "|" + "|".join("---" for _ in b.header) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            if b.caption:
                lines.append("")
                lines.append(f"*{b.caption}*" if "*" not in b.caption else b.caption)
            out.append("\n".join(lines))
        elif isinstance(b, Figure):
            out.append(f"![{b.caption}]({b.name})\n\n*{b.caption}*")
        elif isinstance(b, Code):
            out.append("```\n" + b.text.rstrip("\n") + "\n```")
    return "\n\n".join(out) + "\n"


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def inline_html(text: str) -> str:
    """Escape, then turn **x** into <strong> and `x` into <code>."""
    s = html.escape(text, quote=False)
    s = _CODE.sub(r"<code>\1</code>", s)
    return _BOLD.sub(r"<strong>\1</strong>", s)


CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;max-width:1180px;margin:2em auto;
padding:0 1.2em;color:#1f2328;line-height:1.5;background:#fff}
h1{font-size:1.6em;border-bottom:2px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.3em;margin-top:2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
h3{font-size:1.08em;margin-top:1.5em}
table{border-collapse:collapse;margin:.6em 0 .3em;font-size:.9em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:.35em .6em;text-align:right;white-space:nowrap}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left;font-weight:600}
tbody tr:nth-child(even){background:#fafbfc}
.caption{color:#57606a;font-size:.88em;margin:.2em 0 1em;max-width:60em}
.headline{background:#f0f6ff;border-left:4px solid #0969da;padding:.7em 1em;font-size:1.02em}
.warn{background:#fff8c5;border-left:4px solid #bf8700;padding:.5em 1em}
.note{color:#57606a}
figure{margin:1em 0 1.6em}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{color:#57606a;font-size:.88em;max-width:60em}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em}
code{background:#f6f8fa;padding:.05em .3em;border-radius:3px;font-size:.9em}
td code{white-space:normal;word-break:break-all}.scroll{overflow-x:auto}
"""


def _html_block(b: Block) -> str:
    if isinstance(b, Heading):
        return f"<h{b.level}>{inline_html(b.text)}</h{b.level}>"
    if isinstance(b, Para):
        cls = f' class="{b.cls}"' if b.cls else ""
        return f"<p{cls}>{inline_html(b.text)}</p>"
    if isinstance(b, Table):
        head = "".join(f"<th>{inline_html(h)}</th>" for h in b.header)
        body = "".join("<tr>" + "".join(f"<td>{inline_html(c)}</td>" for c in row) + "</tr>" for row in b.rows)
        cap = f'<p class="caption">{inline_html(b.caption)}</p>' if b.caption else ""
        return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{cap}'
    if isinstance(b, Figure):
        data = base64.b64encode(b.png).decode("ascii")
        alt = html.escape(b.caption)
        return (f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                f"<figcaption>{inline_html(b.caption)}</figcaption></figure>")
    return f"<pre>{html.escape(b.text)}</pre>"


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained page: inline CSS, images as base64 data URIs, no external references."""
    body = "\n".join(_html_block(b) for b in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
