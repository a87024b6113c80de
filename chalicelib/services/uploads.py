"""Reading share uploads: multipart/form-data bodies, relative file paths, content types.

The multipart framing is parsed by python-multipart. Content-Disposition parameters are read
with the standard library's e-mail header parser instead of python-multipart's helper,
because that helper silently strips Windows drive paths (``C:\\x`` becomes ``x``), and an
absolute path must be refused, not rewritten.
"""
from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import Any, Dict, List, Optional, Tuple


from chalicelib.errors import InvalidFilename, InvalidJson, SizeLimit, UnsupportedMediaType, ValidationFailed
from chalicelib.services.share_links import ACCESS_PREFIX
from chalicelib.store.files import MAX_PATH_BYTES

# Serving registers one route per depth (Chalice has no greedy path parameters), so a file
# may sit at most this many segments deep: "a/b/c/d/e/f/g/file.png" is 8.
MAX_PATH_SEGMENTS = 8
MAX_PATH_CHARS = 512
# A share's record lists its files' paths, and DynamoDB takes items of at most 400 KB: this
# leaves room for the rest of the listing (sizes, types) and of the record, changes included.
MAX_LISTED_PATH_BYTES = 256 * 1024
# Parts of an upload besides its files: the metadata, and fields a browser form adds (ignored).
MAX_OTHER_PARTS = 20
METADATA_FIELD = "metadata"
_DRIVE = re.compile(r"^[A-Za-z]:")
# C0/C1 controls and DEL; also the Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# Types the CLI sends (CLIENTS.md) plus common ones; mimetypes' answers differ by platform.
CONTENT_TYPES = {
    "html": "text/html", "htm": "text/html", "css": "text/css", "js": "application/javascript",
    "mjs": "application/javascript", "json": "application/json", "map": "application/json",
    "txt": "text/plain", "xml": "application/xml", "svg": "image/svg+xml", "png": "image/png",
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "avif": "image/avif", "ico": "image/x-icon", "woff": "font/woff", "woff2": "font/woff2",
    "ttf": "font/ttf", "otf": "font/otf", "pdf": "application/pdf", "mp4": "video/mp4",
    "webm": "video/webm", "wasm": "application/wasm", "webmanifest": "application/manifest+json",
}
TEXT_TYPES = {"application/javascript", "application/json", "application/xml", "image/svg+xml",
              "application/manifest+json"}


@dataclass
class UploadedFile:
    path: str
    data: bytes
    content_type: str

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class MultipartUpload:
    metadata: Dict[str, Any]
    files: List[UploadedFile] = field(default_factory=list)


def content_type_for(path: str) -> str:
    extension = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return CONTENT_TYPES.get(extension) or mimetypes.guess_type(path)[0] or "application/octet-stream"


# Types a browser renders as a document that can run script: they are only ever served by us,
# under the sandbox header, never by a redirect to S3. Besides HTML, that is every XML type
# (browsers render any ``…+xml`` type as XML, whose XHTML elements run script: ``.rss``,
# ``.xsl``, ``.rdf``, ``.mml``, ``.atom`` get such types from the extension table).
ACTIVE_DOCUMENT_TYPES = {"text/html", "image/svg+xml", "application/xml", "text/xml", "application/xhtml+xml",
                         "text/xsl"}


def is_active_document(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in ACTIVE_DOCUMENT_TYPES or media_type.endswith("+xml")


def check_served_sizes(files: List[Tuple[str, int, str]], max_served_bytes: int) -> None:
    """Refuse documents (HTML, any XML) larger than what the API serves itself: bigger files are
    handed out by S3, which cannot sandbox them. ``files``: (path, size, content type)."""
    for path, size, content_type in files:
        if is_active_document(content_type) and size > max_served_bytes:
            raise SizeLimit(max_served_bytes, f"{path}: HTML and XML files (SVG, RSS, XSL, ...) are limited to "
                                              f"{max_served_bytes} bytes (larger ones could not be served sandboxed)")


def is_text(content_type: str) -> bool:
    return content_type.startswith("text/") or content_type in TEXT_TYPES


def normalise_path(raw: Optional[str]) -> str:
    """A safe relative path with forward slashes, or InvalidFilename. ``.`` segments and
    repeated slashes are dropped; ``..``, absolute paths and drive letters are refused."""
    if raw is None or not raw.strip():
        raise InvalidFilename("File name is empty")
    if _CONTROL.search(raw):
        raise InvalidFilename("File name contains control characters")
    if _SURROGATE.search(raw):  # an RFC 2231 name in an escape codec: no S3 key, no UTF-8
        raise InvalidFilename("File name contains an unpaired UTF-16 surrogate")
    path = raw.replace("\\", "/")
    if path.startswith("/") or _DRIVE.match(path):
        raise InvalidFilename(f"File name must be a relative path: {path!r}")
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    if any(segment == ".." for segment in segments):
        raise InvalidFilename(f"File name must not contain '..': {path!r}")
    if not segments or path.endswith("/"):
        raise InvalidFilename(f"File name has no file part: {path!r}")
    if any(not segment.strip() for segment in segments):
        raise InvalidFilename(f"File name has a blank folder or file name: {path!r}")
    # Serving reads such a first segment as a protected share's access token, and feedback URLs
    # lose any such segment (share_links.strip_access_segments): the file could never be served.
    if any(segment.lower().startswith(ACCESS_PREFIX) for segment in segments):
        raise InvalidFilename(f"No folder or file name may start with {ACCESS_PREFIX!r} (share addresses use it "
                              f"for access tokens): {path!r}")
    if len(segments) > MAX_PATH_SEGMENTS:
        raise InvalidFilename(f"File is nested too deeply (at most {MAX_PATH_SEGMENTS} path segments): {path!r}")
    normalised = "/".join(segments)
    if len(normalised) > MAX_PATH_CHARS:
        raise InvalidFilename(f"File name is longer than {MAX_PATH_CHARS} characters")
    if len(normalised.encode("utf-8")) > MAX_PATH_BYTES:
        raise InvalidFilename(f"File name is longer than {MAX_PATH_BYTES} bytes in UTF-8 (S3 keys are limited)")
    return normalised


def check_listed_paths(paths: List[str]) -> None:
    """The paths of a share's files fit in its record, together."""
    listed = sum(len(path.encode("utf-8")) for path in paths)
    if listed > MAX_LISTED_PATH_BYTES:
        raise ValidationFailed.field("files", f"The share's file names add up to {listed} bytes in UTF-8; "
                                              f"at most {MAX_LISTED_PATH_BYTES}", "FILE_NAMES_TOO_LONG")


def parse_metadata(raw: Optional[bytes]) -> Dict[str, Any]:
    if raw is None or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidJson("The metadata part is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidJson("The metadata part must be a JSON object")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # an unpaired "\ud800": valid JSON, not storable text
        raise InvalidJson("The metadata part contains an unpaired UTF-16 surrogate") from None
    return data


def _disposition(value: str) -> Tuple[Optional[str], Optional[str]]:
    """(field name, file name) from a Content-Disposition header value."""
    message = Message()
    message["Content-Disposition"] = value
    name = message.get_param("name", header="content-disposition")
    filename = message.get_param("filename", header="content-disposition")
    as_text = lambda v: None if v is None else collapse_rfc2231_value(v)  # noqa: E731
    return as_text(name), as_text(filename)


class _Part:
    def __init__(self) -> None:
        self.headers: Dict[str, str] = {}
        self.chunks: List[bytes] = []


def parse_multipart(content_type: str, body: bytes, max_files: int) -> MultipartUpload:
    """The metadata JSON and the files of a ``multipart/form-data`` share upload. The first
    ``metadata`` part is the metadata; other parts without a file name are ignored."""
    # Loaded by the upload route only (cold starts of every other route skip it).
    from python_multipart.multipart import parse_options_header
    mime, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType("Send the share as multipart/form-data (a metadata part and file parts)")
    too_many = ValidationFailed.field("files", f"A share holds at most {max_files} files, sent in at most "
                                      f"{max_files + MAX_OTHER_PARTS} form parts in all", "TOO_MANY_FILES")
    return _upload_of(_split_parts(boundary, body, max_files + MAX_OTHER_PARTS, too_many), max_files, too_many)


def _split_parts(boundary: bytes, body: bytes, max_parts: int, too_many: ValidationFailed) -> List[_Part]:
    """The body's parts, each with its headers and data: the framing only, nothing interpreted."""
    from python_multipart import MultipartParser
    from python_multipart.exceptions import FormParserError
    parts: List[_Part] = []
    header_name: List[bytes] = []
    header_value: List[bytes] = []

    def on_part_begin() -> None:
        # Counted as they begin: a body of empty parts is otherwise parsed whole (half a million
        # in a direct upload's 4 MB, seconds of a Lambda) before the file count refuses it.
        if len(parts) >= max_parts:
            raise too_many
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.append(data[start:end])

    def on_header_end() -> None:
        try:
            name = b"".join(header_name).decode("ascii").strip().lower()
            value = b"".join(header_value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidFilename("Part headers must be UTF-8") from None
        parts[-1].headers[name] = value
        header_name.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].chunks.append(data[start:end])

    ended: List[bool] = []
    malformed = ValidationFailed.field("body", "Malformed multipart/form-data body", "INVALID_MULTIPART")
    try:
        # The parser refuses a boundary over 256 bytes when it is built: that is bad input too.
        parser = MultipartParser(boundary, callbacks={
            "on_part_begin": on_part_begin, "on_header_field": on_header_field,
            "on_header_value": on_header_value, "on_header_end": on_header_end, "on_part_data": on_part_data,
            "on_end": lambda: ended.append(True)})
        parser.write(body)
        parser.finalize()
    except FormParserError:
        raise malformed from None
    if parts and not ended:
        raise malformed  # cut off before the closing boundary: the last file would be truncated
    return parts


def _upload_of(parts: List[_Part], max_files: int, too_many: ValidationFailed) -> MultipartUpload:
    """What the parts say: the first ``metadata`` part, and every part with a file name as a file."""
    metadata: Optional[bytes] = None
    files: List[UploadedFile] = []
    seen = set()
    for part in parts:
        field_name, filename = _disposition(part.headers.get("content-disposition", ""))
        if field_name == METADATA_FIELD and metadata is None:
            metadata = b"".join(part.chunks)  # also as a file (curl -F metadata=@meta.json)
            continue
        if filename is None:
            continue
        path = normalise_path(filename)
        if path in seen:
            raise InvalidFilename(f"The same file was sent twice: {path!r}")
        seen.add(path)
        files.append(UploadedFile(path=path, data=b"".join(part.chunks), content_type=content_type_for(path)))
        if len(files) > max_files:
            raise too_many
    return MultipartUpload(metadata=parse_metadata(metadata), files=files)


def check_total_size(total_bytes: int, max_bytes: int) -> None:
    if total_bytes > max_bytes:
        raise SizeLimit(max_bytes, f"The share's files add up to {total_bytes} bytes; the limit is {max_bytes}")
