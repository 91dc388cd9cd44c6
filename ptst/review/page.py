"""The labelling page of `ptst review --serve`: one HTML document with its script and style inline (no assets)."""

from __future__ import annotations

import base64
import hashlib
import html
import json

from ptst.review.labels import LABELS

# key -> (label, what the button says); the descriptions come from labels.LABELS
KEYS = {"1": ("refusal", "refusal"), "2": ("harmful", "harmful compliance"), "3": ("harmless", "harmless compliance")}
assert sorted(lab for lab, _ in KEYS.values()) == sorted(LABELS), "every label has a key"

_STYLE = """
body { font: 16px/1.45 system-ui, sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; color: #1a1a1a; }
header { display: flex; justify-content: space-between; align-items: baseline; border-bottom: 1px solid #ccc; }
h1 { font-size: 1.2rem; margin: .4rem 0; }
h2 { font-size: .85rem; text-transform: uppercase; color: #555; margin: 1rem 0 .3rem; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; font: 15px/1.45 ui-monospace, monospace; background: #f6f6f6;
      border: 1px solid #ddd; border-radius: 4px; padding: .6rem; margin: 0; max-height: 45vh; overflow: auto; }
#buttons { display: flex; gap: .6rem; margin: 1rem 0 .6rem; flex-wrap: wrap; }
#buttons button { flex: 1 1 14rem; text-align: left; padding: .5rem .7rem; border: 2px solid #bbb; border-radius: 6px;
                  background: #fff; cursor: pointer; font: inherit; }
#buttons button[aria-pressed="true"] { border-color: #1f5fbf; background: #e7efff; }
#buttons b { display: block; } #buttons small { color: #555; }
kbd { border: 1px solid #999; border-radius: 3px; padding: 0 .3rem; font-size: .85em; background: #f3f3f3; }
textarea { width: 100%; box-sizing: border-box; font: inherit; }
nav { display: flex; gap: .6rem; align-items: center; margin: .6rem 0; } nav span { color: #555; }
#rid { margin-left: auto; font-family: ui-monospace, monospace; font-size: .8rem; }
#error { color: #b00020; min-height: 1.4em; } .help { color: #666; font-size: .85rem; }
"""

_SCRIPT = """
"use strict";
const KEYS = /*KEYS*/;
const $ = (id) => document.getElementById(id);
let cur = null, total = 0, queue = Promise.resolve();

async function api(path, body) {
  const opt = body === undefined ? {cache: "no-store"} :
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const r = await fetch(path, opt);
  let data = {};
  try { data = await r.json(); } catch (e) { /* not JSON: the status says enough */ }
  if (!r.ok) throw new Error(data.error || (r.status + " " + r.statusText));
  return data;
}

function show(d) {
  total = d.total;
  $("progress").textContent = d.labelled + " / " + d.total + " labelled";
  cur = d.item;
  $("item").hidden = !cur;
  $("done").hidden = !!cur;
  if (!cur) return;
  // model output is arbitrary text: textContent only, never markup
  $("prompt").textContent = cur.prompt;
  $("answer").textContent = cur.answer;
  $("note").value = cur.note || "";
  $("pos").textContent = "answer " + (cur.index + 1) + " of " + d.total;
  $("rid").textContent = cur.rid;
  for (const b of document.querySelectorAll("button[data-label]")) {
    b.setAttribute("aria-pressed", String(b.dataset.label === cur.label));
  }
  $("back").disabled = cur.index === 0;
  $("next").disabled = cur.index + 1 >= d.total;
  window.scrollTo(0, 0);
}

// one request at a time, in the order asked: keys pressed quickly each act on the item shown by then
function run(request) {
  queue = queue.then(async () => {
    $("error").textContent = "";
    try { show(await request()); } catch (e) { $("error").textContent = String(e.message || e); }
  });
  return queue;
}

const go = (i) => run(() => api("/api/item?i=" + i));
const label = (name) => run(() => cur ? api("/api/label", {rid: cur.rid, label: name, note: $("note").value})
                                      : Promise.reject(new Error("nothing to label")));
const back = () => run(() => api("/api/item?i=" + (cur ? Math.max(cur.index - 1, 0) : total - 1)));
const next = () => run(() => api("/api/item?i=" + (cur ? Math.min(cur.index + 1, total - 1) : total - 1)));

for (const b of document.querySelectorAll("button[data-label]")) {
  b.addEventListener("click", () => label(b.dataset.label));
}
$("back").addEventListener("click", back);
$("done-back").addEventListener("click", back);
$("next").addEventListener("click", next);
document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLTextAreaElement) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  if (e.key in KEYS) { e.preventDefault(); label(KEYS[e.key]); }
  else if (e.key === "ArrowLeft") { e.preventDefault(); back(); }
  else if (e.key === "ArrowRight") { e.preventDefault(); next(); }
});
run(() => api("/api/state"));
"""

_BODY = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ptst review</title>
<style>{style}</style>
</head>
<body>
<header><h1>Label this answer</h1><span id="progress">loading…</span></header>
<main id="item" hidden>
<h2>Prompt</h2>
<pre id="prompt"></pre>
<h2>Answer</h2>
<pre id="answer"></pre>
<div id="buttons">
{buttons}
</div>
<label for="note">Note (optional)</label>
<textarea id="note" rows="2" placeholder="why, if it was hard to call"></textarea>
<nav><button type="button" id="back">&larr; Back</button><button type="button" id="next">Next &rarr;</button>
<span id="pos"></span><span id="rid" title="review id"></span></nav>
</main>
<section id="done" hidden>
<p>Every answer in the sample is labelled: thank you. Go back to change a label.</p>
<button type="button" id="done-back">&larr; Back</button>
</section>
<p id="error" role="alert"></p>
<p class="help">Keys: <kbd>1</kbd> <kbd>2</kbd> <kbd>3</kbd> label the answer and go on; <kbd>&larr;</kbd> back,
<kbd>&rarr;</kbd> next without labelling. In the note box, <kbd>Esc</kbd> leaves it. Labels are saved as you give
them; a reload goes on at your first unlabelled answer.</p>
<script>{script}</script>
</body>
</html>
"""


def _buttons() -> str:
    return "\n".join(f'<button type="button" data-label="{lab}" aria-pressed="false"><kbd>{key}</kbd> '
                     f"<b>{html.escape(name)}</b><small>{html.escape(LABELS[lab])}</small></button>"
                     for key, (lab, name) in KEYS.items())


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


SCRIPT = _SCRIPT.replace("/*KEYS*/", json.dumps({k: lab for k, (lab, _) in KEYS.items()}))
PAGE = _BODY.format(style=_STYLE, buttons=_buttons(), script=SCRIPT)
# Only this page's own script and style run, and it talks to its own server only.
CSP = (f"default-src 'none'; script-src {_csp_hash(SCRIPT)}; style-src {_csp_hash(_STYLE)}; connect-src 'self'; "
       "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
