"""Outputs rendered by the Output schema, and README markdown sanitized."""

from __future__ import annotations

from marketplace.catalog.formspec import OutputSpec
from marketplace.web.rendering import markdown_html, media_kind, render_output


def test_media_kind_from_extension_or_data_uri() -> None:
    assert media_kind("https://x/files/outputs/a/b.png") == "image"
    assert media_kind("https://x/o.mp3?sig=1") == "audio"
    assert media_kind("https://x/o.mp4") == "video"
    assert media_kind("data:image/webp;base64,AAAA") == "image"
    assert media_kind("https://x/weights.tar") == "file"


def test_file_outputs_become_players_galleries_or_downloads() -> None:
    assert "<img" in render_output("https://x/a.png", OutputSpec("file"))
    assert "<audio" in render_output("https://x/a.wav", OutputSpec("file"))
    assert "<video" in render_output("https://x/a.mp4", OutputSpec("file"))
    assert "download" in render_output("https://x/a.bin", OutputSpec("file"))
    gallery = render_output(["https://x/1.png", "https://x/2.png"], OutputSpec("files", True))
    assert gallery.count("<img") == 2 and "output-gallery" in gallery


def test_text_outputs_are_escaped() -> None:
    html = render_output(["<b>", "hi"], OutputSpec("concatenate", True))
    assert "&lt;b&gt;hi" in html
    assert "&lt;script&gt;" in render_output("<script>", OutputSpec("text"))
    assert "<li>a</li><li>b</li>" in render_output(["a", "b"], OutputSpec("strings"))
    assert "42" in render_output(42, OutputSpec("value"))
    obj = OutputSpec("object", properties={"weights": OutputSpec("file")})
    assert "<dt>weights</dt>" in render_output({"weights": "https://x/w.tar"}, obj)
    assert "&quot;k&quot;" in render_output({"k": 1}, OutputSpec("json"))


def test_markdown_keeps_formatting_and_drops_scripts() -> None:
    html = markdown_html(
        "**bold** <img src=x onerror=alert(1)> <script>x</script> [a](javascript:y)"
    )
    assert "<strong>bold</strong>" in html
    assert "onerror" not in html and "<script" not in html and "javascript:" not in html


def test_descriptions_allow_inline_markdown_only() -> None:
    from marketplace.web.rendering import inline_markdown

    html = inline_markdown("A **bold** `code` <script>x</script><h1>big</h1>")
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<script" not in html and "<h1>" not in html
