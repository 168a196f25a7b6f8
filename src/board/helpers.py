# The helpers the hot programs call (board/mod.rs, `define_helpers`):
# defined once per boot as one class, `_wrm`, the only name the tool
# leaves in the board's REPL. Its functions are called through the class,
# as `_wrm.go(b'...')` (Rust: `snippets::helper_call`).
#
# This file goes to the board whole, by one binary PUT, as
# /.webrepl-mount-helpers (comments and blank lines left out, indentation
# one space a level, a first line with the CRC of the text), and the
# loader (loader.py, in the same file) defines the class from it: a new helper is one more `def` in
# the class, four spaces in, calling its siblings as `_wrm.name`; nothing
# else to register. Any change to this file changes the CRC, so boards get
# the new file at their next first contact. Keep helpers few and small:
# the class stays in the board's RAM (`status` shows how much; goal
# <= 2 KB). Functions used once per mount or per big operation go after
# the class, at the top level: they stay on flash, and `_wrm.l("name",
# ...)` reads one from the file, compiles it for that call alone and drops
# it (no byte more on the link; Rust's `helper_call` calls them so). Call
# them only through `_wrm.l`, from the class or from programs.py.
#
# Every argument that changes from one call to the next (names, sizes,
# CRCs) arrives in ONE bytes literal, fields ended by NUL (Rust:
# `snippets::args`), padded past 10 bytes: MicroPython interns a short
# literal of compiled code as a qstr, which is never freed.
#
# Names Rust fills in when it loads this file: PART_PREFIX (part files'
# names start with it), CONFLICT_SUFFIX (the data of an upload whose
# target changed goes beside it under this suffix).
#
# Answers, a line each (parsed in board/answer.rs): `K`, `E <errno>`, and
# what each function says below. Nothing raises but MemoryError.


class _wrm:
    # Buffer size in bytes: set from the board's free heap (Rust).
    B = 512

    def a(x):
        # The fields of an argument literal. (No comprehension: that is a
        # function of its own, resident too.)
        return list(filter(None, x.decode().split("\0")))

    # A collection after work that allocates: the heap is left as found.
    # (`gc.collect` itself: a function of ours would cost 200 B resident.)
    c = __import__("gc").collect

    # Files of one directory as base64 (`F`, lines, `.`; or `E <errno>`),
    # then `K`. Fields: the directory (ending in /), then names.
    # On flash (`_wrm.l`).
    def r(x):
        import binascii

        L = _wrm.a(x)
        m = bytearray(_wrm.B // 4 * 3)
        for n in L[1:]:
            try:
                f = open(L[0] + n, "rb")
            except OSError as e:
                print("E", e.args[0])
                continue
            print("F")
            while 1:
                k = f.readinto(m)
                if not k:
                    break
                print(binascii.b2a_base64(memoryview(m)[:k]).decode(), end="")
            f.close()
            print(".")
        print("K")
        _wrm.c()

    # Joins the k slices after part P (`P.1`...; each s bytes but the
    # last, n in all) onto it; or the indexes of the short ones, nothing
    # joined. Slices `js` joined in steps are in P already: P then holds
    # slices 0..J whole, (J + 1) * s bytes, and their files are gone (one
    # left by a cut between its append and its removal goes now). P of any
    # other size (short, or a join cut short) goes again, with every slice
    # whose file is not whole (joined ones are gone).
    # Names are made one at a time: a list of a 1 MB upload's 256 names
    # took 20 KB, more than a fragmented 64 KB heap had in one piece.
    # On flash (`_wrm.l`).
    def j(P, k, s, n):
        import os

        def z(i):
            try:
                return os.stat(P + "." + str(i) if i else P)[6]
            except OSError:
                return -1

        c = z(0)
        J = k if c == n else c // s - 1 if c >= s and c % s == 0 and c < n else -1
        B = [] if J >= 0 else [0]
        for i in range(1, k + 1):
            c = z(i)
            if i <= J:
                if c >= 0:
                    os.remove(P + "." + str(i))
            elif c != (s if i < k else n - k * s):
                B.append(i)
        if B or J >= k:
            return B
        _wrm.l("ap", P, J + 1, k, s, n, 0)
        return []

    # Appends slices i..k of part P (s bytes each but the last, n in all)
    # onto it while each is whole, for about t ms if t: the index of the
    # next slice to join. Each is closed before its slice file goes: flash
    # keeps what a file holds at its close.
    # On flash (`_wrm.l`).
    def ap(P, i, k, s, n, t):
        import os, time

        T = time.ticks_ms()
        m = bytearray(_wrm.B)
        while i <= k:
            Q = P + "." + str(i)
            try:
                if os.stat(Q)[6] != (s if i < k else n - k * s):
                    break
            except OSError:
                break
            # Closed however the write ends: a full flash keeps an open
            # file's blocks, and the free room it reports is 0.
            with open(P, "ab") as f, open(Q, "rb") as g:
                while 1:
                    r = g.readinto(m)
                    if not r:
                        break
                    f.write(memoryview(m)[:r])
            os.remove(Q)
            i += 1
            if t and time.ticks_diff(time.ticks_ms(), T) >= t:
                break
        return i

    # A step of the join of an upload's k slices after part P (s bytes
    # each but the last, n in all), so that no program of ours holds the
    # REPL for a whole file's join (an ESP32 rewrites 300 KB of flash in
    # seconds while a person's keys wait): the slices after those P holds
    # while each is whole, for about t ms. `J <next slice>` (0: P is not
    # slices whole); what is left is the finishing program's (`j`).
    # Fields: P, k, s, n, t.
    # On flash (`_wrm.l`).
    def js(x):
        import os

        P, k, s, n, t = _wrm.a(x)
        k, s, n, t = int(k), int(s), int(n), int(t)
        try:
            c = os.stat(P)[6]
        except OSError:
            c = 0
        i = k + 1 if c == n else c // s if c >= s and c % s == 0 else 0
        print("J", _wrm.l("ap", P, i, k, s, n, t) if 0 < i <= k else i)

    # Finishes a batch of uploads, one answer each. Fields: the CRC-32 of
    # all the files end to end, then per file its target, its part (a
    # bare id: PART_PREFIX + id beside the target), and numbers: size,
    # slices after the first, slice size, then the target's base (none:
    # any; -1: absent; size mtime). Short slices: `P <free> <index>...`;
    # then the CRC of each part; only if the batch's is right is each
    # finished (below), else `V <crc>` each (a short one: its finish's
    # answer).
    def go(x):
        import os, binascii

        L = _wrm.a(x)
        C = getattr(binascii, "crc32", None)
        Q = []
        R = []
        x = 0
        a = 1
        m = bytearray(_wrm.B)
        for i in range(1, len(L) - 2, 3):
            T = L[i]
            P = L[i + 1]
            if "/" not in P:
                P = T[: T.rfind("/") + 1] + PART_PREFIX + P
            n, k, s, *b = [int(v) for v in L[i + 2].split()]
            b = None if not b else () if b[0] < 0 else tuple(b)
            Q.append((P, T, n, b))
            # Blocks kept shallow: nested deeper, the class needs a bigger
            # block of the heap to compile (MicroPython's parser stack
            # grows with the depth).
            h = None
            try:
                if k:
                    B = _wrm.l("j", P, k, s, n)
                if k and B:
                    R.append(B)
                    a = 0
                    continue
                z = os.stat(P)
                if not C or z[6] != n:
                    raise OSError
                h = 0
                f = open(P, "rb")
                r = 1
                while r:
                    r = f.readinto(m)
                    v = memoryview(m)[:r]
                    h = C(v, h)
                    x = C(v, x)
                f.close()
            except OSError:
                h = None
            if h is None:
                a = 0
            R.append(h)
        a = a and x & 0xFFFFFFFF == int(L[0])
        for (P, T, n, b), h in zip(Q, R):
            if type(h) is list:
                v = os.statvfs("/")
                print("P", v[0] * v[4], *h)
                continue
            if C and not a and h is not None:
                print("V %08x" % (h & 0xFFFFFFFF))
                continue
            # Renames P onto T once it has size n and T is still b (None:
            # no check; (): absent; (size, mtime): unchanged, or gone):
            # `K <mtime>`; T changed: beside it, `C <mtime> <T size> <T
            # mtime>`; P short: removed, `Z <size kept> <free bytes>`. (In
            # the loop, not a function of its own: one costs ~100 B
            # resident.)
            try:
                z = os.stat(P)[6]
                if z != n:
                    os.remove(P)
                    v = os.statvfs("/")
                    print("Z", z, v[0] * v[4])
                    continue
                c = b
                if b is not None:
                    try:
                        s = os.stat(T)
                        c = s[6], s[8]
                    except OSError:
                        pass
                if c != b:
                    D = T + CONFLICT_SUFFIX
                    try:
                        os.remove(D)
                    except OSError:
                        pass
                    os.rename(P, D)
                    print("C", os.stat(D)[8], *c)
                    continue
                try:
                    os.rename(P, T)
                except OSError:
                    os.remove(T)
                    os.rename(P, T)
                print("K", os.stat(T)[8])
            except OSError as e:
                print("E", e.args[0])
        _wrm.c()

    # How each file compares to the size we have: `N` (missing), `S`
    # (another size) or `H <digest>`, after `A <algorithm>` (sha256, or
    # crc32 on firmware without it); then `K`. `I` yields (path, size).
    # On flash (`_wrm.l`).
    def h(I):
        import os, binascii

        try:
            import hashlib

            hashlib.sha256
            A = "sha256"
        except (ImportError, AttributeError):
            A = "crc32"
        print("A", A)
        m = bytearray(_wrm.B)
        for p, n in I:
            try:
                s = os.stat(p)
            except OSError:
                print("N")
                continue
            if s[6] != n:
                print("S")
                continue
            f = open(p, "rb")
            c = 0
            d = hashlib.sha256() if A == "sha256" else None
            while 1:
                r = f.readinto(m)
                if not r:
                    break
                if d:
                    d.update(memoryview(m)[:r])
                else:
                    c = binascii.crc32(memoryview(m)[:r], c)
            f.close()
            print("H", binascii.hexlify(d.digest()).decode() if d else "%08x" % (c & 0xFFFFFFFF))
        print("K")
        _wrm.c()

    # A `cp` from the board's stat of its source (`S <mode> <size>
    # <mtime>`, or `E <errno>`), then the smallest file at the root of 1
    # to `most` bytes, whose GET measures the binary channel before its
    # first large download (`F <size> 0 <hex name>`), the pace (µs a
    # chunk) such a GET showed an earlier connection (`G <µs>`, kept in
    # `_wrm.g` until the board resets), then `K`. Fields:
    # most, then the path (none: the small file alone). A helper, not a
    # program: pasted, the program (506 B) took four raw-paste windows, a
    # round trip each, 60-95 ms of a 0.25 s `cp` on a 10 ms link.
    # On flash (`_wrm.l`).
    def p(x):
        import os, binascii

        a = _wrm.a(x)
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
        if getattr(_wrm, "g", 0):
            print("G", _wrm.g)
        print("K")
        _wrm.c()

    # `h` of the fields: path, size, path, size...
    # On flash (`_wrm.l`).
    def hs(x):
        L = _wrm.a(x)
        _wrm.l("h", ((L[i], int(L[i + 1])) for i in range(0, len(L) - 1, 2)))

    # `h` of a list file L of n bytes (lines `<hex path> <size>`), read
    # a line at a time and removed.
    # On flash (`_wrm.l`).
    def hl(x):
        import os, binascii

        L, n = _wrm.a(x)
        try:
            if os.stat(L)[6] != int(n):
                os.remove(L)
                print("E", 5)
                return
            f = open(L, "rb")
        except OSError as e:
            print("E", e.args[0])
            return

        def I():
            while 1:
                l = f.readline()
                if not l:
                    break
                p, z = l.split()
                yield binascii.unhexlify(p).decode(), int(z)

        try:
            _wrm.l("h", I())
        finally:
            f.close()
            os.remove(L)

    # Inflates uploads sent compressed (from flash: a program pasted for
    # every batch would cost a round trip per 128 bytes). Fields per file: the zlib stream's
    # part Q (a full path), the part P to inflate it into and the target T
    # (or `/`: none), each a name in Q's directory when it has no `/`
    # (P: the part's id), numbers: Q's size, slices after its first, slice size, Q's
    # CRC, then P's size and CRC, and the window's bits. `K <ms>` each, Q
    # removed (ms: the board's time, which tells whether inflating pays);
    # with a T (a copy that checks no base), P renamed onto it too and
    # `K <mtime> <ms>`: P was checked here, and a finishing program of its
    # own would cost a round trip and its names again. Slices of Q short:
    # `P <free> <slices>`, all kept. Else `E <errno>` (5: not the bytes
    # sent), P and Q removed, T untouched.
    # On flash (`_wrm.l`).
    def z(x):
        import os, binascii, time

        L = _wrm.a(x)
        C = getattr(binascii, "crc32", None)
        m = bytearray(_wrm.B)
        for i in range(0, len(L) - 3, 4):
            Q = L[i]
            D = Q[: Q.rfind("/") + 1]
            P = L[i + 1]
            if "/" not in P:
                P = D + PART_PREFIX + P
            T = L[i + 2]
            if "/" not in T:
                T = D + T
            q, k, s, d, n, c, w = [int(v) for v in L[i + 3].split()]
            t = time.ticks_ms()
            f = g = None
            try:
                try:
                    import deflate

                    D = deflate.DeflateIO
                    a = (deflate.ZLIB, w)
                except ImportError:
                    try:
                        import zlib as D
                    except ImportError:
                        import uzlib as D
                    D = D.DecompIO
                    a = (w,)
                # Slices short: said, and kept for the mend.
                B = k and _wrm.l("j", Q, k, s, q)
                if B:
                    v = os.statvfs("/")
                    print("P", v[0] * v[4], *B)
                    continue
                if os.stat(Q)[6] != q:
                    raise OSError(5)
                f = open(Q, "rb")
                if C:
                    h = 0
                    while 1:
                        r = f.readinto(m)
                        if not r:
                            break
                        h = C(memoryview(m)[:r], h)
                    if h & 0xFFFFFFFF != d:
                        raise OSError(5)
                    f.seek(0)
                g = open(P, "wb")
                I = D(f, *a)
                h = 0
                z = 0
                while 1:
                    r = I.readinto(m)
                    if not r:
                        break
                    v = memoryview(m)[:r]
                    g.write(v)
                    if C:
                        h = C(v, h)
                    z += r
                g.close()
                g = None
                f.close()
                f = None
                if z != n or C and h & 0xFFFFFFFF != c:
                    raise OSError(5)
                os.remove(Q)
                t = time.ticks_diff(time.ticks_ms(), t)
                if T == "/":
                    print("K", t)
                    continue
                try:
                    os.rename(P, T)
                except OSError:
                    os.remove(T)
                    os.rename(P, T)
                print("K", os.stat(T)[8], t)
            except Exception as e:
                for h in (f, g):
                    if h:
                        h.close()
                # Q too: the file goes raw next, and on a full flash Q's
                # space is what it needs.
                for h in (P, Q):
                    try:
                        os.remove(h)
                    except OSError:
                        pass
                e = e.args[0] if type(e) is OSError else 12 if type(e) is MemoryError else 5
                print("E", e)
        _wrm.c()

    # `mkdir -p` of each field, refusing to walk through a file: `K`, or
    # `E <errno> <hex path>` for the first that fails (`mkdirs` of
    # programs.py in one short call: pasted, it took four raw-paste
    # windows, a round trip each).
    # On flash (`_wrm.l`).
    def mk(x):
        import os, binascii

        for p in _wrm.a(x):
            q = ""
            r = 0
            for c in p.split("/"):
                if not c:
                    continue
                q += "/" + c
                try:
                    os.mkdir(q)
                except OSError as e:
                    r = e.args[0]
                    if r == 17:
                        try:
                            r = 0 if os.stat(q)[0] & 0x4000 else 20
                        except OSError as e:
                            r = e.args[0]
                    if r:
                        break
            if r:
                print("E", r, binascii.hexlify(p.encode()).decode())
                _wrm.c()
                return
        print("K")
        _wrm.c()

    # What uploads can be inflated with, and the free heap after a
    # collection: `I <2: deflate.DeflateIO, 1: zlib/uzlib.DecompIO, 0:
    # none> <bytes>` (`inflater` of programs.py in one short call:
    # pasted, it took three raw-paste windows, a round trip each).
    # On flash (`_wrm.l`).
    def inf(x):
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

    # Lands a bundle: many small files of a copy in one upload, one zlib
    # stream (a PUT and a program for each cost more than their data).
    # Fields: the bundle's part Q, then numbers: its size, slices after its
    # first, slice size, CRC, and the window's bits. Q holds a line with
    # the length of a header, the header (per file: target, `size CRC`,
    # NUL-separated), then the files end to end, compressed. Q short or
    # garbled: `P <free> <slices>`, nothing done. Else per file, in order:
    # inflated into Q's id + `z` + its index beside its target, checked,
    # renamed onto it, `K <mtime> <ms>`; or `E <errno>` for it and each
    # after it. Q removed.
    # On flash (`_wrm.l`).
    def b(x):
        import os, binascii, time

        L = _wrm.a(x)
        Q = L[0]
        q, k, s, d, w = [int(v) for v in L[1].split()]
        C = getattr(binascii, "crc32", None)
        m = bytearray(_wrm.B)
        B = _wrm.l("j", Q, k, s, q) if k else 0
        if not B and os.stat(Q)[6] != q:
            B = [0]
        f = g = P = None
        if not B and C:
            f = open(Q, "rb")
            h = 0
            while 1:
                r = f.readinto(m)
                if not r:
                    break
                h = C(memoryview(m)[:r], h)
            f.close()
            if h & 0xFFFFFFFF != d:
                B = list(range(k + 1))
        if B:
            v = os.statvfs("/")
            print("P", v[0] * v[4], *B)
            return
        I = Q[Q.rfind("/") + 1 + len(PART_PREFIX) :] + "z"
        e = i = 0
        try:
            f = open(Q, "rb")
            H = f.read(int(f.readline())).decode().split("\0")
            try:
                import deflate

                D = deflate.DeflateIO(f, deflate.ZLIB, w)
            except ImportError:
                try:
                    import zlib as D
                except ImportError:
                    import uzlib as D
                D = D.DecompIO(f, w)
            for i in range(0, len(H) - 1, 2):
                t = time.ticks_ms()
                T = H[i]
                n, c = [int(v) for v in H[i + 1].split()]
                P = T[: T.rfind("/") + 1] + PART_PREFIX + I + str(i // 2)
                g = open(P, "wb")
                h = z = 0
                while z < n:
                    r = D.readinto(memoryview(m)[: min(len(m), n - z)])
                    if not r:
                        break
                    v = memoryview(m)[:r]
                    g.write(v)
                    if C:
                        h = C(v, h)
                    z += r
                g.close()
                g = None
                if z != n or C and h & 0xFFFFFFFF != c:
                    raise OSError(5)
                try:
                    os.rename(P, T)
                except OSError:
                    os.remove(T)
                    os.rename(P, T)
                P = None
                print("K", os.stat(T)[8], time.ticks_diff(time.ticks_ms(), t))
        except Exception as x:
            e = x.args[0] if type(x) is OSError else 12 if type(x) is MemoryError else 5
        for h in (f, g):
            if h:
                h.close()
        for h in (P, Q):
            try:
                os.remove(h)
            except Exception:
                pass
        if e:
            for i in range(i, len(H) - 1, 2):
                print("E", e)
        _wrm.c()

    # Calls the function n marked "On flash" with a: read from the
    # helpers' file (whose first line the loader kept in V) at the place
    # its second line gives, compiled for this call alone and dropped
    # with it (the names in it were interned by the loader: a call
    # interns nothing). A file gone or another version's raises NameError:
    # the tool sends the file again, defines the class anew and runs the
    # call once more.
    def l(n, *a):
        try:
            f = open(HELPERS_FILE)
            try:
                if f.readline()[:-1] != _wrm.V:
                    raise OSError
                I = f.readline().split()
                i = I.index(n)
                f.seek(int(I[i + 1]))
                s = f.read(int(I[i + 2]))
            finally:
                f.close()
        except (OSError, ValueError):
            raise NameError(n)
        I = None
        d = {"_wrm": _wrm}
        exec(s, d)
        s = None
        return d[n](*a)

    # Bytes [start, start + len) of a file as base64 (`F`, lines, `.`),
    # then `R <size> <mtime> <CRC-32 hex, or sha256 hex>`; or `E <errno>`.
    # Fields: path, start, len. A helper, not a program: a peek at a
    # file's first bytes is one short line to the board (a program of 800
    # bytes took several raw-paste windows, each a round trip behind a
    # download's chunks); on flash, as it is not called by every save.
    # On flash (`_wrm.l`).
    def rr(x):
        import os, binascii

        L = _wrm.a(x)
        try:
            s = os.stat(L[0])
            f = open(L[0], "rb")
        except OSError as e:
            print("E", e.args[0])
            return
        C = getattr(binascii, "crc32", None)
        d = None
        if not C:
            import hashlib

            d = hashlib.sha256()
        h = 0
        n = int(L[2])
        m = bytearray(_wrm.B // 4 * 3)
        print("F")
        try:
            f.seek(int(L[1]))
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
        _wrm.c()

    # Builds files from deltas (board/delta.rs): only a save with a base
    # uses it, so it stays on flash (pasted as a program it was 1.5 KB on
    # the wire per save). Fields per file: the delta's part D, the target
    # T (the base), the part P to build (full paths), numbers: D's size,
    # slices after its first, slice size, the base's size and CRC, P's
    # size and CRC. `K` each, D removed; else `E <errno>` (116: T is not
    # the base, never used then; 5: P is not what was sent), P removed.
    # T is only read.
    # On flash (`_wrm.l`).
    def d(x):
        import os, binascii

        L = _wrm.a(x)
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
                if k and _wrm.l("j", D, k, s, q) or os.stat(D)[6] != q:
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
                for h in (f, g):
                    if h:
                        h.close()
                f = g = None
                # The delta and its slices too: the file goes whole next, and
                # on a full flash their space is what it needs.
                for h in [P, D] + [D + "." + str(j) for j in range(1, k + 1)]:
                    try:
                        os.remove(h)
                    except OSError:
                        pass
                e = e.args[0] if type(e) is OSError else 12 if type(e) is MemoryError else 5
                print("E", e)
            for h in (f, g, b):
                if h:
                    h.close()
        _wrm.c()
