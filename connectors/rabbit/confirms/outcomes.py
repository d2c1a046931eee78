"""Lesson "confirms": what a confirmed publish can come back with, then exit.

    python3 connectors/rabbit/confirms/outcomes.py

Four publishes on one channel with publisher confirms (aio-pika's default) to the default
exchange: into a queue with room (ack), into a queue that is full and refuses more (nack),
with a routing key no queue has (ack all the same: dropped), and that again with
mandatory=True (returned, then ack). The queue `confirms_full` holds at most one message
(x-max-length 1, x-overflow reject-publish); it is deleted at the end.
"""

from aio_pika import DeliveryMode, Message
from aio_pika.exceptions import DeliveryError

from connectors.rabbit import lesson


async def main() -> None:
    connection = await lesson.connect()
    async with connection:
        # on_return_raises: a returned (mandatory, unroutable) message raises, not just logs.
        channel = await connection.channel(on_return_raises=True)
        full = await channel.declare_queue(
            "confirms_full",
            durable=True,
            arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
        )
        await full.purge()

        async def publish(what: str, routing_key: str, acked: str, mandatory: bool = False) -> None:
            message = Message(what.encode(), delivery_mode=DeliveryMode.PERSISTENT)
            try:
                await channel.default_exchange.publish(
                    message, routing_key=routing_key, mandatory=mandatory
                )
            except DeliveryError as error:  # PublishError, for a return, is a DeliveryError too
                print(f" [!] {what}: {type(error.frame).__name__}: {explain(error.frame)}")
            else:
                print(f" [x] {what}: Ack: {acked}")

        await publish("into a queue with room", "confirms_full", "the queue has it")
        await publish("into the same queue, now full", "confirms_full", "the queue has it")
        await publish("to a routing key no queue has", "nowhere", "taken, and dropped: no queue")
        await publish("the same, with mandatory=True", "nowhere", "?", mandatory=True)
        await full.delete(if_unused=False, if_empty=False)


def explain(frame: object) -> str:
    """What a Basic.Nack or Basic.Return means, in words."""
    if type(frame).__name__ == "Nack":
        return "the broker refused it (here: the queue is full and rejects new messages)"
    code, text = getattr(frame, "reply_code", "?"), getattr(frame, "reply_text", "?")
    return f"{code} {text}, the broker handed it back: no queue is bound for that routing key"


if __name__ == "__main__":
    lesson.run(main())
