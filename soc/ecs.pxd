# C-level declarations of soc/ecs.py for the modules that cimport it (soc.native.CIMPORTS): the correlator reads
# event times without a Python call.

cpdef utc_seconds(str text)
