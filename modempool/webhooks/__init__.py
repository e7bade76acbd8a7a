"""Webhooks: subscriptions, the durable outbox written by triggers, and the delivery worker."""

from modempool.webhooks.store import EVENT_TYPES, Webhook, Webhooks, new_secret

__all__ = ["EVENT_TYPES", "Webhook", "Webhooks", "new_secret"]
