"""The delivery settings the design requires are what the factories build."""

from __future__ import annotations

import pytest
from faststream import AckPolicy

from shared.config import BaseServiceSettings
from shared.messaging.broker import make_broker, make_producer
from shared.runtime import ServiceRuntime


@pytest.mark.parametrize("idempotent", [False, True])
def test_broker_acks_all_commits_after_the_handler_and_switches_idempotence(idempotent):
    broker = make_broker(BaseServiceSettings(service_name="venues", kafka_idempotent=idempotent))
    assert broker._connection_kwargs["acks"] == "all"
    assert broker._connection_kwargs["enable_idempotence"] is idempotent
    assert broker.config.broker_config.ack_policy is AckPolicy.ACK


async def test_relay_producer_is_named_after_the_service():
    producer = make_producer(BaseServiceSettings(service_name="venues"))
    try:
        assert producer.client._client_id == "venues-relay"
        assert producer._txn_manager is None, "the local broker cannot run the idempotent producer"
    finally:
        await producer.client.close()


async def test_consumer_is_sequential_earliest_manual_commit_and_grouped_by_service():
    runtime = ServiceRuntime(BaseServiceSettings(service_name="notifications"))
    runtime.consumer.also_listen("venues.stops.v1")
    runtime.consumer.attach(runtime.broker)
    [subscriber] = runtime.broker.subscribers
    assert type(subscriber).__name__ == "DefaultSubscriber", "one message at a time per partition (FastStream #2618)"
    assert subscriber.group_id == "notifications"
    assert subscriber.ack_policy is AckPolicy.ACK
    assert subscriber._connection_args["auto_offset_reset"] == "earliest"
    assert subscriber._connection_args["enable_auto_commit"] is False
