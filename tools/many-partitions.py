#!/usr/bin/env python3
"""Ten thousand replicated partitions on one machine: the figures of
docs/performance.md, measured against three real brokers.

Starts etc/cluster.json's three brokers (client ports 8080-8082, cluster
ports 7070-7072, data in a temporary folder), creates TOPICS topics of
PARTITIONS partitions with three replicas each (kafkaesque-bench
--topics/--create, one CRTP after the other), then prints:

  - the creation time;
  - each broker's leaderships, once leaders have spread (SETTLE seconds);
  - idle CPU over 10 s, RSS and open descriptors of each broker;
  - keyed publish spread over every partition (PUBLISH seconds, 0: none);
  - kill -9 of the broker leading the most partitions (not broker 1),
    and the time until every partition is led again (DESC of every topic
    through a survivor, polled);
  - its restart: time until it accepts connections, answers a PUBS and
    answers a CONS.

Usage: tools/many-partitions.py   (from a built tree; environment:
KQ_BUILD_DIR, TOPICS=100, PARTITIONS=100, SETTLE=25, PUBLISH=10)
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KQ_BUILD_DIR", os.path.join(TOP, "build"))
TOPICS = int(os.environ.get("TOPICS", "100"))
PARTS = int(os.environ.get("PARTITIONS", "100"))
SETTLE = float(os.environ.get("SETTLE", "25"))
PUBLISH = int(os.environ.get("PUBLISH", "10"))
DATA = tempfile.mkdtemp(prefix="kq-many-")
BENCH = os.path.join(BUILD, "kafkaesque-bench")


def start(i):
    log = open(os.path.join(DATA, "broker%d.log" % i), "a")
    return subprocess.Popen(
        [os.path.join(BUILD, "kafkaesqued"), "-c",
         os.path.join(TOP, "etc", "cluster.json"), "-brokerId=%d" % i,
         "-port=%d" % (8079 + i), "-raftport=%d" % (7069 + i),
         "-datadir=" + DATA], stdout=log, stderr=subprocess.STDOUT)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.s.makefile("rb")

    def cmd(self, line):
        self.s.sendall((line + "\n").encode())
        out = []
        while True:
            reply = self.f.readline().decode().rstrip("\r\n")
            if not reply:
                raise EOFError("connection closed")
            if reply.startswith(("OK", "ERR")):
                return out, reply
            out.append(reply)

    def close(self):
        self.s.close()


def leaders(port, dead=None):
    """Leaderships per broker seen through `port`, and partitions led by
    nobody (or by `dead`)."""
    c = Conn(port)
    count, none = {}, 0
    for t in range(TOPICS):
        for line in c.cmd("DESC s%d" % t)[0]:
            m = re.match(r"PARTITION \d+ LEADER (\S+)", line)
            if m and m.group(1) not in ("-", dead):
                count[m.group(1)] = count.get(m.group(1), 0) + 1
            elif m:
                none += 1
    c.close()
    return count, none


def cpu_ticks(pid):
    f = open("/proc/%d/stat" % pid).read().split(")")[1].split()
    return int(f[11]) + int(f[12])


def rss_mb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


def main():
    procs = {i: start(i) for i in (1, 2, 3)}
    try:
        time.sleep(2)
        t0 = time.time()
        subprocess.run([BENCH, "publish", "-t", "s", "--topics", str(TOPICS),
                        "--create", str(PARTS), "--keys", "random", "-c",
                        "1", "-w", "1", "-n", "10", "-q"], check=True,
                       stdout=subprocess.DEVNULL)
        print("creation: %d x %d partitions in %.1f s"
              % (TOPICS, PARTS, time.time() - t0), flush=True)
        time.sleep(SETTLE)
        count, none = leaders(8080)
        print("leaderships: %s, without a leader %d" % (count, none))
        hz = os.sysconf("SC_CLK_TCK")
        c0 = {i: cpu_ticks(p.pid) for i, p in procs.items()}
        time.sleep(10)
        idle = {i: (cpu_ticks(p.pid) - c0[i]) * 10.0 / hz
                for i, p in procs.items()}
        print("idle CPU, %% of a core: %s, all %.1f%%"
              % ({i: round(v, 1) for i, v in idle.items()},
                 sum(idle.values())))
        print("RSS MB: %s; descriptors: %s"
              % ({i: rss_mb(p.pid) for i, p in procs.items()},
                 {i: len(os.listdir("/proc/%d/fd" % p.pid))
                  for i, p in procs.items()}), flush=True)
        if PUBLISH > 0:
            subprocess.run([BENCH, "publish", "-t", "s", "--topics",
                            str(TOPICS), "--keys", "random", "-c", "8", "-w",
                            "128", "-d", str(PUBLISH), "-q", "--pids",
                            ",".join(str(p.pid) for p in procs.values())])
        victim = max((b for b in count if b != "1"), key=lambda b: count[b])
        v = int(victim)
        survivor = 8080
        print("kill -9 of broker %s, leading %d" % (victim, count[victim]),
              flush=True)
        procs[v].kill()
        procs[v].wait()
        t0 = time.time()
        while True:
            count2, none2 = leaders(survivor, dead=victim)
            if none2 == 0 or time.time() - t0 > 60:
                break
        print("every partition led again after %.2f s: %s (without %d)"
              % (time.time() - t0, count2, none2), flush=True)
        time.sleep(5)
        t0 = time.time()
        procs[v] = start(v)
        while True:
            try:
                c = Conn(8079 + v)
                break
            except OSError:
                time.sleep(0.01)
        accepting = time.time() - t0
        while not c.cmd('PUBS s7 {"Key":"k1","Body":"after"}')[1].startswith("OK"):
            time.sleep(0.05)
        pubs = time.time() - t0
        while True:
            reply = c.cmd("SUBS s7 restart")[1]
            if reply.startswith("OK"):
                break
            time.sleep(0.05)
        sub = reply.split()[1]
        while not c.cmd("CONS s7 %s 0" % sub)[1].startswith("OK"):
            time.sleep(0.05)
        print("restart: accepting %.2f s, PUBS %.2f s, CONS %.2f s"
              % (accepting, pubs, time.time() - t0))
        c.close()
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            p.wait()
        shutil.rmtree(DATA, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
