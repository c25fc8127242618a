"""The client layer: what reaches the services, and how their answers and outages are surfaced."""

from __future__ import annotations

import httpx
import pytest

from portal.clients import RegistrationClient, ServiceError, ServiceUnavailable, VenuesClient


def client_with(handler, cls=VenuesClient):
    return cls("http://svc.test", timeout=1.0, transport=httpx.MockTransport(handler))


async def test_sends_bearer_token_and_drops_empty_filters() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [{"id": "s1"}]})

    stops = await client_with(handler).stops(token="jwt", season="2022", region="", status=None)
    assert stops == [{"id": "s1"}]
    assert seen[0].headers["authorization"] == "Bearer jwt"
    assert dict(seen[0].url.params) == {"season": "2022"}


async def test_refusal_carries_the_service_envelope() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": "validation_error", "detail": "invalid request",
                                         "fields": {"email": "not an email", "consents": "required"}})

    with pytest.raises(ServiceError) as caught:
        await client_with(handler, RegistrationClient).sign_up("s1", {"email": "x"})
    assert caught.value.status == 422
    assert caught.value.fields == {"email": "not an email", "consents": "required"}


async def test_refusal_without_json_body_still_explains() -> None:
    with pytest.raises(ServiceError) as caught:
        await client_with(lambda r: httpx.Response(404, text="<html>nope</html>")).stop("s1")
    assert (caught.value.status, caught.value.code, caught.value.detail) == (404, "http_error", "Not Found")


@pytest.mark.parametrize("failure", [
    lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused", request=request)),
    lambda request: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=request)),
    lambda request: httpx.Response(503, json={"error": "unavailable"}),
])
async def test_outages_name_the_service(failure) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        await client_with(failure, RegistrationClient).availability("s1")
    assert caught.value.service == "registration"
