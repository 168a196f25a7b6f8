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
# per directory `> <name of it>` (once, before its first entry), then
# `d|f <size> <mtime> <name>` each; then `K`. A directory that cannot be
# listed is `E <errno> <hex path>`. A name goes as it is when it is
# printable ASCII without spaces and does not start with `%`, else as `%`
# and its bytes in hex (board/mod.rs `listing`; about a third of the bytes
# of whole paths in hex). No recursion: a stack of names is all the board
# holds. Paths are bytes: a name that is not UTF-8 would raise
# UnicodeError as a str; it is listed (the tool skips it) but not walked
# into.
def tree(a):
    import os, binascii

    # Names are bytes, or str on some filesystems: as bytes.
    def Q(n):
        n = b"" + n
        if n and min(n) > 32 and max(n) < 127 and n[0] != 37:
            return n.decode()
        return "%" + binascii.hexlify(n).decode()

    t = [a[0].encode()]
    while t:
        d = t.pop()
        try:
            it = os.ilistdir(d)
        except OSError as e:
            print("E", e.args[0], binascii.hexlify(d).decode())
            continue
        h = 1
        while 1:
            # The root's listing comes as str whatever was asked (the VFS
            # names it "/"): a name that is not UTF-8 raises there, once,
            # and the listing goes on; `U` says one was skipped.
            try:
                e = next(it)
            except StopIteration:
                break
            except UnicodeError:
                print("U", binascii.hexlify(d).decode())
                continue
            if h:
                print(">", Q(d))
                h = 0
            p = d.rstrip(b"/") + b"/" + e[0]
            if p == b"/remote" and getattr(globals().get("_WRFS"), "m", 0):
                # The share's mountpoint: the host's files, not the board's.
                continue
            try:
                s = os.stat(p)
                z = s[6]
                m = s[8]
            except OSError:
                z = e[3] if len(e) > 3 else 0
                m = 0
            k = "d" if e[1] & 0x4000 else "f"
            print(k, z, m, Q(e[0]))
            if a[1] == "1" and k == "d":
                try:
                    p.decode()
                    t.append(p)
                except UnicodeError:
                    pass
    print("K")


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


# A small file whose GET measures binary chunks (board/mod.rs
# `probe_file`): the smallest file at the root of 1 to the first field's
# bytes, `F <size> 0 <hex name>`, then `K`. One program where a stat of
# boot.py, a listing and a stat of our probe file were three (the
# listing's program alone is 1 KB, eight raw-paste windows). With a
# second field, `stat`'s answer for that path comes first: a download's
# stat and its probe in one program.
def probe(a):
    import os, binascii

    if a[1:]:
        try:
            s = os.stat(a[1])
            print("S", s[0], s[6], s[8])
        except OSError as e:
            print("E", e.args[0])
    b = (int(a[0]) + 1,)
    try:
        for e in os.ilistdir("/"):
            s = os.stat("/" + e[0])
            if s[0] & 0x8000 and 0 < s[6] < b[0]:
                b = (s[6], e[0])
    except Exception:
        pass
    if b[1:]:
        print("F", b[0], 0, binascii.hexlify(b[1].encode()).decode())
    print("K")


# `V <statvfs fields>`.
def statvfs(a):
    import os

    try:
        print("V", *os.statvfs(a[0]))
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


# Defines the helpers (the class `_wrm`) from their file on the board's
# flash (fields: its path, its first line, its size), with buffers sized
# from the free heap: `M <free before>`, then `M <free after>`; or `N` if
# the file is missing or not this version's (it is sent, and this runs
# again). The file is read a piece at a time, by its second line (see
# `helpers_file` in snippets.rs): read whole it took one block of 5 KB,
# which a heap a person's program had left in pieces did not have with
# 50 KB free. Each function kept on flash is compiled and dropped first,
# so that every name it uses is interned now and counted here, not at its
# first call (a save must intern nothing); then the class alone is
# defined. The file is closed before the class is compiled.
def load(a):
    import gc, os

    gc.collect()
    n = gc.mem_free()
    print("M", n)
    s = None
    try:
        f = open(a[0])
        try:
            v = f.readline()
            I = f.readline()
            if os.stat(a[0])[6] == int(a[2]) and v[:-1] == a[1]:
                k = I.split()
                I = len(v) + len(I)

                # A frame of its own: what it compiled is not kept alive
                # by this one's stack when the heap is measured (and no
                # closure: its cells would stay). A function a heap in
                # pieces cannot compile now interns its names at its first
                # call instead (a 48K board failed every first contact
                # here, for 2 KB in one piece).
                def c(f, k, i):
                    f.seek(int(k[i]))
                    try: exec(f.read(int(k[i + 1])), {})
                    except MemoryError: pass

                for i in range(2, len(k), 3):
                    c(f, k, i)
                f.seek(I)
                s = f.read(int(k[2]) - I)
        finally: f.close()
    except OSError: pass
    # (Bodies on their line here and below: the program stays within
    # the raw-paste windows it took before the lines that follow.)
    if not s: print("N"); return
    f = v = I = k = None
    # Without line numbers (nothing of ours shows a traceback): 64-96 B
    # less resident. (`c` is free again: the function above is dropped.)
    import micropython as c

    o = c.opt_level()
    c.opt_level(3)
    try: exec(s, globals())
    finally: c.opt_level(o)
    s = None
    # The version as a literal (HELPERS_VERSION, filled in by Rust), which
    # the check every connection sends interns anyway: a str made here
    # would stay on the heap.
    _wrm.V = HELPERS_VERSION
    b = 1024
    while 128 < b > n >> 5: b //= 2
    _wrm.B = b
    # For `status` on later connections (`ram`): what is kept, a small
    # int (no heap). Set before the heap is measured: the slot it adds
    # grew the class's dict by 128 bytes, unseen when set after.
    _wrm.R = n
    gc.collect()
    b = gc.mem_free()
    print("M", b)
    _wrm.R -= b


# The board's free heap after a collection, `M <bytes>`, then, if the
# helpers are defined, what `load` measured they keep and their buffer:
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
