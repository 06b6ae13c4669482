#!/usr/bin/env python3
"""Opens N TCP connections to 127.0.0.1:PORT and holds them idle, for bench/run.sh's memory test.

With --request, each connection first carries one HTTP/1.1 keep-alive request (GET --path) and
its answer (so the proxy has relayed data both ways), then goes idle. Prints one line
"ready OK FAILED" once every connection is open (or has failed), then holds them until killed
or until --hold seconds have passed. Bounded: every connect/read has a timeout.
"""

import argparse
import asyncio
import resource
import sys


async def open_one(port, request, sem, conns, timeout, path="/"):
    async with sem:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        if request:
            writer.write(b"GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path.encode())
            await asyncio.wait_for(writer.drain(), timeout)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await asyncio.wait_for(reader.readexactly(length), timeout)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head[:40])
        conns.append((reader, writer))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--request", action="store_true")
    p.add_argument("--path", default="/", help="the request's path (with --request)")
    p.add_argument("--concurrency", type=int, default=128)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--hold", type=float, default=120.0)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sem = asyncio.Semaphore(a.concurrency)
    conns = []
    results = await asyncio.gather(
        *(open_one(a.port, a.request, sem, conns, a.timeout, a.path) for _ in range(a.n)), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    print(f"ready {len(conns)} {len(failed)}", flush=True)
    if failed:
        print(f"first failure: {failed[0]!r}", file=sys.stderr, flush=True)
    await asyncio.sleep(a.hold)
    for _, w in conns:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
