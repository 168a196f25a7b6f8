// Runs the REPL loop that bare-metal ports run, so the test board answers
// raw REPL and raw-paste with the firmware's exact framing.
#include "py/runtime.h"
#include "py/mphal.h"
#include "shared/runtime/pyexec.h"

#include <errno.h>
#include <stdio.h>

// One turn of a bare-metal main loop: returns when the mode changes or a soft
// reset is asked for (the result has PYEXEC_FORCED_EXIT set then).
static mp_obj_t boardrepl_run(void) {
    int ret;
    if (pyexec_mode_kind == PYEXEC_MODE_RAW_REPL) {
        ret = pyexec_raw_repl();
    } else {
        ret = pyexec_friendly_repl();
    }
    return mp_obj_new_bool((ret & PYEXEC_FORCED_EXIT) != 0);
}
static MP_DEFINE_CONST_FUN_OBJ_0(boardrepl_run_obj, boardrepl_run);

// What an ESP board's socket callback does on Ctrl-C while code runs.
static mp_obj_t boardrepl_interrupt(void) {
    mp_sched_keyboard_interrupt();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(boardrepl_interrupt_obj, boardrepl_interrupt);

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
    { MP_ROM_QSTR(MP_QSTR_interrupt), MP_ROM_PTR(&boardrepl_interrupt_obj) },
    { MP_ROM_QSTR(MP_QSTR_rename), MP_ROM_PTR(&boardrepl_rename_obj) },
};
static MP_DEFINE_CONST_DICT(boardrepl_globals, boardrepl_globals_table);

const mp_obj_module_t boardrepl_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&boardrepl_globals,
};
MP_REGISTER_MODULE(MP_QSTR_boardrepl, boardrepl_module);
