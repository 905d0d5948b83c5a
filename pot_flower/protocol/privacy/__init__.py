"""Central differential privacy executed by the committee.

``config`` (what genesis fixes), ``discrete_gaussian`` (exact integer noise from a
seed), ``mechanism`` (clip, sum, noise, divide), ``accountant`` (epsilon from
dp-accounting).
"""
