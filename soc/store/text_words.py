"""The body of a text block (:mod:`soc.store.text_index`): the distinct words of its messages, lowercased, joined by
spaces, in the order they first appear.

``block_words`` is ``" ".join(dict.fromkeys(messages.lower().split()))``. Compiled (``soc.native``), an ASCII text
(``str.isascii`` answers at once) goes through a C loop instead, which cuts, lowercases and deduplicates the words in
one pass over the characters with a hash table of its own, making no Python string of a word (a block of corpus
messages: 1.1 µs a row through ``split`` and ``dict.fromkeys``). On ASCII text ``str.split`` cuts at space, ``\\t``,
``\\n``, ``\\v``, ``\\f``, ``\\r`` and the separators ``\\x1c`` to ``\\x1f``, and ``str.lower`` changes ``A``-``Z``
only: the loop does exactly that (``tests/soc/test_text_words.py`` compares the two). Any other text goes the Python
way, which knows Unicode's spaces and cases. Written here rather than taken from a library: what is wanted is this
one expression's result, faster, and no PyPI package computes it.
"""

from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.cpython.unicode import PyUnicode_DATA
    from cython.cimports.libc.stdlib import free, malloc
    from cython.cimports.libc.string import memcmp, memset

_FNV_OFFSET = cython.declare(cython.ulonglong, 14695981039346656037)  # FNV-1a, 64 bits
_FNV_PRIME = cython.declare(cython.ulonglong, 1099511628211)


def block_words(messages: str | None) -> str | None:
    """A block's body: the distinct words of its messages (newline-separated), lowercased, joined by spaces."""
    if not messages:
        return None
    if cython.compiled and messages.isascii():
        return _ascii_words(messages)
    return " ".join(dict.fromkeys(messages.lower().split()))


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.bint)
@cython.locals(c=cython.uchar)
def _separator(c):
    """Whether ``str.split`` cuts an ASCII text at the character ``c``."""
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.locals(text=str, n=cython.Py_ssize_t, i=cython.Py_ssize_t, j=cython.Py_ssize_t, words=cython.Py_ssize_t,
               size=cython.Py_ssize_t, mask=cython.size_t, slot=cython.size_t, h=cython.ulonglong,
               text_data=cython.p_uchar, c=cython.uchar, at=cython.Py_ssize_t, length=cython.Py_ssize_t,
               found=cython.bint, out=cython.p_char, starts=cython.p_Py_ssize_t, lengths=cython.p_Py_ssize_t,
               hashes=cython.p_ulonglong, in_word=cython.bint)
def _ascii_words(text):
    """``block_words`` of an ASCII text (compiled only: its characters read as the bytes CPython keeps them in)."""
    n = len(text)
    text_data = cython.cast(cython.p_uchar, PyUnicode_DATA(text))
    words = 0
    in_word = False
    for i in range(n):  # how many words: the table's size
        if _separator(text_data[i]):
            in_word = False
        elif not in_word:
            in_word = True
            words += 1
    if words == 0:
        return ""
    size = 16
    while size < 2 * words:
        size *= 2
    mask = size - 1
    out = cython.cast(cython.p_char, malloc(n + 1))
    starts = cython.cast(cython.p_Py_ssize_t, malloc(size * cython.sizeof(cython.Py_ssize_t)))
    lengths = cython.cast(cython.p_Py_ssize_t, malloc(size * cython.sizeof(cython.Py_ssize_t)))
    hashes = cython.cast(cython.p_ulonglong, malloc(size * cython.sizeof(cython.ulonglong)))
    try:
        if not out or not starts or not lengths or not hashes:
            raise MemoryError()
        memset(starts, 0xFF, size * cython.sizeof(cython.Py_ssize_t))  # every slot -1: empty
        at = 0  # where the next new word goes in ``out`` (each one kept is followed by a space)
        i = 0
        while i < n:
            while i < n and _separator(text_data[i]):
                i += 1
            if i >= n:
                break
            h = _FNV_OFFSET
            j = i
            while j < n:  # the word, lowercased, written where it would go, and its hash (FNV-1a)
                c = text_data[j]
                if _separator(c):
                    break
                if 65 <= c <= 90:  # A-Z
                    c += 32
                out[at + j - i] = c
                h = (h ^ c) * _FNV_PRIME
                j += 1
            length = j - i
            slot = h & mask
            found = False
            while starts[slot] >= 0:
                if hashes[slot] == h and lengths[slot] == length and memcmp(out + starts[slot], out + at, length) == 0:
                    found = True
                    break
                slot = (slot + 1) & mask
            if not found:
                starts[slot] = at
                lengths[slot] = length
                hashes[slot] = h
                at += length
                out[at] = 32  # a space
                at += 1
            i = j
        return out[:at - 1].decode("ascii")
    finally:
        free(out)
        free(starts)
        free(lengths)
        free(hashes)
