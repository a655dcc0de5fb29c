"""Errors of the device agent; each message says what was wrong and what happens next."""

from __future__ import annotations


class AgentError(Exception):
    """Base of the agent's deliberate errors."""


class ReleaseRejected(AgentError):
    """A release failed verification (signature, hashes, names) and was not installed."""


class SelfTestFailed(AgentError):
    """A release loaded but its self-test did not give the expected output."""


class NoLoadableModel(AgentError):
    """Neither the current nor the previous release can be loaded."""


class ConfigError(AgentError):
    """The agent's config.json or command line is not usable."""


class SpoolBusy(AgentError):
    """Another process held the spool's lock for longer than a control command waits."""
