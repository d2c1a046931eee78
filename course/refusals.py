"""What a broker's refusal means, in one plain sentence: what it refused, and what to change.

RabbitMQ answers a request it will not carry out by closing the channel (406, 404, 405, 403)
or the whole connection (541, 530, 320, a refused login). aio-pika then raises an exception whose
text is the broker's terse reply. :func:`explain` turns that into a sentence a student can act
on; the lessons (``connectors/rabbit/lesson.py``), the graded suites and ``make grade`` use it.

    >>> explain(error)
    "RabbitMQ 4.3 refused to declare a transient (non-durable) shared queue. Declare ..."

It returns None for what is not a broker refusal, so callers can fall back to their own words.
"""

from __future__ import annotations

import re

TRANSIENT = (
    "RabbitMQ 4.x with the 4.3 defaults refused to declare a transient (non-durable), "
    "non-exclusive queue, and closed the connection. Declare a shared queue durable=True "
    "(and publish persistent messages), or a queue of one consumer's own exclusive=True."
)


def explain(error: BaseException | str) -> str | None:
    """One sentence for a broker refusal (channel or connection closed), or None.

    ``error`` is the exception, or its text (e.g. from a test report)."""
    text = " ".join(str(error).split())
    if not text:
        return None
    if "transient_nonexcl_queues" in text:
        return TRANSIENT
    if "global_qos" in text:
        return (
            "The broker refused a global prefetch (basic.qos with global=True), which RabbitMQ "
            "4.3 no longer allows: call set_qos(prefetch_count=N) without global_=True."
        )
    match = re.search(
        r"inequivalent arg '([^']+)' for (queue|exchange) '([^']*)' in vhost '[^']*': "
        r"received (.+?) but current is (.+?)(?:\"|$)",
        text,
    )
    if match:
        arg, kind, name, received, current = match.groups()
        received, current = _value(received), _value(current)
        if arg == "durable":
            return (
                f"The {kind} '{name}' already exists with durable={current}, and your "
                f"declaration said durable={received}: every program must declare it the same "
                f"way (work queues are durable=True)."
            )
        return (
            f"The {kind} '{name}' already exists with {arg}={current}, and your declaration "
            f"said {arg}={received}: every program must declare it with the same arguments."
        )
    match = re.search(r"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '([^']*)'",
                      text)  # fmt: skip
    if match:
        return (
            f"The queue '{match.group(1)}' is exclusive to another connection, so this one may "
            "not use it. Give each consumer a queue of its own (no name, exclusive=True), or "
            "share a durable, non-exclusive queue."
        )
    match = re.search(r"NOT_FOUND - no (queue|exchange) '([^']*)'", text)
    if match:
        kind, name = match.groups()
        return (
            f"There is no {kind} '{name}' on the broker: declare it before you use it "
            f"(declare_{kind}), or check its name."
        )
    if "unknown delivery tag" in text:
        return (
            "The broker got an ack or nack for a message that was already settled (or that came "
            "on another channel), and closed the channel: settle each message exactly once."
        )
    if "ACCESS_REFUSED - Login was refused" in text or "authentication" in text.lower():
        return "The broker refused the login: check the user and password in RABBITMQ_URL."
    if "ACCESS_REFUSED" in text:
        return (
            "The broker refused the operation: the user of RABBITMQ_URL has no permission for "
            f"it ({_reply(text)})."
        )
    if ("NOT_ALLOWED" in text and "vhost" in text) or "Connection.OpenOk" in text:
        return (
            "The broker would not open the connection: does the vhost in RABBITMQ_URL exist, "
            "and may its user use it?"
        )
    if "CONNECTION_FORCED" in text:
        return (
            "The broker closed the connection itself (it is shutting down or restarting, or an "
            "operator closed it)."
        )
    if "PRECONDITION_FAILED" in text:
        return f"The broker refused a request whose precondition failed: {_reply(text)}."
    return None


def _value(raw: str) -> str:
    """'false' -> False, 'true' -> True, "the value 'quorum' of type 'longstr'" -> quorum,
    none -> (not set)."""
    raw = raw.strip()
    match = re.fullmatch(r"the value '([^']*)' of type '[^']*'?", raw)
    if match:
        return match.group(1)
    raw = raw.strip("'")
    return {"false": "False", "true": "True", "none": "(not set)"}.get(raw, raw)


def _reply(text: str) -> str:
    match = re.search(r"([A-Z_]{6,} - .*)", text)
    return (match.group(1) if match else text).rstrip('"')[:200]
