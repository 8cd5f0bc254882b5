"""Staff alert posts to a team chat's incoming webhook: the :class:`ringback.ports.ChatWebhook`
adapter."""

from __future__ import annotations

import httpx

from ringback.ports import AlertDeliveryFailed


class HttpChatWebhook:
    """:class:`ringback.ports.ChatWebhook`: POSTs ``{"text": ...}`` as JSON.

    Slack incoming webhooks, Mattermost, Rocket.Chat and Google Chat accept that body.
    The URL is a credential, so it is never put in an error or a log line.
    """

    def __init__(self, *, timeout: float, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "Ringback"}
        )

    def post(self, url: str, text: str) -> None:
        try:
            response = self._client.post(url, json={"text": text})
        except httpx.HTTPError as exc:
            raise AlertDeliveryFailed(f"webhook request failed: {type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise AlertDeliveryFailed(f"webhook answered {status}")
        if not response.is_success:
            raise AlertDeliveryFailed(f"webhook answered {status}", retry=False)

    def close(self) -> None:
        self._client.close()
