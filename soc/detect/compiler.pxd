# C-level declarations of soc/detect/compiler.py for the modules that cimport it (soc.native.CIMPORTS): the
# detector and the correlator call these without a Python call. The .py stays the source of truth; a class
# declared here keeps its attributes here (Cython allows no C attributes in the .py of a class in a .pxd).

cdef class FieldGetter:
    cdef public str name
    cdef tuple parts
    cdef tuple rests  # the path from each part on, dotted (flat keys of a nested object)
    cdef str head
    cdef str tail
    cdef Py_ssize_t depth
    cpdef get(self, event)
    cpdef _get_deep(self, dict flat)
    cpdef _get_from(self, event)

cdef class Check:
    cpdef test(self, subject)

cpdef as_list(value)
cpdef scalar_text(value)
cpdef matching(list predicates, list positions, event)
cpdef remember_keywords(event)
cpdef forget_keywords()
cpdef keyword_texts(event)
cpdef lowered_texts(event)
