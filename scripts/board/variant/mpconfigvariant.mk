# The boards' own REPL (friendly, raw, raw-paste) from the firmware sources;
# the 1.25 unix port does not link it.
SHARED_SRC_C += shared/runtime/pyexec.c
FROZEN_MANIFEST ?=
# The GIL stays with a thread while it collects (see modboardrepl.c).
LDFLAGS_EXTRA += -Wl,--wrap=mp_thread_mutex_lock -Wl,--wrap=mp_thread_mutex_unlock
