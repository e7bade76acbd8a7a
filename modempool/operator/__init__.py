"""Operator features: contacts, campaigns, opt-outs, compliance, auto-reply, forwarding, history, recurring jobs, backup."""
