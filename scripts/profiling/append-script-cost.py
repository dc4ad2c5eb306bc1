#!/usr/bin/env python3
"""Redis time per routed entry of the router's inbox-append script (docs/PERFORMANCE.md, 2026-12-06).

Extracts the script's body from Sources/DEEStore/Scripts/InboxAppendScript.swift, calls it 200 times with 110
entries shaped like the bench's executes with requestId (the fields the router writes today), and prints Redis's
`usec` per entry from INFO commandstats. Needs a scratch redis-server (it runs FLUSHALL):

    redis-server --port 6460 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes
    python3 scripts/profiling/append-script-cost.py 6460
"""
import os
import socket
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
source = open(os.path.join(root, "Sources/DEEStore/Scripts/InboxAppendScript.swift")).read()
script = source.split('#"""\n', 1)[1].split('\n"""#', 1)[0]

sock = socket.create_connection(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 6460))
reader = sock.makefile("rb")


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def reply():
    line = reader.readline()
    kind = line[:1]
    if kind in b"+-:":
        return line
    if kind == b"$":
        n = int(line[1:])
        return None if n < 0 else reader.read(n + 2)[:-2]
    if kind == b"*":
        return [reply() for _ in range(max(int(line[1:]), 0))]


def call(*args):
    sock.sendall(encode(args))
    return reply()


call("FLUSHALL")
call("CONFIG", "RESETSTAT")
ms, per, calls = 1796523119174, 110, 200
fingerprint = "6943d72f9bd11d69b9a244b73d76080ef55cdfb32eb321291dac21d34dd4d5f4"
for b in range(calls):
    argv = ["1"]
    for k in range(per):
        ms += 1
        i = b * per + k
        args = '{"contact":{"email":"x@y.z","id":"i2-%d"},"planId":"bench"}' % i
        fields = ["type", "execute", "rid", "i-1796523116085-2-%d" % i, "fp", fingerprint,
                  "replyTo", "bench:replies:i2", "args", args, "planVersion", "1"]
        argv += ["%d-0" % ms, str(len(fields))] + fields
    call("EVAL", script, "1", "bench:{0}:inbox", *argv)
for line in call("INFO", "commandstats").decode().splitlines():
    if line.startswith("cmdstat_eval:"):
        usec = int(line.split("usec=")[1].split(",")[0])
        print(f"inbox append: {usec / (calls * per):.2f} µs of Redis per entry ({calls} calls of {per})")
