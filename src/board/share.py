# The board's /remote (webrepl-mount share): a VFS whose every call asks the
# host, over the REPL's own channel (session/share.rs has the wire format).
# Pasted once per boot, as one class; the host mounts it with SHARE_MOUNT.
# Ctrl-C is off only while a request has the stdin (its bytes are data).
class _WRFS:
    def __init__(s, ro):
        import sys, select, os, time

        # Bound now: an import inside a request would look in /remote first.
        s.os = os
        s.tm = time
        s.i = sys.stdin.buffer
        s.o = sys.stdout.buffer
        s.p = select.poll()
        s.p.register(s.i, 1)
        s.n = 0
        s.ro = ro
        s.d = "/"

    def q(s, c, a=b""):
        import micropython

        if s.ro and c in (99, 119, 109, 120, 88, 110):
            raise OSError(30)
        t = s.t()
        if t:
            return s.z(t, c, a)
        micropython.kbd_intr(-1)
        try:
            s.n = (s.n + 1) & 255
            s.o.write(b"\x18S" + bytes((s.n, c)) + len(a).to_bytes(2, "little") + a)
            h = bytearray(8)
            k = 0
            x = 0
            y = bytearray()
            w = (0x18, 65, s.n)
            # Keys that were on their way when we asked come first: skipped.
            while k < 3:
                s.w()
                s.i.readinto(memoryview(h)[k : k + 1])
                if h[k] == w[k]:
                    k += 1
                elif h[k] == 0x18:
                    h[0] = 0x18
                    k = 1
                else:
                    # A key typed ahead: given back to the host after.
                    x |= h[k] == 3
                    if len(y) < 512:
                        y.append(h[k])
                    k = 0
            s.w()
            s.i.readinto(memoryview(h)[3:8])
            n = int.from_bytes(h[4:8], "little")
            b = bytearray(n + 1)
            m = memoryview(b)
            k = 0
            c = 64 - 8
            while k <= n:
                e = min(c, n + 1)
                s.w()
                s.i.readinto(m[k:e])
                k = e
                if k == c and k <= n:
                    s.o.write(b"\x18K")
                    c += 64
            if y and not x:
                s.o.write(b"\x18S\0k" + len(y).to_bytes(2, "little") + y)
            if b[n] != 90:
                raise OSError(5)
        finally:
            micropython.kbd_intr(3)
        # A Ctrl-C the host carried in the answer (255), or one typed as the
        # board asked.
        if x or h[3] == 255:
            raise KeyboardInterrupt
        if h[3] == 19:
            s.u()
        if h[3]:
            raise OSError(h[3])
        return m[:n]

    # The WebREPL stream, taken from the REPL for one request: its answer
    # is then read straight from the socket in one piece (TCP paces the
    # host), not through the REPL's input ring (about 256 bytes, which
    # drops what does not fit). None where the REPL is not on dupterm.
    def t(s):
        try:
            return s.os.dupterm(None, 0)
        except Exception:
            return None

    def z(s, t, c, a):
        import micropython

        os = s.os
        micropython.kbd_intr(-1)
        try:
            s.n = (s.n + 1) & 255
            t.write(b"\x18T" + bytes((s.n, c)) + len(a).to_bytes(2, "little") + a)
            h = bytearray(8)
            m = memoryview(h)
            k = 0
            x = 0
            y = bytearray()
            w = (0x18, 65, s.n)
            # Keys on their way when we asked come first: given back after.
            while k < 3:
                s.r(t, m[k : k + 1])
                if h[k] == w[k]:
                    k += 1
                elif h[k] == 0x18:
                    h[0] = 0x18
                    k = 1
                else:
                    x |= h[k] == 3
                    if len(y) < 512:
                        y.append(h[k])
                    k = 0
            s.r(t, m[3:8])
            n = int.from_bytes(h[4:8], "little")
            try:
                b = bytearray(n + 1)
            except MemoryError:
                # The answer is read all the same, 8 bytes at a time (left
                # in the socket, it would reach the REPL as keys), then
                # the read fails.
                n += 1
                while n > 0:
                    s.r(t, m[: min(8, n)])
                    n -= 8
                t.write(b"\x18K")
                raise OSError(12)
            m = memoryview(b)
            s.r(t, m)
            if y and not x:
                t.write(b"\x18S\0k" + len(y).to_bytes(2, "little") + y)
            # Read: keys may come again (they go to the ring from now).
            t.write(b"\x18K")
            if b[n] != 90:
                raise OSError(5)
        finally:
            # Never left detached. A client that came while we read (the old
            # link died) keeps the REPL; keys that came meanwhile are pulled
            # into the ring now, not at the next packet.
            p = os.dupterm(t, 0)
            if p:
                os.dupterm(p, 0)
            if hasattr(os, "dupterm_notify"):
                os.dupterm_notify(None)
            micropython.kbd_intr(3)
        if x or h[3] == 255:
            raise KeyboardInterrupt
        if h[3] == 19:
            s.u()
        if h[3]:
            raise OSError(h[3])
        return m[:n]

    # Fills `m` from the stream (non-blocking: None until bytes come).
    def r(s, t, m):
        time = s.tm
        k = 0
        v = m
        e = time.ticks_ms()
        while k < len(m):
            j = t.readinto(v)
            if j is None:
                if time.ticks_diff(time.ticks_ms(), e) > 15000:
                    s.gu(t)
                time.sleep_ms(1)
            elif j:
                k += j
                v = m[k:]
                e = time.ticks_ms()
            else:
                raise OSError(5)

    def w(s):
        # A host gone for good must not leave the board waiting with
        # Ctrl-C off.
        if not s.p.poll(15000):
            s.gu(s.o)

    # We stop waiting: the host is told, so that an answer it gives later
    # (a host stopped, then resumed) is not sent to be read as keys.
    def gu(s, o):
        o.write(b"\x18S" + bytes((s.n, 103, 0, 0)))
        s.u()

    # The host is gone: no answer within the bound, or a client that shares
    # nothing (ENODEV: the share was killed, the tool connected again).
    # /remote goes, and the current directory back to /, as after
    # `share`'s end: the board is the person's again, not waiting 15 s
    # on each import.
    def u(s):
        os = s.os
        try:
            if os.getcwd().startswith("/remote"):
                os.chdir("/")
            os.umount("/remote")
        except Exception:
            pass
        raise OSError(19)

    def a(s, p):
        # A bytes path (os.stat(b"/remote/x")) reaches us as bytes.
        if isinstance(p, bytes):
            p = p.decode()
        if p[:1] != "/":
            p = s.d.rstrip("/") + "/" + p
        return p.encode()

    # While mounted, our own listings of / leave /remote out (`walk` in
    # programs.py): the mount, `ls` and `tree` show the board's files.
    def mount(s, ro, mk):
        _WRFS.m = 1

    def umount(s):
        _WRFS.m = 0

    def chdir(s, p):
        p = s.a(p).decode()
        if s.stat(p)[0] & 0x4000 == 0:
            raise OSError(20)
        s.d = p

    def getcwd(s):
        return s.d

    def stat(s, p):
        t = s.q(115, s.a(p))
        i = int.from_bytes
        return (i(t[0:4], "little"), 0, 0, 0, 0, 0, i(t[4:8], "little"), 0, i(t[8:12], "little"), 0)

    def sz(s, b):
        return int.from_bytes(s.q(115, b)[4:8], "little")

    def statvfs(s, p):
        return (512, 512, 0, 0, 0, 0, 0, 0, 0, 255)

    # In pages: the first byte of each says whether another follows.
    def ilistdir(s, p):
        p = s.a(p)
        i = 0
        while 1:
            t = s.q(108, i.to_bytes(4, "little") + p)
            k = 1
            while k < len(t):
                n = t[k + 1]
                yield (str(t[k + 2 : k + 2 + n], "utf-8"), 0x4000 if t[k] == 100 else 0x8000, 0)
                k += 2 + n
                i += 1
            if not t[0]:
                return

    def mkdir(s, p):
        s.q(109, s.a(p))

    def remove(s, p):
        s.q(120, s.a(p))

    def rmdir(s, p):
        s.q(88, s.a(p))

    def rename(s, a, b):
        s.q(110, s.a(a) + b"\0" + s.a(b))

    def open(s, p, m):
        return _WRFS.F(s, s.a(p), m)

    class F(__import__("io").IOBase):
        def __init__(f, v, p, m):
            f.v = v
            f.p = p
            f.t = "b" not in m
            f.b = b""
            f.k = 0
            f.x = 0
            f.w = "r" not in m or "+" in m
            f.a = "a" in m
            if "w" in m:
                v.q(99, p)
            elif f.a:
                # A log file a program starts: made if missing.
                try:
                    f.x = v.sz(p)
                except OSError:
                    v.q(99, p)
            else:
                # The first piece now: a missing file fails here, as open does.
                f.g()

        def g(f):
            f.b = f.v.q(114, f.x.to_bytes(4, "little") + (4096).to_bytes(4, "little") + f.p)
            f.k = 0

        # Fills `b` unless the file ends: the firmware's import reader
        # takes a short read for the end of the file.
        def readinto(f, b):
            t = 0
            while t < len(b):
                if f.k >= len(f.b):
                    f.g()
                    if not len(f.b):
                        break
                n = min(len(b) - t, len(f.b) - f.k)
                b[t : t + n] = f.b[f.k : f.k + n]
                f.k += n
                f.x += n
                t += n
            return t

        def read(f, n=-1):
            # To the end: one buffer of the right size, no growing copies.
            r = f.rb(n if n >= 0 else max(f.v.sz(f.p) - f.x, 0))
            if not f.t or n < 0:
                return str(r, "utf-8") if f.t else bytes(r)
            # `n` characters: more bytes until as many have begun, and the
            # last one is whole.
            while 1:
                i = len(r) - 1
                while i > 0 and r[i] & 0xC0 == 0x80:
                    i -= 1
                e = 0
                if i >= 0:
                    c = r[i]
                    e = i + (1 if c < 0xC0 else 2 if c < 0xE0 else 3 if c < 0xF0 else 4) - len(r)
                e += n - sum(1 for c in r if c & 0xC0 != 0x80)
                if e <= 0:
                    return str(r, "utf-8")
                m = f.rb(e)
                if not m:
                    return str(r, "utf-8")
                r += m

        def rb(f, n):
            r = bytearray(n)
            k = f.readinto(r)
            return r[:k] if k < n else r

        # At most `n` characters (bytes if binary), a character kept whole.
        def readline(f, n=-1):
            r = bytearray()
            i = 0
            while 1:
                if f.k >= len(f.b):
                    f.g()
                    if not len(f.b):
                        break
                c = f.b[f.k]
                s = not f.t or c & 0xC0 != 0x80
                if s and i == n:
                    break
                i += s
                f.k += 1
                f.x += 1
                r.append(c)
                if c == 10:
                    break
            return str(r, "utf-8") if f.t else bytes(r)

        def readlines(f):
            return [l for l in f]

        def __iter__(f):
            return f

        def __next__(f):
            l = f.readline()
            if not l:
                raise StopIteration
            return l

        def seek(f, o, w=0):
            f.x = max((0, f.x, f.v.sz(f.p))[w] + o, 0)
            f.b = b""
            f.k = 0
            return f.x

        def tell(f):
            return f.x

        def flush(f):
            pass

        def write(f, b):
            if not f.w:
                raise OSError(9)
            b = b.encode() if isinstance(b, str) else bytes(b)
            if f.a:
                # Appends go at the end, wherever a seek left the place.
                f.x = f.v.sz(f.p)
            for k in range(0, len(b), 4096):
                f.v.q(119, f.x.to_bytes(4, "little") + f.p + b"\0" + b[k : k + 4096])
                f.x += len(b[k : k + 4096])
            return len(b)

        def ioctl(f, r, a):
            return 0

        def close(f):
            pass

        def __enter__(f):
            return f

        def __exit__(f, *a):
            pass
