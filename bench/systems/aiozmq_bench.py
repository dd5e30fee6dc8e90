#!/usr/bin/env python3
"""System 6 of zeropeer's benchmark: aiozmq.rpc, the same `upper` function.

One role per process, driven by bench/run.ts with JSON lines on stdin (commands) and stdout
(answers), the same commands as the Node workers: start, ready, run, usage, stop.

    /usr/bin/python3 aiozmq_bench.py <caller|responder> [hard timeout in seconds]

The process exits when stdin closes (its parent is gone), on `stop`, and in any case after the
hard timeout (SIGALRM). It listens and connects on 127.0.0.1 only.
"""
import asyncio
import gc
import json
import math
import os
import resource
import signal
import sys
import time
import traceback

import aiozmq.rpc


class Handler(aiozmq.rpc.AttrHandler):
    @aiozmq.rpc.method
    def upper(self, s: str) -> str:
        return s.upper()


def payload_of(size):
    alphabet = 'abcdefghijklmnopqrstuvwxyz'
    return (alphabet * (size // len(alphabet) + 1))[:size]


def usage():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open('/proc/self/statm') as f:
        resident_pages = int(f.read().split()[1])
    return {
        'cpuUserUs': ru.ru_utime * 1e6,
        'cpuSystemUs': ru.ru_stime * 1e6,
        'rss': resident_pages * os.sysconf('SC_PAGE_SIZE'),
        'heapUsed': None,
        'at': time.perf_counter() * 1000,
    }


async def drive(client, concurrency, payload_bytes, duration_ms, max_calls, latency):
    payload = payload_of(payload_bytes)
    latencies = [] if latency else None
    state = {'started': 0, 'done': 0, 'errors': 0, 'first_error': None}
    begin = time.perf_counter()
    deadline = begin + duration_ms / 1000

    async def lane():
        while state['started'] < max_calls and time.perf_counter() < deadline and state['errors'] < 100:
            state['started'] += 1
            t0 = time.perf_counter()
            try:
                answer = await client.call.upper(payload)
                if not isinstance(answer, str) or len(answer) != len(payload):
                    raise ValueError('wrong answer')
            except Exception as error:  # noqa: BLE001 - counted and reported
                state['errors'] += 1
                if state['first_error'] is None:
                    state['first_error'] = repr(error)
                continue
            if latencies is not None:
                latencies.append(time.perf_counter() - t0)
            state['done'] += 1

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    elapsed_ms = (time.perf_counter() - begin) * 1000
    done = state['done']
    result = {
        'calls': done,
        'errors': state['errors'],
        'elapsedMs': elapsed_ms,
        'callsPerSec': done / elapsed_ms * 1000,
        'mbPerSec': done * payload_bytes * 2 / (elapsed_ms * 1000),
    }
    if state['first_error'] is not None:
        result['firstError'] = state['first_error']
    if latencies:
        latencies.sort()
        n = len(latencies)
        def rank(q):  # nearest rank, as bench/stats.ts
            return latencies[min(n - 1, max(0, math.ceil(q * n) - 1))]

        result['p50Us'] = rank(0.5) * 1e6
        result['p99Us'] = rank(0.99) * 1e6
        result['meanUs'] = sum(latencies) / n * 1e6
    return result


class Role:
    def __init__(self, name):
        self.name = name
        self.server = None
        self.client = None

    async def start(self, args):
        if self.name == 'responder':
            self.server = await aiozmq.rpc.serve_rpc(Handler(), bind='tcp://127.0.0.1:*')
            endpoint = sorted(self.server.transport.bindings())[0]
            return {'rendezvous': {'endpoint': endpoint}}
        self.client = await aiozmq.rpc.connect_rpc(connect=args['rendezvous']['endpoint'])
        return {'rendezvous': None}

    async def ready(self, args):
        deadline = time.perf_counter() + float(args.get('timeoutMs') or 10000) / 1000
        last = None
        while time.perf_counter() < deadline:
            try:
                answer = await asyncio.wait_for(self.client.call.upper('ready?'), 0.5)
                if answer == 'READY?':
                    return None
                last = 'wrong answer'
            except Exception as error:  # noqa: BLE001
                last = repr(error)
            await asyncio.sleep(0.02)
        raise RuntimeError('aiozmq not ready: %s' % last)

    async def run(self, args):
        before = usage()
        result = await drive(self.client, int(args['concurrency']), int(args['payloadBytes']), float(args['durationMs']),
                             int(args['maxCalls']), bool(args.get('latency')))
        after = usage()
        cpu_us = after['cpuUserUs'] + after['cpuSystemUs'] - before['cpuUserUs'] - before['cpuSystemUs']
        result['cpuPct'] = cpu_us / 1000 / (after['at'] - before['at']) * 100
        result['rss'] = after['rss']
        return result

    async def usage(self, args):
        if args.get('gc'):
            gc.collect()
        return usage()

    async def close(self):
        for peer in (self.client, self.server):
            if peer is not None:
                peer.close()
                try:
                    await asyncio.wait_for(peer.wait_closed(), 2)
                except Exception:  # noqa: BLE001 - closing anyway
                    pass


def reply(message):
    sys.stdout.write(json.dumps(message) + '\n')
    sys.stdout.flush()


async def serve(role_name):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    role = Role(role_name)
    try:
        while True:
            line = await reader.readline()
            if not line:
                break  # stdin closed: the parent is gone
            request = json.loads(line)
            command = request.get('cmd')
            if command == 'stop':
                reply({'id': request['id'], 'ok': True, 'result': None})
                break
            handler = getattr(role, command, None) if command in ('start', 'ready', 'run', 'usage') else None
            try:
                if handler is None:
                    raise ValueError('unknown command %r' % command)
                reply({'id': request['id'], 'ok': True, 'result': await handler(request.get('args') or {})})
            except Exception:  # noqa: BLE001 - the parent gets the traceback
                reply({'id': request['id'], 'ok': False, 'error': traceback.format_exc()})
    finally:
        await role.close()


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ('caller', 'responder'):
        sys.stderr.write('usage: aiozmq_bench.py <caller|responder> [hard timeout s]\n')
        sys.exit(2)
    hard_timeout = int(float(sys.argv[2])) if len(sys.argv) > 2 else 600
    signal.alarm(max(1, hard_timeout))  # the default action of SIGALRM ends the process
    asyncio.run(serve(sys.argv[1]))


if __name__ == '__main__':
    main()
