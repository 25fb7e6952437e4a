"""Alerts: when opinion on a company turns sharply negative.

The negative-spike detector as a pure function over bucketed counts (`detector.py`), its evaluation
over the lake's sentiment series plus the alert store and delivery (`evaluate.py`), and the labelled
Poisson simulation that tunes it (`simulate.py`). May import `lake` and `schemas`.
"""
