"""Lesson "cluster": the ledger. Was every confirmed task handled? Which ones twice?

    python3 connectors/rabbit/cluster/ledger.py publisher.log worker.log [worker2.log ...]

Reads what publisher.py printed (` [x] Confirmed task N`) and what the workers printed
(` [x] Done task N`). A task is lost when the broker confirmed it and no worker did it; a
duplicate is a task done more than once. Exits with 1 if anything was lost.
"""

import re
import sys
from collections import Counter


def tasks(path: str, verb: str) -> list[int]:
    with open(path, encoding="utf-8", errors="replace") as log:
        return [int(number) for number in re.findall(rf"\[x\] {verb} task (\d+)", log.read())]


def listed(numbers: list[int], most: int = 10) -> str:
    shown = ", ".join(str(number) for number in numbers[:most])
    return f" (task {shown}{', ...' if len(numbers) > most else ''})" if numbers else ""


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: ledger.py PUBLISHER_LOG WORKER_LOG [WORKER_LOG ...]", file=sys.stderr)
        return 2
    publisher, *workers = sys.argv[1:]
    confirmed = set(tasks(publisher, "Confirmed"))
    handled = Counter(number for worker in workers for number in tasks(worker, "Done"))
    lost = sorted(confirmed - set(handled))
    twice = sorted(number for number, times in handled.items() if times > 1)
    print(f" confirmed:  {len(confirmed)} tasks")
    print(f" handled:    {len(handled)} different tasks, {sum(handled.values())} times in all")
    print(f" lost:       {len(lost)}{listed(lost)}")
    print(f" duplicates: {sum(handled.values()) - len(handled)}{listed(twice)}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
