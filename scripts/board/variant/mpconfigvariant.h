// The test board: the unix port made to behave like an ESP board's WebREPL.
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#define MICROPY_PY_WEBREPL (1)
#define MICROPY_PY_OS_DUPTERM (1)

#include "ports/unix/variants/mpconfigvariant_common.h"

// The listener reads the socket on its own thread (as an ESP board does in
// its socket callback) while the REPL runs on the main thread; the GIL keeps
// the two from racing inside the VM. The port's Makefile forces GIL=0.
#undef MICROPY_PY_THREAD_GIL
#define MICROPY_PY_THREAD_GIL (1)
// The port still takes its GC lock recursively.
#define MICROPY_PY_THREAD_RECURSIVE_MUTEX (1)
// Ctrl-C arrives from that thread through the scheduler, not as a signal.
#undef MICROPY_ASYNC_KBD_INTR
#define MICROPY_ASYNC_KBD_INTR (0)

// pyexec.c prints this banner; the unix port never defines the board's name.
#define MICROPY_BANNER_MACHINE "webrepl test board with unix"

// time.sleep_ms lets the board's other work run, as it does on an ESP board
// (FreeRTOS runs the network task). The port's delay sleeps holding the GIL,
// so a program in a sleep loop starved the listener thread for seconds: a
// closed client went unnoticed and the next one was rejected as concurrent.
#define mp_hal_delay_ms(ms) boardrepl_delay_ms(ms)
void boardrepl_delay_ms(unsigned long ms);
