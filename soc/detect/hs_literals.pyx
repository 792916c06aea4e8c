# cython: language_level=3
"""The literal gates' search through Hyperscan's C API (``libhyperscan-dev``), without the Python binding.

The ``hyperscan`` wheel's ``Database.scan`` costs about a microsecond a call on a short field value (keyword
arguments parsed, the GIL released and taken back, a Python callback per match); the detector makes a few such calls
an event. Here one scan is a C call and a C callback that notes the literal's number: the same database (literals,
each reported once), the same results. Written in Cython because the C API has no Python wrapper without that
overhead. Built by ``setup.py`` when ``hs/hs.h`` is installed; :mod:`soc.detect.engine` falls back to the wheel
without it.

The GIL is held for the whole scan (a scan of one field value is shorter than a GIL hand-off), so one scratch space
per database is never used by two threads at once. The list of literals found is the object's own unless another
thread is between a scan and its result (a garbage collection while the result is built can run Python code): that
one gets a list of its own.
"""

from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdlib cimport free, malloc


cdef extern from "hs/hs.h":
    ctypedef struct hs_database_t:
        pass
    ctypedef struct hs_scratch_t:
        pass
    ctypedef struct hs_platform_info_t:
        pass
    ctypedef struct hs_compile_error_t:
        char *message
        int expression
    ctypedef int hs_error_t
    ctypedef int (*match_event_handler)(unsigned int id, unsigned long long start, unsigned long long end,
                                        unsigned int flags, void *context) noexcept nogil
    hs_error_t hs_compile_lit_multi(const char * const *expressions, const unsigned *flags, const unsigned *ids,
                                    const size_t *lens, unsigned elements, unsigned mode,
                                    const hs_platform_info_t *platform, hs_database_t **db,
                                    hs_compile_error_t **error)
    hs_error_t hs_free_compile_error(hs_compile_error_t *error)
    hs_error_t hs_alloc_scratch(const hs_database_t *db, hs_scratch_t **scratch)
    hs_error_t hs_free_scratch(hs_scratch_t *scratch)
    hs_error_t hs_free_database(hs_database_t *db)
    hs_error_t hs_scan(const hs_database_t *db, const char *data, unsigned int length, unsigned int flags,
                       hs_scratch_t *scratch, match_event_handler on_event, void *context) nogil
    int HS_SUCCESS
    unsigned HS_FLAG_SINGLEMATCH
    unsigned HS_FLAG_CASELESS
    unsigned HS_MODE_BLOCK


cdef struct Found:
    unsigned *ids
    unsigned count
    unsigned capacity


cdef int _note(unsigned int id, unsigned long long start, unsigned long long end, unsigned int flags,
               void *context) noexcept nogil:
    cdef Found *found = <Found *> context
    if found.count < found.capacity:  # each literal is reported once (single-match): never full
        found.ids[found.count] = id
        found.count += 1
    return 0


cdef class Literals:
    """Literals (strings, matched as their UTF-8 bytes) and what each stands for: :meth:`search` gives the values of
    those occurring in a text, each once, in the order Hyperscan reports them (by where their first match ends)."""

    cdef hs_database_t *db
    cdef hs_scratch_t *scratch
    cdef Found found
    cdef bint busy
    cdef list values

    def __cinit__(self):
        self.db = NULL
        self.scratch = NULL
        self.found.ids = NULL
        self.found.count = 0
        self.found.capacity = 0
        self.busy = False

    def __init__(self, literals, values, caseless=False):
        """``literals``: the strings to find; ``values``: what :meth:`search` returns for each (same order);
        ``caseless``: ASCII letters match either case (other characters match exactly)."""
        encoded = [literal.encode("utf-8", "surrogatepass") for literal in literals]
        cdef unsigned n = len(encoded)
        if n == 0 or n != len(values):
            raise ValueError(f"expected as many values as literals, at least one (got {n} and {len(values)})")
        self.values = list(values)
        cdef const char **expressions = <const char **> malloc(n * sizeof(char *))
        cdef size_t *lengths = <size_t *> malloc(n * sizeof(size_t))
        cdef unsigned *flags = <unsigned *> malloc(n * sizeof(unsigned))
        cdef unsigned *ids = <unsigned *> malloc(n * sizeof(unsigned))
        cdef hs_compile_error_t *error = NULL
        cdef hs_error_t status
        cdef unsigned i
        try:
            if not expressions or not lengths or not flags or not ids:
                raise MemoryError()
            for i in range(n):
                expressions[i] = <const char *> (<bytes> encoded[i])
                lengths[i] = len(<bytes> encoded[i])
                flags[i] = HS_FLAG_SINGLEMATCH | (HS_FLAG_CASELESS if caseless else 0)
                ids[i] = i
            status = hs_compile_lit_multi(expressions, flags, ids, lengths, n, HS_MODE_BLOCK, NULL, &self.db, &error)
            if status != HS_SUCCESS:
                message = error.message.decode("utf-8", "replace") if error != NULL else f"error {status}"
                if error != NULL:
                    hs_free_compile_error(error)
                raise ValueError(f"Hyperscan could not compile the literals: {message}")
        finally:
            free(expressions)
            free(lengths)
            free(flags)
            free(ids)
        if hs_alloc_scratch(self.db, &self.scratch) != HS_SUCCESS:
            raise MemoryError("Hyperscan scratch space")
        self.found.ids = <unsigned *> malloc(n * sizeof(unsigned))
        if not self.found.ids:
            raise MemoryError()
        self.found.capacity = n

    def __dealloc__(self):
        if self.scratch != NULL:
            hs_free_scratch(self.scratch)
        if self.db != NULL:
            hs_free_database(self.db)
        free(self.found.ids)

    cpdef tuple search(self, str text):
        """The values of the literals occurring in ``text``, each once."""
        cdef Py_ssize_t length
        cdef const char *data
        cdef bytes fallback
        try:
            data = PyUnicode_AsUTF8AndSize(text, &length)
        except UnicodeEncodeError:  # a lone surrogate: its bytes as the literals were encoded
            fallback = text.encode("utf-8", "surrogatepass")
            data = fallback
            length = len(fallback)
        if length > 0xFFFFFFFF:
            raise ValueError("a text of 4 GiB or more cannot be scanned")
        cdef Found own
        cdef Found *found = &self.found
        cdef bint shared = not self.busy
        if not shared:
            own.ids = <unsigned *> malloc(self.found.capacity * sizeof(unsigned))
            if not own.ids:
                raise MemoryError()
            own.capacity = self.found.capacity
            found = &own
        else:
            self.busy = True
        found.count = 0
        cdef list values = self.values
        try:
            if hs_scan(self.db, data, <unsigned int> length, 0, self.scratch, _note, found) != HS_SUCCESS:
                raise RuntimeError("Hyperscan scan failed")
            if found.count == 0:
                return ()
            return tuple([values[found.ids[i]] for i in range(found.count)])
        finally:
            if shared:
                self.busy = False
            else:
                free(own.ids)
