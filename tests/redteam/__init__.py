"""Adversarial cases for fastgrad, written independently of the developers' tests."""
