#!/usr/bin/env python3
"""What a person feels on a mounted board while a big file goes up.

Usage: responsive.py WEBREPL_MOUNT MOUNTPOINT SIZE SMALLDIR CACHED

Writes SIZE random bytes to MOUNTPOINT/up.bin (as `cp` would) and, until
`status` shows no transfer moving or queued, in threads of their own: keys
typed one at a time in `webrepl-mount term` (on a pseudo-terminal, 0.2 s
apart, as a person types) and the time until each one's echo; reads of
the small files in SMALLDIR, each read once (uncached); reads of CACHED
(read once before). Prints p50/p99/max of each and the upload's time.
"""
import os, pty, select, subprocess, sys, threading, time

wm, mnt, size, smalldir, cached = sys.argv[1:6]
size = int(size)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def ms(x):
    return "%.0f" % (x * 1000)


def line(what, v):
    if not v:
        return "  %-30s no sample while the upload ran" % what
    return "  %-30s p50 %6s ms  p99 %6s ms  max %6s ms  (%d)" % (
        what, ms(pct(v, .5)), ms(pct(v, .99)), ms(max(v)), len(v))


pid, fd = pty.fork()
if pid == 0:
    os.execv(wm, [wm, "term", mnt])
seen = bytearray()


def wait_for(text, limit=60.0):
    end = time.time() + limit
    while text not in seen:
        if time.time() > end:
            raise SystemExit("terminal never showed %r: %r" % (text, bytes(seen[-200:])))
        r, _, _ = select.select([fd], [], [], 0.002)
        if r:
            try:
                seen.extend(os.read(fd, 4096))
            except OSError:
                pass


wait_for(b"Ctrl-]")
os.write(fd, b"\r")
wait_for(b">>> ")
with open(cached, "rb") as f:
    f.read()
# The small files, in SMALLDIR or one directory down (each alone there:
# no neighbours come with its read).
smalls = sorted(
    os.path.join(d, n)
    for d in [smalldir] + [os.path.join(smalldir, x) for x in os.listdir(smalldir)]
    if os.path.isdir(d)
    for n in os.listdir(d)
    if n.startswith("s") and n.endswith(".txt")
)

done = threading.Event()
echo_t, small_t, cached_t = [], [], []
load = {}


def moving():
    s = subprocess.run([wm, "status", mnt], capture_output=True, text=True).stdout
    # A program of ours joins and renames the upload after its last byte.
    busy = ("moving:", "queued:", "dirty:", "programs:")
    return any(l.startswith(busy) for l in s.splitlines())


def upload():
    t = time.time()
    with open(os.path.join(mnt, "up.bin"), "wb") as f:
        f.write(os.urandom(size))
    load["close"] = time.time() - t
    while moving():
        time.sleep(0.2)
    load["secs"] = time.time() - t
    done.set()


t0 = time.time()
slow = []


def timed(samples, f, what):
    # A sample begun during the upload counts, however late it ends: a
    # key that waited for the finishing program is the one that matters.
    during = not done.is_set()
    t = time.time()
    f()
    if during:
        samples.append(time.time() - t)
        if time.time() - t > 0.5:
            slow.append((what, t - t0, time.time() - t))


def echo_probe():
    n = 0
    while not done.is_set():
        seen.clear()
        timed(echo_t, lambda: (os.write(fd, b"7"), wait_for(b"7")), "echo")
        n += 1
        if n % 8 == 0:
            # Ctrl-C clears the line unrun (a line that runs makes the
            # mount check the board's files afterwards).
            seen.clear()
            os.write(fd, b"\x03")
            wait_for(b">>> ")
        time.sleep(0.2)


def read(p):
    with open(p, "rb") as f:
        f.read()


def small_probe():
    for p in smalls:
        if done.is_set():
            return
        timed(small_t, lambda: read(p), "read of " + os.path.basename(p))
        timed(cached_t, lambda: read(cached), "cached read")
        time.sleep(0.3)


t0 = time.time()
threading.Thread(target=upload, daemon=True).start()
time.sleep(0.5)  # the upload is under way
probes = [threading.Thread(target=p, daemon=True) for p in (echo_probe, small_probe)]
for p in probes:
    p.start()
done.wait()
print("during an upload of %d B through the mount:" % size)
print(line("echo of a typed key", echo_t))
print(line("read of an uncached small file", small_t))
print(line("read of a cached small file", cached_t))
for what, at, d in slow:
    print("  slow: %s %.0f ms at %.2f s" % (what, d * 1000, at))
print("  close() %.2f s, the upload on the board after %.2f s" % (load["close"], load["secs"]))
for p in probes:
    p.join(timeout=30)
os.write(fd, b"\x03\x1d")
os.waitpid(pid, 0)
