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


# The entries of a directory (and below it, if the second field is 1),
# `D|F <size> <mtime> <hex path>` each, then `K`; a directory that cannot
# be listed is `E <errno> <hex path>`. No recursion: a stack of names is
# all the board holds. Paths are bytes: a name that is not UTF-8 would
# raise UnicodeError as a str; it is listed (the tool skips it) but not
# walked into.
def walk(a):
    import os, binascii

    def H(s):
        return binascii.hexlify(s).decode()

    t = [a[0].encode()]
    while t:
        d = t.pop()
        try:
            it = os.ilistdir(d)
        except OSError as e:
            print("E", e.args[0], H(d))
            continue
        for e in it:
            p = d.rstrip(b"/") + b"/" + e[0]
            try:
                s = os.stat(p)
                z = s[6]
                m = s[8]
            except OSError:
                z = e[3] if len(e) > 3 else 0
                m = 0
            k = "D" if e[1] & 0x4000 else "F"
            print(k, z, m, H(p))
            if a[1] == "1" and k == "D":
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
# again). The file is read whole and closed before it is compiled.
def load(a):
    import gc

    gc.collect()
    n = gc.mem_free()
    print("M", n)
    try:
        f = open(a[0])
        s = f.read()
        f.close()
    except OSError:
        s = ""
    if len(s) != int(a[2]) or not s.startswith(a[1]):
        print("N")
        return
    exec(s, globals())
    s = None
    b = 1024
    while b > 128 and b * 32 > n:
        b //= 2
    _wrm.B = b
    gc.collect()
    print("M", gc.mem_free())


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


# Bytes [start, start + count) of a file (fields: path, start, count) as
# base64 (`F`, lines, `.`), then `R <size> <mtime> <hex>`: the file's size
# and mtime now, and the CRC-32 of the bytes sent (SHA-256 on firmware
# without crc32), so that a range is checked as a whole file is.
def read_range(a):
    import os, binascii

    try:
        s = os.stat(a[0])
        f = open(a[0], "rb")
    except OSError as e:
        print("E", e.args[0])
        return
    C = getattr(binascii, "crc32", None)
    d = None
    if not C:
        import hashlib

        d = hashlib.sha256()
    h = 0
    n = int(a[2])
    m = bytearray(384)
    print("F")
    try:
        f.seek(int(a[1]))
        while n > 0:
            k = f.readinto(m)
            if not k:
                break
            v = memoryview(m)[: min(k, n)]
            n -= len(v)
            if C:
                h = C(v, h)
            else:
                d.update(v)
            print(binascii.b2a_base64(v).decode(), end="")
    except OSError as e:
        f.close()
        print(".")
        print("E", e.args[0])
        return
    f.close()
    print(".")
    print("R", s[6], s[8], binascii.hexlify(d.digest()).decode() if d else "%08x" % (h & 0xFFFFFFFF))


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


# Builds files from deltas (board/delta.rs; a one-off program: only a save with a base uses it). Fields per file: the
# delta's part D, the target T (the base), the part P to build (full
# paths), numbers: D's size, slices after its first, slice size, the
# base's size and CRC, P's size and CRC. `K` each, D removed; else
# `E <errno>` (116: T is not the base, never used then; 5: P is not
# what was sent), P removed. T is only read.
def build_from_delta(x):
    import os, binascii

    L = x
    C = getattr(binascii, "crc32", None)
    m = bytearray(_wrm.B)
    for i in range(0, len(L) - 3, 4):
        D = L[i]
        T = L[i + 1]
        P = L[i + 2]
        q, k, s, bn, bc, n, c = [int(v) for v in L[i + 3].split()]
        f = g = b = None
        try:
            if not C:
                raise OSError(95)
            if k and _wrm.j(D, k, s, q) or os.stat(D)[6] != q:
                raise OSError(5)
            if os.stat(T)[6] != bn:
                raise OSError(116)
            b = open(T, "rb")
            h = 0
            while 1:
                r = b.readinto(m)
                if not r:
                    break
                h = C(memoryview(m)[:r], h)
            if h & 0xFFFFFFFF != bc:
                raise OSError(116)
            f = open(D, "rb")
            g = open(P, "wb")
            h = 0
            z = 0
            while 1:
                o = f.read(9)
                if not o:
                    break
                if len(o) < 9:
                    raise OSError(5)
                a = int.from_bytes(o[1:5], "little")
                e = int.from_bytes(o[5:9], "little")
                if o[0] == 67:
                    b.seek(a)
                    S = b
                else:
                    e = a
                    S = f
                while e:
                    r = S.readinto(memoryview(m)[: min(e, len(m))])
                    if not r:
                        raise OSError(5)
                    v = memoryview(m)[:r]
                    g.write(v)
                    h = C(v, h)
                    z += r
                    e -= r
            g.close()
            g = None
            if z != n or h & 0xFFFFFFFF != c:
                raise OSError(5)
            f.close()
            f = None
            os.remove(D)
            print("K")
        except Exception as e:
            if g:
                g.close()
                g = None
            try:
                os.remove(P)
            except OSError:
                pass
            e = e.args[0] if type(e) is OSError else 12 if type(e) is MemoryError else 5
            print("E", e)
        for h in (f, g, b):
            if h:
                h.close()
    _wrm.c()
