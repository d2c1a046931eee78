"""Typical wrong RPC servers and clients (Task 3) that the graded suite must reject, each with a
telling message.

Most are small edits of ``rpc_student.py``, a plain correct solution written the way a student
would: a student who is almost right. A few edit the reference. Every ``expect`` is a regular
expression that the first failure message of the suite must match (runs stop at the first
failing test), so a mistake counts as caught only when the suite says what is wrong, not when
something else happens to break.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from course.impl import REFERENCE_DIR
from course.mistakes import Mistake

MODULE = "rmq_rpc"
SUITE = "tests/connectors/rabbit/test_rmq_rpc.py"
BASES = {
    "reference": REFERENCE_DIR / "rmq_rpc.py",
    "student": Path(__file__).with_name("rpc_student.py"),
}

S = "student"

_MISTAKES = [
    # ------------------------------------------------------------ the client: the request
    Mistake(
        "pickle-on-the-wire",
        "the client sends the request pickled, which only Python (and only trusting) can read",
        (
            ("import json\n", "import json\nimport pickle\n"),
            (
                'json.dumps({"method": method, "args": args}).encode(),',
                'pickle.dumps({"method": method, "args": args}),',
            ),
        ),
        r"a pickle, not JSON",
        base=S,
    ),
    Mistake(
        "arguments-under-another-key",
        "the client sends the arguments as 'kwargs' (and the name as 'name'), not the protocol's",
        (
            (
                'json.dumps({"method": method, "args": args}).encode(),',
                'json.dumps({"name": method, "kwargs": args}).encode(),',
            ),
        ),
        r"the request must be \{'method': 'int_sum', 'args'",
        base=S,
    ),
    Mistake(
        "no-correlation-id",
        "the client sends no correlation_id (and keys its futures by the method name)",
        (
            ("            correlation_id=correlation_id,\n", ""),
            ("        correlation_id = str(uuid.uuid4())\n", "        correlation_id = method\n"),
        ),
        r"has no correlation_id",
        base=S,
    ),
    Mistake(
        "one-correlation-id-per-method",
        "the correlation id is the method's name: concurrent calls of one method mix up",
        (("        correlation_id = str(uuid.uuid4())\n", "        correlation_id = method\n"),),
        r"carried only 1 different correlation_ids",
        base=S,
    ),
    Mistake(
        "replies-matched-in-arrival-order",
        "a reply goes to the oldest waiting call, whatever its correlation id",
        (
            (
                "        future = self.futures.get(message.correlation_id)\n",
                "        future = next((f for f in self.futures.values() if not f.done()), None)\n",
            ),
        ),
        r"the result of another call\. Match each reply to its call by message\.correlation_id",
        base=S,
    ),
    Mistake(
        "error-reply-returned-as-result",
        "call() returns reply.get('result'), so an error reply comes back as None",
        (
            (
                '        if "error" in reply:\n'
                '            raise RpcError(reply["error"]["type"], reply["error"]["message"])\n'
                '        return reply["result"]\n',
                '        return reply.get("result")\n',
            ),
        ),
        r"Raise RpcError\(error\['type'\], error\['message'\]\) for an error reply",
        base=S,
    ),
    # ------------------------------------------------------------ the client: connection, queue
    Mistake(
        "connection-per-call",
        "call() connects again (calls start()) every time: a connection per call",
        (
            (
                "        correlation_id = str(uuid.uuid4())\n",
                "        await self.start()\n        correlation_id = str(uuid.uuid4())\n",
            ),
        ),
        r"one client opened \d+ connections",
        base=S,
    ),
    Mistake(
        "reply-queue-per-call",
        "call() declares a new exclusive reply queue for every call",
        (
            (
                "        correlation_id = str(uuid.uuid4())\n",
                "        replies = await self.channel.declare_queue(exclusive=True)\n"
                "        await replies.consume(self._on_reply, no_ack=True)\n"
                "        self.reply_to = replies.name\n"
                "        correlation_id = str(uuid.uuid4())\n",
            ),
        ),
        r"named \d+ reply queues",
        base=S,
    ),
    Mistake(
        "reply-queue-not-exclusive",
        "the reply queue is a durable named queue: shared, and left behind by every client",
        (
            (
                'queue = await self.channel.get_queue("amq.rabbitmq.reply-to", ensure=False)',
                # x-expires only so that the broker cleans up after the run, 20 s later.
                'queue = await self.channel.declare_queue(f"replies.{uuid.uuid4().hex}", '
                'durable=True, arguments={"x-expires": 20000})',
            ),
        ),
        r"is not exclusive",
        base=S,
    ),
    # ------------------------------------------------------------ the client: time and strays
    Mistake(
        "no-timeout",
        "call() waits for the reply for ever: a dead server hangs the caller",
        (
            (
                "reply = await asyncio.wait_for(future, self.config.timeout)",
                "reply = await future",
            ),
        ),
        r"did not finish within .* config\.timeout was 0\.5 s",
        base=S,
    ),
    Mistake(
        "timeout-error-says-nothing",
        "call() lets a bare TimeoutError through, which names neither the method nor the time",
        (
            (
                'raise TimeoutError(f"{method}: no reply within {self.config.timeout:g} s") '
                "from None",
                "raise",
            ),
        ),
        r"it must name the method and the time waited",
        base=S,
    ),
    Mistake(
        "requests-never-expire",
        "a request that timed out waits in the queue and runs when a server starts, much later",
        (("            expiration=self.config.timeout,\n", ""),),
        r"Give the request expiration=self\.config\.timeout",
        base=S,
    ),
    Mistake(
        "unknown-reply-raises",
        "_on_reply indexes the futures: a reply with an unknown id raises KeyError",
        (
            (
                "        future = self.futures.get(message.correlation_id)\n"
                "        if future is None or future.done():\n",
                "        future = self.futures[message.correlation_id]\n"
                "        if future.done():\n",
            ),
        ),
        r"made _on_reply raise KeyError",
        base=S,
    ),
    Mistake(
        "late-reply-raises",
        "timed-out calls keep their future, and a late reply sets a result on a cancelled one",
        (
            ("        finally:\n            del self.futures[correlation_id]\n", ""),
            ("        if future is None or future.done():\n", "        if future is None:\n"),
        ),
        r"made _on_reply raise InvalidStateError",
        base=S,
    ),
    Mistake(
        "strays-printed-not-logged",
        "a reply nobody waits for is printed, not logged",
        (
            (
                'log.warning("Ignored a reply nobody waits for: %r", message.correlation_id)',
                'print("Ignored a reply nobody waits for:", message.correlation_id)',
            ),
        ),
        r"warning\(s\) were logged",
        base=S,
    ),
    Mistake(
        "client-stop-closes-the-channel-only",
        "the client's stop() closes its channel and leaves the connection open",
        (
            (
                "await self.connection.close()  # the client's",
                "await self.channel.close()  # the client's",
            ),
        ),
        r"after stop\(\) the client still has 1 open connection",
        base=S,
    ),
    # ------------------------------------------------------------ the server: queue and reply
    Mistake(
        "start-serves-for-ever",
        "start() waits for calls for ever instead of returning",
        (
            (
                "        self.consumer_tag = await self.queue.consume(self._on_request)\n",
                "        self.consumer_tag = await self.queue.consume(self._on_request)\n"
                "        await asyncio.Future()  # serve for ever\n",
            ),
        ),
        r"server\.start\(\) did not finish within 5 s\. start\(\) must connect",
        base=S,
    ),
    Mistake(
        "transient-request-queue",
        "the request queue is declared without durable=True (4.3 refuses it; 3.x makes it "
        "transient)",
        (
            (
                "declare_queue(self.config.queue_name, durable=True)",
                "declare_queue(self.config.queue_name)",
            ),
        ),
        r"durable=True",
        base=S,
    ),
    Mistake(
        "reply-without-correlation-id",
        "the server's reply does not carry the request's correlation_id",
        (("                        correlation_id=message.correlation_id,\n", ""),),
        r"not the request's 'pika-call-1'",
        base=S,
    ),
    Mistake(
        "errors-not-answered",
        "an exception (a wrong argument, an error in the method) escapes: no reply at all",
        (
            (
                "                try:\n"
                '                    reply = {"result": await self._run(request["method"], '
                'request["args"])}\n'
                "                except Exception as error:\n"
                '                    reply = {"error": {"type": type(error).__name__, '
                '"message": str(error)}}\n',
                '                reply = {"result": await self._run(request["method"], '
                'request["args"])}\n',
            ),
        ),
        r"got no reply: a call with a wrong argument type must be answered with an error reply",
        base=S,
    ),
    Mistake(
        "error-type-lost",
        "every error reply says type 'RemoteError', whatever was raised",
        (
            (
                '"type": type(error).__name__',
                '"type": "RemoteError"',
            ),
        ),
        r'it must be \{"error": \{"type": "TypeError"',
        base=S,
    ),
    Mistake(
        "register-ignores-the-name",
        "register() keeps the function under func.__name__, not the name it was given",
        (("        self.methods[name] = func\n", "        self.methods[func.__name__] = func\n"),),
        r"register\('plus', int_sum\) must serve int_sum as 'plus'",
        base=S,
    ),
    Mistake(
        "unknown-method-not-named",
        "the error for an unknown method does not say which method",
        (('raise LookupError(f"no method {name!r}")', 'raise LookupError("no such method")'),),
        r"its message must name the method",
        base=S,
    ),
    Mistake(
        "getattr-dispatch",
        "looks methods up on the server too (getattr(self, name)): any caller can run the "
        "server's own methods, stop() among them",
        (
            (
                "        if name not in self.methods:\n"
                '            raise LookupError(f"no method {name!r}")\n'
                "        func = self.methods[name]\n",
                "        func = self.methods.get(name) or getattr(self, name, None)\n"
                "        if func is None:\n"
                '            raise LookupError(f"no method {name!r}")\n',
            ),
            (
                "        result = self.methods[name](**args)\n",
                "        result = (self.methods.get(name) or getattr(self, name))(**args)\n",
            ),
        ),
        r"a call of 'stop', which is no registered method, got no reply .* getattr\(self, name\)",
        base=S,
    ),
    Mistake(
        "bad-request-requeued",
        "a request that is not JSON is requeued (message.process(requeue=True)), so the broker "
        "delivers it again and again, for ever",
        (
            (
                "            async with message.process():\n",
                "            async with message.process(requeue=True):\n",
            ),
        ),
        r"the requests the server could not read came back again and again",
        base=S,
    ),
    Mistake(
        "bad-request-stalls",
        "acks by hand after the reply, so a request that is not JSON raises before the ack and "
        "stays unacked: at capacity 1 the server takes no further call",
        (
            ("            async with message.process():\n", "            if True:\n"),
            (
                "                    routing_key=message.reply_to,\n                )\n",
                "                    routing_key=message.reply_to,\n                )\n"
                "                await message.ack()\n",
            ),
        ),
        r"after 3 requests it could not read .* the server did not answer int_sum",
        base=S,
    ),
    Mistake(
        "method-error-message-is-a-repr",
        "the error reply's message is repr(error), not the exception's own text",
        (('"message": str(error)', '"message": repr(error)'),),
        r"raised ValueError\('no user with id 7'\) on the server, and the error reply was",
        base=S,
    ),
    Mistake(
        "unknown-arguments-dropped",
        "the server quietly drops the arguments the method does not take, and calls it",
        (
            (
                "            if key not in parameters:\n"
                '                raise TypeError(f"{name}() got an unexpected argument {key!r}")\n',
                "            if key not in parameters:\n                continue\n",
            ),
            (
                "        result = self.methods[name](**args)\n",
                "        known = inspect.signature(self.methods[name]).parameters\n"
                "        args = {k: v for k, v in args.items() if k in known}\n"
                "        result = self.methods[name](**args)\n",
            ),
        ),
        r"int_sum\(a=5, b=18, c=1\) came back as the result",
        base=S,
    ),
    Mistake(
        "async-result-not-awaited",
        "the server does not await what a coroutine function returns",
        (("        if inspect.isawaitable(result):\n            result = await result\n", ""),),
        r"slow_echo.*coroutine.*Await it before you encode the result",
        base=S,
    ),
    # ------------------------------------------------------------ the server: argument checks
    Mistake(
        "no-type-check",
        "the server checks the argument names but not their types",
        (
            (
                "            if kind is not None and not fits(value, kind):\n",
                "            if False:\n",
            ),
        ),
        r"greet\(name=42\) was run .* Check each argument against the method's type hints",
        base=S,
    ),
    Mistake(
        "annotations-read-as-strings",
        "func.__annotations__ instead of typing.get_type_hints: the hints are strings there",
        (("hints = typing.get_type_hints(func)", "hints = func.__annotations__"),),
        r"The annotations are strings here",
        base=S,
    ),
    Mistake(
        "bool-passes-as-int",
        "isinstance(True, int) is True, so true is taken for a number",
        (
            (
                "    if isinstance(value, bool):\n"
                "        return False  # JSON true is not a number, although Python says it is "
                "an int\n",
                "",
            ),
        ),
        r"JSON true is not a number",
        base=S,
    ),
    Mistake(
        "int-refused-for-float",
        "type(value) is kind: the JSON number 2 does not fit a float parameter",
        (
            (
                "    if kind is bool:\n        return isinstance(value, bool)\n",
                "    return type(value) is kind\n",
            ),
        ),
        r"an int fits a float annotation",
        base=S,
    ),
    # ------------------------------------------------------------ the server: capacity and acks
    Mistake(
        "no-prefetch",
        "no set_qos: the server runs every waiting call at once",
        (("        await self.channel.set_qos(prefetch_count=self.config.capacity)\n", ""),),
        r"at most capacity=2 calls may run at once, but \d ran together",
        base=S,
    ),
    Mistake(
        "semaphore-without-prefetch",
        "an asyncio.Semaphore limits the calls, but without prefetch the server takes them all",
        (
            (
                "        await self.channel.set_qos(prefetch_count=self.config.capacity)\n",
                "        self.slots = asyncio.Semaphore(self.config.capacity)\n",
            ),
            (
                "            async with message.process():\n",
                "            async with self.slots, message.process():\n",
            ),
        ),
        r"took all 4 waiting calls",
        base=S,
    ),
    Mistake(
        "ack-before-the-reply",
        "the request is acked as soon as it arrives: a server that dies mid-call loses it",
        (
            (
                "            async with message.process():\n"
                "                request = json.loads(message.body)\n",
                "            async with message.process(ignore_processed=True):\n"
                "                await message.ack()\n"
                "                request = json.loads(message.body)\n",
            ),
        ),
        r"the call was lost: no other server answered it",
        base=S,
    ),
    Mistake(
        "server-stop-closes-the-channel-only",
        "the server's stop() closes its channel and leaves the connection open",
        (
            (
                "            await asyncio.wait(self.running)  # ... and the running ones finish\n"
                "        await self.connection.close()\n",
                "            await asyncio.wait(self.running)  # ... and the running ones finish\n"
                "        await self.channel.close()\n",
            ),
        ),
        r"after stop\(\) the server still has 1 open connection",
        base=S,
    ),
    # ------------------------------------------------------------ starred
    Mistake(
        "no-direct-reply-to",
        "the client declares an exclusive reply queue: right, but not the starred direct reply-to",
        (
            (
                'queue = await self.channel.get_queue("amq.rabbitmq.reply-to", ensure=False)',
                "queue = await self.channel.declare_queue(exclusive=True)",
            ),
        ),
        r"Client step 6 \(starred\): the requests carry reply_to=",
        base=S,
    ),
    Mistake(
        "stop-does-not-wait",
        "stop() closes the connection at once: the calls in flight never reply",
        (
            (
                "        await self.queue.cancel(self.consumer_tag)  # Step 8: no new calls ...\n"
                "        if self.running:\n"
                "            await asyncio.wait(self.running)  # ... and the running ones finish\n",
                "",
            ),
        ),
        r"of the 2 calls in flight when stop\(\) began, 0 were answered by the stopping server",
        base=S,
    ),
    Mistake(
        "stop-keeps-consuming",
        "stop() waits for the running calls but keeps consuming meanwhile",
        (("        await self.queue.cancel(self.consumer_tag)  # Step 8: no new calls ...\n", ""),),
        r"the stopping server started \d calls, not just the 2 in flight",
        base=S,
    ),
    # ------------------------------------------------------------ the reference, broken
    Mistake(
        "reference-bool-is-an-int",
        "the reference, taking JSON true for an int",
        (
            (
                "return isinstance(value, int) and not isinstance(value, bool)  # JSON true is "
                "no number",
                "return isinstance(value, int)",
            ),
        ),
        r"JSON true is not a number",
    ),
    Mistake(
        "reference-acks-on-arrival",
        "the reference, acking each request before it runs",
        (
            (
                "                reply = await self._answer(message)\n",
                "                await _settle(message, ack=True)\n"
                "                reply = await self._answer(message)\n",
            ),
        ),
        r"the call was lost: no other server answered it",
    ),
    Mistake(
        "reference-requests-never-expire",
        "the reference, without an expiration on its requests",
        (
            (
                "            expiration=timeout,  # nobody took it in time: the broker drops it, "
                "no server runs it\n",
                "",
            ),
        ),
        r"Give the request expiration",
    ),
    Mistake(
        "reference-no-grace",
        "the reference, giving the calls in flight no time at all when it stops",
        (
            (
                "_, late = await asyncio.wait(running, timeout=self.config.grace_period)",
                "_, late = await asyncio.wait(running, timeout=0.01)",
            ),
        ),
        r"of the 2 calls in flight when stop\(\) began, 0 were answered by the stopping server",
    ),
]

# Each run stops at the first failing test (-x): that failure, the first one a student reads,
# must name the mistake. It also spares the run the timeouts of every later test.
MISTAKES = [dataclasses.replace(mistake, extra_args=("-x",)) for mistake in _MISTAKES]
