"""Retrieval-augmented generation: ingest documents, retrieve the top-k chunks, answer with citations.

- `chunking`: documents into overlapping, sentence-aligned chunks.
- `store`: the vector store interface and its in-process implementation.
- `answer`: the prompt (versioned), the offline extractive model and citation parsing.
- `service`: ingestion and question answering, traced and measured.
- `api`: the HTTP endpoints (`POST /documents`, `GET /documents`, `POST /query`).
- `evaluate`: the quality gate on the golden questions in `evals/golden.jsonl`.
- `corpus/`: a small sample document set, ingested at start-up while the store is empty.
"""
