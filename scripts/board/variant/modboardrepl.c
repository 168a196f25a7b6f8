// Runs the REPL loop that bare-metal ports run, so the test board answers
// raw REPL and raw-paste with the firmware's exact framing.
#include "py/runtime.h"
#include "py/mphal.h"
#include "py/mpstate.h"
#include "py/mpthread.h"
#include "shared/runtime/pyexec.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

// See mpconfigvariant.h: the port's own loop, with the GIL let go while asleep.
void boardrepl_delay_ms(unsigned long ms) {
    mp_uint_t start = mp_hal_ticks_ms();
    while (mp_hal_ticks_ms() - start < ms) {
        mp_event_handle_nowait();
        MP_THREAD_GIL_EXIT();
        usleep(500);
        MP_THREAD_GIL_ENTER();
    }
}

// A collection runs finalisers (`__del__` of files, directories and sockets
// nobody closed) between marking and sweeping, and the unix port's close
// lets go of the GIL. Another thread then ran Python in the middle of the
// collection: what it allocated was unmarked, so the sweep freed it while in
// use, and the heap went corrupt (the board crashed in qstr lookups, most
// often with a small heap, where collections are frequent). A board's own
// close keeps the GIL; so does this one, while its thread collects. Linked in
// with --wrap (mpconfigvariant.mk), so every caller of the port's mutexes
// comes through here.
int __real_mp_thread_mutex_lock(mp_thread_mutex_t *mutex, int wait);
void __real_mp_thread_mutex_unlock(mp_thread_mutex_t *mutex);
static __thread unsigned int gil_kept;

void __wrap_mp_thread_mutex_unlock(mp_thread_mutex_t *mutex) {
    if (mutex == &MP_STATE_VM(gil_mutex) && (MP_STATE_THREAD(gc_lock_depth) & GC_COLLECT_FLAG)) {
        gil_kept++;
        return;
    }
    __real_mp_thread_mutex_unlock(mutex);
}

int __wrap_mp_thread_mutex_lock(mp_thread_mutex_t *mutex, int wait) {
    if (mutex == &MP_STATE_VM(gil_mutex) && gil_kept > 0) {
        gil_kept--;
        return 1;
    }
    return __real_mp_thread_mutex_lock(mutex, wait);
}

// One turn of a bare-metal main loop: returns when the mode changes or a soft
// reset is asked for (the result has PYEXEC_FORCED_EXIT set then).
static mp_obj_t boardrepl_run(void) {
    // main.c keeps the interrupt char set while it runs the listener script;
    // from here on pyexec alone sets it, around the code it executes.
    mp_hal_set_interrupt_char(-1);
    int ret;
    if (pyexec_mode_kind == PYEXEC_MODE_RAW_REPL) {
        ret = pyexec_raw_repl();
    } else {
        ret = pyexec_friendly_repl();
    }
    return mp_obj_new_bool((ret & PYEXEC_FORCED_EXIT) != 0);
}
static MP_DEFINE_CONST_FUN_OBJ_0(boardrepl_run_obj, boardrepl_run);

// What an ESP board's socket callback does with Ctrl-C: while code runs (the
// interrupt char is set) it schedules KeyboardInterrupt and swallows the
// byte; at a prompt the byte is a keystroke. The unix port's
// mp_hal_set_interrupt_char installs its SIGINT handler exactly while pyexec
// runs code, so that handler tells which. One call, so the GIL makes the
// test and the scheduling atomic against the REPL thread.
static mp_obj_t boardrepl_ctrl_c(void) {
    struct sigaction sa;
    if (sigaction(SIGINT, NULL, &sa) != 0 || sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN) {
        return mp_const_false;
    }
    mp_sched_keyboard_interrupt();
    return mp_const_true;
}
static MP_DEFINE_CONST_FUN_OBJ_0(boardrepl_ctrl_c_obj, boardrepl_ctrl_c);

// VfsPosix in 1.25 builds both of rename's host paths in one buffer, so the
// second overwrites the first. Boards' FAT and littlefs do not have this bug;
// the listener's filesystem wrapper renames through here instead.
static mp_obj_t boardrepl_rename(mp_obj_t old_in, mp_obj_t new_in) {
    if (rename(mp_obj_str_get_str(old_in), mp_obj_str_get_str(new_in)) != 0) {
        mp_raise_OSError(errno);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(boardrepl_rename_obj, boardrepl_rename);

static const mp_rom_map_elem_t boardrepl_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_boardrepl) },
    { MP_ROM_QSTR(MP_QSTR_run), MP_ROM_PTR(&boardrepl_run_obj) },
    { MP_ROM_QSTR(MP_QSTR_ctrl_c), MP_ROM_PTR(&boardrepl_ctrl_c_obj) },
    { MP_ROM_QSTR(MP_QSTR_rename), MP_ROM_PTR(&boardrepl_rename_obj) },
};
static MP_DEFINE_CONST_DICT(boardrepl_globals, boardrepl_globals_table);

const mp_obj_module_t boardrepl_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&boardrepl_globals,
};
MP_REGISTER_MODULE(MP_QSTR_boardrepl, boardrepl_module);
