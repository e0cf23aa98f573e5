"""The auditor's timeline page: plain server-rendered HTML, a little JavaScript to filter."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from application.read_model import SessionDocument
from infrastructure.audit.event_records import AuditEvent

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#1d2330}
h1{font-size:1.3rem} .muted{color:#667}
ol.timeline{list-style:none;padding:0;border-left:3px solid #c7cfdd;margin-left:.6rem}
ol.timeline li{position:relative;margin:0 0 1rem 1.2rem;padding:.6rem .8rem;
 background:#f5f7fb;border-radius:6px}
ol.timeline li::before{content:"";position:absolute;left:-1.72rem;top:.9rem;
 width:.8rem;height:.8rem;border-radius:50%;background:#4a6cf7}
.type{font-weight:600} .time{font-family:monospace;margin-right:.6rem}
table.active{border-collapse:collapse;margin:.4rem 0}
table.active td,table.active th{padding:.1rem .6rem;border-bottom:1px solid #dde2ec;
 text-align:left;font-size:13px}
.context{font-size:12px;color:#556} .hidden{display:none}
"""

_SCRIPT = """
const filter = document.getElementById('filter');
filter.addEventListener('input', () => {
  const wanted = filter.value.trim().toLowerCase();
  let shown = 0;
  for (const item of document.querySelectorAll('ol.timeline li')) {
    const match = !wanted || item.dataset.type.toLowerCase().includes(wanted);
    item.classList.toggle('hidden', !match);
    if (match) shown++;
  }
  document.getElementById('shown').textContent = shown;
});
document.getElementById('shown').textContent = document.querySelectorAll('ol.timeline li').length;
"""


def _active(state: SessionDocument) -> str:
    active = state.active_signin
    rows = [
        ("account", active.user_id if active else "none"),
        ("sign-in", active.id if active else "none"),
        ("organization", (active.active_organization_membership.organization_id
                          if active and active.active_organization_membership else "none")),
        ("workspace", (active.active_workspace_membership.workspace_id
                       if active and active.active_workspace_membership else "none")),
        ("signed in", ", ".join(s.user_id for s in state.signins) or "nobody"),
    ]  # fmt: skip
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="active">{cells}</table>'


def _context(event: AuditEvent) -> str:
    context = event.context or {}
    if not context:
        return '<div class="context">no request context (not from an HTTP request)</div>'
    parts = [
        f"from {escape(str(context.get('client_address') or 'unknown address'))}",
        f"agent {escape(str(context.get('user_agent') or 'unknown'))}",
        f"request {escape(str(context.get('request_id') or '-'))}",
    ]
    return f'<div class="context">{" · ".join(parts)}</div>'


def render_timeline(
    session_id: int, events: Sequence[AuditEvent], states: Sequence[SessionDocument]
) -> str:
    """The page: each event in order, with what was active right after it, and where from."""
    items = []
    for event, state in zip(events, states, strict=True):
        items.append(
            f'<li data-type="{escape(event.type)}" data-version="{event.version}">'
            f'<span class="time">{escape(event.time)}</span>'
            f'<span class="type">{escape(event.type)}</span> '
            f'<span class="muted">version {event.version}, position {event.position}</span>'
            f"{_active(state)}{_context(event)}</li>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Session {session_id}: timeline</title><style>{_STYLE}</style></head>
<body>
<h1>Session <span id="session-id">{session_id}</span></h1>
<p class="muted"><span id="shown"></span> of {len(events)} events shown.
<label>Filter by type <input id="filter" placeholder="e.g. Switched"></label></p>
<ol class="timeline">{"".join(items)}</ol>
<script>{_SCRIPT}</script>
</body></html>"""
