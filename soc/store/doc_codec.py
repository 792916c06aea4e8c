"""The embedded store's documents, compressed with zstd and a dictionary trained on the store's own events.

An ECS document of the corpus is about 1,100 bytes of JSON, most of it field names and values every event of its
kind repeats; zstd with a 64 KiB dictionary trained on a few thousand of them writes it in about 140 bytes (level 1,
about 2 µs to compress and 1 to read back). Inserting the rows is then about half the work (measured on the 1M-line
corpus, table and unique id only: 12.6 → 6.7 µs a row), and the file an eighth of the size.

A store writes plain JSON text until it has seen SAMPLE_DOCS documents; it then trains a dictionary on them, keeps
it in the events file (``doc_dictionaries``, under the id zstd writes into each frame) and compresses every document
after. Any document reads back whichever way it was written: text as it is, a frame with the dictionary its header
names (loaded from the file when another process trained it). Training is library code (``zstandard``, the zstd
reference implementation's binding); nothing here is a compressor of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson
import zstandard

DICTIONARY_BYTES = 65536
SAMPLE_DOCS = 4000  # documents a dictionary is trained on: the first this process writes to the store
LEVEL = 1
MULTI_COMPRESS_DOCS = 256  # documents from which one call into zstd (``encode_many``) is worth it
# id: the dictionary id zstd writes into each frame; added: when it was trained (the newest is used)
DICTIONARIES_SCHEMA = """CREATE TABLE IF NOT EXISTS doc_dictionaries (
    id INTEGER PRIMARY KEY, data BLOB NOT NULL, added REAL NOT NULL);"""


class DocCodec:
    """Compresses one store's documents and reads back any it holds. ``load`` returns the dictionaries in the
    store, oldest first (id, bytes); ``save`` keeps a new one there, committed before any row compressed with it is
    written, and says False when another dictionary holds its id. Safe to share between threads (zstd's
    compressors and decompressors are not: each thread makes its own)."""

    def __init__(self, load: Callable[[], list[tuple[int, bytes]]], save: Callable[[int, bytes], bool],
                 sample_docs: int | None = None):
        self._load, self._save = load, save
        self._sample_docs = SAMPLE_DOCS if sample_docs is None else sample_docs
        self._lock = threading.Lock()
        self._dictionaries: dict[int, zstandard.ZstdCompressionDict] = {}
        self._current: zstandard.ZstdCompressionDict | None = None
        self._samples: list[bytes] = []
        self._local = threading.local()  # this thread's compressor and decompressors, and its last read
        saved = self._load()
        for dict_id, data in saved:
            self._dictionaries[dict_id] = zstandard.ZstdCompressionDict(data)
        if saved:
            self._current = self._prepared(saved[-1][1])

    @staticmethod
    def _prepared(data: bytes) -> zstandard.ZstdCompressionDict:
        prepared = zstandard.ZstdCompressionDict(data)
        prepared.precompute_compress(level=LEVEL)
        return prepared

    @property
    def compressing(self) -> bool:
        """Whether documents are compressed yet (a dictionary is trained or loaded)."""
        return self._current is not None

    def encode(self, doc: bytes) -> str | bytes:
        """The stored form of a document's JSON bytes: a zstd frame once there is a dictionary, else the JSON text
        (its bytes kept as a training sample until there are enough)."""
        current = self._current
        if current is None:
            self._sample(doc)
            return doc.decode()
        return self._compressor(current).compress(doc)

    def encoder(self) -> Callable[[bytes], str | bytes]:
        """``encode`` for the calling thread as one function: its compressor's own ``compress`` once there is a
        dictionary (no lookups a document)."""
        current = self._current
        return self.encode if current is None else self._compressor(current).compress

    def encode_many(self, docs: list[bytes]) -> list[str | bytes]:
        """The stored forms of several documents' JSON bytes (``encode`` of each). Compressed in one call into zstd:
        it lets the GIL go once for them all rather than once a document (each time it is taken back, a thread can
        wait out the interpreter's switch interval while another holds it). That call makes a compression context
        each time, which costs more than it saves below MULTI_COMPRESS_DOCS documents: fewer go one at a time
        (``encoder``; 2.47 against 2.21 µs a corpus document in the pipeline's batches of 32)."""
        current = self._current
        if current is None or not docs:
            return [self.encode(doc) for doc in docs]
        frames = self._compressor(current).multi_compress_to_buffer(docs)
        return [frames[i].tobytes() for i in range(len(docs))]

    def _compressor(self, current: zstandard.ZstdCompressionDict) -> zstandard.ZstdCompressor:
        """This thread's compressor with the current dictionary."""
        local = self._local
        if getattr(local, "dictionary", None) is not current:
            local.compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=current, write_checksum=False)
            local.dictionary = current
        return local.compressor

    def _sample(self, doc: bytes) -> None:
        with self._lock:
            if self._current is None and len(self._samples) < self._sample_docs:
                self._samples.append(doc)
                if len(self._samples) == self._sample_docs:
                    self._train()

    def _train(self) -> None:
        """Train a dictionary on the samples and keep it (called with the lock held)."""
        samples, self._samples = self._samples, []
        try:
            trained = zstandard.train_dictionary(DICTIONARY_BYTES, samples)
        except zstandard.ZstdError:  # too little material (tiny, identical documents): stay with plain text
            return
        data = trained.as_bytes()
        if self._save(trained.dict_id(), data):  # (False: a one-in-four-billion clash of ids; train again later)
            self._dictionaries[trained.dict_id()] = trained
            self._current = self._prepared(data)

    def text(self, doc: str | bytes | None) -> str | None:
        """The JSON text of a stored document (SQL's ``yunshu_doc(e.doc)``; the last one is remembered per
        thread, since one row's conditions read its document several times)."""
        if doc is None or type(doc) is str:
            return doc
        local = self._local
        if getattr(local, "last_in", None) == doc:
            return local.last_out
        text = self._decompress(doc).decode()
        local.last_in, local.last_out = doc, text
        return text

    def loads(self, doc: str | bytes) -> Any:
        """The stored document as Python objects."""
        return orjson.loads(doc if type(doc) is str else self._decompress(doc))

    def _decompress(self, frame: bytes) -> bytes:
        dict_id = zstandard.get_frame_parameters(frame).dict_id
        mine: dict[int, zstandard.ZstdDecompressor] | None = getattr(self._local, "decompressors", None)
        if mine is None:
            mine = self._local.decompressors = {}
        decompressor = mine.get(dict_id)
        if decompressor is None:
            dictionary = self._dictionaries.get(dict_id)
            if dictionary is None:  # trained by another process since this one loaded the dictionaries
                with self._lock:
                    for known, data in self._load():
                        self._dictionaries.setdefault(known, zstandard.ZstdCompressionDict(data))
                dictionary = self._dictionaries.get(dict_id)
                if dictionary is None:
                    raise ValueError(f"stored document compressed with dictionary {dict_id}, which the store lacks")
            decompressor = mine[dict_id] = zstandard.ZstdDecompressor(dict_data=dictionary)
        return decompressor.decompress(frame)
