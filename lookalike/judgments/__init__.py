"""Scoring metrics against human judgments: 2AFC triplets, JND pairs and rankings.

``datasets`` reads the published layouts (NIGHTS, BAPPS 2AFC/JND, lookalike study exports, a
ranking CSV) into typed records; ``scores`` holds the pure numpy scores and bootstrap intervals;
``cache`` keeps each image's vector per metric on disk; ``evaluate`` ties them together for
``lookalike eval``.
"""
