"""Page extraction: a fetched result turned into readable text and links. HTML through
trafilatura (and its links through lxml), PDF through pypdf, plain text and JSON as they are."""

from __future__ import annotations

import codecs
import io
import json
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from bot.net import FetchResult
from bot.tools.base import ToolError

MAX_LINKS = 20
MAX_PDF_PAGES = 200
HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("application/json", "application/ld+json", "application/xml", "text/xml")


@dataclass
class Page:
    url: str
    content_type: str
    text: str
    links: list[tuple[str, str]]  # (text, absolute url)


def kind_of(result: FetchResult) -> str:
    """html, pdf, text, or the content type that cannot be read."""
    ctype = result.content_type
    if ctype in HTML_TYPES:
        return "html"
    if ctype == "application/pdf":
        return "pdf"
    if ctype.startswith("text/") or ctype in TEXT_TYPES or ctype.endswith(("+json", "+xml")):
        return "text"
    if not ctype or ctype == "application/octet-stream":  # undeclared: look at the bytes
        head = result.body[:512].lstrip().lower()
        if head.startswith(b"%pdf-"):
            return "pdf"
        if head.startswith((b"<!doctype html", b"<html")):
            return "html"
        if b"\x00" not in result.body[:4096]:
            try:  # not final: the sample may end inside a character
                codecs.getincrementaldecoder("utf-8")().decode(result.body[:4096], final=False)
                return "text"
            except UnicodeDecodeError:
                pass
    return ctype or "unknown"


def html_text(html: str, url: str) -> str:
    """The readable text of a page: trafilatura's main content, else all of its text."""
    import trafilatura

    text = trafilatura.extract(
        html, url=url, include_comments=False, include_tables=True, favor_recall=True, deduplicate=False
    )
    if not text or not text.strip():
        text = trafilatura.html2txt(html) or ""
    return text.strip()


def hyperlinks(html: str, base_url: str, limit: int = MAX_LINKS) -> list[tuple[str, str]]:
    """AutoGPT's get_hyperlinks: (text, absolute URL) of the page's http(s) links, those inside
    <main> or <article> first, without duplicates or links to the same page, at most `limit`."""
    import lxml.html
    from lxml import etree

    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return []
    base = base_url
    for el in doc.iter("base"):
        if el.get("href"):
            base = urljoin(base_url, el.get("href", ""))
            break
    anchors = list(doc.iter("a"))
    main = {id(a) for a in anchors if any(p.tag in ("main", "article") for p in a.iterancestors())}
    ordered = [a for a in anchors if id(a) in main] + [a for a in anchors if id(a) not in main]
    here = base_url.split("#", 1)[0]
    seen: set[str] = set()
    links: list[tuple[str, str]] = []
    for a in ordered:
        href = (a.get("href") or "").strip()
        if not href:
            continue
        try:
            absolute = urljoin(base, href).split("#", 1)[0]
        except ValueError:
            continue
        if urlsplit(absolute).scheme not in ("http", "https") or absolute == here or absolute in seen:
            continue
        seen.add(absolute)
        text = " ".join(a.text_content().split()) or (a.get("title") or "").strip() or absolute
        links.append((text[:200], absolute))
        if len(links) >= limit:
            break
    return links


def pdf_text(body: bytes) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise ToolError("The PDF is encrypted and cannot be read.") from None
        parts = [(page.extract_text() or "").strip() for page in reader.pages[:MAX_PDF_PAGES]]
    except ToolError:
        raise
    except Exception as exc:  # a malformed PDF can fail in many ways inside pypdf
        raise ToolError(f"The PDF could not be read: {type(exc).__name__}: {exc}") from None
    return "\n\n".join(p for p in parts if p)


def plain_text(result: FetchResult) -> str:
    text = result.text()
    if "json" in result.content_type:
        try:
            text = json.dumps(json.loads(text), indent=1, ensure_ascii=False)
        except ValueError:
            pass
    return text.strip()


def page_of(result: FetchResult) -> Page:
    kind = kind_of(result)
    if kind == "html":
        html = result.text()
        return Page(
            result.url, result.content_type, html_text(html, result.url), hyperlinks(html, result.url)
        )
    if kind == "pdf":
        return Page(result.url, result.content_type, pdf_text(result.body), [])
    if kind == "text":
        return Page(result.url, result.content_type, plain_text(result), [])
    raise ToolError(
        f"Cannot read {result.url}: its content type is {kind}, and browse_website reads only "
        "web pages (HTML), plain text, JSON and PDF."
        + (" Use download_file to save it to the workspace." if kind != "unknown" else "")
    )
