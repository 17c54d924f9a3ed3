"""test_start_slots.py - the spawner's start slots (supervisor/pool.c): a mass start
runs at most 2 x CPUs workers starting at once, a worker holding its slot no longer
than 50 ms when it is not ready by then (an init that sleeps takes no core), and a
cold start that a held connection waits for is never queued behind them. Real
supervisor and workers; the figures come from its worker_state log lines."""

import datetime
import os
import signal

import harness as h
from harness import check, test

SLOTS = 2 * len(os.sched_getaffinity(0))   # START_SLOTS_PER_CPU x the CPUs it may use
SLOT_MS = 50                               # START_SLOT_MS
N_SLOW = 8 * SLOTS                         # eight slot expiries of queue


def ts_ms(rec):
    """A log record's wall-clock time in ms."""
    t = datetime.datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000


@test
def slots_pace_a_mass_start_and_a_cold_start_goes_first():
    # Each slow worker sleeps 300 ms in its init: none gets ready within a slot's
    # 50 ms, so only the expiry lets the next ones start.
    # A reload adds them (a generation serves once started: during the first start-up
    # nothing is dispatched), while "cold", kept, serves from the old generation.
    slow = [h.function("s%03d" % i, library="init_sleep") for i in range(N_SLOW)]
    cold = h.function("cold", library="hello")
    del cold["workers"]
    cold.update(min_workers=0, max_workers=1)
    with h.Supervisor([cold], name="slots") as sv:
        def slow_spawns():
            return [r for r in sv.events("worker_state", to="starting")
                    if r["fn"].startswith("s")]

        sv.rewrite_config(lambda c: c["functions"].extend(
            {k: v for k, v in f.items() if k != "port"} for f in slow))
        sv.send(signal.SIGHUP)
        h.wait_until(lambda: sv._check_running() or slow_spawns(), 20, "the first spawn")
        before = len(slow_spawns())
        status = h.status_line(sv.port("cold"), timeout=20)
        sv.wait_event("reload_done", timeout=60)

        spawns = slow_spawns()
        check(len(spawns) == N_SLOW, "%d slow workers spawned, not %d" % (len(spawns), N_SLOW))
        t = [ts_ms(r) for r in spawns]
        # Spawn i + SLOTS waits for spawn i's slot: its expiry, 50 ms after it (the
        # log's ms, taken just after each spawn, leave a few ms of slack).
        early = [(i, t[i + SLOTS] - t[i]) for i in range(len(t) - SLOTS)
                 if t[i + SLOTS] - t[i] < SLOT_MS - 10]
        check(not early, "%d workers started before a slot was free (%d slots): %r"
              % (len(early), SLOTS, early[:5]))
        # The mass start is paced, not serialised behind the sleeping inits.
        span = t[-1] - t[0]
        check(span < N_SLOW * 300, "the %d spawns took %d ms: slots wait for readiness"
              % (N_SLOW, span))

        check(status == "HTTP/1.1 200 OK", "the cold start answered %r" % status)
        cold_spawn = sv.events("worker_state", fn="cold", to="starting")
        check(len(cold_spawn) == 1, "cold worker spawns: %r" % cold_spawn)
        recs = sv.events("worker_state", to="starting")
        idx = recs.index(cold_spawn[0])
        ahead = sum(1 for r in recs[:idx] if r["fn"].startswith("s"))
        # Conclusive only while slow ones were still queued when it was asked for.
        check(before + SLOTS < N_SLOW, "the request came after the queue had drained "
              "(%d of %d spawned)" % (before, N_SLOW))
        check(ahead <= before + SLOTS,
              "the cold start waited for a slot: %d slow spawns ahead of it, %d when "
              "it was requested" % (ahead, before))
        check(ahead < N_SLOW, "the cold start came after the whole mass start")


if __name__ == "__main__":
    h.main()
