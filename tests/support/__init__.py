"""Helpers the tests of several features share: no tests here."""
