"""Tests of brain."""
