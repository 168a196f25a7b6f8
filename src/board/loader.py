# Defines the helpers (the class `_wrm`, helpers.py) from their file on
# the board's flash. It lives in that file, right after its first two
# lines (the version, the index of the functions kept on flash), and
# reaches the board by the same binary PUT: the program a first contact
# pastes (`first` in snippets.rs) is only a check, the file's version
# compared, and `exec` of these lines, with the file open in `_wrm` and
# read up to their end; a dict of its own takes `L`, so that no name of
# the loader stays in the REPL. (Pasted as a program, the loader took
# eight raw-paste windows, a round trip each, at every first contact.)
#
# Answers `M <free before>`, then `M <free after>`: the difference is
# what the helpers keep (`status`), with buffers sized from the free
# heap. The file is closed before the class is compiled. A file cut short
# (a PUT the link cut) raises OSError, having defined nothing: the tool
# sends it again.
#
# The heap is measured in a frame of its own (`L`), started once the
# caller's are still: what that program holds (these lines, the dict)
# is the same at both measures. Everything the file holds (each function
# kept on flash, then the class) is compiled and dropped first, so that
# every name in it is interned before the first measure: a save must
# intern nothing, and the board's tables of names grow by doubling, so
# a name interned between the measures could count a new table or
# nothing, as the names before fell (helpers keep 1,952 B, 3,264 B,
# 3,616 B or 5,408 B with 40, 20, 80 or no names of the REPL before:
# the figure `status` shows swung with the board's history). Then the
# class alone is defined, read from the file in one piece.
def L(f):
    import gc

    try:
        I = f.seek(0, 1)
        f.seek(0)
        f.readline()
        k = f.readline().split()
        if int(k[-2]) + int(k[-1]) != f.seek(0, 2):
            raise OSError(5)

        # A frame of its own: what it compiled is not kept alive by this
        # one's stack when the heap is measured (and no closure: its cells
        # would stay). A piece a heap in pieces cannot compile now interns
        # its names at its first call instead (a 48K board failed every
        # first contact here, for 2 KB in one piece).
        def c(f, a, n):
            f.seek(a)
            try:
                exec(f.read(n), {})
            except MemoryError:
                pass

        for i in range(2, len(k), 3):
            c(f, int(k[i]), int(k[i + 1]))
        k = int(k[2]) - I
        c(f, I, k)
        c = None
        gc.collect()
        n = gc.mem_free()
        print("M", n)
        f.seek(I)
        s = f.read(k)
    finally:
        f.close()
    # Without line numbers (nothing of ours shows a traceback): 64-96 B
    # less resident.
    import micropython as c

    o = c.opt_level()
    c.opt_level(3)
    try:
        exec(s, globals())
    finally:
        c.opt_level(o)
    s = None
    # The version as a literal (filled in by Rust), which the check every
    # first program sends interns anyway: a str read from the file would
    # stay on the heap.
    _wrm.V = HELPERS_VERSION
    b = 1024
    while 128 < b > n >> 5:
        b //= 2
    _wrm.B = b
    # For `status` on later connections (`ram`): what is kept, a small
    # int (no heap). Set before the heap is measured: the slot it adds
    # grew the class's dict by 128 bytes, unseen when set after.
    _wrm.R = n
    gc.collect()
    b = gc.mem_free()
    print("M", b)
    _wrm.R -= b


L(_wrm)
