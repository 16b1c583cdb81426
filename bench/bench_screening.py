"""Screening speed: µs per screened payment with the candidate index and without.

Run on purpose (not a test)::

    python bench/bench_screening.py                     # 50,000 entries, 3 aliases each
    python bench/bench_screening.py --entries 20000     # the size of the speed goal
    python bench/bench_screening.py --payments 5000 --brute 100 --seed 7

Generates a list file in a temp dir: individuals and entities whose names
are built from invented syllables, with token frequencies skewed like real
lists (a few given names and generic words such as "trading" are very
common), each with ``--aliases`` variants (another spelling of one token,
another order, a dropped middle name, a legal form); plus BIC and country
rows.  The payers are the bank's corporate customers (``--payers`` of
them); the payees are mostly unlisted parties drawn from the same pools as
the list (so they share common tokens with listed names), and a share
(``--listed-share``) are listed names with letters changed.

Prints: the list size; the CPU time to load and index it and the resident
memory it added; then CPU µs per screened payment on one core (the whole
``screen()``: both names, BIC, countries, remittance text), the median of
``--repeat`` runs of payments not screened before, with the index in its
steady state (the hits of names and the near tokens of words seen in
earlier payments remembered) and with that memory cleared before every
payment (the worst case); how many names the
index examined (through the letters bound) and scored per screened name;
and, for ``--brute`` payments, the same with every listed name scored, and
whether both gave the same decisions.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.screening.lists import HEADER, ScreeningLists
from gateway.screening.matching import Name
from gateway.screening.screen import Decision, Fields, screen
from gateway.screening.settings import ScreeningSettings


def words(text: str) -> list[str]:
    return text.split()


SYLLABLES = words(
    "ka ro mi tan sel vor lu den ha ri bo zan ke mar ti sa no vel ra gu lin fa dor pe shi ran ko "
    "mu tar el an is or ur ba ne zi qa ho ly ste gar mon bri cha dru fen gol hav jur kel lom nar "
    "pol quin rus sko tev ulm vad wen yor zel ask bex cor dag eth fyn gli hux ird jas kro lun mev "
    "nis oth pry rek sul tov usk vey wir xan yel zor brat clem drav frem glod hask jost krev lisk "
    "morv nest prad quor rost shan trev vask wold"
)
GENERIC = words(
    "trading shipping international group holdings industries logistics export import petroleum "
    "maritime energy resources bank capital services mining"
)
LEGAL = ["Ltd", "Limited", "Co Ltd", "LLC", "Inc", "Corp", "PLC", "GmbH", "SA", "AG", ""]
COUNTRIES = words("AE AF BY CN CU DE FR GB HK IR IQ KP LB LY MM RU SD SG SY US VE YE")


def word(rng: random.Random, low: int = 2, high: int = 3) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(low, high))).capitalize()


def zipf_pool(
    rng: random.Random, size: int, low: int, high: int, skew: float
) -> tuple[list[str], list[float]]:
    pool = list(dict.fromkeys(word(rng, low, high) for _ in range(size)))
    return pool, [1 / (rank + 1) ** skew for rank in range(len(pool))]


class Pools:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.given, self.given_w = zipf_pool(rng, 3000, 2, 3, 0.8)
        self.surname, self.surname_w = zipf_pool(rng, 50000, 2, 3, 0.5)
        self.firm, self.firm_w = zipf_pool(rng, 50000, 2, 3, 0.3)

    def pick(self, pool: list[str], weights: list[float]) -> str:
        return self.rng.choices(pool, weights)[0]

    def person(self) -> list[str]:
        tokens = [self.pick(self.given, self.given_w)]
        if self.rng.random() < 0.4:
            tokens.append(self.pick(self.given, self.given_w))
        tokens.append(self.pick(self.surname, self.surname_w))
        return tokens

    def firm_name(self) -> list[str]:
        tokens = [self.pick(self.firm, self.firm_w)]
        if self.rng.random() < 0.3:
            tokens.append(self.pick(self.firm, self.firm_w))
        tokens += self.rng.sample(GENERIC, self.rng.randint(0, 2))
        return tokens


def misspell(rng: random.Random, token: str) -> str:
    if len(token) < 4:
        return token
    i = rng.randrange(1, len(token))
    return token[:i] + rng.choice("aeiouy") + token[i + 1 :]


def variant(rng: random.Random, tokens: list[str], entity: bool) -> str:
    choice = rng.randrange(4)
    out = list(tokens)
    if choice == 0:
        i = rng.randrange(len(out))
        out[i] = misspell(rng, out[i])
    elif choice == 1:
        rng.shuffle(out)
    elif choice == 2 and len(out) > 2:
        del out[1]
    else:
        return " ".join(out) + " " + rng.choice(LEGAL) if entity else ", ".join(out[::-1])
    return " ".join(out)


def write_list(path: Path, pools: Pools, entries: int, aliases: int) -> list[list[str]]:
    rng = pools.rng
    listed: list[list[str]] = []
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(HEADER)
        for n in range(entries):
            roll = rng.random()
            if roll < 0.03:
                bic = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(4))
                bic += rng.choice(COUNTRIES) + "22"
                out.writerow(["BENCH", f"B{n}", "bic", bic, "", ""])
                continue
            entity = roll < 0.30
            tokens = pools.firm_name() if entity else pools.person()
            listed.append(tokens)
            name = " ".join(tokens) + (" " + rng.choice(LEGAL) if entity else "")
            alias = ";".join(variant(rng, tokens, entity) for _ in range(aliases))
            out.writerow(
                [
                    "BENCH",
                    f"E{n}",
                    "entity" if entity else "individual",
                    name,
                    alias,
                    rng.choice(COUNTRIES),
                ]
            )
        for code in ("KP", "IR", "SY", "CU"):
            out.writerow(["BENCH", f"C{code}", "country", code, "", ""])
    return listed


def payments(
    pools: Pools, listed: list[list[str]], n: int, share: float, payers: list[str]
) -> list[Fields]:
    rng = pools.rng
    out = []
    for _ in range(n):
        if rng.random() < share:
            tokens = rng.choice(listed)
            payee = " ".join(misspell(rng, t) if rng.random() < 0.3 else t for t in tokens)
        else:
            payee = " ".join(pools.firm_name() if rng.random() < 0.5 else pools.person())
        out.append(
            Fields(
                payer_name=rng.choice(payers),
                payee_name=payee,
                payee_bic="".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(4))
                + rng.choice(["US", "DE", "GB", "HK", "SG", "JP"])
                + "33",
                payee_country=rng.choice(["US", "DE", "GB", "HK", "SG", "JP"]),
                purpose=f"Invoice {rng.randint(1, 9999)} goods and freight",
            )
        )
    return out


def comparable(decision: Decision) -> list[tuple[str, str, str, float]]:
    return sorted((h.list, h.entry_id, h.field.value, h.score) for h in decision.hits)


def timed(fn: Callable[[Fields], object], items: list[Fields]) -> float:
    """CPU µs per item (this process, one thread: one core)."""
    start = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - start) / len(items) * 1e6


def rss_mib() -> float:
    """This process's resident memory (Linux), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--aliases", type=int, default=3)
    parser.add_argument("--payments", type=int, default=3_000)
    parser.add_argument("--brute", type=int, default=20, help="payments screened without the index")
    parser.add_argument("--listed-share", type=float, default=0.02)
    parser.add_argument("--payers", type=int, default=300, help="the bank's corporate customers")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    pools = Pools(rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        listed = write_list(path, pools, args.entries, args.aliases)
        before = rss_mib()
        start = time.process_time()
        lists = ScreeningLists.load(ScreeningSettings(lists=(path,)))
        build = time.process_time() - start
        grown = rss_mib() - before
    index = lists.index.names
    print(
        f"list: {args.entries:,} entries ({sum(lists.rows().values()):,} rows), "
        f"{len(index):,} names and aliases, {index.vocabulary:,} distinct tokens, "
        f"{index.variants:,} neighbourhood keys"
    )
    print(f"load + index: {build:.1f} s CPU, +{grown:.0f} MiB resident")

    # Each run screens payments it has not seen: the steady state of a process
    # that has screened others before (its customers' names and common words
    # remembered, a new payee's not), which the first set only warms up.
    payers = [" ".join(pools.firm_name()) + " Co Ltd" for _ in range(args.payers)]
    sets = [
        payments(pools, listed, args.payments, args.listed_share, payers)
        for _ in range(args.repeat + 1)
    ]
    timed(lambda f: screen(lists, f), sets[0])
    warm = [timed(lambda f: screen(lists, f), work) for work in sets[1:]]

    def forgetting(f: Fields) -> Decision:
        index.clear_cache()
        return screen(lists, f)

    cold = [timed(forgetting, work) for work in sets[1:]]
    work = sets[-1]
    hits = sum(screen(lists, f).hit for f in work)
    probes = [
        index.probe(Name.of(lists.normaliser.tokens(text)))
        for f in work
        for text in (f.payer_name, f.payee_name)
    ]
    examined = sorted(p.examined for p in probes)
    scored = sorted(len(p.candidates) for p in probes)
    widened = sum(p.widened > 0 for p in probes)
    for label, runs in (("with the index", warm), ("  nothing remembered (worst case)", cold)):
        per = statistics.median(runs)
        print(
            f"{label}: {per:.0f} µs per payment = {1e6 / per:,.0f} payments/s on one core "
            f"(median of {args.repeat} runs of {len(work):,}: "
            f"{', '.join(f'{r:.0f}' for r in runs)})"
        )
    print(
        f"  per name: examined median {examined[len(examined) // 2]}, p99 "
        f"{examined[int(len(examined) * 0.99)]}; scored median {scored[len(scored) // 2]}, "
        f"max {scored[-1]}; long tokens widened {widened} of {len(probes):,}; "
        f"{hits} of {len(work):,} payments hit"
    )

    sample = work[: args.brute]
    slow = timed(lambda f: screen(lists, f, exhaustive=True), sample)
    same = sum(
        comparable(screen(lists, f)) == comparable(screen(lists, f, exhaustive=True))
        for f in sample
    )
    print(
        f"without the index: {slow:,.0f} µs per payment = {1e6 / slow:,.1f} payments/s "
        f"({len(sample)} payments); the same decisions for {same} of {len(sample)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
