# The boards' own REPL (friendly, raw, raw-paste) from the firmware sources;
# the 1.25 unix port does not link it.
SHARED_SRC_C += shared/runtime/pyexec.c
FROZEN_MANIFEST ?=
