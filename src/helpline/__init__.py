"""Helpline: a self-hosted support-ticket service speaking the Rhombus Help API."""

__version__ = "0.1.0"
