"""The embedded store's compressed documents: plain JSON text until a dictionary is trained on the store's own
first documents, zstd frames after; every document reads back (search, filters in SQL, retro-hunts) whichever way it
was written, also in a process that did not train the dictionary."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from soc.detect.loader import load_texts
from soc.store.base import SearchQuery
from soc.store.doc_codec import MULTI_COMPRESS_DOCS
from soc.store.sqlite import SQLiteStore
from tests.soc.compressed import compressed_sqlite, training_docs


def _docs(count: int, prefix: str = "d") -> list[tuple[str, dict]]:
    return [(f"{prefix}{i}", orjson.loads(doc)) for i, doc in enumerate(training_docs(count, seed=11))]


def _storage(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT id, typeof(doc) FROM events"))


def test_a_store_trains_its_dictionary_on_its_first_documents_and_compresses_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("soc.store.doc_codec.SAMPLE_DOCS", 400)
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    docs = _docs(700)
    store.write(docs[:300])
    store.write(docs[300:])
    kinds = _storage(path)
    assert [kinds[f"d{i}"] for i in range(700)] == ["text"] * 400 + ["blob"] * 300
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM doc_dictionaries").fetchone()[0] == 1
        plain, packed = db.execute("SELECT avg(length(doc)) FILTER (WHERE typeof(doc) = 'text'), "
                                   "avg(length(doc)) FILTER (WHERE typeof(doc) = 'blob') FROM events").fetchone()
    assert packed < plain / 3
    found = dict(store.search(SearchQuery(limit=1000)).hits)
    assert found == dict(docs)  # every document reads back as written, text or compressed
    port = docs[650][1]["source"]["port"]  # a field without a column: tested in SQL on the document
    expected = {doc_id for doc_id, doc in docs if doc["source"]["port"] == port}
    assert {d for d, _ in store.search(SearchQuery(where={"source.port": str(port)}, limit=1000)).hits} == expected
    assert dict(store.terms("event.action", SearchQuery())) == {
        action: sum(doc["event"]["action"] == action for _, doc in docs) for action in ("ssh_login", "access")}
    store.close()


def test_a_store_opened_before_another_trained_reads_its_compressed_documents(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("soc.store.doc_codec.SAMPLE_DOCS", 400)
    path = tmp_path / "events.db"
    reader, writer = SQLiteStore(path), SQLiteStore(path)
    docs = _docs(600)
    writer.write(docs)
    assert list(_storage(path).values()).count("blob") == 200
    rule = load_texts([("r.yml", "title: r\nlogsource: {product: test}\ndetection:\n  sel:\n"
                                 f"    source.port: {docs[500][1]['source']['port']}\n  condition: sel\n")]).rules[0]
    assert rule.sigma is not None
    hunted = {d for d, _ in reader.hunt(rule.sigma, SearchQuery(limit=1000)).hits}
    assert hunted == {d for d, doc in docs if doc["source"]["port"] == docs[500][1]["source"]["port"]}
    assert dict(reader.search(SearchQuery(limit=1000)).hits) == dict(docs)
    reader.close()
    writer.close()


def test_a_compressed_store_keeps_documents_small_and_whole(tmp_path: Path) -> None:
    store = compressed_sqlite(tmp_path / "events.db")
    docs = _docs(50)
    store.write(docs)
    assert set(_storage(tmp_path / "events.db").values()) == {"blob"}
    assert dict(store.search(SearchQuery(limit=100)).hits) == dict(docs)
    assert {d for d, _ in store.search(SearchQuery(text="password for user3 ", limit=100)).hits} == {
        d for d, doc in docs if "password for user3 " in doc["message"]}
    store.close()


def test_a_document_whose_dictionary_is_gone_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = compressed_sqlite(path)
    store.write(_docs(3))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM doc_dictionaries")
    db.close()
    store = SQLiteStore(path)
    with pytest.raises(ValueError, match=r"compressed with dictionary \d+, which the store lacks"):
        store.search(SearchQuery())
    store.close()


def test_a_failed_training_leaves_documents_plain_and_the_next_samples_try_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zstandard

    monkeypatch.setattr("soc.store.doc_codec.SAMPLE_DOCS", 100)
    real, calls = zstandard.train_dictionary, []

    def first_fails(size: int, samples: list[bytes]) -> zstandard.ZstdCompressionDict:
        calls.append(len(samples))
        if len(calls) == 1:
            raise zstandard.ZstdError("cannot train dictionary: Src size is incorrect")
        return real(size, samples)

    monkeypatch.setattr(zstandard, "train_dictionary", first_fails)
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    docs = _docs(300)
    store.write(docs)
    kinds = _storage(path)
    assert calls == [100, 100]
    assert [kinds[f"d{i}"] for i in range(300)] == ["text"] * 200 + ["blob"] * 100
    assert dict(store.search(SearchQuery(limit=400)).hits) == dict(docs)
    store.close()


def test_documents_compressed_together_are_the_frames_each_would_be_alone(tmp_path: Path) -> None:
    store = compressed_sqlite(tmp_path / "events.db")
    codec = store._codec
    assert codec.compressing
    raw = [orjson.dumps(doc) for _, doc in _docs(40)]
    together = codec.encode_many(raw)
    assert together == [codec.encode(doc) for doc in raw] and all(type(frame) is bytes for frame in together)
    assert [codec.loads(frame) for frame in together] == [orjson.loads(doc) for doc in raw]
    one = codec.encoder()  # a document at a time: the same frames
    assert [one(doc) for doc in raw] == together
    assert codec.encode_many([]) == []
    store.close()


def test_a_batch_encodes_alike_in_one_call_into_zstd_or_a_document_at_a_time(tmp_path: Path) -> None:
    store = compressed_sqlite(tmp_path / "events.db")
    docs = _docs(MULTI_COMPRESS_DOCS + 4, prefix="b")
    whole = store.encode(docs).payload  # one call into zstd
    pieces = [row for at in range(0, len(docs), 32) for row in store.encode(docs[at:at + 32]).payload]
    assert whole == pieces and len(whole) == len(docs) and all(type(row[-1]) is bytes for row in whole)
    store.close()
