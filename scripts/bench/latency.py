#!/usr/bin/env python3
"""What a person feels on a mounted board while a big file is being read
(or, with `up`, written).

Usage: latency.py WEBREPL_MOUNT MOUNTPOINT BIG UNCACHED2 CACHED NAMEDIR [up]
  BIG        a file on the board not yet read through the mount (the load);
             with `up`, a new file of 200 KB written through the mount
             (close returns once it is on the board)
  UNCACHED2  another one, for the first bytes of `head -c 100`
  CACHED     a small file, read once before the load starts
  NAMEDIR    a directory the snapshot knows, for ls and stat

Starts reading BIG (as `cat` would) and, while that runs, each in its own
thread so that one stuck call does not hide the others: stat and ls of
snapshot entries, reads of the cached file, the echo of lines typed in
`webrepl-mount term` (on a pseudo-terminal), and the first 100 bytes of
UNCACHED2. Prints one line per figure, and how long the read of BIG took.
"""
import os, pty, select, sys, threading, time

wm, mnt, big, unc2, cached, namedir = sys.argv[1:7]
upload = sys.argv[7:8] == ["up"]


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def ms(x):
    return "%.1f" % (x * 1000)


def line(what, v):
    if not v:
        return "  %-28s no sample while the read ran" % what
    return "  %-28s p50 %7s ms  p99 %7s ms  max %7s ms  (%d)" % (
        what, ms(pct(v, .5)), ms(pct(v, .99)), ms(max(v)), len(v))


# The terminal first: attached before the load, so its start is not timed.
pid, fd = pty.fork()
if pid == 0:
    os.execv(wm, [wm, "term", mnt])
seen = bytearray()


def wait_for(text, limit=60.0):
    end = time.time() + limit
    while text.encode() not in seen:
        if time.time() > end:
            raise SystemExit("terminal never showed %r: %r" % (text, bytes(seen[-200:])))
        r, _, _ = select.select([fd], [], [], 0.005)
        if r:
            try:
                seen.extend(os.read(fd, 4096))
            except OSError:
                pass


wait_for("Ctrl-]")
os.write(fd, b"\r")
wait_for(">>> ")
with open(cached, "rb") as f:
    f.read()
names = [os.path.join(namedir, n) for n in sorted(os.listdir(namedir))][:20]

done = threading.Event()
load = {}
stat_t, ls_t, cat_t, echo_t, head_t = [], [], [], [], []


def timed(samples, f):
    t = time.time()
    f()
    if not done.is_set():
        samples.append(time.time() - t)


def reader():
    t = time.time()
    if upload:
        with open(big, "wb") as f:
            f.write(os.urandom(200000))
    else:
        with open(big, "rb") as f:
            while f.read(65536):
                pass
    load["secs"] = time.time() - t
    done.set()


def fs_probe():
    while not done.is_set():
        for n in names[:5]:
            timed(stat_t, lambda: os.stat(n))
        timed(ls_t, lambda: os.listdir(namedir))

        def cat():
            with open(cached, "rb") as f:
                f.read()
        timed(cat_t, cat)
        time.sleep(0.05)


def echo_probe():
    # A line typed and its echo; Ctrl-C then clears it unrun (a line that
    # runs makes the mount check the board's files afterwards).
    i = 0
    while not done.is_set():
        i += 1
        seen.clear()
        line = "print(%d*7)" % (1000 + i)
        timed(echo_t, lambda: (os.write(fd, line.encode()), wait_for(line)))
        seen.clear()
        os.write(fd, b"\x03")
        wait_for(">>> ")
        time.sleep(0.3)


def head_probe():
    time.sleep(1.0)

    def head():
        # As `head -c 100` reads: read(2) of 100 bytes (Python's buffered
        # read asks the file system for 4 KB, a range four times longer).
        fd = os.open(unc2, os.O_RDONLY)
        try:
            os.read(fd, 100)
        finally:
            os.close(fd)
    timed(head_t, head)


threading.Thread(target=reader, daemon=True).start()
time.sleep(0.3)  # the transfer is under way
probes = [threading.Thread(target=p, daemon=True) for p in (fs_probe, echo_probe, head_probe)]
for p in probes:
    p.start()
done.wait()
what = "upload" if upload else "read"
print("during the %s of %s:" % (what, os.path.basename(big)))
print(line("stat of snapshot entries", stat_t))
print(line("ls of a snapshot directory", ls_t))
print(line("read of a cached file", cat_t))
print(line("terminal echo of a line", echo_t))
print(line("head -c 100 of another file", head_t))
if upload:
    # close() returns after the close wait; the upload goes on after it.
    print("close() of the write: %.2f s" % load["secs"])
else:
    print("the read itself: %.2f s" % load["secs"])
for p in probes:
    p.join(timeout=30)
os.write(fd, b"\x1d")
os.waitpid(pid, 0)
