# The programs the tool runs once each (board/snippets.rs, `program`):
# each function here goes to the board alone, as `_wrm_t`, is called with
# its arguments (the fields of one bytes literal, see helpers.py) and
# deleted, so that nothing of it stays in the board's REPL. Answers, a
# line each (parsed in board/answer.rs): `K`, `E <errno>`, and what each
# function says below; an OSError never escapes.


# `os.mkdir` or `os.remove` (the first field) of the path: `K`.
def call(a):
    import os

    try:
        getattr(os, a[0])(a[1])
        print("K")
    except OSError as e:
        print("E", e.args[0])


# `S <mode> <size> <mtime>`.
def stat(a):
    import os

    try:
        s = os.stat(a[0])
        print("S", s[0], s[6], s[8])
    except OSError as e:
        print("E", e.args[0])


# The entries of a directory (and below it, if the second field is 1):
# per directory `> <number>` (once, before its first entry: 0 for the
# first field's, n for the directory of the listing's n-th `d` line), then
# `d|f <size> <mtime> <name>` each, the mtime as the difference from the
# previous entry's (the first's from 0); then, if there is a third field,
# `V <statvfs fields>` of the first; then `K`. A directory that cannot
# be listed is `E <errno> <hex path>`. A name goes as it is when it is
# printable ASCII without spaces and does not start with `%`, else as `%`
# and its bytes in hex (board/mod.rs `listing`). Lines go out about 500
# bytes at a time: a print per line sent a frame per field (9 frames and
# 18 bytes of frame headers per entry at 20 KB/s). No recursion: a stack
# of names is all the board holds. Paths are bytes: a name that is not
# UTF-8 would raise UnicodeError as a str; it is listed (the tool skips
# it) but not walked into.
# (Short blocks on one line: the program goes on the wire at every mount.)
def tree(a):
    import os, sys, binascii

    H = lambda n: binascii.hexlify(n).decode()

    # Names are bytes, or str on some filesystems: as bytes.
    def Q(n):
        n = b"" + n
        return n.decode() if n and min(n) > 32 and max(n) < 127 and n[0] != 37 else "%" + H(n)

    # o: the lines not yet written, the last mtime, the `d` lines so far.
    o = ["", 0, 0]

    def P(s):
        s = o[0] + s + "\n"
        if len(s) > 500: sys.stdout.write(s); s = ""
        o[0] = s

    t = [(a[0].encode(), 0)]
    while t:
        d, i = t.pop()
        try: it = os.ilistdir(d)
        except OSError as e: P("E %d " % e.args[0] + H(d)); continue
        h = 1
        while 1:
            # The root's listing comes as str whatever was asked (the VFS
            # names it "/"): a name that is not UTF-8 raises there, once,
            # and the listing goes on; `U` says one was skipped.
            try: e = next(it)
            except StopIteration: break
            except UnicodeError: P("U " + H(d)); continue
            if h: P("> %d" % i); h = 0
            p = d.rstrip(b"/") + b"/" + e[0]
            # The share's mountpoint: the host's files, not the board's.
            if p == b"/remote" and getattr(globals().get("_WRFS"), "m", 0): continue
            try: s = os.stat(p); z = s[6]; m = s[8]
            except OSError: z = e[3] if len(e) > 3 else 0; m = 0
            k = e[1] & 0x4000
            P("%s %d %d %s" % ("d" if k else "f", z, m - o[1], Q(e[0])))
            o[1] = m
            if k:
                o[2] += 1
                if a[1] == "1":
                    try: p.decode(); t.append((p, o[2]))
                    except UnicodeError: pass
    # A third field: the filesystem's figures too, as `statvfs` says them.
    if len(a) > 2:
        try: P("V" + "".join(" %d" % v for v in os.statvfs(a[0])))
        except OSError: pass
    # With the last lines: one write, never an empty one.
    sys.stdout.write(o[0] + "K\n")


# `mkdir -p` of each path, refusing to walk through a file: `K`, or
# `E <errno> <hex path>` for the first that fails.
def mkdirs(a):
    import os, binascii

    def M(p):
        q = ""
        for c in p.split("/"):
            if not c:
                continue
            q += "/" + c
            try:
                os.mkdir(q)
            except OSError as e:
                if e.args[0] != 17:
                    return e.args[0]
                try:
                    if not os.stat(q)[0] & 0x4000:
                        return 20
                except OSError as e:
                    return e.args[0]
        return 0

    for p in a:
        r = M(p)
        if r:
            print("E", r, binascii.hexlify(p.encode()).decode())
            return
    print("K")


# Removes the files, whether or not they exist: `K`.
def remove_all(a):
    import os

    for p in a:
        try:
            os.remove(p)
        except OSError:
            pass
    print("K")


# `rmdir` of a directory that may hold nothing but our part files.
def rmdir(a):
    import os

    try:
        # Bytes: a name that is not UTF-8 must not raise (it stays, and
        # rmdir says the directory is not empty).
        for e in os.ilistdir(a[0].encode()):
            if e[0].startswith(PART_PREFIX.encode()):
                os.remove(a[0].encode() + b"/" + e[0])
        os.rmdir(a[0])
        print("K")
    except OSError as e:
        print("E", e.args[0])


# `os.rename`, replacing an existing target on filesystems whose rename
# refuses to.
def rename(a):
    import os

    try:
        try:
            os.rename(a[0], a[1])
        except OSError as e:
            if e.args[0] != 17:
                raise
            os.remove(a[1])
            os.rename(a[0], a[1])
        print("K")
    except OSError as e:
        print("E", e.args[0])


# `V <statvfs fields>`.
def statvfs(a):
    import os

    try:
        print("V", *os.statvfs(a[0]))
    except OSError as e:
        print("E", e.args[0])


# `rename` onto a target that must still be what the mount read (size,
# mtime) or gone: `K <mtime>`. A target changed behind the mount stays,
# and the file goes beside it: `C <mtime> <target size> <target mtime>`.
def onto(a):
    import os

    T = a[1]
    try:
        try:
            s = os.stat(T)
            c = s[6], s[8]
        except OSError:
            c = None
        if c and c != (int(a[2]), int(a[3])):
            T += CONFLICT_SUFFIX
            try:
                os.remove(T)
            except OSError:
                pass
        try:
            os.rename(a[0], T)
        except OSError as e:
            if e.args[0] != 17:
                raise
            os.remove(T)
            os.rename(a[0], T)
        print("C" if T != a[1] else "K", os.stat(T)[8], *(c if T != a[1] else ()))
    except OSError as e:
        print("E", e.args[0])


# The year of the board's epoch: `Y 2000` on ESP ports, 1970 on others.
def epoch(a):
    import time

    print("Y", time.gmtime(0)[0])


# The board's free heap after a collection: `M <bytes>`.
def mem(a):
    import gc

    gc.collect()
    print("M", gc.mem_free())


# One piece of an upload by program: fields path, `wb` or `ab`, then
# base64 pieces. `K`.
def write(a):
    import binascii

    try:
        f = open(a[0], a[1])
        for p in a[2:]:
            f.write(binascii.a2b_base64(p))
        f.close()
        print("K")
    except OSError as e:
        print("E", e.args[0])


# The board's free heap after a collection, `M <bytes>`, then, if the
# helpers are defined, what their loader measured they keep and their buffer:
# `M <bytes kept>`, `M <buffer>` (pasted ones have no `R`: nothing).
# Defines nothing: `status` of a board without a mount asks it too.
def ram(a):
    import gc

    gc.collect()
    print("M", gc.mem_free())
    try:
        print("M", _wrm.R)
        print("M", _wrm.B)
    except (NameError, AttributeError):
        pass


# What the board can inflate uploads with, and its free heap after a
# collection: `I <2: deflate.DeflateIO, 1: zlib/uzlib.DecompIO, 0: none>
# <bytes>`.
def inflater(a):
    import gc

    k = 0
    try:
        import deflate

        deflate.DeflateIO
        k = 2
    except (ImportError, AttributeError):
        for n in ("zlib", "uzlib"):
            try:
                if hasattr(__import__(n), "DecompIO"):
                    k = 1
                    break
            except ImportError:
                pass
    gc.collect()
    print("I", k, gc.mem_free())


# A file through the text channel, for boards whose binary transfers are
# throttled (board/stream.rs): `T <size> <pieces>`, then one base64 line
# per piece of a[1] bytes (`-` for a piece that read nothing), the first
# a[2] at once and each further one after a credit (a line end, read by
# `input()`, which echoes it as an empty line), then `K <bytes> <crc32>`,
# or `E <errno>` for a file that cannot be read (110: no credit came for
# 5 s, the reader is gone). Every piece is printed
# whatever happens, so the program reads every credit the reader owes it
# and none is left over for the REPL. One slice of the file: at most a[4]
# pieces from piece a[3] (`<size>` is the whole file's, `<pieces>` the
# slice's), so that the REPL is free between slices. With its last
# credit of a slice (of more than a[2] pieces) the reader sends its word:
# `c`, the next slice at once (nobody else waits for the REPL: no program
# to paste, no idle link between), or `e`, the end. True once the file is
# done (kept between slices, the function is then removed).
def send(a):
    import binascii, select, sys

    n = int(a[1])
    w = int(a[2])
    s = int(a[3])
    try:
        f = open(a[0], "rb")
        z = f.seek(0, 2)
    except OSError as e:
        print("E", e.args[0])
        return 1
    b = bytearray(n)
    # A reader that has gone (Ctrl-C, a cut link) sends no more credits:
    # the program ends rather than wait in input() for good.
    p = select.poll()
    p.register(sys.stdin, select.POLLIN)
    while 1:
        f.seek(s * n)
        k = max(0, min((z + n - 1) // n - s, int(a[4])))
        print("T", z, k)
        c = t = i = e = 0
        while i < k:
            if i >= w:
                if not p.poll(5000):
                    e = 110
                    break
                input()
            r = 0
            try:
                r = f.readinto(b)
            except OSError as x:
                e = x.args[0]
            if r:
                m = memoryview(b)[:r]
                c = binascii.crc32(m, c)
                t += r
                print(binascii.b2a_base64(m).decode(), end="")
            else:
                print("-")
            i += 1
        if e:
            print("E", e)
        else:
            print("K", t, c)
        s += k
        g = 0
        if k > w and i == k:
            g = p.poll(5000) and input() == "c"
        if e or not g:
            break
    f.close()
    return e or s * n >= z


# The CRC-32 of each block of k bytes of files the host has another
# version of (board/sums.rs: a `cp` onto a file the board has sends only
# the change, as rsync does). Fields: k, then paths. Per file `B <hex
# CRCs>` lines (64 blocks each, the last block short) then `W <size>
# <CRC-32 of the file>`, or `E <errno>`; then `K`.
def sums(a):
    import binascii

    C = getattr(binascii, "crc32", None)
    k = int(a[0])
    m = bytearray(min(k, _wrm.B))
    for p in a[1:]:
        try:
            if not C:
                raise OSError(95)
            f = open(p, "rb")
        except OSError as e:
            print("E", e.args[0])
            continue
        L = []
        n = x = h = z = 0
        while 1:
            r = f.readinto(memoryview(m)[: min(len(m), k - z)])
            if r:
                v = memoryview(m)[:r]
                h = C(v, h)
                x = C(v, x)
                n += r
                z += r
            if z == k or z and not r:
                L.append("%08x" % (h & 0xFFFFFFFF))
                h = z = 0
            if len(L) == 64 or L and not r:
                print("B", "".join(L))
                L = []
            if not r:
                break
        f.close()
        print("W", n, x & 0xFFFFFFFF)
    print("K")
    _wrm.c()
