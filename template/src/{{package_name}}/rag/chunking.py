"""Split documents into overlapping chunks aligned on sentences."""

import re
from dataclasses import dataclass
from pathlib import Path

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
DOCUMENT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""
    source: str = ""


@dataclass(frozen=True)
class Chunk:
    document_id: str
    index: int
    text: str
    title: str = ""
    source: str = ""


def split_text(text: str, size: int, overlap: int) -> list[str]:
    """Chunks of at most `size` characters; consecutive chunks share about `overlap` of them.

    Sentences are kept whole unless one alone is longer than `size`.
    """
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be at least 0 and below size ({size}); got {overlap}")
    pieces: list[str] = []
    for sentence in SENTENCE_END.split(text):
        sentence = sentence.strip().lstrip("#").strip()
        if sentence:
            pieces.extend(_split_long(sentence, size))
    chunks: list[str] = []
    current: list[str] = []
    for piece in pieces:
        if current and len(" ".join([*current, piece])) > size:
            chunks.append(" ".join(current))
            current = _tail(current, overlap)
            while current and len(" ".join([*current, piece])) > size:
                current.pop(0)
        current.append(piece)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _tail(pieces: list[str], overlap: int) -> list[str]:
    """The last pieces whose joined length fits in `overlap`."""
    kept: list[str] = []
    for piece in reversed(pieces):
        if len(" ".join([piece, *kept])) > overlap:
            break
        kept.insert(0, piece)
    return kept


def _split_long(sentence: str, size: int) -> list[str]:
    if len(sentence) <= size:
        return [sentence]
    parts: list[str] = []
    current = ""
    for word in sentence.split():
        candidate = f"{current} {word}".strip()
        if len(candidate) > size and current:
            parts.append(current)
            candidate = word
        while len(candidate) > size:  # a single word longer than a chunk
            parts.append(candidate[:size])
            candidate = candidate[size:]
        current = candidate
    if current:
        parts.append(current)
    return parts


def chunk_document(document: Document, size: int, overlap: int) -> list[Chunk]:
    return [
        Chunk(document.id, index, text, document.title, document.source)
        for index, text in enumerate(split_text(document.text, size, overlap))
    ]


def load_documents(directory: Path) -> list[Document]:
    """Every `*.md` and `*.txt` file of a directory; the id is the file name without suffix."""
    documents = []
    for path in sorted(directory.iterdir()):
        if path.suffix not in {".md", ".txt"}:
            continue
        text = path.read_text(encoding="utf-8")
        first = text.lstrip().splitlines()[0] if text.strip() else ""
        title = first.lstrip("#").strip() if first.startswith("#") else path.stem
        body = text.lstrip()[len(first) :] if first.startswith("#") else text
        documents.append(Document(path.stem.lower(), body.strip(), title, path.name))
    return documents
